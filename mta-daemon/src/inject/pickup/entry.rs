//! One entry of `pickup/new/`: the name its writer gave it, and the checks the importer
//! makes before it reads a byte of it.
//!
//! A writer names its file `SECS.MUSECSPpidUuidRhex` ([`WriterName`]): the time, its pid
//! and uid, and 128 random bits. The uid is the writer's claim; the importer believes it
//! only when the file's owner says the same, and the file is a regular file with one link
//! ([`Facts::check`]). So a user cannot pass off a hard link to another user's file (two
//! links), a file chowned to them (owner and name differ), or anything that is not a
//! regular file. The random part keeps the name unguessable: files are mode 0644 in a
//! directory nobody but the queue account may list, so a name is all that protects a
//! message from being read by another local user.

use std::ffi::CStr;
use std::fmt;
use std::fs::File;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// The name of a file a writer left in `pickup/`: `SECS.MUSECSPpidUuidRhex`, e.g.
/// `1795926434.M625255P15373U1000R0123456789abcdef0123456789abcdef`.
///
/// The seconds come first, so sorting names sorts files by age (the importer takes the
/// oldest first); the rest is a maildir-like unique part plus the writer's uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterName {
    secs: u64,
    usecs: u32,
    pid: u32,
    uid: u32,
    random: [u8; 16],
}

impl WriterName {
    /// The name a writer with real pid `pid` and effective uid `uid` gives a file made at
    /// `now`, with `random` (read from the system's random source) as the unguessable part.
    pub fn new(uid: u32, pid: u32, now: SystemTime, random: [u8; 16]) -> WriterName {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        WriterName {
            secs: since.as_secs(),
            usecs: since.subsec_micros(),
            pid,
            uid,
            random,
        }
    }

    /// The uid the writer claims to have (checked against the file's owner).
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The writer's process id, for the `Received: (qmail PID invoked by uid UID)` line.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Parses a name exactly as [`fmt::Display`] writes it; `None` for anything else
    /// (another format, non-ASCII bytes, a number out of range, a short random part).
    pub fn parse(name: &[u8]) -> Option<WriterName> {
        let name = std::str::from_utf8(name).ok()?;
        let (secs, rest) = name.split_once(".M")?;
        let (usecs, rest) = rest.split_once('P')?;
        let (pid, rest) = rest.split_once('U')?;
        let (uid, hex) = rest.split_once('R')?;
        if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut random = [0u8; 16];
        for (i, byte) in random.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let parsed = WriterName {
            secs: decimal(secs)?,
            usecs: decimal(usecs)?,
            pid: decimal(pid)?,
            uid: decimal(uid)?,
            random,
        };
        // One spelling per name: no leading zeros or signs slip through.
        (parsed.to_string() == name).then_some(parsed)
    }
}

/// A decimal number of plain ASCII digits.
fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for WriterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.M{}P{}U{}R",
            self.secs, self.usecs, self.pid, self.uid
        )?;
        self.random.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Why an entry of `pickup/new/` was not imported, but moved into `pickup/bad/`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The name is not a [`WriterName`].
    Name,
    /// A symbolic link (dangling or not): never followed.
    SymbolicLink,
    /// A FIFO: never opened for reading, so it cannot block the importer.
    Fifo,
    /// A character or block device.
    Device,
    /// A Unix-domain socket.
    Socket,
    /// A directory.
    Directory,
    /// A regular file with this many hard links (another name points at the same file).
    Linked(u64),
    /// The owner is not the uid the name claims.
    Owner {
        /// The file's owner.
        owner: u32,
        /// The uid in the name.
        named: u32,
    },
    /// The importer could not open it (e.g. a mode that denies it reading).
    Unopenable(Errno),
    /// The contents do not start with a qmail-queue envelope.
    Envelope,
    /// The queue refused it as too large for its format.
    TooLarge,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Name => f.write_str("not a name a writer gives"),
            Rejection::SymbolicLink => f.write_str("a symbolic link"),
            Rejection::Fifo => f.write_str("a FIFO"),
            Rejection::Device => f.write_str("a device"),
            Rejection::Socket => f.write_str("a socket"),
            Rejection::Directory => f.write_str("a directory"),
            Rejection::Linked(n) => write!(f, "a file with {n} links"),
            Rejection::Owner { owner, named } => {
                write!(f, "owned by uid {owner}, but named for uid {named}")
            }
            Rejection::Unopenable(e) => write!(f, "cannot be opened: {e}"),
            Rejection::Envelope => f.write_str("no valid envelope"),
            Rejection::TooLarge => f.write_str("too large for the queue"),
        }
    }
}

/// What the importer knows of an entry from `lstat`/`fstat`, before deciding to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The file type (of the entry itself: links are not followed).
    pub(crate) kind: FileType,
    /// The hard link count.
    pub(crate) links: u64,
    /// The owner's uid.
    pub(crate) owner: u32,
}

