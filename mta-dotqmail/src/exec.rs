//! The side effects of a delivery, behind two small traits so every decision above them is
//! a pure function tested without a filesystem.
//!
//! [`FileLookup`] is what the `.qmail` search needs (stat a candidate, check that a file
//! exists, read one); [`Executor`] adds the three deliveries (maildir, mbox, program).
//! [`crate::SystemExecutor`] is the real implementation.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The type of a file, as `fstat` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file: the only kind a `.qmail` candidate may be.
    Regular,
    /// A directory.
    Directory,
    /// Anything else (FIFO, socket, device).
    Other,
}

/// What qmail-local looks at after opening a `.qmail` file or the home directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStatus {
    /// File type.
    pub kind: FileKind,
    /// Permission bits including set-id and sticky (`st_mode & 07777`).
    pub mode: u32,
}

impl FileStatus {
    /// A regular file with `mode`.
    pub fn regular(mode: u32) -> Self {
        FileStatus {
            kind: FileKind::Regular,
            mode,
        }
    }

    /// A directory with `mode`.
    pub fn directory(mode: u32) -> Self {
        FileStatus {
            kind: FileKind::Directory,
            mode,
        }
    }
}

/// Filesystem lookups of the `.qmail` search (qmail-local's `qmeexists`, `qmeox`,
/// `slurpclose`).
pub trait FileLookup {
    /// Opens `path` for reading and stats it. `Ok(None)` when it does not exist (including
    /// a non-directory or looping path component, or a name too long); `Err` for every
    /// other error, which qmail treats as temporary (including permission denied).
    ///
    /// # Errors
    /// Any error other than "does not exist".
    fn probe(&mut self, path: &Path) -> io::Result<Option<FileStatus>>;

    /// `stat(path)` succeeds, whatever the file type (the `-owner` check).
    ///
    /// # Errors
    /// A transient error (qmail defers); "does not exist" and other permanent errors are
    /// `Ok(false)`.
    fn exists(&mut self, path: &Path) -> io::Result<bool>;

    /// Reads the whole file.
    ///
    /// # Errors
    /// The read error.
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>>;
}

/// The message being delivered: its bytes, or the stored file (qmail-local's seekable
/// stdin). Every consumer reads it from offset 0.
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    /// The message in memory.
    Bytes(&'a [u8]),
    /// The message file; a program gets a shared descriptor on it, as in qmail.
    File(&'a File),
}

impl<'a> Message<'a> {
    /// A reader positioned at offset 0.
    ///
    /// # Errors
    /// The seek error for a file (qmail: `Unable to rewind message.`).
    pub fn reader(self) -> io::Result<MessageReader<'a>> {
        match self {
            Message::Bytes(b) => Ok(MessageReader::Bytes(b)),
            Message::File(mut f) => {
                f.seek(SeekFrom::Start(0))?;
                Ok(MessageReader::File(f))
            }
        }
    }
}

/// A reader over a [`Message`], from offset 0.
#[derive(Debug)]
pub enum MessageReader<'a> {
    /// Remaining bytes.
    Bytes(&'a [u8]),
    /// The shared file.
    File(&'a File),
}

impl Read for MessageReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MessageReader::Bytes(b) => b.read(buf),
            MessageReader::File(f) => f.read(buf),
        }
    }
}

/// Why a maildir or mbox delivery failed. Every case is temporary in qmail.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileDeliveryError {
    /// The maildir does not exist or is not a maildir (qmail: `Unable to chdir to
    /// maildir. (#4.2.1)`).
    NoMaildir(io::Error),
    /// The mbox could not be opened (`Unable to open X: E. (#4.2.1)`).
    Open(io::Error),
    /// The mbox stayed locked for 30 seconds.
    LockTimeout,
    /// Reading the message failed (`Unable to read message. (#4.3.0)`).
    ReadMessage(io::Error),
    /// Writing, syncing or linking failed (`Unable to write X: E. (#4.3.0)`, or qmail's
    /// generic `Temporary error on maildir delivery. (#4.3.0)`).
    Write(io::Error),
}

impl fmt::Display for FileDeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileDeliveryError::NoMaildir(e) => write!(f, "not a maildir: {e}"),
            FileDeliveryError::Open(e) => write!(f, "unable to open: {e}"),
            FileDeliveryError::LockTimeout => f.write_str("locked for 30 seconds"),
            FileDeliveryError::ReadMessage(e) => write!(f, "unable to read message: {e}"),
            FileDeliveryError::Write(e) => write!(f, "unable to write: {e}"),
        }
    }
}

impl std::error::Error for FileDeliveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileDeliveryError::NoMaildir(e)
            | FileDeliveryError::Open(e)
            | FileDeliveryError::ReadMessage(e)
            | FileDeliveryError::Write(e) => Some(e),
            FileDeliveryError::LockTimeout => None,
        }
    }
}

/// How a program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (qmail: `Aack, child crashed. (#4.3.0)`).
    Signaled(i32),
    /// Ran past the executor's time limit and was killed with its process group
    /// (`timeoutlocal`); the delivery is deferred.
    TimedOut,
}

/// A finished program: its status and what it wrote on stdout and stderr (interleaved,
/// as they share qmail's report pipe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramRun {
    /// Exit status.
    pub status: ProgramStatus,
    /// Output, at most the report cap (the rest is drained and dropped).
    pub output: Vec<u8>,
}

/// The environment a program line gets on top of the base environment (qmail-command.8):
/// name and raw value, in qmail-local's order.
pub type ProgramEnv = Vec<(&'static str, Vec<u8>)>;

/// The deliveries of qmail-local: maildir, mbox and program.
pub trait Executor: FileLookup {
    /// Writes `prefix` (Return-Path and Delivered-To) then the message into maildir `dir`
    /// (tmp/, fsync, link into new/).
    ///
    /// # Errors
    /// [`FileDeliveryError`]; every case defers the delivery.
    fn maildir(
        &mut self,
        dir: &Path,
        prefix: &[u8],
        message: Message<'_>,
    ) -> Result<(), FileDeliveryError>;

    /// Appends `from_line`, `prefix` and the `>From `-quoted message to mbox `path`, with
    /// the trailing blank line, under a lock, synced; truncated back on error.
    ///
    /// # Errors
    /// [`FileDeliveryError`]; every case defers the delivery.
    fn mbox(
        &mut self,
        path: &Path,
        from_line: &[u8],
        prefix: &[u8],
        message: Message<'_>,
    ) -> Result<(), FileDeliveryError>;

    /// Runs `/bin/sh -c command` in `home` with `env` added, the message on stdin from
    /// offset 0 (without the Return-Path and Delivered-To lines), capturing stdout and
    /// stderr.
    ///
    /// # Errors
    /// The program could not be started (qmail: `Unable to run /bin/sh`).
    fn program(
        &mut self,
        command: &[u8],
        env: &ProgramEnv,
        home: &Path,
        message: Message<'_>,
    ) -> io::Result<ProgramRun>;
}
