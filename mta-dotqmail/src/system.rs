//! The real [`Executor`]: the filesystem for lookups, mta-maildir for maildir and mbox
//! lines, and `/bin/sh -c` through `std::process` for program lines.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rustix::io::Errno;

use crate::exec::{
    Executor, FileDeliveryError, FileKind, FileLookup, FileStatus, Message, ProgramEnv, ProgramRun,
    ProgramStatus,
};

/// The environment programs start from, before the qmail variables are added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BaseEnvironment {
    /// The current process environment (qmail: whatever qmail-start was given).
    #[default]
    Inherit,
    /// Exactly these variables. Every value a delivery adds is attacker-controlled
    /// (§11, Shellshock): a fixed base keeps at least the rest under control.
    Fixed(Vec<(OsString, OsString)>),
}

/// Filesystem, mta-maildir and `std::process` behind the [`Executor`] trait.
///
/// ```no_run
/// use mta_dotqmail::{Account, DeliveryOptions, DeliveryRequest, LocalUser, Message, SystemExecutor, deliver};
/// let user = LocalUser::new(Account::new("joe", 1001, 100, "/home/joe"), b"", "");
/// let request = DeliveryRequest {
///     user: &user, local: b"joe", domain: b"example.com", sender: b"a@example.org",
///     default_delivery: b"./Maildir/\n", now: 1_795_925_285,
/// };
/// let outcome = deliver(&mut SystemExecutor::new(), &request, &DeliveryOptions::default(),
///                       Message::Bytes(b"Subject: hi\n\nhello\n"));
/// println!("{}", outcome.report_text());
/// ```
///
/// With [`MaildirCommit::Batched`] maildir lines are staged in an
/// [`mta_maildir::DeliveryBatch`] and made durable together by
/// [`commit_maildirs`](SystemExecutor::commit_maildirs).
#[derive(Debug)]
pub struct SystemExecutor {
    base_env: BaseEnvironment,
    output_limit: usize,
    program_timeout: Option<Duration>,
    commit: MaildirCommit,
    /// Maildir deliveries staged under [`MaildirCommit::Batched`], and for each the index
    /// of the delivery (as given to [`SystemExecutor::begin_delivery`]) it belongs to.
    staged: mta_maildir::DeliveryBatch,
    owners: Vec<usize>,
    current: usize,
    /// Lookup answers kept for the executor's life, when asked for
    /// ([`SystemExecutor::with_lookup_memo`]).
    memo: Option<Box<Memo>>,
}

/// What [`SystemExecutor::with_lookup_memo`] keeps: every successful answer by path (its
/// bytes: hashing a `Path` walks its components), and directory listings that rule out
/// `.qmail` names without a system call.
#[derive(Debug, Default)]
struct Memo {
    probes: HashMap<Vec<u8>, Option<FileStatus>>,
    exists: HashMap<Vec<u8>, bool>,
    reads: HashMap<Vec<u8>, Vec<u8>>,
    absent: crate::AbsentNames,
}

/// A path's bytes, the memo's key.
fn key(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// When a [`SystemExecutor`]'s maildir lines become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaildirCommit {
    /// Each maildir line is durable before [`Executor::maildir`] returns (qmail-local's
    /// order: write, fsync, link into `new/`, fsync `new/`): two fsyncs per line.
    #[default]
    Each,
    /// Maildir lines are written into `tmp/` and staged; the caller runs several deliveries
    /// and then calls [`SystemExecutor::commit_maildirs`], which makes them all durable
    /// with two `syncfs` calls ([`mta_maildir::DeliveryBatch`]) and says which deliveries
    /// failed. Until that call no staged message is in `new/`, so the caller must not
    /// report a delivery with a maildir line before it.
    Batched,
}

/// A clone has the same settings and nothing staged (staged files belong to the original).
impl Clone for SystemExecutor {
    fn clone(&self) -> Self {
        SystemExecutor {
            base_env: self.base_env.clone(),
            output_limit: self.output_limit,
            program_timeout: self.program_timeout,
            commit: self.commit,
            staged: mta_maildir::DeliveryBatch::new(),
            owners: Vec::new(),
            current: 0,
            memo: self.memo.as_ref().map(|_| Box::default()),
        }
    }
}

impl Default for SystemExecutor {
    fn default() -> Self {
        SystemExecutor::new()
    }
}

