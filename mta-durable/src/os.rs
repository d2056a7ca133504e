//! [`OsFs`]: the real file system, through rustix `*at` calls relative to open directory
//! descriptors.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{self as rfs, AtFlags, CWD, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::{Access, Fs};

/// The operating system's file system.
///
/// Directories are opened with `O_DIRECTORY`, files relative to them with `openat`, and every
/// change goes through `mkdirat`, `linkat`, `renameat` and `unlinkat` on those descriptors,
/// so a directory renamed meanwhile cannot redirect an operation. Every descriptor is
/// `O_CLOEXEC`; calls interrupted by a signal (`EINTR`) are retried. Syncs are
/// `F_FULLFSYNC` on Apple platforms, where plain `fsync` does not reach the disk. On Linux,
/// [`Fs::open`] does not update the file's access time (`O_NOATIME`, where the caller owns
/// the file or has `CAP_FOWNER`), so reading a file back does not dirty its inode.
///
/// Relative paths given to [`open_dir`](Fs::open_dir) start at the base directory: the
/// working directory for [`OsFs::new`], the opened directory for [`OsFs::open`] and
/// [`OsFs::open_unlocked`]. Clones share the base directory (and its lock).
#[derive(Debug, Clone, Default)]
pub struct OsFs {
    base: Option<Arc<Base>>,
}

#[derive(Debug)]
struct Base {
    dir: OwnedFd,
    _lock: Option<OwnedFd>,
}

impl OsFs {
    /// The file system with the working directory as base; opens nothing.
    pub fn new() -> Self {
        OsFs { base: None }
    }

    /// Opens directory `dir` as the base, creating it and its missing parents if needed
    /// (each new directory's name made durable in its parent), and takes an exclusive
    /// `flock` on `dir/lock` (created if needed), so a second process cannot open the same
    /// directory this way. The lock goes with the last clone, or with the process, even on
    /// SIGKILL.
    ///
    /// # Errors
    /// `WouldBlock` if another process holds the lock; any I/O error creating or opening.
    pub fn open(dir: &Path) -> io::Result<Self> {
        create_dir_all_synced(dir)?;
        let root = open_directory(CWD, dir)?;
        let lock = retry(|| {
            rfs::openat(
                &root,
                "lock",
                OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        })?;
        lock_briefly_retrying(&lock)?;
        Ok(OsFs {
            base: Some(Arc::new(Base {
                dir: root,
                _lock: Some(lock),
            })),
        })
    }

    /// Opens the existing directory `dir` as the base without creating anything and without
    /// the lock, e.g. for read-only inspection while another process owns it.
    ///
    /// # Errors
    /// Any I/O error opening the directory (`NotFound` when it does not exist).
    pub fn open_unlocked(dir: &Path) -> io::Result<Self> {
        let root = open_directory(CWD, dir)?;
        Ok(OsFs {
            base: Some(Arc::new(Base {
                dir: root,
                _lock: None,
            })),
        })
    }
}

/// Retries `f` while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Whether `/proc/self/fd` holds this process's descriptors (procfs mounted), checked once:
/// [`Fs::link_unnamed`] depends on it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn proc_fd_links() -> bool {
    static MOUNTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MOUNTED.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Opens a directory. One we may write into but not read (a drop box such as `DIR/pickup`'s
/// mode 1733 subdirectories) is opened with `O_PATH` on Linux: `openat`, `linkat` and
/// `unlinkat` work through it; listing and syncing it do not (see [`Fs::sync_dir`]).
fn open_directory<P: rustix::path::Arg + Copy>(dir: impl AsFd, path: P) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match retry(|| rfs::openat(&dir, path, flags, Mode::empty())) {
        #[cfg(target_os = "linux")]
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let path_only = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            retry(|| rfs::openat(&dir, path, path_only, Mode::empty()))
        }
        other => other,
    }
}