impl Facts {
    /// The facts of a `stat` result.
    #[allow(clippy::useless_conversion)] // st_nlink is u32 on some targets, u64 on others
    pub(crate) fn of(st: &rustix::fs::Stat) -> Facts {
        Facts {
            kind: FileType::from_raw_mode(st.st_mode),
            links: u64::from(st.st_nlink),
            owner: st.st_uid,
        }
    }

    /// Accepts only what a writer makes: a regular file with one link, owned by the uid
    /// its name claims.
    ///
    /// # Errors
    /// The [`Rejection`] for the first check that fails, in that order.
    pub(crate) fn check(&self, name: &WriterName) -> Result<(), Rejection> {
        match self.kind {
            FileType::RegularFile => {}
            FileType::Symlink => return Err(Rejection::SymbolicLink),
            FileType::Fifo => return Err(Rejection::Fifo),
            FileType::Socket => return Err(Rejection::Socket),
            FileType::Directory => return Err(Rejection::Directory),
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Unknown => {
                return Err(Rejection::Device);
            }
        }
        if self.links != 1 {
            return Err(Rejection::Linked(self.links));
        }
        if self.owner != name.uid {
            return Err(Rejection::Owner {
                owner: self.owner,
                named: name.uid,
            });
        }
        Ok(())
    }
}

/// An entry that passed every check, open for reading.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The open file (a regular file: `O_NONBLOCK` does not matter to it).
    pub(crate) file: File,
    /// Its parsed name.
    pub(crate) name: WriterName,
    /// Its owner: the uid for the Received line.
    pub(crate) owner: u32,
    /// Its modification time (seconds since the epoch): the date for the Received line.
    pub(crate) mtime: i64,
}

/// What [`open`] found.
#[derive(Debug)]
pub(crate) enum Found {
    /// A writer's file, open.
    Accepted(Accepted),
    /// Something to move into `pickup/bad/`.
    Rejected(Rejection),
    /// Nothing there any more (removed since the listing).
    Gone,
}