impl SystemExecutor {
    /// Inherits the process environment for programs; keeps up to 3000 bytes of output;
    /// lets programs run as long as they like (qmail-local had no limit).
    pub fn new() -> Self {
        SystemExecutor {
            base_env: BaseEnvironment::Inherit,
            output_limit: 3000,
            program_timeout: None,
            commit: MaildirCommit::Each,
            staged: mta_maildir::DeliveryBatch::new(),
            owners: Vec::new(),
            current: 0,
            memo: None,
        }
    }

    /// Remembers lookups for the executor's life: each path is opened (or stat'ed, or
    /// read) once, and a directory in which several `.qmail` names were not found is listed
    /// once, after which names it does not hold are ruled out without a system call
    /// ([`crate::AbsentNames`]). For a batch of deliveries run back to back with one
    /// executor (the daemon's worker keeps one per request frame): a list's thousands of
    /// `user-N` addresses then cost one search of the home directory, not four or five
    /// file-system lookups each. The price is that the batch sees the files as they were
    /// when it first looked (qmail-local looked again for every delivery): a `.qmail`
    /// edited during the batch applies from the next one. Clones start with an empty memo.
    #[must_use]
    pub fn with_lookup_memo(mut self) -> Self {
        self.memo = Some(Box::default());
        self
    }

    /// Sets when maildir lines become durable (default [`MaildirCommit::Each`]).
    #[must_use]
    pub fn with_maildir_commit(mut self, commit: MaildirCommit) -> Self {
        self.commit = commit;
        self
    }

    /// Under [`MaildirCommit::Batched`]: maildir lines run from now on belong to delivery
    /// number `index` (the caller's numbering, reported back by
    /// [`commit_maildirs`](SystemExecutor::commit_maildirs)).
    pub fn begin_delivery(&mut self, index: usize) {
        self.current = index;
    }

    /// Under [`MaildirCommit::Batched`]: makes every staged maildir line durable in its
    /// `new/` (one `syncfs` for the data, links, one `syncfs` for the names; see
    /// [`mta_maildir::DeliveryBatch::commit`]) and returns the deliveries (numbers given to
    /// [`begin_delivery`](SystemExecutor::begin_delivery)) of which a line failed, each
    /// with its error, so the caller defers them (qmail: `Temporary error on maildir
    /// delivery. (#4.3.0)`). Returns nothing when nothing was staged.
    pub fn commit_maildirs(&mut self) -> Vec<(usize, FileDeliveryError)> {
        self.commit_maildirs_with(&mut |_| None)
    }

    /// [`commit_maildirs`](SystemExecutor::commit_maildirs), offering each of its two
    /// file-system syncs to `sync` first (see [`mta_maildir::DeliveryBatch::commit_with`]):
    /// a caller that syncs that file system anyway shares one flush with the batch.
    pub fn commit_maildirs_with(
        &mut self,
        sync: &mut dyn FnMut(u64) -> Option<std::io::Result<()>>,
    ) -> Vec<(usize, FileDeliveryError)> {
        let batch = std::mem::take(&mut self.staged);
        let owners = std::mem::take(&mut self.owners);
        let mut failed: Vec<(usize, FileDeliveryError)> = Vec::new();
        for (owner, result) in owners.into_iter().zip(batch.commit_with(sync)) {
            if let Err(e) = result
                && !failed.iter().any(|(o, _)| *o == owner)
            {
                failed.push((owner, FileDeliveryError::Write(copy_error(e.io_error()))));
            }
        }
        failed
    }

    /// Limits how long a program line may run (the daemon's `timeoutlocal`). Each program
    /// starts in a process group of its own; past the limit the whole group gets `SIGKILL`
    /// and the run ends as [`ProgramStatus::TimedOut`], which defers the delivery. (A
    /// descendant that leaves the group with `setsid` and keeps the output pipe open still
    /// holds the delivery until it exits.)
    #[must_use]
    pub fn with_program_timeout(mut self, limit: Option<Duration>) -> Self {
        self.program_timeout = limit;
        self
    }

    /// Sets the base environment of program lines.
    #[must_use]
    pub fn with_base_env(mut self, base: BaseEnvironment) -> Self {
        self.base_env = base;
        self
    }

