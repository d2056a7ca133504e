//! The only code that makes data durable or changes directory entries.
//!
//! style.md "Durability code": fsync, rename, link and unlink happen only here, through the
//! [`Fs`] trait. [`OsFs`] implements it with rustix `*at` calls on open directory file
//! descriptors (full `F_FULLFSYNC` on Apple platforms); [`PowerLossFs`](crate::sim::PowerLossFs)
//! implements it in memory and keeps only what was made durable, so tests can cut the power
//! after any operation and prove the order of the fsyncs.
//!
//! The functions below are named for the guarantee they give. Each doc comment states the
//! on-disk state before, after, and after a crash at each step. "Durable" means it survives
//! power loss; an entry that is not yet durable may or may not survive one.

mod os;

use std::io::{self, Read};
use std::path::Path;
use std::time::SystemTime;

use crate::error::DeliverStep;

pub use os::OsFs;

/// The filesystem operations delivery needs, on open directory handles.
///
/// Names are single path components. Implementations: [`OsFs`] (the real filesystem) and
/// [`PowerLossFs`](crate::sim::PowerLossFs) (an in-memory model of what survives power loss).
/// Only module `durable` calls the `sync_*`, `link`, `rename` and `unlink` methods.
pub trait Fs: Clone {
    /// An open directory.
    type Dir;
    /// An open regular file.
    type File;

    /// Opens the directory at `path`.
    fn open_dir(&self, path: &Path) -> io::Result<Self::Dir>;
    /// Creates directory `name` (mode 0700) inside `parent`; fails with `AlreadyExists` if
    /// the name exists. Not durable until `parent` is synced.
    fn make_dir(&self, parent: &Self::Dir, name: &str) -> io::Result<()>;
    /// Creates a new empty regular file, mode 0600, `O_EXCL` (never reuses a name).
    fn create_new(&self, dir: &Self::Dir, name: &str) -> io::Result<Self::File>;
    /// Opens `name` for appending (`O_RDWR|O_APPEND`, or `O_WRONLY|O_APPEND` when reading is
    /// not permitted), creating it with mode 0600 if it
    /// does not exist; the flag says whether it was created.
    fn open_append(&self, dir: &Self::Dir, name: &str) -> io::Result<(Self::File, bool)>;
    /// Opens `name` for reading.
    fn open_read(&self, dir: &Self::Dir, name: &str) -> io::Result<Self::File>;
    /// Reads into `buf` at the file's position; `Ok(0)` at the end.
    fn read(&self, file: &mut Self::File, buf: &mut [u8]) -> io::Result<usize>;
    /// Reads into `buf` from `offset` without moving the file position (`pread`).
    fn read_at(&self, file: &Self::File, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `data` at the file's position (the end, for append files).
    fn write_all(&self, file: &mut Self::File, data: &[u8]) -> io::Result<()>;
    /// The file's current length.
    fn len(&self, file: &Self::File) -> io::Result<u64>;
    /// Tries to take an exclusive lock without waiting: `Ok(false)` when another holder has it.
    fn try_lock(&self, file: &Self::File) -> io::Result<bool>;
    /// Sets the file's length (used only to roll an mbox back).
    fn set_len(&self, file: &Self::File, len: u64) -> io::Result<()>;
    /// Makes the file's data and length durable (`fsync`).
    fn sync_file(&self, file: &Self::File) -> io::Result<()>;
    /// Makes the directory's entries durable (`fsync` on the directory).
    fn sync_dir(&self, dir: &Self::Dir) -> io::Result<()>;
    /// Makes everything on the filesystem holding `dir` durable (`syncfs`): file data and
    /// directory entries alike. `Unsupported` where the platform has no such call.
    fn sync_filesystem(&self, dir: &Self::Dir) -> io::Result<()>;
    /// Hard-links `from_dir/from` as `to_dir/to`; fails with `AlreadyExists` rather than
    /// replacing, and with `CrossesDevices` (`EXDEV`) across filesystems.
    fn link(
        &self,
        from_dir: &Self::Dir,
        from: &str,
        to_dir: &Self::Dir,
        to: &str,
    ) -> io::Result<()>;
    /// Renames `from_dir/from` to `to_dir/to`, replacing `to` if it exists.
    fn rename(
        &self,
        from_dir: &Self::Dir,
        from: &str,
        to_dir: &Self::Dir,
        to: &str,
    ) -> io::Result<()>;
    /// Removes the name `dir/name`.
    fn unlink(&self, dir: &Self::Dir, name: &str) -> io::Result<()>;
    /// The names in `dir` (without `.` and `..`; names that are not UTF-8 are skipped).
    fn list(&self, dir: &Self::Dir) -> io::Result<Vec<String>>;
    /// The last access time of `dir/name` (maildir(5) cleans `tmp/` by access time).
    fn accessed(&self, dir: &Self::Dir, name: &str) -> io::Result<SystemTime>;
}

/// How many fresh names [`publish_by_link`] tries before giving up on `AlreadyExists`.
pub(crate) const NAME_ATTEMPTS: usize = 8;

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
    mut message: impl Read,
) -> Result<u64, (DeliverStep, io::Error)> {
    fs.write_all(file, prefix)
        .map_err(|e| (DeliverStep::Write, e))?;
    let mut total = prefix.len() as u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((DeliverStep::ReadMessage, e)),
        };
        fs.write_all(file, &buf[..n])
            .map_err(|e| (DeliverStep::Write, e))?;
        total += n as u64;
    }
    fs.sync_file(file).map_err(|e| (DeliverStep::SyncFile, e))?;
    Ok(total)
}

