//! Who owns what under `DIR` (design.md "Processes and accounts"), set by `mta init` and by
//! the master at every start, so a root made earlier, or under other account names, is put
//! right:
//!
//! | path | owner | mode |
//! |---|---|---|
//! | `queue/` and everything in it | queue account | 0700 at the top |
//! | `alias/` and everything in it | alias account | as made |
//! | `pickup/`, `pickup/tmp/`, `pickup/new/`; `pickup/bad/`; `pickup/trigger` | queue account | 1733; 0700; FIFO 0622 |
//! | `run/` | root | 0755 |
//! | `run/queue/` (the queue process's sockets) | queue account, smtpd's group | 0750 |
//! | `run/lspawn/` (lspawn's socket) | root, the queue account's group | 0750 |
//! | `run/remote/` (the remote process's socket) | remote account, the queue account's group | 0750 |
//! | `control/servercert.pem`, `users/passwords` | root, smtpd's group | 0640 |
//! | `control/clientcert.pem`, `control/smtpauth`, `control/dkim/` | root, the remote account's group | 0640 (0750 for directories) |
//!
//! Every change is made on a descriptor opened without following a symbolic link (or with
//! `AT_SYMLINK_NOFOLLOW`), and the secrets are only regrouped while root owns them: nothing
//! here can be redirected by a link another account planted.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fd::OwnedFd;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::process::{Gid, Uid};

use crate::accounts::Accounts;
use crate::root::Root;

/// A directory [`prepare`] makes: its path, owner (uid, gid) and mode.
type Dir = (PathBuf, Option<(u32, u32)>, u32);

/// `DIR/run/queue`: the queue process's sockets (submission, metrics).
pub fn queue_run(root: &Root) -> PathBuf {
    root.dir().join("run").join("queue")
}

/// `DIR/run/remote`: the remote delivery process's socket.
pub fn remote_run(root: &Root) -> PathBuf {
    root.dir().join("run").join("remote")
}

/// The owner of `path` (not following a link).
///
/// # Errors
/// `lstat` failed.
pub fn owner_uid(path: &Path) -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::symlink_metadata(path)?.uid())
}

/// `DIR/run/lspawn`: lspawn's socket.
pub fn lspawn_run(root: &Root) -> PathBuf {
    root.dir().join("run").join("lspawn")
}

/// Sets the ownership of the tree (see the module documentation). Unprivileged, it only
/// makes sure the directories exist.
///
/// # Errors
/// A directory that cannot be made or changed.
pub fn prepare(root: &Root, accounts: &Accounts, privileged: bool) -> Result<(), String> {
    let run = root.dir().join("run");
    let dirs: [Dir; 4] = [
        (run, Some((0, 0)), 0o755),
        (
            queue_run(root),
            Some((accounts.queue.uid, accounts.smtpd.gid)),
            0o750,
        ),
        (lspawn_run(root), Some((0, accounts.queue.gid)), 0o750),
        (
            remote_run(root),
            Some((accounts.remote.uid, accounts.queue.gid)),
            0o750,
        ),
    ];
    for (dir, owner, mode) in dirs {
        if let Err(e) = std::fs::create_dir(&dir)
            && e.kind() != io::ErrorKind::AlreadyExists
        {
            return Err(format!("{}: {e}", dir.display()));
        }
        let owner = if privileged { owner } else { None };
        set_dir(&dir, owner, mode).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if privileged {
        let q = &accounts.queue;
        crate::privs::chown_tree(&root.queue(), q.uid, q.gid)
            .map_err(|e| format!("chown queue: {e}"))?;
        let a = &accounts.alias;
        crate::privs::chown_tree(&root.alias(), a.uid, a.gid)
            .map_err(|e| format!("chown alias: {e}"))?;
    }
    set_dir(&root.queue(), None, 0o700).map_err(|e| format!("queue: {e}"))?;
    // pickup/ and its trigger belong to the queue's owner (the account just set).
    let owner = crate::inject::pickup::queue_owner(root).map_err(|e| format!("queue: {e}"))?;
    for moved in crate::inject::pickup::prepare(root, owner).map_err(|e| e.to_string())? {
        crate::log::line(&format!(
            "warning: pickup: moved aside {}",
            crate::log::safe(moved.as_bytes())
        ));
    }
    share_secrets(root, accounts, privileged);
    Ok(())
}

/// Opens a directory without following a link.
fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Gives the directory at `path` (not a link) `owner` (when set) and `mode`.
fn set_dir(path: &Path, owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
    let fd = open_dir(path)?;
    if let Some((uid, gid)) = owner {
        rustix::fs::fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(())
}

/// Makes the secret files readable by the one process that needs them (their group), as a
/// qmail admin chowns `servercert.pem` to qmaild. Only root-owned files and directories are
/// changed; anything else (a link, a file someone else owns) is left as it is. Run at
/// start, at SIGHUP and every few seconds by the master, so a replaced file is readable
/// again promptly. Failures are ignored: the process that reads the file reports it.
pub fn share_secrets(root: &Root, accounts: &Accounts, privileged: bool) {
    if !privileged {
        return;
    }
    let control = root.control();
    let smtpd = accounts.smtpd.gid;
    let remote = accounts.remote.gid;
    for (path, gid) in [
        (control.join("servercert.pem"), smtpd),
        (root.dir().join("users").join("passwords"), smtpd),
        (control.join("clientcert.pem"), remote),
        (control.join("smtpauth"), remote),
    ] {
        let _ = regroup(&path, gid, false);
    }
    let _ = regroup_tree(&control.join("dkim"), remote, 0);
}

/// Gives the root-owned file or directory at `path` group `gid` and group read (and search,
/// for a directory) access, nothing for others.
fn regroup(path: &Path, gid: u32, dir: bool) -> io::Result<()> {
    let flags = if dir {
        OFlags::RDONLY | OFlags::DIRECTORY
    } else {
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY
    };
    let fd = rustix::fs::open(
        path,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    regroup_fd(&fd, gid, dir)
}

fn regroup_fd(fd: &OwnedFd, gid: u32, dir: bool) -> io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let wanted = if dir {
        FileType::Directory
    } else {
        FileType::RegularFile
    };
    if st.st_uid != 0 || kind != wanted || (!dir && st.st_nlink != 1) {
        return Ok(());
    }
    let mode = st.st_mode & 0o7777;
    let new_mode = (mode & 0o700) | if dir { 0o050 } else { 0o040 };
    if st.st_gid != gid {
        rustix::fs::fchown(fd, None, Some(Gid::from_raw(gid)))?;
    }
    if mode != new_mode {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(new_mode))?;
    }
    Ok(())
}

/// [`regroup`] for `control/dkim/` and the key files below it (`DOMAIN/SELECTOR.pem`).
fn regroup_tree(path: &Path, gid: u32, depth: usize) -> io::Result<()> {
    use rustix::fs::AtFlags;
    if depth > 2 {
        return Ok(());
    }
    let dir = open_dir(path)?;
    regroup_fd(&dir, gid, true)?;
    for entry in rustix::fs::Dir::read_from(&dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes().starts_with(b".") {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let sub = path
            .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.to_bytes()));
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let _ = regroup_tree(&sub, gid, depth + 1);
            }
            FileType::RegularFile => {
                let _ = regroup(&sub, gid, false);
            }
            _ => {}
        }
    }
    Ok(())
}