    fn command(&self, command: &[u8], env: &ProgramEnv, home: &Path) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(OsStr::from_bytes(command))
            .current_dir(home)
            // A group of its own, so a timeout can kill everything the program started.
            .process_group(0);
        if let BaseEnvironment::Fixed(vars) = &self.base_env {
            cmd.env_clear();
            cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        }
        for (name, value) in env {
            cmd.env(name, OsStr::from_bytes(value));
        }
        cmd
    }
}

impl FileLookup for SystemExecutor {
    fn probe(&mut self, path: &Path) -> io::Result<Option<FileStatus>> {
        match self.memo.as_deref_mut() {
            Some(memo) => remembered(&mut memo.probes, &mut memo.absent, path, None, probe),
            None => probe(path),
        }
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        match self.memo.as_deref_mut() {
            Some(memo) => remembered(&mut memo.exists, &mut memo.absent, path, false, exists),
            None => exists(path),
        }
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        let Some(memo) = self.memo.as_deref_mut() else {
            return std::fs::read(path);
        };
        if let Some(text) = memo.reads.get(key(path)) {
            return Ok(text.clone());
        }
        let text = std::fs::read(path)?;
        memo.reads.insert(key(path).to_vec(), text.clone());
        Ok(text)
    }
}

/// A memoized lookup: the answer remembered for `path`, else `absent` (the value for "not
/// there") when a directory listing rules the name out, else `ask`'s answer, remembered,
/// and a miss noted for the listing when it equals `absent`.
fn remembered<T: Copy + PartialEq>(
    answers: &mut HashMap<Vec<u8>, T>,
    listings: &mut crate::AbsentNames,
    path: &Path,
    absent: T,
    ask: fn(&Path) -> io::Result<T>,
) -> io::Result<T> {
    if let Some(answer) = answers.get(key(path)) {
        return Ok(*answer);
    }
    if listings.rules_out(path) {
        return Ok(absent);
    }
    let answer = ask(path)?;
    if answer == absent {
        listings.missed(path);
    }
    answers.insert(key(path).to_vec(), answer);
    Ok(answer)
}

/// qmail-local's `open_read` and `fstat` of a candidate.
fn probe(path: &Path) -> io::Result<Option<FileStatus>> {
    // open_read: O_RDONLY | O_NDELAY, so a FIFO does not block the search.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        FileKind::Regular
    } else if ft.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Other
    };
    Ok(Some(FileStatus {
        kind,
        mode: meta.mode() & 0o7777,
    }))
}

/// qmail-local's `stat` in `qmeox`.
fn exists(path: &Path) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if is_transient(&e) => Err(e),
        Err(_) => Ok(false),
    }
}

impl Executor for SystemExecutor {
    fn maildir(
        &mut self,
        dir: &Path,
        prefix: &[u8],
        message: Message<'_>,
    ) -> Result<(), FileDeliveryError> {
        // Taken on trust: deliver itself finds a missing tmp/ or new/ (qmail-local too
        // learns it only when it gets there), saving four directory opens per delivery.
        let maildir = mta_maildir::Maildir::at(dir);
        let reader = message.reader().map_err(FileDeliveryError::ReadMessage)?;
        let delivered = match self.commit {
            MaildirCommit::Each => maildir.deliver(prefix, reader).map(drop),
            MaildirCommit::Batched => self
                .staged
                .stage(&maildir, prefix, reader)
                .map(|_| self.owners.push(self.current)),
        };
        delivered.map_err(|e| {
            let source = copy_error(e.io_error());
            match e.step() {
                mta_maildir::DeliverStep::ReadMessage => FileDeliveryError::ReadMessage(source),
                mta_maildir::DeliverStep::OpenDir if !is_transient(&source) => {
                    FileDeliveryError::NoMaildir(source)
                }
                _ => FileDeliveryError::Write(source),
            }
        })
    }

    fn mbox(
        &mut self,
        path: &Path,
        from_line: &[u8],
        prefix: &[u8],
        message: Message<'_>,
    ) -> Result<(), FileDeliveryError> {
        let reader = message.reader().map_err(FileDeliveryError::ReadMessage)?;
        mta_maildir::Mbox::new(path)
            .deliver(from_line, prefix, reader)
            .map_err(|e| {
                let source = copy_error(e.io_error());
                match e.step() {
                    mta_maildir::MboxStep::Open => FileDeliveryError::Open(source),
                    mta_maildir::MboxStep::Lock if source.kind() == io::ErrorKind::TimedOut => {
                        FileDeliveryError::LockTimeout
                    }
                    mta_maildir::MboxStep::ReadMessage => FileDeliveryError::ReadMessage(source),
                    _ => FileDeliveryError::Write(source),
                }
            })
    }

