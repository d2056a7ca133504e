//! [`Mbox`]: appending to an mbox file the way qmail-local's `mailfile` did
//! (qmail-reference §2.7), with mboxrd quoting, locking, fsync and rollback.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::durable::{self, Fs, OsFs};
use crate::error::{MboxError, MboxStep};

/// How long [`Mbox::deliver`] waits for the lock by default: qmail-local's 30-second alarm.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// An mbox file to deliver into. Creating the value does no I/O.
///
/// **Locking.** qmail-local locked with `flock` (its `lock_ex`). [`OsFs`] takes `flock`
/// *and* a POSIX `fcntl` write lock on the whole file, so writers that use either (procmail,
/// mutt, Python's `mailbox.mbox`, which uses `lockf`) are excluded; no `.lock` dot-file is
/// made. The wait is bounded: the lock is polled without blocking until the timeout
/// ([`DEFAULT_LOCK_TIMEOUT`], qmail's alarm) runs out, which is a temporary error. As in
/// qmail, a lock *failure* other than contention (e.g. `ENOLCK` on some NFS setups) lets the
/// delivery go ahead unlocked, and then a failed delivery is not truncated back, since
/// another writer may have appended after it.
///
/// Within one process, POSIX locks do not exclude threads and are dropped when any
/// descriptor of the file is closed; the `flock` half is what serialises threads.
#[derive(Debug, Clone)]
pub struct Mbox<F: Fs = OsFs> {
    fs: F,
    path: PathBuf,
    lock_timeout: Duration,
}

impl Mbox {
    /// An mbox at `path` on the real filesystem (no I/O happens here).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::new_in(OsFs::new(), path)
    }
}

impl<F: Fs> Mbox<F> {
    /// An mbox at `path` on the filesystem `fs`.
    pub fn new_in(fs: F, path: impl Into<PathBuf>) -> Self {
        Self {
            fs,
            path: path.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// Sets how long [`deliver`](Self::deliver) waits for the lock.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The mbox file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one message.
    ///
    /// Opens the file `O_RDWR|O_APPEND|O_CREAT` (qmail: `O_WRONLY`; we also read the last two
    /// bytes), mode 0600; locks it (see [`Mbox`]); if it is locked and does not end with a
    /// blank line (a delivery was killed mid-write), completes its last entry with one so the
    /// new `From ` line starts a message; notes its length; writes `from_line` (see
    /// [`mbox_from_line`]), `prefix_headers` as given, then the message with mboxrd quoting (every line matching `^>*From ` gets one more
    /// `>`), a newline if the message's last line lacked one, and a blank line; then
    /// `fsync`s the file (and its directory if the file was just created).
    ///
    /// On `Ok` the message is durable. On any failure the file is truncated back to its
    /// starting length and that truncation is synced.
    ///
    /// # Errors
    /// [`MboxError`] naming the step that failed, with [`MboxError::rolled_back`] saying
    /// whether the mbox is back at its old length. Every error is temporary (qmail: `Z`).
    pub fn deliver(
        &self,
        from_line: &[u8],
        prefix_headers: &[u8],
        message: impl Read,
    ) -> Result<(), MboxError> {
        let fs = &self.fs;
        let open_err = |e| MboxError::new(MboxStep::Open, true, e);
        let (parent, leaf) = split(&self.path).map_err(open_err)?;
        let dir = fs.open_dir(&parent).map_err(open_err)?;
        let (mut file, created) = fs.open_append(&dir, leaf).map_err(open_err)?;
        let locked = self.lock(&file)?;
        let len = fs
            .file_len(&file)
            .map_err(|e| MboxError::new(MboxStep::Stat, true, e))?;
        // Unlocked, a short tail may be another writer's entry in progress: leave it alone.
        let repaired = if locked {
            repair_tail(fs, &mut file, len)
        } else {
            Ok(len)
        };
        let start = repaired.map_err(|e| {
            // The repair is one short write: either it happened or the file is unchanged.
            let unchanged = fs.file_len(&file).is_ok_and(|l| l == len);
            MboxError::new(MboxStep::Write, unchanged, e)
        })?;
        let result = append(fs, &mut file, from_line, prefix_headers, message).and_then(|()| {
            durable::sync_all(fs, &file).map_err(|e| (MboxStep::Sync, e))?;
            if created {
                durable::sync_dir(fs, &dir).map_err(|e| (MboxStep::Sync, e))?;
            }
            Ok(())
        });
        result.map_err(|(step, e)| {
            let rolled_back = locked && durable::truncate_synced(fs, &file, start).is_ok();
            MboxError::new(step, rolled_back, e)
        })
    }

    /// Takes the lock, polling until `lock_timeout`. `Ok(false)`: locking is not supported
    /// here and the delivery goes ahead unlocked, as qmail-local did.
    fn lock(&self, file: &F::File) -> Result<bool, MboxError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match self.fs.try_lock(file) {
                Ok(true) => return Ok(true),
                Ok(false) if started.elapsed() >= self.lock_timeout => {
                    let e = io::Error::new(io::ErrorKind::TimedOut, "mbox lock wait timed out");
                    return Err(MboxError::new(MboxStep::Lock, true, e));
                }
                Ok(false) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(_) => return Ok(false),
            }
        }
    }
}

