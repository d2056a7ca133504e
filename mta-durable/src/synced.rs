//! Durable steps shared by the queue and the maildir code, each named for its guarantee.
//!
//! Each doc comment states what is on disk before, after, and after a crash at each step.
//! "Durable" means it survives power loss; a change that is not yet durable may or may not
//! survive one.

use std::io;

use crate::{Access, Fs};

/// How many fresh names [`publish_by_link`] tries before giving up on `AlreadyExists`.
pub const NAME_ATTEMPTS: usize = 8;

/// Joins a relative directory path and a name (`""` is the directory itself).
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Opens the directory at `path` inside `dir` and makes its names durable
/// ([`Fs::sync_dir`]); `""` syncs `dir` itself.
///
/// # Errors
/// Any I/O error opening or syncing it.
pub fn sync_dir_at<F: Fs>(fs: &F, dir: &F::Dir, path: &str) -> io::Result<()> {
    fs.sync_dir(&fs.open_dir_at(dir, path)?)
}

/// Creates each of `names` in the directory at `path` inside `dir`, then syncs that
/// directory once if it created any.
///
/// Before: some or none exist. After: all exist and their names are durable. A crash in
/// between leaves some of them, possibly not durable; calling this again finishes the job
/// (existing directories are kept).
///
/// # Errors
/// Any I/O error but `AlreadyExists`.
pub fn create_dirs_synced<F: Fs>(
    fs: &F,
    dir: &F::Dir,
    path: &str,
    names: &[String],
) -> io::Result<()> {
    let mut created = false;
    for name in names {
        match fs.create_dir(dir, &join(path, name)) {
            Ok(()) => created = true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    if created {
        sync_dir_at(fs, dir, path)?;
    }
    Ok(())
}

/// Writes `bytes` at `offset` and makes the file's data durable ([`Fs::sync_data`]).
///
/// Before: the file holds its old bytes. After: it durably holds the new ones. A crash in
/// between leaves any mix of old and new bytes past the durable length, so call this only on
/// files no reader trusts yet, or for records a reader can recognize as torn.
///
/// # Errors
/// Any I/O error writing or syncing.
pub fn write_at_synced<F: Fs>(fs: &F, file: &F::File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    fs.write_all_at(file, bytes, offset)?;
    fs.sync_data(file)
}

/// Appends `bytes` at `end` (the current length) and makes them durable; on failure, cuts
/// the file back to `end` (best effort) so a partial record never sits in front of a later
/// one.
///
/// Before: records up to `end`. After: the new records durably follow. A crash in between
/// leaves a torn tail, which the reader must ignore and the next append cut off.
///
/// # Errors
/// The write's or the sync's error.
pub fn append_synced<F: Fs>(fs: &F, file: &F::File, end: u64, bytes: &[u8]) -> io::Result<()> {
    let result = write_at_synced(fs, file, end, bytes);
    if result.is_err() {
        // Best effort: the caller reports the write error and re-verifies the tail next time.
        let _ = fs.set_len(file, end);
    }
    result
}

/// Cuts the file to `len` and makes that durable ([`Fs::sync_data`]).
///
/// Before: valid bytes, then a torn tail. After: only the valid bytes. A crash in between
/// leaves either.
///
/// # Errors
/// Any I/O error truncating or syncing.
pub fn truncate_synced<F: Fs>(fs: &F, file: &F::File, len: u64) -> io::Result<()> {
    fs.set_len(file, len)?;
    fs.sync_data(file)
}

/// Moves `from_dir/from` to `to_dir/to` as a hard link and an unlink where the file system
/// allows, else with [`Fs::rename`] (which replaces `to`); nothing is synced.
///
/// On Linux a `rename` between two directories takes a lock that is global to the file
/// system (`s_vfs_rename_mutex`), so every cross-directory rename on it waits for the others;
/// `link` and `unlink` lock only the directories involved. In between, both names exist:
/// callers must treat that state as "moved, stale old name". A crash before `to_dir` is
/// synced may lose the new name; one before `from_dir` is synced may keep the old one.
///
/// # Errors
/// `NotFound` if `from` does not exist, or any I/O error.
pub fn move_file<F: Fs>(
    fs: &F,
    from_dir: &F::Dir,
    from: &str,
    to_dir: &F::Dir,
    to: &str,
) -> io::Result<()> {
    match fs.link(from_dir, from, to_dir, to) {
        Ok(()) => fs.remove_file(from_dir, from),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        // No hard links here (or a name left over): rename, which replaces `to`.
        Err(_) => fs.rename(from_dir, from, to_dir, to),
    }
}

/// Hard-links `from_dir/from` into `to_dir` under the first name from `next_name` that does
/// not exist yet (trying `from` first), and returns that name. An existing file is never
/// replaced: on `AlreadyExists` a new name is asked for, up to [`NAME_ATTEMPTS`] times.
///
/// Before: the file's data is durable. After `Ok`: `to_dir` has the complete file under the
/// returned name, not yet durable; sync `to_dir`. A crash before that sync either loses the
/// new name or keeps it; both are complete files.
///
/// # Errors
/// `AlreadyExists` after [`NAME_ATTEMPTS`] taken names, or the link's error.
pub fn publish_by_link<F: Fs>(
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
        "no unused name after retries",
    ))
}