    fn program(
        &mut self,
        command: &[u8],
        env: &ProgramEnv,
        home: &Path,
        message: Message<'_>,
    ) -> io::Result<ProgramRun> {
        let (mut out_read, out_write) = io::pipe()?;
        let mut child = {
            let mut cmd = self.command(command, env, home);
            cmd.stdout(out_write.try_clone()?).stderr(out_write);
            match message {
                Message::File(f) => {
                    // The descriptor is shared with the program, as qmail-local's stdin.
                    message.reader()?;
                    cmd.stdin(Stdio::from(f.try_clone()?));
                }
                Message::Bytes(_) => {
                    cmd.stdin(Stdio::piped());
                }
            }
            cmd.spawn()?
            // `cmd` (holding our copies of the pipe's write end) is dropped here, so the
            // read below ends when the program and its children close theirs.
        };
        let stdin = child.stdin.take();
        let limit = self.output_limit;
        let group = rustix::process::Pid::from_child(&child);
        let timed_out = AtomicBool::new(false);
        let (finished, watch) = mpsc::channel::<()>();
        let (output, status) = std::thread::scope(|scope| {
            if let Some(allowed) = self.program_timeout {
                let timed_out = &timed_out;
                scope.spawn(move || {
                    if watch.recv_timeout(allowed) == Err(mpsc::RecvTimeoutError::Timeout) {
                        timed_out.store(true, Ordering::SeqCst);
                        // The group may be gone already; nothing else to do then.
                        let _ = rustix::process::kill_process_group(
                            group,
                            rustix::process::Signal::KILL,
                        );
                    }
                });
            }
            if let (Some(mut stdin), Message::Bytes(bytes)) = (stdin, message) {
                scope.spawn(move || {
                    // A program may exit without reading its stdin; the broken pipe that
                    // follows is its business, not a delivery error.
                    let _ = stdin.write_all(bytes);
                });
            }
            let output = read_capped(&mut out_read, limit);
            let status = child.wait();
            // Wakes the watchdog; it is gone already when it fired.
            let _ = finished.send(());
            (output, status)
        });
        let (status, output) = (status?, output?);
        let status = match (status.code(), status.signal()) {
            _ if timed_out.load(Ordering::SeqCst) => ProgramStatus::TimedOut,
            (Some(code), _) => ProgramStatus::Exited(code),
            (None, Some(sig)) => ProgramStatus::Signaled(sig),
            (None, None) => ProgramStatus::Signaled(0),
        };
        Ok(ProgramRun { status, output })
    }
}

/// Reads to EOF, keeping at most `limit + 1` bytes (one more than the cap so the
/// interpreter's report still sees that it overflowed).
fn read_capped(reader: &mut impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(kept),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let room = (limit + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// An owned copy of a borrowed error: same OS code, or same kind and text.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// "Does not exist" for qmail's `open_read` callers: ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG.
fn is_absent(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG)
    )
}

/// qmail's `error_temp`: errors that may go away by themselves.
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(
            Errno::INTR
                | Errno::NOMEM
                | Errno::TXTBSY
                | Errno::IO
                | Errno::TIMEDOUT
                | Errno::AGAIN
                | Errno::DEADLK
                | Errno::NFILE
                | Errno::MFILE
                | Errno::NOSPC
                | Errno::DQUOT
                | Errno::STALE
                | Errno::NOLCK
                | Errno::BUSY
                | Errno::HOSTUNREACH
                | Errno::NETUNREACH
                | Errno::NETDOWN
                | Errno::CONNREFUSED
                | Errno::CONNRESET
        )
    )
}

/// An error as qmail's `error_str` would put it in a report: lowercase, without Rust's
/// ` (os error N)` suffix.
pub(crate) fn error_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_text_strips_os_suffix() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(error_text(&e), "no such file or directory");
        assert!(is_absent(&e));
        assert!(!is_transient(&e));
        assert!(is_transient(&io::Error::from_raw_os_error(
            Errno::IO.raw_os_error()
        )));
    }
}
