//! Every operation that makes something durable, on the [`Fs`] trait of [`mta_durable`].
//!
//! This is the only module that renames, unlinks or syncs (house style, "Durability
//! code"): the queue logic calls the steps re-exported or defined here, each named for the
//! guarantee it gives and documented with what is on disk before, after, and after a crash
//! at each step (see [`mta_durable`]). Every path is relative to the queue directory, which
//! the queue opens once ([`Fs::open_dir`] of `"."`) and passes as `root`. The queue never
//! touches the file system any other way, which is what lets the power-loss simulator
//! ([`crate::sim`]) stand in for the real disk in tests.

use std::io;

pub use mta_durable::{Access, Fs, OsFs};
pub(crate) use mta_durable::{
    create_dirs_synced, discard, join, move_file, remove_unsynced, sync_dir_at, truncate_synced,
    write_at_synced,
};

/// Moves a fully synced file from `from` to `to` ([`move_file`]) and makes the new name
/// durable by syncing `to_dir`: the commit point of an enqueue (qmail's `link(intd, todo)`).
///
/// Before: only `from` exists (data already durable). After the move: `to` is visible but
/// might not survive power loss. After the sync of `to_dir`: `to` is durable. A crash before
/// the sync leaves `from` only (recovery discards it: the caller never heard "ok"), or `to`,
/// or both names (recovery removes the stale `from`). `from`'s removal need not be synced
/// for the same reason.
pub(crate) fn publish_by_move<F: Fs>(
    fs: &F,
    root: &F::Dir,
    from: &str,
    to: &str,
    to_dir: &str,
) -> io::Result<()> {
    move_file(fs, root, from, root, to)?;
    sync_dir_at(fs, root, to_dir)
}

/// Makes every change on the queue's file system durable at once (`syncfs` of `root`'s
/// file system): the data written and the names moved before the call. A commit round's
/// one sync ([`CommitMode::Filesystem`](crate::CommitMode::Filesystem)): it makes the names
/// linked in that round durable, after which their enqueues return, and the data of the
/// messages written since, which the next round may then link. A crash before it returns
/// may keep any subset of those changes; since a name is linked only to data a previous
/// sync made durable, any name that survives names a complete message.
///
/// # Errors
/// `Unsupported` where there is no `syncfs` (the caller falls back to per-file syncs), or
/// any I/O error.
pub(crate) fn sync_filesystem<F: Fs>(fs: &F, root: &F::Dir) -> io::Result<()> {
    fs.sync_filesystem(root)
}

/// Makes `file`'s data and length durable (`fdatasync`): the fallback of a
/// [`CommitMode::Filesystem`](crate::CommitMode::Filesystem) enqueue where `syncfs` is
/// unsupported, before the grouped move into `mess/`. A crash before it returns leaves the
/// file named only in `tmp/` (or by a free name), which recovery discards.
pub(crate) fn sync_data<F: Fs>(fs: &F, file: &F::File) -> io::Result<()> {
    fs.sync_data(file)
}