/// Ends a damaged last entry so ours starts a new one, and returns the length to roll back
/// to.
///
/// A delivery killed mid-write (or a power loss before its fsync) can leave the mbox ending
/// inside a message. A `From ` line appended after a partial line would be glued to it and
/// the new message would vanish into the old one, so the tail is first completed with the
/// newline(s) an mbox entry ends with. Skipped when the file is write-only for us.
fn repair_tail<F: Fs>(fs: &F, file: &mut F::File, len: u64) -> io::Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    let mut tail = [0u8; 2];
    let want = len.min(2) as usize;
    let offset = len - want as u64;
    let Ok(got) = fs.read_at(file, &mut tail[..want], offset) else {
        return Ok(len); // write-only mbox: cannot look, append as qmail did
    };
    let fix: &[u8] = match &tail[..got] {
        [.., b'\n', b'\n'] | [b'\n'] => b"",
        [.., b'\n'] => b"\n",
        _ => b"\n\n",
    };
    if !fix.is_empty() {
        fs.write_all(file, fix)?;
    }
    Ok(len + fix.len() as u64)
}

fn split(path: &Path) -> io::Result<(PathBuf, &str)> {
    let leaf = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "mbox path has no UTF-8 file name",
        )
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, leaf))
}

/// Writes the whole entry through a 64 KiB buffer.
fn append<F: Fs>(
    fs: &F,
    file: &mut F::File,
    from_line: &[u8],
    prefix_headers: &[u8],
    mut message: impl Read,
) -> Result<(), (MboxStep, io::Error)> {
    const FLUSH_AT: usize = 64 * 1024;
    let write = |fs: &F, file: &mut F::File, out: &mut Vec<u8>| {
        fs.write_all(file, out).map_err(|e| (MboxStep::Write, e))?;
        out.clear();
        Ok(())
    };
    let mut out = Vec::with_capacity(FLUSH_AT + 1024);
    out.extend_from_slice(from_line);
    out.extend_from_slice(prefix_headers);
    let mut quoter = FromQuoter::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((MboxStep::ReadMessage, e)),
        };
        quoter.push(&buf[..n], &mut out);
        if out.len() >= FLUSH_AT {
            write(fs, file, &mut out)?;
        }
    }
    quoter.finish(&mut out);
    out.push(b'\n');
    write(fs, file, &mut out)
}

/// Streaming mboxrd quoting: a line matching `^>*From ` gets one more `>`.
///
/// Bytes at the start of a line that could still become `>*From ` are held back until the
/// line decides; everything else passes straight through.
#[derive(Debug)]
pub(crate) struct FromQuoter {
    held: Vec<u8>,
    at_line_start: bool,
    last: Option<u8>,
}

impl Default for FromQuoter {
    fn default() -> Self {
        Self {
            held: Vec::new(),
            at_line_start: true,
            last: None,
        }
    }
}

