//! Privileges: account lookup, the ownership walk `serve` uses to give a tree to its
//! account, and the descriptors the master must not pass on.
//!
//! Who runs as what is decided elsewhere: the master ([`crate::master`]) starts each
//! process of `serve` under its account ([`crate::accounts`]) with
//! `std::os::unix::process::CommandExt::{uid, gid}` (std also drops the supplementary
//! groups), and lspawn ([`crate::lspawn`]) starts each local delivery worker under the
//! recipient's.

use std::path::Path;

/// A system account from the passwd file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// Looks `name` up in a passwd-format file (`/etc/passwd` in production).
pub fn lookup_account(passwd: &Path, name: &str) -> Option<Account> {
    let text = std::fs::read(passwd).ok()?;
    mta_dotqmail::parse_passwd(&text)
        .into_iter()
        .find(|e| e.name == name.as_bytes())
        .map(|e| Account {
            name: name.to_owned(),
            uid: e.uid,
            gid: e.gid,
            home: String::from_utf8_lossy(&e.home).into_owned(),
        })
}

/// True when the process runs with effective uid 0.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// This program, for starting it again under another account: `/proc/self/fd/N` of a
/// descriptor opened now (as root), with the descriptor kept open. The path works in a
/// child after fork (it has the same descriptor) even when a directory above the binary
/// does not let the new account through (a build under /root); `execve` closes the
/// descriptor (close-on-exec).
///
/// # Errors
/// The binary cannot be found or opened.
pub fn reexec_path() -> std::io::Result<(std::path::PathBuf, rustix::fd::OwnedFd)> {
    use rustix::fd::AsRawFd;
    let exe = std::env::current_exe()?;
    let fd = rustix::fs::open(
        &exe,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok((format!("/proc/self/fd/{}", fd.as_raw_fd()).into(), fd))
}

/// Sets the calling thread's name (for the main thread: the process's `comm`, as `ps` and
/// `top` show it). Failure only leaves the old name.
pub fn set_process_name(name: &str) {
    if let Ok(name) = std::ffi::CString::new(name) {
        let _ = rustix::thread::set_name(&name);
    }
}

/// Marks every descriptor above 2 that this process inherited close-on-exec, so none of
/// them reaches a child: a supervisor's or a build tool's pipes must not end up in a
/// `.qmail` program. Called by the master first thing, while it is single-threaded and
/// before it opens anything of its own.
pub fn close_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let numbers: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&n| n > 2)
        .collect();
    for n in numbers {
        #[allow(unsafe_code)]
        // SAFETY: `n` was listed in /proc/self/fd a moment ago and this single-threaded
        // process has closed nothing since (the one descriptor that may be gone is the
        // listing's own, which read_dir has closed: fcntl then fails with EBADF, which is
        // ignored). The borrow lives for one fcntl call, which neither closes nor moves
        // the descriptor.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(n) };
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
}

/// Gives `path` and everything below it to `uid:gid`: every directory and every regular file
/// with a single link that is not already theirs. Symbolic links, special files and files
/// with other hard links are left alone (a hard link planted in the tree must not hand its
/// target to the account), and nothing is followed. For trees that belong to the daemon as a
/// whole (`queue/`, `alias/`); an owner that changed (`control/accounts`, or a root made
/// before the accounts existed) is applied to everything in them.
///
/// # Errors
/// The first failing `lstat`, `chown` or directory read.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    // The top directory itself, without following a link put in its place.
    let top = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let dir = match top {
        Ok(fd) => fd,
        // A symbolic link (ELOOP), or not a directory: leave it alone.
        Err(e) if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&dir)?;
    if (st.st_uid, st.st_gid) != (uid, gid) {
        rustix::fs::fchown(
            &dir,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
        )?;
    }
    chown_below(&dir, uid, gid, 0)?;
    Ok(())
}

/// Deepest directory level `chown_tree` descends to (the root's own tree is shallow).
const CHOWN_DEPTH: usize = 16;

/// [`chown_tree`] below the open directory `dir`: directories and single-link regular files
/// are given to `uid:gid` with `fchownat(AT_SYMLINK_NOFOLLOW)`, and subdirectories are entered with `openat(O_NOFOLLOW)`, so nothing another
/// account renames or replaces meanwhile can redirect the walk outside the tree.
fn chown_below(dir: &rustix::fd::OwnedFd, uid: u32, gid: u32, depth: usize) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    if depth > CHOWN_DEPTH {
        return Ok(());
    }
    let owner = (
        Some(rustix::process::Uid::from_raw(uid)),
        Some(rustix::process::Gid::from_raw(gid)),
    );
    let entries = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    for name in names {
        let st = match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        let ours =
            kind == FileType::Directory || (kind == FileType::RegularFile && st.st_nlink == 1);
        if ours && (st.st_uid, st.st_gid) != (uid, gid) {
            rustix::fs::chownat(dir, &name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        if kind == FileType::Directory {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, &name, flags, Mode::empty()) {
                Ok(sub) => chown_below(&sub, uid, gid, depth + 1)?,
                // Replaced by something else since the stat: not ours to follow.
                Err(
                    rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT,
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("passwd");
        std::fs::write(
            &p,
            "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nbad line\n",
        )
        .unwrap();
        let n = lookup_account(&p, "nobody").unwrap();
        assert_eq!(
            (n.uid, n.gid, n.home.as_str()),
            (65534, 65534, "/nonexistent")
        );
        assert!(lookup_account(&p, "alias").is_none());
    }
}