/// Looks at `name` in the directory `new`, and opens it only if it is a writer's file.
///
/// The name is checked first, then the entry's `lstat` (so a device or a FIFO is never
/// opened at all), then it is opened with `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY` (an entry
/// swapped for a link or a FIFO since the `lstat` neither redirects nor blocks the open),
/// and the open file's `fstat` is checked again: what is read is what was checked.
///
/// # Errors
/// I/O errors other than those that say what the entry is; the caller moves the entry
/// aside either way.
pub(crate) fn open(new: &OwnedFd, name: &CStr) -> Found {
    let Some(parsed) = WriterName::parse(name.to_bytes()) else {
        return Found::Rejected(Rejection::Name);
    };
    match rustix::fs::statat(new, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => {
            if let Err(why) = Facts::of(&st).check(&parsed) {
                return Found::Rejected(why);
            }
        }
        Err(Errno::NOENT) => return Found::Gone,
        Err(e) => return Found::Rejected(Rejection::Unopenable(e)),
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match rustix::fs::openat(new, name, flags | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Found::Gone,
        Err(Errno::LOOP) => return Found::Rejected(Rejection::SymbolicLink),
        Err(Errno::NXIO) => return Found::Rejected(Rejection::Socket),
        Err(e) => return Found::Rejected(Rejection::Unopenable(e)),
    };
    let st = match rustix::fs::fstat(fd.as_fd()) {
        Ok(st) => st,
        Err(e) => return Found::Rejected(Rejection::Unopenable(e)),
    };
    let facts = Facts::of(&st);
    if let Err(why) = facts.check(&parsed) {
        return Found::Rejected(why);
    }
    Found::Accepted(Accepted {
        file: File::from(fd),
        name: parsed,
        owner: facts.owner,
        mtime: st.st_mtime,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name(uid: u32) -> WriterName {
        WriterName::new(
            uid,
            4711,
            UNIX_EPOCH + std::time::Duration::new(1_795_926_434, 625_255_000),
            [0xab; 16],
        )
    }

    #[test]
    fn names_round_trip_and_carry_pid_and_uid() {
        let n = name(1000);
        let text = n.to_string();
        assert_eq!(
            text,
            "1795926434.M625255P4711U1000Rabababababababababababababababab"
        );
        let back = WriterName::parse(text.as_bytes()).unwrap();
        assert_eq!(back, n);
        assert_eq!((back.uid(), back.pid()), (1000, 4711));
    }

    #[test]
    fn other_names_are_not_writer_names() {
        for bad in [
            "",
            "trigger",
            "1795926434.M625255P15373Q0Rc4c1.vm", // a plain maildir name: no uid
            "1795926434.M625255P4711U1000Rabab",  // random part too short
            "1795926434.M625255P4711U1000RABABABABABABABABABABABABABABABAB",
            "1795926434.M625255P4711U01000Rabababababababababababababababab",
            "1795926434.M625255P4711U+1000Rabababababababababababababababab",
            "1795926434.M625255P4711U99999999999Rabababababababababababababababab",
            "1795926434.M625255P4711U1000Rabababababababababababababababab.x",
            "../1795926434.M625255P4711U1000Rabababababababababababababababab",
        ] {
            assert_eq!(WriterName::parse(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(WriterName::parse(b"1795926434.M1P2U3R\xff"), None);
    }

    fn facts(kind: FileType, links: u64, owner: u32) -> Facts {
        Facts { kind, links, owner }
    }

    #[test]
    fn only_a_regular_file_with_one_link_owned_by_its_writer_passes() {
        let n = name(1000);
        assert_eq!(facts(FileType::RegularFile, 1, 1000).check(&n), Ok(()));
        let cases = [
            (facts(FileType::Symlink, 1, 1000), Rejection::SymbolicLink),
            (facts(FileType::Fifo, 1, 1000), Rejection::Fifo),
            (facts(FileType::Socket, 1, 1000), Rejection::Socket),
            (facts(FileType::Directory, 2, 1000), Rejection::Directory),
            (facts(FileType::CharacterDevice, 1, 1000), Rejection::Device),
            (facts(FileType::BlockDevice, 1, 1000), Rejection::Device),
            (facts(FileType::RegularFile, 2, 1000), Rejection::Linked(2)),
            (
                facts(FileType::RegularFile, 1, 0),
                Rejection::Owner {
                    owner: 0,
                    named: 1000,
                },
            ),
        ];
        for (f, why) in cases {
            assert_eq!(f.check(&n), Err(why.clone()), "{f:?}");
        }
    }

    fn dir_fd(path: &std::path::Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    fn c(s: &str) -> std::ffi::CString {
        std::ffi::CString::new(s).unwrap()
    }

    #[test]
    fn open_checks_real_entries_without_following_or_blocking() {
        let t = tempfile::tempdir().unwrap();
        let me = rustix::process::geteuid().as_raw();
        let good = name(me).to_string();
        std::fs::write(t.path().join(&good), "F\0T\0\0").unwrap();
        let new = dir_fd(t.path());
        match open(&new, &c(&good)) {
            Found::Accepted(a) => assert_eq!((a.owner, a.name.uid()), (me, me)),
            other => panic!("{other:?}"),
        }
        // Someone else's uid in the name.
        let claimed = WriterName::new(me + 1, 1, SystemTime::now(), [1; 16]).to_string();
        std::fs::write(t.path().join(&claimed), "F\0T\0\0").unwrap();
        assert!(matches!(
            open(&new, &c(&claimed)),
            Found::Rejected(Rejection::Owner { .. })
        ));
        // A FIFO is never opened (an open for reading would wait for a writer).
        let fifo = WriterName::new(me, 2, SystemTime::now(), [2; 16]).to_string();
        rustix::fs::mknodat(
            &new,
            fifo.as_str(),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            open(&new, &c(&fifo)),
            Found::Rejected(Rejection::Fifo)
        ));
        // Links, dangling or to a real file, are links.
        let secret = t.path().join("secret");
        std::fs::write(&secret, "root only\n").unwrap();
        for (i, target) in [secret.clone(), t.path().join("nowhere")]
            .iter()
            .enumerate()
        {
            let link = WriterName::new(me, 3, SystemTime::now(), [3 + i as u8; 16]).to_string();
            std::os::unix::fs::symlink(target, t.path().join(&link)).unwrap();
            assert!(matches!(
                open(&new, &c(&link)),
                Found::Rejected(Rejection::SymbolicLink)
            ));
        }
        // A second name for a file.
        let hard = WriterName::new(me, 5, SystemTime::now(), [5; 16]).to_string();
        std::fs::hard_link(&secret, t.path().join(&hard)).unwrap();
        assert!(matches!(
            open(&new, &c(&hard)),
            Found::Rejected(Rejection::Linked(2))
        ));
        let sub = WriterName::new(me, 6, SystemTime::now(), [6; 16]).to_string();
        std::fs::create_dir(t.path().join(&sub)).unwrap();
        assert!(matches!(
            open(&new, &c(&sub)),
            Found::Rejected(Rejection::Directory)
        ));
        let sock = WriterName::new(me, 7, SystemTime::now(), [7; 16]).to_string();
        let _listener = std::os::unix::net::UnixListener::bind(t.path().join(&sock)).unwrap();
        assert!(matches!(
            open(&new, &c(&sock)),
            Found::Rejected(Rejection::Socket)
        ));
        assert!(matches!(
            open(&new, &c("secret")),
            Found::Rejected(Rejection::Name)
        ));
        let gone = WriterName::new(me, 8, SystemTime::now(), [8; 16]).to_string();
        assert!(matches!(open(&new, &c(&gone)), Found::Gone));
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
    }
}