/// Names a file made by [`Fs::create_unnamed`] in `to_dir`, under the first name from
/// `next_name` that does not exist yet, and returns that name; as [`publish_by_link`]
/// without a temporary name to start from (so nothing to unlink afterwards). An existing
/// file is never replaced: on `AlreadyExists` a new name is asked for, up to
/// [`NAME_ATTEMPTS`] times.
///
/// Before: the file's data is durable, and no directory names it. After `Ok`: `to_dir`
/// has the complete file under the returned name, not yet durable; sync `to_dir`. A crash
/// before that sync either loses the name (the file system frees the file) or keeps it;
/// either way no reader sees an incomplete file.
///
/// # Errors
/// `AlreadyExists` after [`NAME_ATTEMPTS`] taken names, or the link's error.
pub fn publish_unnamed<F: Fs>(
    fs: &F,
    file: &F::File,
    to_dir: &F::Dir,
    mut next_name: impl FnMut() -> String,
) -> io::Result<String> {
    for _ in 0..NAME_ATTEMPTS {
        let name = next_name();
        match fs.link_unnamed(file, to_dir, &name) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no unused name after retries",
    ))
}

/// Renames `from_dir/from` to `to_dir/to` and makes both directories durable (`to_dir`
/// first).
///
/// Before: the file is under `from`. After `Ok`: it is durably under `to` only. A crash in
/// between leaves it under one of the two names, or, on a file system that loses the unlink
/// half, briefly under both; never under neither.
///
/// # Errors
/// Any I/O error renaming or syncing.
pub fn rename_synced<F: Fs>(
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

/// Copies `src_dir/src` into a new file `dst_dir/dst` and makes its data durable
/// ([`Fs::sync_all`]); removes the partial copy on error (best effort).
///
/// Used when a hard link fails with `EXDEV`. Before: `dst` does not exist. After `Ok`: `dst`
/// holds the same bytes, durably (its name is durable once `dst_dir` is synced). A crash
/// leaves at most a partial `dst`.
///
/// # Errors
/// Any I/O error opening, reading, writing or syncing.
pub fn copy_synced<F: Fs>(
    fs: &F,
    src_dir: &F::Dir,
    src: &str,
    dst_dir: &F::Dir,
    dst: &str,
) -> io::Result<()> {
    let mut input = fs.open(src_dir, src, Access::Read)?;
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
        fs.sync_all(&output)
    })();
    if result.is_err() {
        // The copy's own error is the one to report; the removal is best effort.
        let _ = fs.remove_file(dst_dir, dst);
    }
    result
}

/// Removes `dir/name` without syncing: for a name whose removal may be lost in a power
/// failure (it then comes back, and the caller's recovery removes it again).
///
/// # Errors
/// `NotFound`, or any I/O error.
pub fn remove_unsynced<F: Fs>(fs: &F, dir: &F::Dir, name: &str) -> io::Result<()> {
    fs.remove_file(dir, name)
}

/// [`remove_unsynced`] where `NotFound` counts as success: for leftovers nobody relies on.
///
/// # Errors
/// Any I/O error but `NotFound`.
pub fn discard<F: Fs>(fs: &F, dir: &F::Dir, name: &str) -> io::Result<()> {
    match fs.remove_file(dir, name) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
