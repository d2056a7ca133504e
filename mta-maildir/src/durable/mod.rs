//! The only code that makes data durable or changes directory entries.
//!
//! style.md "Durability code": fsync, rename, link and unlink happen only here, through the
//! [`Fs`] trait of [`mta_durable`] (re-exported here). [`OsFs`] implements it with rustix
//! `*at` calls on open directory file descriptors (full `F_FULLFSYNC` on Apple platforms);
//! [`PowerLossFs`](crate::sim::PowerLossFs) implements it in memory and keeps only what was
//! made durable, so tests can cut the power after any operation and prove the order of the
//! fsyncs.
//!
//! The functions below and the shared ones re-exported from [`mta_durable`] are named for
//! the guarantee they give. Each doc comment states the on-disk state before, after, and
//! after a crash at each step. "Durable" means it survives power loss; an entry that is not
//! yet durable may or may not survive one.

use std::cell::Cell;
use std::io::{self, Read};

use crate::error::DeliverStep;

pub use mta_durable::{Access, Fs, OsFs};
pub(crate) use mta_durable::{
    NAME_ATTEMPTS, copy_synced, publish_by_link, publish_unnamed, remove_unsynced, rename_synced,
};

/// Writes `prefix` then everything `message` yields into `file`, then makes the data durable.
///
/// Before: `file` is a new empty file in `tmp/` (its name may not be durable yet). After
/// `Ok`: the bytes are durable in the inode, whatever name it ends up under. A crash before
/// the fsync leaves an empty or partial file that only `tmp/` names: never visible to
/// readers. Returns the number of bytes written, or the step that failed.
pub(crate) fn write_synced<F: Fs>(
    fs: &F,
    file: &mut F::File,
    prefix: &[u8],
    message: impl Read,
) -> Result<u64, (DeliverStep, io::Error)> {
    let total = write_unsynced(fs, file, prefix, message)?;
    fs.sync_all(file).map_err(|e| (DeliverStep::SyncFile, e))?;
    Ok(total)
}

/// Writes `prefix` then everything `message` yields into `file`, without syncing: for a
/// [`DeliveryBatch`](crate::DeliveryBatch), which makes many files durable with one
/// [`sync_filesystem`]. Before and after: `file` is a new file named only in `tmp/`, so a
/// crash at any point leaves nothing a reader sees. Returns the number of bytes written, or
/// the step that failed.
///
/// The prefix and the message's first bytes go out in one write: a message shorter than
/// [`COPY_BUF`] costs a single `write` (a delivery agent writes thousands of such files a
/// second). The copy buffer is the thread's own, kept from one delivery to the next, so a
/// delivery neither allocates nor zeroes 64 KiB.
pub(crate) fn write_unsynced<F: Fs>(
    fs: &F,
    file: &mut F::File,
    prefix: &[u8],
    message: impl Read,
) -> Result<u64, (DeliverStep, io::Error)> {
    // The thread's buffer is taken out for the copy and put back after it, so a `message`
    // whose reads deliver on this thread finds it empty and uses a fresh one; a thread-local
    // already gone (a destructor delivering) also means a fresh one.
    let mut buf = COPY.try_with(Cell::take).unwrap_or_default();
    let result = copy_into(fs, file, prefix, message, &mut buf);
    let _ = COPY.try_with(|kept| kept.set(buf));
    result
}

/// [`write_unsynced`] with `buf` as the copy buffer (grown to [`COPY_BUF`] if shorter).
fn copy_into<F: Fs>(
    fs: &F,
    file: &mut F::File,
    prefix: &[u8],
    mut message: impl Read,
    buf: &mut Vec<u8>,
) -> Result<u64, (DeliverStep, io::Error)> {
    if buf.len() < COPY_BUF {
        buf.resize(COPY_BUF, 0);
    }
    let mut total = 0u64;
    // Bytes waiting in `buf` (a prefix as long as the buffer is written by itself).
    let mut held = if prefix.len() < COPY_BUF {
        buf[..prefix.len()].copy_from_slice(prefix);
        prefix.len()
    } else {
        fs.write_all(file, prefix)
            .map_err(|e| (DeliverStep::Write, e))?;
        total += prefix.len() as u64;
        0
    };
    loop {
        let n = match message.read(&mut buf[held..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((DeliverStep::ReadMessage, e)),
        };
        held += n;
        if n == 0 || held == buf.len() {
            if held > 0 {
                fs.write_all(file, &buf[..held])
                    .map_err(|e| (DeliverStep::Write, e))?;
                total += held as u64;
                held = 0;
            }
            if n == 0 {
                return Ok(total);
            }
        }
    }
}

/// The size of [`write_unsynced`]'s copy buffer.
const COPY_BUF: usize = 64 * 1024;

thread_local! {
    /// [`write_unsynced`]'s copy buffer, one per thread.
    static COPY: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Makes every entry of `dir` durable: names linked, renamed or removed in it before this
/// call survive power loss after it returns `Ok`. A crash before it returns may keep any
/// subset of those changes.
pub(crate) fn sync_dir<F: Fs>(fs: &F, dir: &F::Dir) -> io::Result<()> {
    fs.sync_dir(dir)
}

/// Makes every change on the filesystem holding `dir` durable at once (`syncfs`).
///
/// Used by batched fan-out and [`DeliveryBatch`](crate::DeliveryBatch) instead of one
/// [`sync_dir`] per target: names hard-linked before
/// this call, in any directory of that filesystem, survive power loss after it returns
/// `Ok`. Linux reports write-back errors from `syncfs` since 5.8; on older kernels an I/O
/// error could go unreported, which is why this is opt-in. A crash before it returns may
/// keep any subset of the changes.
pub(crate) fn sync_filesystem<F: Fs>(fs: &F, dir: &F::Dir) -> io::Result<()> {
    fs.sync_filesystem(dir)
}

/// Makes the data and length of `file` durable. A crash before it returns may keep any prefix
/// of the bytes written since the last sync (and for append files nothing more).
pub(crate) fn sync_all<F: Fs>(fs: &F, file: &F::File) -> io::Result<()> {
    fs.sync_all(file)
}

/// Sets the length of `file` back to `len` and makes that durable (mbox rollback).
///
/// Before: bytes past `len` were appended but never synced, or synced as part of a delivery
/// that then failed. After `Ok`: the file is durably `len` bytes long. A crash in between
/// may keep the appended bytes, exactly as a crash during the append would.
pub(crate) fn truncate_synced<F: Fs>(fs: &F, file: &F::File, len: u64) -> io::Result<()> {
    fs.set_len(file, len)?;
    fs.sync_all(file)
}
