//! `DIR/pickup/`: how `mta inject` and `mta sendmail`, run by any local user, hand a message
//! to the queue they may not open (design.md, "Processes and accounts"), like Postfix's
//! maildrop and pickup.
//!
//! - **Layout** ([`prepare`], table below): `pickup/`, `tmp/` and `new/` are mode
//!   1733 and belong to the queue account (the owner of `DIR/queue`, [`queue_owner`]);
//!   `bad/` is 0700; the trigger FIFO is `pickup/trigger` (0622), so any user can wake the
//!   queue process though `DIR/queue` is 0700.
//! - **Writing** (`drop_off`): the writer creates `tmp/NAME` (`O_EXCL|O_NOFOLLOW`), makes
//!   it mode 0644 so the queue account can read it, writes the envelope in qmail-queue's
//!   wire form (`F<sender>\0T<rcpt>\0…\0`, [`mta_queue::qmail`]) then the message, fsyncs
//!   it, hard-links it as `new/NAME`, makes that name durable, and removes `tmp/NAME`. A
//!   writer who may not read `new/` (everyone but the queue account and root) cannot fsync
//!   it, so it calls `syncfs` on the file's file system instead: either way the message is
//!   durable before inject exits 0. NAME ([`WriterName`]) carries the writer's uid and
//!   pid and 128 random bits: the files are world-readable, but in directories only their
//!   owner may list, so the unguessable name keeps other users from opening them (Postfix
//!   relies on the same listing rule; it has a setgid `postdrop` where we have none).
//! - **Importing** ([`drain`]), by the process that holds the queue: each entry of `new/` is
//!   checked without being followed or waited on ([`WriterName::parse`], `lstat`,
//!   `openat(O_NOFOLLOW|O_NONBLOCK|O_NOCTTY)`, `fstat`); only a regular file with one
//!   link, owned by the uid its name claims, with a valid envelope, is imported. The
//!   `Received: (qmail PID invoked by uid UID); DATE` line is written by the importer from
//!   what the writer cannot forge, the file's owner and modification time (qmail-queue,
//!   being setuid, knew the caller's uid the same way), and the pid from the name.
//!   Anything else (a FIFO, device, socket, symbolic link, directory, another user's file,
//!   a file without an envelope) is renamed into `bad/` ([`Rejection`]) and the import goes
//!   on with the next entry.
//!
//! ```text
//! DIR/pickup/          1733 queue account   anyone may add a name; nobody else may list it
//! DIR/pickup/tmp/      1733 queue account   a writer's file while it is written
//! DIR/pickup/new/      1733 queue account   complete files, waiting for the importer
//! DIR/pickup/bad/      0700 queue account   what the importer refused (kept for the admin)
//! DIR/pickup/trigger   0622 queue account   FIFO: wakes the queue process (crate::trigger)
//! ```
//!
//! Import order is enqueue (durable), then remove the pickup file: a crash in between
//! queues the message twice, never loses it.

mod entry;
mod layout;

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::time::SystemTime;

use mta_maildir::mta_durable::{Fs, OsFs};
use mta_queue::{MessageId, Queue, QueueError};
use rustix::fd::OwnedFd;
use rustix::io::Errno;

pub use entry::{Rejection, WriterName};
pub use layout::{Owner, prepare, queue_owner};

use super::deliver::received_line;
use crate::root::Root;

/// `DIR/pickup`.
pub fn dir(root: &Root) -> PathBuf {
    root.dir().join("pickup")
}

