//! [`OsFs`]: the real file system, through rustix `*at` calls on the queue directory's fd.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FlockOperation, Mode, OFlags};

use super::{Access, Fs};

/// The real file system under one queue directory.
///
/// Opening it creates the directory if needed (making each new directory's name durable in
/// its parent) and takes an exclusive `flock` on `DIR/lock`, so a second process cannot open
/// the same queue; the lock goes away with the process, even on SIGKILL.
#[derive(Debug)]
pub struct OsFs {
    root: OwnedFd,
    _lock: Option<OwnedFd>,
}

impl OsFs {
    /// Opens (creating if needed) the queue directory `dir` and locks it.
    ///
    /// # Errors
    /// `WouldBlock` if another process holds the lock; any I/O error creating or opening it.
    pub fn open(dir: &Path) -> io::Result<Self> {
        create_dir_all_synced(dir)?;
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let lock = rustix::fs::openat(
            &root,
            "lock",
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        lock_briefly_retrying(&lock)?;
        Ok(OsFs {
            root,
            _lock: Some(lock),
        })
    }

    /// Opens an existing queue directory without creating anything and without the lock,
    /// for read-only inspection while another process owns the queue (qmail-qread ran
    /// beside qmail-send the same way).
    ///
    /// # Errors
    /// Any I/O error opening the directory (`NotFound` when it does not exist).
    pub fn open_unlocked(dir: &Path) -> io::Result<Self> {
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(OsFs { root, _lock: None })
    }
}

/// Takes the exclusive lock, retrying for up to 200 ms: a child process that another thread
/// of this program is just starting inherits the lock's descriptor between its fork and its
/// exec (`O_CLOEXEC` closes it only at exec), which would otherwise make a reopen right
/// after a close fail spuriously. A real second owner still gets `WouldBlock`.
fn lock_briefly_retrying(lock: &OwnedFd) -> io::Result<()> {
    let mut tries = 0;
    loop {
        match rustix::fs::flock(lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `mkdir -p` that also syncs the parent of every directory it creates, so a queue created
/// just before a power loss does not vanish with the messages already acknowledged in it.
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
        match rustix::fs::mkdir(p, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::EXIST => {}
            Err(e) => return Err(e.into()),
        }
        let parent = match p.parent() {
            Some(par) if !par.as_os_str().is_empty() => par,
            _ => Path::new("."),
        };
        let fd = rustix::fs::openat(
            CWD,
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        full_sync(&fd)?;
    }
    Ok(())
}

fn dir_path(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
fn full_sync(fd: impl AsFd) -> io::Result<()> {
    // Apple's fsync does not flush the drive cache; F_FULLFSYNC does (style.md).
    Ok(rustix::fs::fcntl_fullfsync(fd)?)
}

#[cfg(not(any(target_os = "macos", target_os = "ios")))]
fn full_sync(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::fsync(fd)?)
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
fn data_sync(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::fcntl_fullfsync(fd)?)
}

#[cfg(not(any(target_os = "macos", target_os = "ios")))]
fn data_sync(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::fdatasync(fd)?)
}

impl Fs for OsFs {
    type File = File;

    fn create_dir(&self, path: &str) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(
            &self.root,
            path,
            Mode::from_bits_truncate(0o700),
        )?)
    }

    fn create_new(&self, path: &str) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.root,
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        Ok(File::from(fd))
    }

    fn open(&self, path: &str, access: Access) -> io::Result<File> {
        let flags = match access {
            Access::Read => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        };
        let fd = rustix::fs::openat(&self.root, path, flags | OFlags::CLOEXEC, Mode::empty())?;
        Ok(File::from(fd))
    }

    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(file, buf, offset)
    }

    fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(file, buf, offset)
    }

    fn file_len(&self, file: &File) -> io::Result<u64> {
        Ok(rustix::fs::fstat(file)?.st_size as u64)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        Ok(rustix::fs::ftruncate(file, len)?)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        data_sync(file)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.root, from, &self.root, to)?)
    }

    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::linkat(
            &self.root,
            from,
            &self.root,
            to,
            AtFlags::empty(),
        )?)
    }

    fn remove_file(&self, path: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.root, path, AtFlags::empty())?)
    }

    fn sync_dir(&self, path: &str) -> io::Result<()> {
        let fd = rustix::fs::openat(
            &self.root,
            dir_path(path),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        full_sync(&fd)
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let fd = rustix::fs::openat(
            &self.root,
            dir_path(path),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::new(fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            // Names we create are ASCII; a foreign non-UTF-8 name is kept lossily so callers
            // can still see (and ignore) it.
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        Ok(names)
    }
}
