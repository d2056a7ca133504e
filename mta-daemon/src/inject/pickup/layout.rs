//! The pickup directory's layout, who owns it, and how it is opened.
//!
//! ```text
//! DIR/pickup/          1733 queue account   anyone may add a name; nobody else may list it
//! DIR/pickup/tmp/      1733 queue account   a writer's file while it is written
//! DIR/pickup/new/      1733 queue account   complete files, waiting for the importer
//! DIR/pickup/bad/      0700 queue account   what the importer refused (kept for the admin)
//! DIR/pickup/trigger   0622 queue account   FIFO: wakes the queue process (crate::trigger)
//! ```
//!
//! The sticky bit (Postfix's maildrop is 1730 with a setgid postdrop; we have no setgid
//! program, so others get `-wx` as in Postfix's older world-writable maildrop) lets a user
//! create files and remove only their own. Every directory is opened with `O_NOFOLLOW`, and
//! its owner checked, so a name squatted before [`prepare`] created it (a link, a file, a
//! directory of another user) is moved aside, never used.

use std::io;
use std::path::Path;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use super::PickupError;
use crate::root::Root;

/// Where a writer's file is written.
pub(crate) const TMP: &str = "tmp";
/// Where a complete file waits for the importer.
pub(crate) const NEW: &str = "new";
/// Where the importer moves what it refuses.
pub(crate) const BAD: &str = "bad";
/// The trigger FIFO's name in `DIR/pickup` ([`Root::trigger`]).
pub(crate) const TRIGGER: &str = "trigger";

/// Mode of `pickup/`, `pickup/tmp/` and `pickup/new/`: sticky, writable and searchable by
/// all, listable only by the owner.
const DROP_BOX: u32 = 0o1733;
/// Mode of `pickup/bad/`.
const PRIVATE: u32 = 0o700;
/// Mode of the trigger FIFO: anyone may pull it, only its owner reads it.
const TRIGGER_MODE: u32 = 0o622;

/// An account: a uid and a gid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The owner of `DIR/queue` (the queue account: `mtaq`, or the one user of a server run
/// without root), from an `fstat` of the directory opened without following a link.
///
/// # Errors
/// `DIR/queue` is missing, a symbolic link (`ELOOP`), not a directory, or cannot be opened.
pub fn queue_owner(root: &Root) -> io::Result<Owner> {
    let (fd, _) = open_dir(CWD, &root.queue())?;
    let st = rustix::fs::fstat(&fd)?;
    Ok(Owner {
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

/// Creates or repairs the pickup layout (module docs) for the queue account `owner`:
/// missing directories and the trigger FIFO are made, existing ones given to `owner` with
/// the layout's modes. `mta init` calls it with the owner of `DIR/queue` ([`queue_owner`]),
/// and `serve` should before it imports, after it gave `DIR/queue` to the queue account.
///
/// Everything is done through descriptors: `openat(O_NOFOLLOW)`, `fstat`, `fchown`,
/// `fchmod`, `mkdirat`, `mknodat`, `renameat`; nothing is changed by path or recursively.
/// An entry another user made under one of the layout's names while `pickup/` was open to
/// all (a link, a file, a FIFO or a directory owned by someone other than root, `owner` or
/// the caller) is renamed aside (into `bad/`, or for `bad` itself to `bad.squatted`) and
/// the name made anew. Returns what was renamed aside, as `NAME -> WHERE`, for the log.
///
/// Must run as root or as `owner` (a plain user can only give files to itself). Only
/// the pickup directory's own entries are touched: files waiting in `new/` keep their owner.
///
/// # Errors
/// [`PickupError::Io`] when `DIR` cannot be opened, `DIR/pickup` is not a directory, or a
/// create, `fchown` or `fchmod` fails.
pub fn prepare(root: &Root, owner: Owner) -> Result<Vec<String>, PickupError> {
    let path = super::dir(root);
    let io = |op| {
        let path = path.clone();
        move |e: io::Error| PickupError::io(op, path, e)
    };
    let top = rustix::fs::open(
        root.dir(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| PickupError::io("open", root.dir().to_path_buf(), e.into()))?;
    // A new pickup/ stays 0700 until its entries exist: nobody can squat them.
    match rustix::fs::mkdirat(&top, "pickup", Mode::from_raw_mode(PRIVATE)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io("create")(e.into())),
    }
    let (pickup, _) = open_dir(&top, "pickup").map_err(io("open"))?;
    give(&pickup, owner, None).map_err(io("chown"))?;
    let mut aside = Vec::new();
    let bad = ensure_dir(&pickup, BAD, owner, PRIVATE, None, &mut aside).map_err(io("repair"))?;
    for sub in [TMP, NEW] {
        ensure_dir(&pickup, sub, owner, DROP_BOX, Some(&bad), &mut aside).map_err(io("repair"))?;
    }
    ensure_trigger(&pickup, owner, &bad, &mut aside).map_err(io("repair trigger"))?;
    give(&pickup, owner, Some(DROP_BOX)).map_err(io("chmod"))?;
    Ok(aside)
}

/// Opens the directory `path` under `dir` without following a final symbolic link.
/// A drop box we may search and write but not list (a non-owner's view of `pickup/tmp`)
/// is opened `O_PATH` on Linux, which `openat`, `linkat`, `unlinkat` and `fstat` accept;
/// the flag says whether the descriptor can list and `fsync` the directory.
pub(crate) fn open_dir<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    path: P,
) -> io::Result<(OwnedFd, bool)> {
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(&dir, path, flags | OFlags::RDONLY, Mode::empty()) {
        Ok(fd) => Ok((fd, true)),
        #[cfg(target_os = "linux")]
        Err(Errno::ACCESS) => Ok((
            rustix::fs::openat(&dir, path, flags | OFlags::PATH, Mode::empty())?,
            false,
        )),
        Err(e) => Err(e.into()),
    }
}

/// Renames `name` in `from` into `to`, as `base` or, if that is taken, `base.N`, never
/// replacing anything (the importer is the only one who adds names to `to`). Returns the
/// name used.
///
/// # Errors
/// The `renameat`'s error.
pub(crate) fn move_aside(
    from: &OwnedFd,
    name: &std::ffi::CStr,
    to: &OwnedFd,
    base: &str,
) -> io::Result<String> {
    let mut target = base.to_owned();
    for n in 1..1000 {
        match rustix::fs::statat(to, target.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => break,
            _ => target = format!("{base}.{n}"),
        }
    }
    rustix::fs::renameat(from, name, to, target.as_str())?;
    Ok(target)
}

/// The accounts whose entries in `pickup/` are ours: root, the queue account, the caller.
fn trusted(uid: u32, owner: Owner) -> bool {
    uid == 0 || uid == owner.uid || uid == rustix::process::geteuid().as_raw()
}

/// `fchown` to `owner` and, with `mode`, `fchmod`.
fn give(fd: &OwnedFd, owner: Owner, mode: Option<u32>) -> io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    if (st.st_uid, st.st_gid) != (owner.uid, owner.gid) {
        rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )?;
    }
    if let Some(mode) = mode {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?;
    }
    Ok(())
}