/// Leaves a message in the pickup directory: `envelope` (already qmail-encoded), then
/// `prefix` and the bytes of `message` (no Received line: [`drain`] adds it). Durable when
/// it returns `Ok` (module docs); the queue process imports it when the trigger is pulled.
///
/// # Errors
/// [`PickupError::Io`] when `DIR/pickup`, its `tmp/` or `new/` is missing, a link, owned by
/// another account than `pickup/` itself, or a step fails; nothing is left in `new/` then
/// (a temporary failure: qmail's 111).
pub(crate) fn drop_off(
    root: &Root,
    envelope: &[u8],
    prefix: &[u8],
    message: impl Read,
) -> Result<(), PickupError> {
    let path = dir(root);
    let err = |op: &'static str, sub: &str| {
        let p = path.join(sub);
        move |e: io::Error| PickupError::io(op, p, e)
    };
    let (pickup, _, owner) = layout::open_pickup(&path).map_err(err("open", ""))?;
    let (tmp, _) =
        layout::open_drop_box(&pickup, owner, layout::TMP).map_err(err("open", "tmp"))?;
    let (new, listable) =
        layout::open_drop_box(&pickup, owner, layout::NEW).map_err(err("open", "new"))?;
    let name = WriterName::new(
        rustix::process::geteuid().as_raw(),
        std::process::id(),
        SystemTime::now(),
        random().map_err(err("read random bytes for", ""))?,
    )
    .to_string();
    let fs = OsFs::new();
    let mut file = fs.create_new(&tmp, &name).map_err(err("create", "tmp"))?;
    let published = write_file(&fs, &mut file, &[envelope, prefix], message)
        .map_err(err("write", "tmp"))
        .and_then(|()| {
            fs.link(&tmp, &name, &new, &name)
                .map_err(err("link", "new"))
        })
        .and_then(|()| {
            let synced = if listable {
                fs.sync_dir(&new)
            } else {
                // We may not open new/ for reading, so not fsync it: sync the file system,
                // which makes every name in it durable.
                fs.sync_filesystem(&OwnedFd::from(file))
            };
            synced.map_err(|e| {
                // Not known durable, so reported as failed: take the name back so a retry
                // does not deliver twice (if that fails too, a retry duplicates, never loses).
                let _ = fs.remove_file(&new, &name);
                PickupError::io("sync", path.join("new"), e)
            })
        });
    // Success or not, the tmp/ name goes; a leftover is only a harmless unused file.
    let _ = fs.remove_file(&tmp, &name);
    published
}

/// Writes `head` pieces then all of `body` into `file`, and fsyncs it; mode 0644, so the
/// queue account can read what another user wrote.
fn write_file(fs: &OsFs, file: &mut File, head: &[&[u8]], mut body: impl Read) -> io::Result<()> {
    rustix::fs::fchmod(&*file, rustix::fs::Mode::from_raw_mode(0o644))?;
    for piece in head {
        fs.write_all(file, piece)?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        fs.write_all(file, &buf[..n])?;
    }
    fs.sync_all(file)
}

/// 128 bits from the system's random source, for a name nobody can guess.
fn random() -> io::Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// What [`drain`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// The queue ids of the imported messages, in pickup order.
    pub imported: Vec<MessageId>,
    /// The entries of `pickup/new/` that were not imported, each as `NAME: WHY` and where
    /// it went (`moved to pickup/bad/...`, or why it could not be moved): for the log.
    pub unreadable: Vec<String>,
}

