//! The trigger: a FIFO, `DIR/pickup/trigger` ([`crate::root::Root::trigger`]), that wakes a
//! running `mta serve`, as qmail's `lock/trigger` woke qmail-send. It is in the pickup
//! directory, which every local user can reach, because `DIR/queue` is the queue
//! account's alone (mode 0700); [`crate::inject::pickup::prepare`] makes it (mode 0622,
//! owned by the queue account) and moves aside anything else found under its name.
//!
//! `mta inject` and `mta sendmail` pull it after their enqueue commits ([`Pull::NewMail`]);
//! `mta queue flush` pulls it to ask for an immediate retry of everything ([`Pull::Flush`],
//! qmail's SIGALRM plus qmail-tcpok). Pulling never blocks and never fails the caller: with no
//! server running, there is nobody to wake, and the next `serve` scans the queue anyway.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

/// What a pull asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    /// New messages were committed: scan for them.
    NewMail,
    /// Retry every deferred delivery now and forget downed hosts.
    Flush,
}

impl Pull {
    fn byte(self) -> u8 {
        match self {
            Pull::NewMail => b'n',
            Pull::Flush => b'f',
        }
    }
}

/// Creates the FIFO if it does not exist, mode 0622.
///
/// # Errors
/// I/O errors from `mknod`, other than "already exists".
pub fn create(path: &Path) -> io::Result<()> {
    match rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o622),
        0,
    ) {
        // The umask took group and other write away: put them back, so any local user's
        // inject (and a `.qmail` program's `forward`) can wake the server. Through the
        // FIFO we made, never through a name someone may have put there since.
        Ok(()) => match open_fifo(path, OFlags::RDONLY) {
            Some(fifo) => Ok(rustix::fs::fchmod(&fifo, Mode::from_raw_mode(0o622))?),
            None => Ok(()),
        },
        Err(e) if e == rustix::io::Errno::EXIST => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens `path` without blocking and without following a link, if it is a FIFO.
fn open_fifo(path: &Path, access: OFlags) -> Option<std::fs::File> {
    let flags = access | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::Fifo).then(|| std::fs::File::from(fd))
}

/// Pulls the trigger: writes one byte without blocking. Errors (no FIFO, no reader, full
/// pipe) are ignored, as qmail-queue ignored them: the server rescans on start and on a timer.
/// Anything but a FIFO at the path (a regular file, a link another user planted in the
/// pickup directory) is left alone: nothing is written into it.
pub fn pull(path: &Path, what: Pull) {
    if let Some(mut f) = open_fifo(path, OFlags::WRONLY) {
        // Ignored on purpose: see the function docs.
        let _ = f.write_all(&[what.byte()]);
    }
}

/// The server's end: blocking reads of pulls.
#[derive(Debug)]
pub struct Listener {
    fifo: std::fs::File,
}

impl Listener {
    /// Opens the FIFO read-write, so it never reports end-of-file when writers come and go.
    ///
    /// # Errors
    /// I/O errors creating or opening the FIFO.
    pub fn open(path: &Path) -> io::Result<Listener> {
        create(path)?;
        // Never through a link planted at that name, and only a FIFO.
        let fifo = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32,
            )
            .open(path)?;
        let st = rustix::fs::fstat(&fifo)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a FIFO", path.display()),
            ));
        }
        Ok(Listener { fifo })
    }

    /// Blocks until at least one pull arrives; returns whether any asked for a flush.
    ///
    /// # Errors
    /// I/O errors reading the FIFO.
    pub fn wait(&mut self) -> io::Result<Pull> {
        let mut buf = [0u8; 64];
        loop {
            let n = self.fifo.read(&mut buf)?;
            if n == 0 {
                continue;
            }
            return Ok(if buf[..n].contains(&b'f') {
                Pull::Flush
            } else {
                Pull::NewMail
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pull_without_listener_is_harmless_and_listener_sees_pulls() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("trigger");
        pull(&p, Pull::NewMail); // no FIFO yet
        create(&p).unwrap();
        pull(&p, Pull::NewMail); // FIFO, no reader
        let mut l = Listener::open(&p).unwrap();
        pull(&p, Pull::NewMail);
        assert_eq!(l.wait().unwrap(), Pull::NewMail);
        pull(&p, Pull::NewMail);
        pull(&p, Pull::Flush);
        assert_eq!(l.wait().unwrap(), Pull::Flush);
    }

    #[test]
    fn a_link_or_a_plain_file_is_not_a_trigger() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("root-only");
        std::fs::write(&target, "secret").unwrap();
        let link = t.path().join("trigger");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(Listener::open(&link).is_err());
        pull(&link, Pull::Flush);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
        let plain = t.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        assert!(Listener::open(&plain).is_err());
        pull(&plain, Pull::Flush);
        assert_eq!(
            std::fs::read_to_string(&plain).unwrap(),
            "",
            "not a FIFO: not written"
        );
    }
}