/// Renames the squatted `name` out of the way: into `bad` when there is one, else to
/// `NAME.squatted` beside it.
fn squatted(
    pickup: &OwnedFd,
    name: &str,
    bad: Option<&OwnedFd>,
    aside: &mut Vec<String>,
) -> io::Result<()> {
    let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
    let used = match bad {
        Some(bad) => format!("bad/{}", move_aside(pickup, &cname, bad, name)?),
        None => move_aside(pickup, &cname, pickup, &format!("{name}.squatted"))?,
    };
    aside.push(format!("{name} -> {used}"));
    Ok(())
}

/// Makes `pickup/NAME` a directory of `owner` with `mode`, moving aside whatever else
/// holds the name.
fn ensure_dir(
    pickup: &OwnedFd,
    name: &str,
    owner: Owner,
    mode: u32,
    bad: Option<&OwnedFd>,
    aside: &mut Vec<String>,
) -> io::Result<OwnedFd> {
    for _ in 0..3 {
        match rustix::fs::statat(pickup, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory
                    && trusted(st.st_uid, owner) => {}
            Ok(_) => {
                squatted(pickup, name, bad, aside)?;
                continue;
            }
            Err(Errno::NOENT) => match rustix::fs::mkdirat(pickup, name, Mode::empty()) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        }
        let (fd, _) = match open_dir(pickup, name) {
            Ok(fd) => fd,
            // Replaced since the stat: look again.
            Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => continue,
            Err(e) if e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) => continue,
            Err(e) => return Err(e),
        };
        let st = rustix::fs::fstat(&fd)?;
        if !trusted(st.st_uid, owner) {
            continue;
        }
        give(&fd, owner, Some(mode))?;
        return Ok(fd);
    }
    Err(io::Error::other(format!(
        "{name}: replaced by another user while being repaired"
    )))
}

/// Makes `pickup/trigger` a FIFO of `owner`, mode 0622, moving aside whatever else holds
/// the name.
fn ensure_trigger(
    pickup: &OwnedFd,
    owner: Owner,
    bad: &OwnedFd,
    aside: &mut Vec<String>,
) -> io::Result<()> {
    for _ in 0..3 {
        match rustix::fs::statat(pickup, TRIGGER, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::Fifo
                    && trusted(st.st_uid, owner) => {}
            Ok(_) => {
                squatted(pickup, TRIGGER, Some(bad), aside)?;
                continue;
            }
            Err(Errno::NOENT) => {
                match rustix::fs::mknodat(pickup, TRIGGER, FileType::Fifo, Mode::empty(), 0) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        // O_NONBLOCK: opening a FIFO for reading does not wait for a writer then.
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(pickup, TRIGGER, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOENT | Errno::NXIO) => continue,
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Fifo || !trusted(st.st_uid, owner) {
            continue;
        }
        return give(&fd, owner, Some(TRIGGER_MODE));
    }
    Err(io::Error::other(
        "trigger: replaced by another user while being repaired",
    ))
}

/// Opens `pickup/NAME` for a writer: a directory (never through a link) owned by the same
/// account as `pickup/` itself.
///
/// # Errors
/// `ELOOP`/`ENOTDIR` for something else, `EPERM` for a directory of another owner.
pub(crate) fn open_drop_box(
    pickup: &OwnedFd,
    pickup_owner: u32,
    name: &str,
) -> io::Result<(OwnedFd, bool)> {
    let (fd, listable) = open_dir(pickup, name)?;
    if rustix::fs::fstat(&fd)?.st_uid != pickup_owner {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{name}: not owned by the owner of the pickup directory"),
        ));
    }
    Ok((fd, listable))
}

/// Opens `DIR/pickup` itself (not through a link) and returns it with its owner.
///
/// # Errors
/// As [`open_dir`].
pub(crate) fn open_pickup(path: &Path) -> io::Result<(OwnedFd, bool, u32)> {
    let (fd, listable) = open_dir(CWD, path)?;
    let owner = rustix::fs::fstat(&fd)?.st_uid;
    Ok((fd, listable, owner))
}
