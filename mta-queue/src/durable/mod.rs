//! Every operation that makes something durable, and the [`Fs`] trait they run through.
//!
//! This is the only module that renames, unlinks or syncs (house style, "Durability
//! code"). Each function is named for the guarantee it gives and says what is on disk
//! before, after, and after a crash at each step. The queue logic above it never touches the
//! file system any other way, which is what lets the power-loss simulator ([`crate::sim`])
//! stand in for the real disk in tests.

pub(crate) mod os;
pub(crate) mod sim;

use std::io;

/// How a file is opened by [`Fs::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading only.
    Read,
    /// Reading and writing (for appending status records).
    ReadWrite,
}

/// The small file-system interface the queue runs on, with paths relative to the queue
/// directory (`"tmp/17"`, `"mess/3/17"`; `""` is the queue directory itself).
///
/// [`OsFs`](crate::OsFs) is the real one (rustix `*at` calls on the queue directory's fd);
/// [`SimFs`](crate::sim::SimFs) is a simulator that, on a simulated power loss, keeps only
/// what was made durable: file data after [`sync_data`](Fs::sync_data), a created, renamed
/// or removed name only after [`sync_dir`](Fs::sync_dir) of its directory. Implement it to
/// add fault injection or kill points around another implementation.
pub trait Fs: Send + Sync + 'static {
    /// An open file.
    type File: Send + Sync;

    /// Creates directory `path` (its parent must exist).
    ///
    /// # Errors
    /// `AlreadyExists` if it exists, or any I/O error.
    fn create_dir(&self, path: &str) -> io::Result<()>;
    /// Creates file `path` for reading and writing; fails if it exists (`O_EXCL`).
    ///
    /// # Errors
    /// Any I/O error.
    fn create_new(&self, path: &str) -> io::Result<Self::File>;
    /// Opens an existing file.
    ///
    /// # Errors
    /// `NotFound`, or any I/O error.
    fn open(&self, path: &str, access: Access) -> io::Result<Self::File>;
    /// Reads at `offset`; returns the bytes read (0 at end of file).
    ///
    /// # Errors
    /// Any I/O error.
    fn read_at(&self, file: &Self::File, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset` (no durability implied).
    ///
    /// # Errors
    /// Any I/O error; part of `buf` may have been written.
    fn write_all_at(&self, file: &Self::File, buf: &[u8], offset: u64) -> io::Result<()>;
    /// The file's current length.
    ///
    /// # Errors
    /// Any I/O error.
    fn file_len(&self, file: &Self::File) -> io::Result<u64>;
    /// Truncates or extends the file to `len` (no durability implied).
    ///
    /// # Errors
    /// Any I/O error.
    fn set_len(&self, file: &Self::File, len: u64) -> io::Result<()>;
    /// Makes the file's data and length durable (`fdatasync`; `F_FULLFSYNC` on Apple).
    ///
    /// # Errors
    /// Any I/O error; after one the file's durable contents are unknown.
    fn sync_data(&self, file: &Self::File) -> io::Result<()>;
    /// Renames a file (`renameat`). The queue never renames onto an existing name.
    ///
    /// # Errors
    /// Any I/O error.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Gives the file at `from` a second name `to` (a hard link); `AlreadyExists` if `to`
    /// exists. The default returns `Unsupported`, and the queue then renames instead.
    ///
    /// # Errors
    /// Any I/O error.
    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        let _ = (from, to);
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Removes a file's name.
    ///
    /// # Errors
    /// `NotFound`, or any I/O error.
    fn remove_file(&self, path: &str) -> io::Result<()>;
    /// Makes the names in directory `path` durable (`fsync` on the directory).
    ///
    /// # Errors
    /// Any I/O error.
    fn sync_dir(&self, path: &str) -> io::Result<()>;
    /// The names in directory `path` (without `.` and `..`), in no particular order.
    ///
    /// # Errors
    /// Any I/O error.
    fn list_dir(&self, path: &str) -> io::Result<Vec<String>>;
}

/// Creates each of `names` under `parent`, then syncs `parent` once.
///
/// Before: some or none exist. After: all exist and their names are durable. A crash in
/// between leaves some of them, possibly not durable; calling this again finishes the job
/// (existing directories are kept).
pub(crate) fn create_dirs_synced<F: Fs>(fs: &F, parent: &str, names: &[String]) -> io::Result<()> {
    let mut created = false;
    for name in names {
        let path = join(parent, name);
        match fs.create_dir(&path) {
            Ok(()) => created = true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    if created {
        fs.sync_dir(parent)?;
    }
    Ok(())
}

/// Writes `bytes` at `offset` and makes the file's data durable.
///
/// Before: the file holds its old bytes. After: it durably holds the new ones. A crash in
/// between leaves any mix of old and new bytes past the durable length, which is why the
/// queue only calls this on files no reader trusts yet (an unpublished `tmp/` file), or
/// appends CRC-checked records that a reader ignores when torn.
pub(crate) fn write_synced<F: Fs>(
    fs: &F,
    file: &F::File,
    offset: u64,
    bytes: &[u8],
) -> io::Result<()> {
    fs.write_all_at(file, bytes, offset)?;
    fs.sync_data(file)
}

/// Appends `bytes` at `end` (the current length) and makes them durable; on failure, cuts
/// the file back to `end` so a partial record never sits in front of a later one.
///
/// Before: records up to `end`. After: the new records durably follow. A crash in between
/// leaves a torn tail that the reader ignores and the next append first cuts off.
pub(crate) fn append_synced<F: Fs>(
    fs: &F,
    file: &F::File,
    end: u64,
    bytes: &[u8],
) -> io::Result<()> {
    let result = write_synced(fs, file, end, bytes);
    if result.is_err() {
        // Best effort: the caller reports the write error and re-verifies the tail next time.
        let _ = fs.set_len(file, end);
    }
    result
}

/// Cuts a torn tail off at `len` and makes that durable.
///
/// Before: valid records, then garbage. After: only the valid records. A crash in between
/// leaves either, and both read the same.
pub(crate) fn truncate_synced<F: Fs>(fs: &F, file: &F::File, len: u64) -> io::Result<()> {
    fs.set_len(file, len)?;
    fs.sync_data(file)
}

/// Moves a fully synced file from `from` to `to` and makes the new name durable: the commit
/// point of an enqueue (qmail's `link(intd, todo)`).
///
/// Before: only `from` exists (data already durable). After [`move_file`]: `to` is visible but
/// might not survive power loss. After `sync_dir(to_dir)`: `to` is durable. A crash before
/// the sync leaves `from` only (recovery discards it: the caller never heard "ok"), or
/// `to`, or both names (recovery removes the stale `from`). `from`'s removal need not be
/// synced for the same reason.
pub(crate) fn publish_by_move<F: Fs>(fs: &F, from: &str, to: &str, to_dir: &str) -> io::Result<()> {
    move_file(fs, from, to)?;
    fs.sync_dir(to_dir)
}

/// Removes a name that nobody relies on (an interrupted enqueue's `tmp/` file, or the stale
/// `tmp/` name of a published message) without syncing: if the removal is lost, recovery
/// removes it again. `NotFound` counts as success.
pub(crate) fn discard<F: Fs>(fs: &F, path: &str) -> io::Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes the names in `dir` durable (after a batch of renames or removals into it).
pub(crate) fn sync_dir<F: Fs>(fs: &F, dir: &str) -> io::Result<()> {
    fs.sync_dir(dir)
}

/// Moves a file from `from` to `to` (another directory) as a hard link and an unlink where
/// the file system allows, else with `rename`; nothing is synced. For a publish the caller
/// syncs the directory for a whole batch with [`sync_dir`] before anyone is told of the
/// move; for a removal into `free/` nobody needs it durable (see [`remove_unsynced`]).
///
/// On Linux a `rename` between two directories takes a lock that is global to the file
/// system (`s_vfs_rename_mutex`), so every cross-directory rename on it, the queue's and
/// every maildir delivery's alike, waits for the others; `link` and `unlink` lock only
/// the directories involved. In between, both names exist, a state recovery already
/// handles for every move the queue makes (a stale `tmp/` or `free/` name beside the
/// `mess/` one; a removed message still in `mess/` beside its `free/` name).
pub(crate) fn move_file<F: Fs>(fs: &F, from: &str, to: &str) -> io::Result<()> {
    match fs.link(from, to) {
        Ok(()) => fs.remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        // No hard links here (or a name left over): rename, which replaces `to`.
        Err(_) => fs.rename(from, to),
    }
}

/// Removes a file without syncing (a removal whose loss in a power failure costs at most a
/// repeated delivery, never a lost message).
pub(crate) fn remove_unsynced<F: Fs>(fs: &F, path: &str) -> io::Result<()> {
    fs.remove_file(path)
}

/// Joins a relative directory and a name.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}