impl FromQuoter {
    pub(crate) fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if let Some(&b) = input.last() {
            self.last = Some(b);
        }
        while !input.is_empty() {
            if !self.at_line_start {
                let Some(i) = input.iter().position(|&b| b == b'\n') else {
                    out.extend_from_slice(input);
                    return;
                };
                out.extend_from_slice(&input[..=i]);
                input = &input[i + 1..];
                self.at_line_start = true;
                continue;
            }
            let b = input[0];
            input = &input[1..];
            self.held.push(b);
            let rest = self
                .held
                .iter()
                .position(|&c| c != b'>')
                .map(|i| &self.held[i..]);
            match rest {
                None => {} // only `>`s so far
                Some(b"From ") => {
                    out.push(b'>');
                    out.append(&mut self.held);
                    self.at_line_start = false;
                }
                Some(r) if b"From ".starts_with(r) => {}
                Some(_) => {
                    out.append(&mut self.held);
                    self.at_line_start = b == b'\n';
                }
            }
        }
    }

    /// Flushes held bytes and adds the newline a message without a final one lacks.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        if matches!(self.last, Some(b) if b != b'\n') {
            out.push(b'\n');
        }
    }
}

/// qmail's UFLINE: `From <sender> <ctime>\n` (qmail-reference §2.5).
///
/// In the sender, space, tab and LF become `-`; an empty sender (a bounce) becomes
/// `MAILER-DAEMON`. The date is [`ctime_utc`] of `unix_secs`.
///
/// ```
/// let line = mta_maildir::mbox_from_line(b"a b@example.com", 0);
/// assert_eq!(line, b"From a-b@example.com Thu Jan 01 00:00:00 1970\n");
/// ```
pub fn mbox_from_line(sender: &[u8], unix_secs: i64) -> Vec<u8> {
    let mut line = b"From ".to_vec();
    if sender.is_empty() {
        line.extend_from_slice(b"MAILER-DAEMON");
    } else {
        line.extend(sender.iter().map(|&b| {
            if matches!(b, b' ' | b'\t' | b'\n') {
                b'-'
            } else {
                b
            }
        }));
    }
    line.push(b' ');
    line.extend_from_slice(ctime_utc(unix_secs).as_bytes());
    line.push(b'\n');
    line
}

/// `Www Mmm DD HH:MM:SS YYYY` in UTC with the day zero-padded, as qmail's `myctime.c`.
///
/// ```
/// assert_eq!(mta_maildir::ctime_utc(1_795_406_885), "Mon Nov 23 04:08:05 2026");
/// ```
pub fn ctime_utc(unix_secs: i64) -> String {
    mta_core::date::ctime_utc(unix_secs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn quote_in_pieces(input: &[u8], piece: usize) -> Vec<u8> {
        let mut q = FromQuoter::default();
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            q.push(chunk, &mut out);
        }
        q.finish(&mut out);
        out
    }

    #[test]
    fn mboxrd_quoting() {
        let input = b"From a\nFrom\n>From b\n>>From c\nxFrom d\n>Fro\nFrom";
        let want = b">From a\nFrom\n>>From b\n>>>From c\nxFrom d\n>Fro\nFrom\n";
        for piece in 1..=input.len() {
            assert_eq!(quote_in_pieces(input, piece), want, "piece {piece}");
        }
        assert_eq!(quote_in_pieces(b"", 1), b"");
        assert_eq!(quote_in_pieces(b"\n\nFrom x", 3), b"\n\n>From x\n");
    }

    #[test]
    fn ctime_known_dates() {
        assert_eq!(ctime_utc(0), "Thu Jan 01 00:00:00 1970");
        assert_eq!(ctime_utc(951_782_400), "Tue Feb 29 00:00:00 2000");
        assert_eq!(ctime_utc(-1), "Wed Dec 31 23:59:59 1969");
        assert_eq!(ctime_utc(4_107_542_400), "Mon Mar 01 00:00:00 2100");
    }

    #[test]
    fn from_line_sender_rules() {
        assert_eq!(
            mbox_from_line(b"", 0),
            b"From MAILER-DAEMON Thu Jan 01 00:00:00 1970\n"
        );
        assert_eq!(mbox_from_line(b"a\tb\nc", 0)[..10], *b"From a-b-c");
    }
}