/// Takes the exclusive lock, retrying for up to 200 ms: a child process that another thread
/// of this program is just starting inherits the lock's descriptor between its fork and its
/// exec (`O_CLOEXEC` closes it only at exec), which would otherwise make a reopen right
/// after a close fail spuriously. A real second owner still gets `WouldBlock`.
fn lock_briefly_retrying(lock: &OwnedFd) -> io::Result<()> {
    let mut tries = 0;
    loop {
        match rfs::flock(lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::WOULDBLOCK) if tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `mkdir -p` that also syncs the parent of every directory it creates, so a directory
/// created just before a power loss does not vanish with what was already made durable in it.
fn create_dir_all_synced(dir: &Path) -> io::Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for p in missing.iter().rev() {
        match retry(|| rfs::mkdir(p, Mode::from_raw_mode(0o700))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let parent = match p.parent() {
            Some(par) if !par.as_os_str().is_empty() => par,
            _ => Path::new("."),
        };
        full_sync(&open_directory(CWD, parent)?)?;
    }
    Ok(())
}

/// `openat` with `O_NOATIME` where the system has it: reading a file back (the queue reads
/// each message it delivers, right after writing it) then does not dirty its inode for an
/// access time that nothing of ours reads, which a `relatime` mount would otherwise write
/// at the next sync. `O_NOATIME` is only for the file's owner (or `CAP_FOWNER`): on `EPERM`
/// the file is opened again without it.
fn open_without_atime(dir: &OwnedFd, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match retry(|| rfs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty())) {
        Err(e) if e.raw_os_error() == Some(Errno::PERM.raw_os_error()) => {}
        other => return other,
    }
    retry(|| rfs::openat(dir, name, flags, Mode::empty()))
}

/// Keeps `fd` only if it is a regular file, and clears the `O_NONBLOCK` it was opened with.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] ("not a regular file") for a FIFO, device, socket or
/// directory.
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

#[cfg(target_vendor = "apple")]
fn full_sync(fd: impl AsFd) -> io::Result<()> {
    // Apple's fsync does not flush the drive cache; F_FULLFSYNC does.
    retry(|| rfs::fcntl_fullfsync(&fd))
}

#[cfg(not(target_vendor = "apple"))]
fn full_sync(fd: impl AsFd) -> io::Result<()> {
    retry(|| rfs::fsync(&fd))
}

#[cfg(target_vendor = "apple")]
fn data_sync(fd: impl AsFd) -> io::Result<()> {
    retry(|| rfs::fcntl_fullfsync(&fd))
}

#[cfg(not(target_vendor = "apple"))]
fn data_sync(fd: impl AsFd) -> io::Result<()> {
    retry(|| rfs::fdatasync(&fd))
}

fn dir_path(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

impl Fs for OsFs {
    type Dir = OwnedFd;
    type File = File;

    fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        match &self.base {
            Some(base) => open_directory(&base.dir, path),
            None => open_directory(CWD, path),
        }
    }

    fn open_dir_at(&self, dir: &OwnedFd, path: &str) -> io::Result<OwnedFd> {
        open_directory(dir, dir_path(path))
    }

    fn create_dir(&self, dir: &OwnedFd, name: &str) -> io::Result<()> {
        retry(|| rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)))
    }

    fn create_new(&self, dir: &OwnedFd, name: &str) -> io::Result<File> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = retry(|| rfs::openat(dir, name, flags, Mode::from_raw_mode(0o600)))?;
        Ok(File::from(fd))
    }

    /// `O_TMPFILE` in `dir`. `Unsupported` when the file system has no unnamed files
    /// (`EOPNOTSUPP`), the kernel predates them (`EISDIR`: the flag's `O_DIRECTORY` half
    /// alone), or `/proc` is not mounted ([`link_unnamed`](Fs::link_unnamed) names the file
    /// through `/proc/self/fd`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn create_unnamed(&self, dir: &OwnedFd) -> io::Result<File> {
        if !proc_fd_links() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        match retry(|| rfs::openat(dir, ".", flags, Mode::from_raw_mode(0o600))) {
            Ok(fd) => Ok(File::from(fd)),
            Err(e)
                if matches!(
                    Errno::from_io_error(&e),
                    Some(Errno::OPNOTSUPP | Errno::ISDIR)
                ) =>
            {
                Err(io::ErrorKind::Unsupported.into())
            }
            Err(e) => Err(e),
        }
    }

    /// `linkat` of `/proc/self/fd/N` with `AT_SYMLINK_FOLLOW`: the way an unprivileged
    /// process names its `O_TMPFILE` file (`AT_EMPTY_PATH` needs `CAP_DAC_READ_SEARCH`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn link_unnamed(&self, file: &File, dir: &OwnedFd, name: &str) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        retry(|| rfs::linkat(CWD, path.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW))
    }

    fn open(&self, dir: &OwnedFd, name: &str, access: Access) -> io::Result<File> {
        // Only a regular file, and never through a symbolic link: someone who can write to
        // the directory must not make a privileged writer open another file (a planted
        // link to a root-only file), or hang it on a FIFO (O_NONBLOCK until checked).
        let flags = match access {
            Access::Read => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        } | OFlags::CLOEXEC
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK;
        let fd = open_without_atime(dir, name, flags)?;
        Ok(File::from(regular_file(fd)?))
    }

    fn open_append(&self, dir: &OwnedFd, name: &str) -> io::Result<(File, bool)> {
        // A user's mbox may be a symlink (qmail-local follows it), so no O_NOFOLLOW here.
        // O_NONBLOCK: a FIFO (or a device) at the path must not hang the delivery; anything
        // but a regular file is refused right after the open, and regular files ignore it.
        let mut flags = OFlags::RDWR | OFlags::APPEND | OFlags::CLOEXEC | OFlags::NONBLOCK;
        loop {
            match retry(|| rfs::openat(dir, name, flags, Mode::empty())) {
                Ok(fd) => return regular_file(fd).map(|fd| (File::from(fd), false)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Write-only for us: append without reading.
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
                Ok(fd) => return regular_file(fd).map(|fd| (File::from(fd), true)),
                // Another writer created it between the two opens: open theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn read(&self, file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
        retry(|| rustix::io::read(&*file, &mut *buf))
    }

    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        retry(|| rustix::io::pread(file, &mut *buf, offset))
    }

    fn write_all(&self, file: &mut File, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = retry(|| rustix::io::write(&*file, buf))?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        // std retries EINTR and short writes.
        FileExt::write_all_at(file, buf, offset)
    }

    fn file_len(&self, file: &File) -> io::Result<u64> {
        Ok(rfs::fstat(file)?.st_size as u64)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        retry(|| rfs::ftruncate(file, len))
    }

    fn try_lock(&self, file: &File) -> io::Result<bool> {
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

    fn sync_data(&self, file: &File) -> io::Result<()> {
        data_sync(file)
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        full_sync(file)
    }

    /// A drop-box directory opened with `O_PATH` ([`OsFs::open_dir`]) cannot be synced by
    /// a depositor who may not read it: its new entry becomes durable when the directory's
    /// owner syncs it (for `DIR/pickup`, the importer); the file itself was synced.
    fn sync_dir(&self, dir: &OwnedFd) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if rfs::fcntl_getfl(dir).is_ok_and(|f| f.contains(OFlags::PATH)) {
            return Ok(());
        }
        full_sync(dir)
    }

    fn sync_filesystem(&self, dir: &OwnedFd) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            Ok(rfs::syncfs(dir)?)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = dir; // no syncfs here
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    fn device(&self, dir: &OwnedFd) -> io::Result<u64> {
        // st_dev is u64 on Linux and i32/u32 elsewhere: widening, never truncating.
        #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
        Ok(rfs::fstat(dir)?.st_dev as u64)
    }

    fn boot_id(&self) -> io::Result<Option<String>> {
        match std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
            Ok(id) if !id.trim().is_empty() => Ok(Some(id.trim().to_owned())),
            Ok(_) => Ok(None),
            // No procfs here (another OS, a container without it): cannot tell.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link(&self, from_dir: &OwnedFd, from: &str, to_dir: &OwnedFd, to: &str) -> io::Result<()> {
        retry(|| rfs::linkat(from_dir, from, to_dir, to, AtFlags::empty()))
    }

    fn rename(&self, from_dir: &OwnedFd, from: &str, to_dir: &OwnedFd, to: &str) -> io::Result<()> {
        retry(|| rfs::renameat(from_dir, from, to_dir, to))
    }

    fn remove_file(&self, dir: &OwnedFd, name: &str) -> io::Result<()> {
        retry(|| rfs::unlinkat(dir, name, AtFlags::empty()))
    }

    fn list_dir(&self, dir: &OwnedFd) -> io::Result<Vec<String>> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_file_back_leaves_its_access_time_alone() {
        use std::fs::FileTimes;
        use std::time::{Duration, SystemTime};
        let tmp = tempfile::tempdir().unwrap();
        let fs = OsFs::open(&tmp.path().join("q")).unwrap();
        let root = fs.open_dir(Path::new(".")).unwrap();
        let mut f = fs.create_new(&root, "m").unwrap();
        fs.write_all(&mut f, b"message").unwrap();
        let path = tmp.path().join("q/m");
        let long_ago = SystemTime::now() - Duration::from_hours(24);
        let age = || {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_times(FileTimes::new().set_accessed(long_ago))
                .unwrap();
        };
        let accessed = || std::fs::metadata(&path).unwrap().accessed().unwrap();
        // The control: a plain read updates an access time older than the last write
        // (relatime, strictatime). Under noatime nothing does, and there is nothing to check.
        age();
        std::fs::read(&path).unwrap();
        let updates = accessed() > long_ago + Duration::from_hours(1);
        age();
        let mut r = fs.open(&root, "m", Access::Read).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(fs.read(&mut r, &mut buf).unwrap(), 7);
        let rw = fs.open(&root, "m", Access::ReadWrite).unwrap();
        assert_eq!(fs.read_at(&rw, &mut buf, 0).unwrap(), 7);
        if updates {
            assert_eq!(accessed(), long_ago, "O_NOATIME left out");
        }
    }

    #[test]
    fn files_and_names_round_trip_on_a_temp_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = OsFs::open(&tmp.path().join("q")).unwrap();
        let root = fs.open_dir(Path::new(".")).unwrap();
        fs.create_dir(&root, "a").unwrap();
        assert_eq!(
            fs.create_dir(&root, "a").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let mut f = fs.create_new(&root, "a/x").unwrap();
        fs.write_all(&mut f, b"hello").unwrap();
        fs.write_all_at(&f, b"J", 0).unwrap();
        fs.sync_data(&f).unwrap();
        fs.sync_all(&f).unwrap();
        let a = fs.open_dir_at(&root, "a").unwrap();
        fs.sync_dir(&a).unwrap();
        let mut buf = [0u8; 8];
        let n = fs.read_at(&f, &mut buf, 1).unwrap();
        assert_eq!(&buf[..n], b"ello");
        let mut r = fs.open(&a, "x", Access::Read).unwrap();
        let n = fs.read(&mut r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"Jello");
        assert_eq!(fs.file_len(&r).unwrap(), 5);
        fs.set_len(&f, 2).unwrap();
        assert_eq!(fs.file_len(&f).unwrap(), 2);
        // link never replaces; rename does.
        fs.link(&a, "x", &root, "y").unwrap();
        assert_eq!(
            fs.link(&a, "x", &root, "y").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        fs.rename(&root, "y", &a, "z").unwrap();
        let mut names = fs.list_dir(&a).unwrap();
        names.sort();
        assert_eq!(names, ["x", "z"]);
        fs.remove_file(&a, "z").unwrap();
        assert!(fs.accessed(&a, "x").is_ok());
        fs.remove_file(&a, "x").unwrap();
        assert_eq!(
            fs.remove_file(&a, "x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let mut names = fs.list_dir(&root).unwrap();
        names.sort();
        assert_eq!(names, ["a", "lock"]);
    }

    /// `O_TMPFILE`: the file has no name until linked, then exactly one; linking never
    /// replaces. On Linux the test directory's file system (ext4, tmpfs, xfs, btrfs) has
    /// unnamed files; where it has not, `Unsupported` is the only acceptable failure.
    #[test]
    fn an_unnamed_file_is_named_once_by_link_unnamed() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = OsFs::open(&tmp.path().join("q")).unwrap();
        let root = fs.open_dir(Path::new(".")).unwrap();
        fs.create_dir(&root, "new").unwrap();
        let new = fs.open_dir_at(&root, "new").unwrap();
        let mut f = match fs.create_unnamed(&root) {
            Ok(f) => f,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
                assert!(!cfg!(target_os = "linux") || !Path::new("/proc/self/fd").is_dir());
                return;
            }
        };
        fs.write_all(&mut f, b"whole message\n").unwrap();
        fs.sync_all(&f).unwrap();
        let mut names = fs.list_dir(&root).unwrap();
        names.sort();
        assert_eq!(names, ["lock", "new"]);
        assert!(fs.list_dir(&new).unwrap().is_empty());
        fs.link_unnamed(&f, &new, "m1").unwrap();
        assert_eq!(
            fs.link_unnamed(&f, &new, "m1").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let r = fs.open(&new, "m1", Access::Read).unwrap();
        let mut buf = [0u8; 32];
        let n = fs.read_at(&r, &mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"whole message\n");
        let st = rfs::fstat(&r).unwrap();
        assert_eq!(st.st_nlink, 1);
        assert_eq!(st.st_mode & 0o777, 0o600);
    }

    #[test]
    fn the_base_directory_is_locked_against_a_second_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = OsFs::open(tmp.path()).unwrap();
        let err = OsFs::open(tmp.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(OsFs::open_unlocked(tmp.path()).is_ok());
    }

    #[test]
    fn open_append_creates_once_then_appends() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let dir = fs.open_dir(tmp.path()).unwrap();
        let (mut f, created) = fs.open_append(&dir, "mbox").unwrap();
        assert!(created);
        fs.write_all(&mut f, b"one\n").unwrap();
        let (mut g, created) = fs.open_append(&dir, "mbox").unwrap();
        assert!(!created);
        assert!(fs.try_lock(&g).unwrap());
        fs.write_all(&mut g, b"two\n").unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("mbox")).unwrap(),
            b"one\ntwo\n"
        );
        fs.create_dir(&dir, "d").unwrap();
        let err = fs.open_append(&dir, "d").unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::InvalidInput | io::ErrorKind::IsADirectory
        ));
    }
}