/// Copies `src_dir/src` into a new file `dst_dir/dst` and makes its data durable.
///
/// Used by batched fan-out when a hard link fails with `EXDEV`. Before: `dst` does not
/// exist. After `Ok`: `dst` holds the same bytes, durably (its name is not durable until
/// `dst_dir` is synced). A crash or error leaves at most a partial `dst` in `tmp/`, which the
/// caller removes on error and maildir(5) cleanup removes after a crash.
pub(crate) fn copy_synced<F: Fs>(
    fs: &F,
    src_dir: &F::Dir,
    src: &str,
    dst_dir: &F::Dir,
    dst: &str,
) -> io::Result<()> {
    let mut input = fs.open_read(src_dir, src)?;
    let mut output = fs.create_new(dst_dir, dst)?;
    let result = (|| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = fs.read(&mut input, &mut buf)?;
            if n == 0 {
                break;
            }
            fs.write_all(&mut output, &buf[..n])?;
        }
        fs.sync_file(&output)
    })();
    if result.is_err() {
        // The copy's own error is the one to report; the removal is best effort and a
        // leftover in tmp/ is harmless (maildir(5) 36-hour cleanup).
        let _ = fs.unlink(dst_dir, dst);
    }
    result
}

/// Hard-links `from_dir/from` into `to_dir` under the first name from `next_name` that does
/// not exist yet, and returns that name. An existing file is never replaced: on
/// `AlreadyExists` a new name is asked for, up to [`NAME_ATTEMPTS`] times.
///
/// Before: the file's data is durable (see [`write_synced`]). After `Ok`: `to_dir` has a
/// complete message under the returned name, not yet durable; call [`sync_dir`] on `to_dir`.
/// A crash before that sync either loses the new name or keeps it; both are complete files.
pub(crate) fn publish_by_link<F: Fs>(
    fs: &F,
    from_dir: &F::Dir,
    from: &str,
    to_dir: &F::Dir,
    mut next_name: impl FnMut() -> String,
) -> io::Result<String> {
    let mut name = from.to_owned();
    for _ in 0..NAME_ATTEMPTS {
        match fs.link(from_dir, from, to_dir, &name) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => name = next_name(),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no unused name in new after retries",
    ))
}

/// Makes every entry of `dir` durable: names linked, renamed or removed in it before this
/// call survive power loss after it returns `Ok`. A crash before it returns may keep any
/// subset of those changes.
pub(crate) fn sync_dir<F: Fs>(fs: &F, dir: &F::Dir) -> io::Result<()> {
    fs.sync_dir(dir)
}

/// Makes every change on the filesystem holding `dir` durable at once (`syncfs`).
///
/// Used by batched fan-out instead of one [`sync_dir`] per target: names hard-linked before
/// this call, in any directory of that filesystem, survive power loss after it returns
/// `Ok`. Linux reports write-back errors from `syncfs` since 5.8; on older kernels an I/O
/// error could go unreported, which is why this is opt-in. A crash before it returns may
/// keep any subset of the changes.
pub(crate) fn sync_filesystem<F: Fs>(fs: &F, dir: &F::Dir) -> io::Result<()> {
    fs.sync_filesystem(dir)
}

/// Makes the data and length of `file` durable. A crash before it returns may keep any prefix
/// of the bytes written since the last sync (and for append files nothing more).
pub(crate) fn sync_file<F: Fs>(fs: &F, file: &F::File) -> io::Result<()> {
    fs.sync_file(file)
}

/// Removes `dir/name` without waiting for durability.
///
/// Used for `tmp/` names after the message was published or when a delivery failed: after a
/// crash the name may still be there, which is harmless (readers never look in `tmp/`, and
/// maildir(5) cleanup removes it after 36 hours).
pub(crate) fn remove_unsynced<F: Fs>(fs: &F, dir: &F::Dir, name: &str) -> io::Result<()> {
    fs.unlink(dir, name)
}

/// Renames `from_dir/from` to `to_dir/to` and makes both directories durable.
///
/// Before: the message is under `from`. After `Ok`: it is durably under `to` only. A crash
/// in between leaves it under exactly one of the two names (rename is atomic), or, on a
/// filesystem that loses the unlink half, briefly under both; readers then see it twice
/// until one is moved again, never lose it.
pub(crate) fn rename_synced<F: Fs>(
    fs: &F,
    from_dir: &F::Dir,
    from: &str,
    to_dir: &F::Dir,
    to: &str,
) -> io::Result<()> {
    fs.rename(from_dir, from, to_dir, to)?;
    fs.sync_dir(to_dir)?;
    fs.sync_dir(from_dir)
}

/// Sets the length of `file` back to `len` and makes that durable (mbox rollback).
///
/// Before: bytes past `len` were appended but never synced, or synced as part of a delivery
/// that then failed. After `Ok`: the file is durably `len` bytes long. A crash in between
/// may keep the appended bytes, exactly as a crash during the append would.
pub(crate) fn truncate_synced<F: Fs>(fs: &F, file: &F::File, len: u64) -> io::Result<()> {
    fs.set_len(file, len)?;
    fs.sync_file(file)
}
