//! Error types, one per operation family (style.md "Errors and panics").
//!
//! Every maildir and mbox failure is temporary in qmail's terms (qmail-local exits 111,
//! report letter `Z`): the message stays queued and is retried. Each error names the step
//! that failed and exposes the underlying [`io::Error`] through [`Error::source`].

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// The step of a maildir delivery that failed (qmail-reference §2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliverStep {
    /// Opening the maildir's `tmp/` or `new/` directory.
    OpenDir,
    /// Creating the uniquely named file in `tmp/` (`O_CREAT|O_EXCL`).
    CreateTmp,
    /// Reading the message from the caller's reader.
    ReadMessage,
    /// Writing the prefix headers or the message into the `tmp/` file.
    Write,
    /// `fsync` of the `tmp/` file's data.
    SyncFile,
    /// Hard-linking the `tmp/` file into `new/`.
    Link,
    /// Copying the message into another filesystem's `tmp/` (batched fan-out after `EXDEV`).
    Copy,
    /// `fsync` of the `new/` directory, which makes the delivery durable.
    SyncNew,
}

impl DeliverStep {
    /// A short lowercase description of the step, used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenDir => "open maildir directory",
            Self::CreateTmp => "create file in tmp",
            Self::ReadMessage => "read message",
            Self::Write => "write file in tmp",
            Self::SyncFile => "fsync file in tmp",
            Self::Link => "link tmp file into new",
            Self::Copy => "copy message across filesystems",
            Self::SyncNew => "fsync new directory",
        }
    }
}

impl fmt::Display for DeliverStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A maildir delivery failed; the `tmp/` file was removed and nothing was published in `new/`.
///
/// qmail-local treats every maildir error as temporary (exit 111).
#[derive(Debug)]
pub struct DeliverError {
    step: DeliverStep,
    source: io::Error,
}

impl DeliverError {
    pub(crate) fn new(step: DeliverStep, source: io::Error) -> Self {
        Self { step, source }
    }

    /// The step that failed.
    pub fn step(&self) -> DeliverStep {
        self.step
    }

    /// The underlying I/O error (also available through [`Error::source`]).
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }

    /// A copy of this error for another target of a batched fan-out.
    pub(crate) fn duplicate(&self) -> Self {
        Self::new(self.step, copy_io_error(&self.source))
    }
}

impl fmt::Display for DeliverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "maildir delivery failed: {}", self.step)
    }
}

impl Error for DeliverError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// An error from creating, opening or reading a maildir.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaildirError {
    /// A filesystem call failed.
    Io {
        /// What was being done, e.g. `"create directory"`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The directory lacks one of `tmp`, `new`, `cur` (maildir(5)).
    NotMaildir {
        /// The directory that was opened.
        path: PathBuf,
        /// The missing sub-directory.
        missing: &'static str,
    },
    /// A Maildir++ folder name was empty, contained `/`, started with `.` or held `..`.
    InvalidFolderName(String),
    /// A message name was not one this maildir can hold (empty, `.`-prefixed or with `/`).
    InvalidMessageName(String),
}

impl MaildirError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for MaildirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { action, path, .. } => write!(f, "cannot {action} {}", path.display()),
            Self::NotMaildir { path, missing } => {
                write!(
                    f,
                    "{} is not a maildir: no {missing} directory",
                    path.display()
                )
            }
            Self::InvalidFolderName(n) => write!(f, "invalid maildir++ folder name {n:?}"),
            Self::InvalidMessageName(n) => write!(f, "invalid maildir message name {n:?}"),
        }
    }
}

impl Error for MaildirError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The step of an mbox delivery that failed (qmail-reference §2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MboxStep {
    /// Opening (or creating) the mbox file or its directory.
    Open,
    /// Taking the exclusive lock (includes the bounded wait timing out).
    Lock,
    /// Reading the mbox length before appending.
    Stat,
    /// Reading the message from the caller's reader.
    ReadMessage,
    /// Appending to the mbox.
    Write,
    /// `fsync` of the mbox data (or of its directory after creating it).
    Sync,
}

impl fmt::Display for MboxStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open mbox",
            Self::Lock => "lock mbox",
            Self::Stat => "stat mbox",
            Self::ReadMessage => "read message",
            Self::Write => "write mbox",
            Self::Sync => "fsync mbox",
        })
    }
}

/// An mbox delivery failed. Unless [`rolled_back`](Self::rolled_back) is false, the mbox was
/// truncated back to its length before the delivery, so no partial message remains.
#[derive(Debug)]
pub struct MboxError {
    step: MboxStep,
    rolled_back: bool,
    source: io::Error,
}

impl MboxError {
    pub(crate) fn new(step: MboxStep, rolled_back: bool, source: io::Error) -> Self {
        Self {
            step,
            rolled_back,
            source,
        }
    }

    /// The step that failed.
    pub fn step(&self) -> MboxStep {
        self.step
    }

    /// Whether the mbox is known to be back at its original length (true also when nothing
    /// had been written yet). False when the truncation itself failed or the file was not
    /// locked (qmail truncates only a locked file, since another writer may have appended).
    pub fn rolled_back(&self) -> bool {
        self.rolled_back
    }

    /// The underlying I/O error (also available through [`Error::source`]).
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for MboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mbox delivery failed: {}", self.step)?;
        if !self.rolled_back {
            f.write_str(" (mbox not rolled back)")?;
        }
        Ok(())
    }
}

impl Error for MboxError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Clones an `io::Error` (which is not `Clone`) keeping its OS code or kind and message.
pub(crate) fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_error<T: Error + Send + Sync + 'static>() {}

    #[test]
    fn errors_are_send_sync_and_lowercase() {
        assert_error::<DeliverError>();
        assert_error::<MaildirError>();
        assert_error::<MboxError>();
        let e = MboxError::new(MboxStep::Write, false, io::Error::other("x"));
        assert_eq!(
            e.to_string(),
            "mbox delivery failed: write mbox (mbox not rolled back)"
        );
        let e = MaildirError::NotMaildir {
            path: "/m".into(),
            missing: "new",
        };
        assert_eq!(e.to_string(), "/m is not a maildir: no new directory");
        let copy = copy_io_error(&io::Error::from_raw_os_error(28));
        assert_eq!(copy.raw_os_error(), Some(28));
    }
}
