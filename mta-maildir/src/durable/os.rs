//! [`Fs`] on the real filesystem: rustix `*at` calls relative to open directory descriptors.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{self as rfs, AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::Fs;

/// The operating system's filesystem (the default [`Fs`] of every delivery type).
///
/// Directories are opened with `O_DIRECTORY`, files relative to them with `openat`, and every
/// change goes through `linkat`, `renameat` and `unlinkat` on those descriptors, so a
/// directory renamed mid-delivery cannot redirect the write. `fsync` is `F_FULLFSYNC` on
/// Apple platforms, where plain `fsync` does not reach the disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFs;

/// Keeps `fd` only if it is a regular file, and clears the `O_NONBLOCK` it was opened with.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] ("not a regular file") for a FIFO, device,
/// socket or directory; the caller defers.
fn regular_file(fd: OwnedFd) -> io::Result<OwnedFd> {
    let st = rfs::fstat(&fd)?;
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let fl = rfs::fcntl_getfl(&fd)?;
    rfs::fcntl_setfl(&fd, fl - OFlags::NONBLOCK)?;
    Ok(fd)
}

fn sync(fd: &OwnedFd) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    {
        rfs::fcntl_fullfsync(fd)?;
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        rfs::fsync(fd)?;
    }
    Ok(())
}

fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}

impl Fs for OsFs {
    type Dir = OwnedFd;
    type File = OwnedFd;

    /// A directory we may write into but not read (a drop box such as `DIR/pickup`'s mode
    /// 1733 subdirectories) is opened with `O_PATH` on Linux: `openat`, `linkat` and
    /// `unlinkat` work through it; listing and syncing it do not (see `sync_dir`).
    fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match retry(|| rfs::open(path, flags, Mode::empty())) {
            #[cfg(target_os = "linux")]
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let path_only = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                retry(|| rfs::open(path, path_only, Mode::empty()))
            }
            other => other,
        }
    }

    fn make_dir(&self, parent: &OwnedFd, name: &str) -> io::Result<()> {
        retry(|| rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700)))
    }

    fn create_new(&self, dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        retry(|| rfs::openat(dir, name, flags, Mode::from_raw_mode(0o600)))
    }

    fn open_append(&self, dir: &OwnedFd, name: &str) -> io::Result<(OwnedFd, bool)> {
        // A user's mbox may be a symlink (qmail-local follows it), so no O_NOFOLLOW here.
        // O_NONBLOCK: a FIFO (or a device) at the path must not hang the delivery; anything
        // but a regular file is refused right after the open, and regular files ignore it.
        let mut flags = OFlags::RDWR | OFlags::APPEND | OFlags::CLOEXEC | OFlags::NONBLOCK;
        loop {
            match retry(|| rfs::openat(dir, name, flags, Mode::empty())) {
                Ok(fd) => return regular_file(fd).map(|fd| (fd, false)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Write-only for us: append without the tail check (Mbox::deliver).
                Err(e)
                    if e.kind() == io::ErrorKind::PermissionDenied
                        && flags.contains(OFlags::RDWR) =>
                {
                    flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CLOEXEC | OFlags::NONBLOCK;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let create = flags | OFlags::CREATE | OFlags::EXCL;
            match retry(|| rfs::openat(dir, name, create, Mode::from_raw_mode(0o600))) {
                Ok(fd) => return regular_file(fd).map(|fd| (fd, true)),
                // Another writer created it between the two opens: open theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn open_read(&self, dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
        retry(|| rfs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()))
    }

    fn read(&self, file: &mut OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
        retry(|| rustix::io::read(&*file, &mut *buf))
    }

    fn read_at(&self, file: &OwnedFd, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        retry(|| rustix::io::pread(file, &mut *buf, offset))
    }

    fn write_all(&self, file: &mut OwnedFd, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = retry(|| rustix::io::write(&*file, data))?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    fn len(&self, file: &OwnedFd) -> io::Result<u64> {
        Ok(rfs::fstat(file)?.st_size as u64)
    }

    /// `flock(LOCK_EX|LOCK_NB)` (qmail-local's `lock_ex`), then a POSIX `fcntl` write lock on
    /// the whole file (what Python's `mailbox.mbox` and procmail-style readers take). If the
    /// second is held elsewhere the first is released again; if `fcntl` locks are not
    /// available at all (`ENOLCK`, some NFS setups) the `flock` alone counts, as in qmail.
    fn try_lock(&self, file: &OwnedFd) -> io::Result<bool> {
        match rfs::flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        match rfs::fcntl_lock(file, FlockOperation::NonBlockingLockExclusive) {
            Err(Errno::AGAIN | Errno::ACCESS) => {
                rfs::flock(file, FlockOperation::Unlock)?;
                Ok(false)
            }
            // Taken, or fcntl locks unavailable (the flock still holds).
            Ok(()) | Err(_) => Ok(true),
        }
    }

    fn set_len(&self, file: &OwnedFd, len: u64) -> io::Result<()> {
        retry(|| rfs::ftruncate(file, len))
    }

    fn sync_file(&self, file: &OwnedFd) -> io::Result<()> {
        sync(file)
    }

    /// A drop-box directory opened with `O_PATH` (`open_dir`) cannot be synced by a
    /// depositor who may not read it: its new entry becomes durable when the directory's
    /// owner syncs it (for `DIR/pickup`, the importer); the file itself was synced.
    fn sync_dir(&self, dir: &OwnedFd) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if rfs::fcntl_getfl(dir).is_ok_and(|f| f.contains(OFlags::PATH)) {
            return Ok(());
        }
        sync(dir)
    }

    fn sync_filesystem(&self, dir: &OwnedFd) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            Ok(rfs::syncfs(dir)?)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = dir;
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    fn link(&self, from_dir: &OwnedFd, from: &str, to_dir: &OwnedFd, to: &str) -> io::Result<()> {
        retry(|| rfs::linkat(from_dir, from, to_dir, to, AtFlags::empty()))
    }

    fn rename(&self, from_dir: &OwnedFd, from: &str, to_dir: &OwnedFd, to: &str) -> io::Result<()> {
        retry(|| rfs::renameat(from_dir, from, to_dir, to))
    }

    fn unlink(&self, dir: &OwnedFd, name: &str) -> io::Result<()> {
        retry(|| rfs::unlinkat(dir, name, AtFlags::empty()))
    }

    fn list(&self, dir: &OwnedFd) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        let mut reader = rfs::Dir::read_from(dir)?;
        while let Some(entry) = reader.read() {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name != "." && name != ".." {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn accessed(&self, dir: &OwnedFd, name: &str) -> io::Result<SystemTime> {
        let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let secs = st.st_atime as i64;
        let nanos = st.st_atime_nsec as u32;
        Ok(if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nanos)
        } else {
            UNIX_EPOCH
        })
    }
}