/// Imports every message waiting in `pickup/new/` into `queue`, oldest first, with the
/// Received line in front, and removes each file once its enqueue is durable. Anything
/// that is not a writer's file is moved into `pickup/bad/` and reported in
/// [`Drained::unreadable`]; the import goes on with the next entry. It never blocks on an
/// entry (a FIFO is never opened, nothing is followed). A missing `pickup/` or `new/` means
/// nothing to do; a missing `bad/` is created (mode 0700).
///
/// Run it as the owner of the queue (or root): it must list `new/` and read the files.
///
/// # Errors
/// [`PickupError`] when `new/` cannot be listed, an enqueue fails for a reason that is not
/// the file's (the queue's disk), or an imported file cannot be removed (it would be
/// imported again). Messages already imported stay imported; the rest stay in `new/`.
pub fn drain(root: &Root, queue: &Queue) -> Result<Drained, PickupError> {
    let mut done = Drained::default();
    let path = dir(root);
    let (pickup, _, _) = match layout::open_pickup(&path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(PickupError::io("open", path, e)),
    };
    let new = match layout::open_dir(&pickup, layout::NEW) {
        Ok((fd, true)) => fd,
        Ok((_, false)) => {
            let e = io::Error::from(io::ErrorKind::PermissionDenied);
            return Err(PickupError::io("list", path.join("new"), e));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(PickupError::io("open", path.join("new"), e)),
    };
    let bad = open_bad(&pickup);
    let names = list(&new).map_err(|e| PickupError::io("list", path.join("new"), e))?;
    let fs = OsFs::new();
    for name in names {
        let shown = String::from_utf8_lossy(name.to_bytes()).into_owned();
        let why = match entry::open(&new, &name) {
            entry::Found::Gone => continue,
            entry::Found::Rejected(why) => why,
            entry::Found::Accepted(found) => {
                match import(queue, found) {
                    Ok(id) => {
                        // Removed by its name, which only the queue account may change.
                        fs.remove_file(&new, &shown)
                            .map_err(|e| PickupError::io("remove", path.join("new"), e))?;
                        done.imported.push(id);
                        continue;
                    }
                    Err(Imported::Refused(why)) => why,
                    Err(Imported::Failed(e)) => return Err(PickupError::Queue(e)),
                }
            }
        };
        let moved = match &bad {
            Ok(bad) => match layout::move_aside(&new, &name, bad, &shown.replace('/', "_")) {
                Ok(to) => format!("moved to pickup/bad/{to}"),
                Err(e) => format!("left in place: cannot move it to pickup/bad: {e}"),
            },
            Err(e) => format!("left in place: pickup/bad: {e}"),
        };
        done.unreadable.push(format!("{shown}: {why}; {moved}"));
    }
    Ok(done)
}

/// Why [`import`] did not import a file.
enum Imported {
    /// The file is at fault: move it aside.
    Refused(Rejection),
    /// The queue is: stop and try later.
    Failed(QueueError),
}

/// Enqueues one accepted file behind its Received line.
fn import(queue: &Queue, found: entry::Accepted) -> Result<MessageId, Imported> {
    let mut reader = BufReader::new(found.file);
    let Ok(envelope) = mta_queue::qmail::read_from(&mut reader) else {
        return Err(Imported::Refused(Rejection::Envelope));
    };
    let received = received_line(found.name.pid(), found.owner, found.mtime);
    match queue.enqueue(&envelope, received.as_bytes().chain(reader)) {
        Ok(id) => Ok(id),
        Err(QueueError::TooLarge) => Err(Imported::Refused(Rejection::TooLarge)),
        Err(e) => Err(Imported::Failed(e)),
    }
}

/// `pickup/bad/`, created (0700, the importer's) when missing.
fn open_bad(pickup: &OwnedFd) -> io::Result<OwnedFd> {
    match rustix::fs::mkdirat(pickup, layout::BAD, rustix::fs::Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let (fd, _) = layout::open_dir(pickup, layout::BAD)?;
    Ok(fd)
}

/// The names in `dir`, sorted (writer names sort oldest first), as raw bytes: a name that
/// is not UTF-8 is still listed, so it can be moved aside.
fn list(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Why the pickup directory could not be prepared, written or drained. Every case is
/// temporary.
#[derive(Debug)]
#[non_exhaustive]
pub enum PickupError {
    /// A file-system operation failed.
    Io {
        /// What was being done: "open", "create", "write", "link", "sync", ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Enqueueing an imported message failed.
    Queue(QueueError),
}

impl PickupError {
    fn io(op: &'static str, path: PathBuf, source: io::Error) -> PickupError {
        PickupError::Io { op, path, source }
    }
}

impl fmt::Display for PickupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickupError::Io { op, path, source } => {
                write!(f, "pickup: cannot {op} {}: {source}", path.display())
            }
            PickupError::Queue(e) => write!(f, "importing from the pickup directory: {e}"),
        }
    }
}

impl std::error::Error for PickupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PickupError::Io { source, .. } => Some(source),
            PickupError::Queue(e) => Some(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::time::{Duration, UNIX_EPOCH};

    use mta_queue::QueueOptions;

    use super::*;

    /// A root with `DIR/queue` and a prepared pickup directory owned by us.
    fn setup() -> (tempfile::TempDir, Root, Queue) {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path().join("r"));
        std::fs::create_dir_all(root.queue()).unwrap();
        let owner = queue_owner(&root).unwrap();
        assert!(prepare(&root, owner).unwrap().is_empty());
        let queue = Queue::open(root.queue(), QueueOptions::default()).unwrap();
        (t, root, queue)
    }

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn prepare_makes_the_layout_and_moves_squatters_aside() {
        let (_t, root, _queue) = setup();
        let p = dir(&root);
        assert_eq!(mode(&p), 0o1733);
        assert_eq!(mode(&p.join("tmp")), 0o1733);
        assert_eq!(mode(&p.join("new")), 0o1733);
        assert_eq!(mode(&p.join("bad")), 0o700);
        assert_eq!(mode(&p.join("trigger")), 0o622);
        assert!(
            std::fs::symlink_metadata(root.trigger())
                .unwrap()
                .file_type()
                .is_fifo()
        );
        // A link planted where the trigger goes, a file where tmp/ goes.
        std::fs::remove_file(root.trigger()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.trigger()).unwrap();
        std::fs::remove_dir(p.join("tmp")).unwrap();
        std::fs::write(p.join("tmp"), "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut aside = prepare(&root, queue_owner(&root).unwrap()).unwrap();
        aside.sort();
        assert_eq!(aside, ["tmp -> bad/tmp", "trigger -> bad/trigger"]);
        assert_eq!(mode(&p), 0o1733);
        assert_eq!(mode(&p.join("tmp")), 0o1733);
        assert!(
            std::fs::symlink_metadata(p.join("bad/trigger"))
                .unwrap()
                .is_symlink()
        );
        assert!(
            std::fs::symlink_metadata(root.trigger())
                .unwrap()
                .file_type()
                .is_fifo()
        );
    }

    #[test]
    fn a_dropped_off_message_is_imported_with_the_writers_uid() {
        let (_t, root, queue) = setup();
        let env = b"Fa@example.org\0Tb@example.net\0\0";
        drop_off(&root, env, b"Subject: hi\n", &b"\nbody\n"[..]).unwrap();
        let new: Vec<_> = std::fs::read_dir(dir(&root).join("new")).unwrap().collect();
        assert_eq!(new.len(), 1);
        let file = new[0].as_ref().unwrap().path();
        assert_eq!(mode(&file), 0o644, "readable by the queue account");
        let name = WriterName::parse(file.file_name().unwrap().as_encoded_bytes()).unwrap();
        let me = rustix::process::geteuid().as_raw();
        assert_eq!((name.uid(), name.pid()), (me, std::process::id()));
        assert_eq!(
            std::fs::read_dir(dir(&root).join("tmp")).unwrap().count(),
            0
        );

        let done = drain(&root, &queue).unwrap();
        assert_eq!(done.imported.len(), 1, "{done:?}");
        assert!(done.unreadable.is_empty());
        let mut msg = String::new();
        queue
            .open_message(done.imported[0])
            .unwrap()
            .read_to_string(&mut msg)
            .unwrap();
        let first = msg.lines().next().unwrap().to_owned();
        assert!(
            first.starts_with(&format!(
                "Received: (qmail {} invoked by uid {me}); ",
                std::process::id()
            )),
            "{first}"
        );
        assert!(msg.ends_with("\nSubject: hi\n\nbody\n"), "{msg}");
        assert_eq!(
            std::fs::read_dir(dir(&root).join("new")).unwrap().count(),
            0
        );
    }

    #[test]
    fn bad_entries_go_to_bad_and_the_import_goes_on() {
        let (t, root, queue) = setup();
        let new = dir(&root).join("new");
        let me = rustix::process::geteuid().as_raw();
        // Old times: the bad ones sort before the good one, so it comes after them.
        let named = |secs: u64| {
            WriterName::new(me, 1, UNIX_EPOCH + Duration::from_secs(secs), [7; 16]).to_string()
        };
        let fifo = named(1);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            new.join(&fifo),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let secret = t.path().join("secret");
        std::fs::write(&secret, "root only\n").unwrap();
        let link = named(2);
        std::os::unix::fs::symlink(&secret, new.join(&link)).unwrap();
        let dangling = named(3);
        std::os::unix::fs::symlink(t.path().join("nowhere"), new.join(&dangling)).unwrap();
        let garbage = named(4);
        std::fs::write(new.join(&garbage), "no envelope").unwrap();
        std::fs::write(new.join("plain-name"), "F\0Tb@example.net\0\0x\n").unwrap();
        drop_off(
            &root,
            b"Fa@example.org\0Tb@example.net\0\0",
            b"",
            &b"good\n"[..],
        )
        .unwrap();

        let done = drain(&root, &queue).unwrap();
        assert_eq!(done.imported.len(), 1, "{done:?}");
        assert_eq!(done.unreadable.len(), 5, "{done:?}");
        for (name, why) in [
            (&fifo, "a FIFO"),
            (&link, "a symbolic link"),
            (&dangling, "a symbolic link"),
            (&garbage, "no valid envelope"),
        ] {
            assert!(
                done.unreadable
                    .contains(&format!("{name}: {why}; moved to pickup/bad/{name}")),
                "{done:?}"
            );
            assert!(std::fs::symlink_metadata(dir(&root).join("bad").join(name)).is_ok());
        }
        assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0);
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
        // A second drain has nothing to do.
        assert_eq!(drain(&root, &queue).unwrap(), Drained::default());
    }

    #[test]
    fn missing_pickup_is_nothing_to_do() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let queue = Queue::open(root.queue(), QueueOptions::default()).unwrap();
        assert_eq!(drain(&root, &queue).unwrap(), Drained::default());
    }
}
