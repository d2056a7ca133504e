//! The root directory: where it is, and `mta init`, which lays it out.
//!
//! ```text
//! DIR/control/       qmail control files (me, locals, rcpthosts, databytes, listen, ...)
//! DIR/users/assign   qmail-users format; local users are resolved here first
//! DIR/alias/         the alias user's home: .qmail-postmaster, .qmail-mailer-daemon and
//!                    .qmail-root delivering to ./Maildir/; no catch-all .qmail-default,
//!                    so unknown local users get 550 at RCPT
//! DIR/queue/         mta-queue's directory, owned by the queue account
//! DIR/pickup/        the hand-off directory of inject/sendmail, and the trigger FIFO
//!                    (crate::inject::pickup)
//! DIR/bin/           preline, condredirect, ... as links to `mta` (crate::helpers)
//! ```
//!
//! `init` is idempotent and never overwrites a file: an administrator's edits survive
//! re-running it, and `serve` runs it on a missing root so `mta serve` alone works.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The alias files `init` writes (qmail's INSTALL.alias asks for the same three).
pub const ALIAS_FILES: [&str; 3] = [".qmail-postmaster", ".qmail-mailer-daemon", ".qmail-root"];

/// The paths under a root directory.
#[derive(Clone, Debug)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// Resolves the root: `--root`, else `$MTA_ROOT`, else `./mta-root`.
    pub fn resolve(flag: Option<PathBuf>) -> Root {
        let dir = flag
            .or_else(|| std::env::var_os("MTA_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("mta-root"));
        Root { dir }
    }

    /// A root at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root { dir: dir.into() }
    }

    /// The root directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/control`.
    pub fn control(&self) -> PathBuf {
        self.dir.join("control")
    }

    /// `DIR/users/assign`.
    pub fn assign(&self) -> PathBuf {
        self.dir.join("users").join("assign")
    }

    /// `DIR/alias`.
    pub fn alias(&self) -> PathBuf {
        self.dir.join("alias")
    }

    /// `DIR/queue`.
    pub fn queue(&self) -> PathBuf {
        self.dir.join("queue")
    }

    /// `DIR/pickup/trigger`: the FIFO that wakes the queue process (qmail's lock/trigger).
    /// It lives in `DIR/pickup` (mode 1733), not in `DIR/queue` (mode 0700), so every local
    /// user's `mta inject` can reach it; [`crate::inject::pickup::prepare`] makes it, owned
    /// by the queue account, mode 0622.
    pub fn trigger(&self) -> PathBuf {
        self.dir.join("pickup").join("trigger")
    }

    /// True when the root looks initialised (has `control/me`).
    pub fn exists(&self) -> bool {
        self.control().join("me").is_file()
    }
}

/// Writes `contents` to `path` unless the file already exists.
fn write_new(path: &Path, contents: &str) -> io::Result<bool> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut f) => {
            f.write_all(contents.as_bytes())?;
            f.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The machine's host name (uname nodename).
pub fn system_hostname() -> String {
    let uts = rustix::system::uname();
    let name = uts.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// `mta init`: creates the layout, writing only files that do not exist yet. Returns the
/// list of files it created.
///
/// # Errors
/// Any I/O error creating directories or files.
pub fn init(root: &Root, hostname: Option<&str>) -> io::Result<Vec<PathBuf>> {
    let host = hostname.map_or_else(system_hostname, str::to_owned);
    let host = host.trim().to_ascii_lowercase();
    let mut created = Vec::new();
    for d in [
        root.dir().to_path_buf(),
        root.control(),
        root.dir().join("users"),
        root.alias(),
        root.alias().join("Maildir"),
        root.alias().join("Maildir").join("tmp"),
        root.alias().join("Maildir").join("new"),
        root.alias().join("Maildir").join("cur"),
        root.queue(),
    ] {
        fs::create_dir_all(&d)?;
    }
    let hosts = if host == "localhost" {
        "localhost\n".to_owned()
    } else {
        format!("{host}\nlocalhost\n")
    };
    let control = root.control();
    let files: Vec<(PathBuf, String)> = vec![
        (control.join("me"), format!("{host}\n")),
        (control.join("locals"), hosts.clone()),
        (control.join("rcpthosts"), hosts),
        (
            control.join("databytes"),
            format!("{}\n", mta_core::control::DEFAULT_DATABYTES),
        ),
        (
            control.join("listen"),
            "# ADDR:PORT per line; [::1]:2525 for IPv6\n127.0.0.1:2525\n".to_owned(),
        ),
        (
            control.join("relayclients"),
            "# IP or CIDR per line allowed to relay\n127.0.0.0/8\n::1\n".to_owned(),
        ),
        (root.assign(), ".\n".to_owned()),
    ];
    // The addresses RFC 5321 §4.5.1 and RFC 2142 require, for the alias user; no
    // catch-all, so an unknown local recipient is refused at RCPT (no backscatter).
    let mut files = files;
    for name in ALIAS_FILES {
        files.push((root.alias().join(name), "./Maildir/\n".to_owned()));
    }
    for (path, text) in files {
        if write_new(&path, &text)? {
            created.push(path);
        }
    }
    // Run as root, init creates the accounts of design.md's "Processes and accounts" when
    // they are missing and gives the queue, the alias user's home and DIR/pickup (where
    // `mta inject` run by any local user leaves mail, with the trigger) to theirs.
    let privileged = crate::privs::is_root();
    let accounts =
        crate::accounts::resolve(&control, privileged, privileged).map_err(io::Error::other)?;
    crate::tree::prepare(root, &accounts, privileged).map_err(io::Error::other)?;
    // DIR/bin: qmail's helper commands for .qmail programs, as links to this binary.
    created.extend(crate::helpers::install_links(root)?);
    Ok(created)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent_and_keeps_edits() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path().join("r"));
        let first = init(&root, Some("MX.Example.org")).unwrap();
        assert!(first.len() >= 8);
        assert_eq!(
            fs::read_to_string(root.control().join("locals")).unwrap(),
            "mx.example.org\nlocalhost\n"
        );
        fs::write(root.control().join("me"), "edited\n").unwrap();
        let second = init(&root, Some("other")).unwrap();
        assert!(second.is_empty());
        assert_eq!(
            fs::read_to_string(root.control().join("me")).unwrap(),
            "edited\n"
        );
        assert!(root.alias().join("Maildir/new").is_dir());
        for name in ALIAS_FILES {
            assert_eq!(
                fs::read_to_string(root.alias().join(name)).unwrap(),
                "./Maildir/\n"
            );
        }
        assert!(
            !root.alias().join(".qmail-default").exists(),
            "no catch-all: unknown users are refused at RCPT"
        );
        assert!(root.exists());
    }
}
