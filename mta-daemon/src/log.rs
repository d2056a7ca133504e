//! The log: one line per event on stderr, in qmail-send's vocabulary (qmail-log.5).
//!
//! Each line starts with a UTC timestamp (`2026-11-29 04:13:48.123456`), then the event
//! text: `new msg 1a2b`, `info msg 1a2b: bytes 2048 from <a@b> qp 4711 uid 1000` (see
//! [`crate::origin`]),
//! `starting delivery 7: msg 1a2b to local joe@example.org`, `delivery 7: success: did_1+0+0/`,
//! `end msg 1a2b`, `bounce msg 1a2b qp 0`, `status: local 1/10 remote 0/20`.
//!
//! Addresses and report texts go through [`safe`], qmail's "logsafe": a newline becomes
//! `/`, and bytes below 33 or above 126 and `%` become `_`, so no attacker byte can split or
//! forge a log line.
//!
//! A busy process may [`delay_writes`]: its lines then go out together, at most
//! [`WRITE_DELAY`] after the first of them, or at once when it calls [`flush`] (the queue
//! process does whenever its scheduler runs out of work). Every write to a log file changes
//! the file's times, and its growth allocates blocks: the queue's commits sync the whole file
//! system (`syncfs`), so a log on the queue's file system written between two syncs cost
//! each sync the log's inode, bitmap and group descriptor blocks, about one write request
//! per message on a disk whose writes are rationed.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

thread_local! {
    /// Lines held back by a thread in a [`batch`].
    static HELD: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The second this thread last stamped and its text up to the fraction
    /// (`2026-11-29 04:13:48.`): a busy thread logs thousands of lines a second, and the
    /// calendar arithmetic and formatting need doing once per second, not per line.
    static STAMP: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    /// An emptied batch buffer kept for this thread's next [`batch`].
    static SPARE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Appends [`timestamp`]`(secs, micros)` to `buf`.
fn push_timestamp(buf: &mut String, secs: u64, micros: u32) {
    STAMP.with(|stamp| {
        let mut stamp = stamp.borrow_mut();
        if stamp.0 != secs {
            let mut text = timestamp(secs, 0);
            text.truncate(text.len() - 6);
            *stamp = (secs, text);
        }
        buf.push_str(&stamp.1);
    });
    let mut left = micros.min(999_999);
    let mut digits = ['0'; 6];
    for d in digits.iter_mut().rev() {
        *d = char::from(b'0' + (left % 10) as u8);
        left /= 10;
    }
    buf.extend(digits);
}

/// Writes one log line (timestamp + `text` + newline) to stderr in a single write, or,
/// inside a [`batch`] on this thread, adds it to the batch.
pub fn line(text: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let write = |buf: &mut String| {
        push_timestamp(buf, now.as_secs(), now.subsec_micros());
        buf.push(' ');
        buf.push_str(text);
        buf.push('\n');
    };
    let held = HELD.with(|h| {
        if let Some(held) = h.borrow_mut().as_mut() {
            write(held);
            true
        } else {
            false
        }
    });
    if !held {
        let mut buf = String::with_capacity(28 + text.len());
        write(&mut buf);
        emit(&buf);
    }
}

fn emit(text: &str) {
    if let Some(d) = DELAYED.get().filter(|_| DELAYING.load(Ordering::Acquire)) {
        let mut pending = d.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let first = pending.is_empty();
        pending.push_str(text);
        let full = pending.len() >= DELAYED_MAX;
        drop(pending);
        if first {
            d.arrived.notify_one();
        }
        if full {
            flush();
        }
        return;
    }
    write_stderr(text);
}

fn write_stderr(text: &str) {
    let stderr = std::io::stderr();
    let mut lock = stderr.lock();
    // A log that cannot be written must not stop mail delivery: the error is dropped.
    let _ = lock.write_all(text.as_bytes());
}

/// How long a line may wait in a process that [`delay_writes`].
pub const WRITE_DELAY: Duration = Duration::from_millis(100);

/// Lines held for the writer thread beyond this many bytes are written at once.
const DELAYED_MAX: usize = 256 << 10;

/// The lines of a process that [`delay_writes`], waiting for its writer thread.
struct Delayed {
    pending: Mutex<String>,
    /// Signalled when a line arrives in an empty `pending`.
    arrived: Condvar,
    /// Held while a batch is taken and written, so two flushes cannot swap their batches.
    writing: Mutex<()>,
}

static DELAYED: OnceLock<Delayed> = OnceLock::new();

/// Set once the writer thread of [`DELAYED`] runs: only then are lines held.
static DELAYING: AtomicBool = AtomicBool::new(false);

/// From now on this process's lines are written by a thread of their own, together, at
/// most [`WRITE_DELAY`] after the first of them (at once when [`flush`] is called, and when
/// more than 256 KiB wait). A panic writes them before its message. A process killed
/// outright loses the lines of its last [`WRITE_DELAY`]; the queue itself never depends on
/// the log. Calling it again changes nothing.
pub fn delay_writes() {
    let mut started = false;
    DELAYED.get_or_init(|| {
        started = true;
        Delayed {
            pending: Mutex::new(String::new()),
            arrived: Condvar::new(),
            writing: Mutex::new(()),
        }
    });
    if !started {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush();
        previous(info);
    }));
    let spawned = std::thread::Builder::new().name("log".into()).spawn(|| {
        let Some(d) = DELAYED.get() else { return };
        DELAYING.store(true, Ordering::Release);
        loop {
            let mut pending = d.pending.lock().unwrap_or_else(PoisonError::into_inner);
            while pending.is_empty() {
                pending = d
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            drop(pending);
            std::thread::sleep(WRITE_DELAY);
            flush();
        }
    });
    if spawned.is_err() {
        // No writer thread: every line is written at once, as before.
        line("warning: log writes not delayed: cannot start the log thread");
    }
}

/// Writes the lines a process that [`delay_writes`] holds, now (nothing otherwise).
pub fn flush() {
    let Some(d) = DELAYED.get() else { return };
    let _writing = d.writing.lock().unwrap_or_else(PoisonError::into_inner);
    let text = std::mem::take(&mut *d.pending.lock().unwrap_or_else(PoisonError::into_inner));
    if !text.is_empty() {
        write_stderr(&text);
    }
}

/// Runs `f` with this thread's log lines held back and written together at the end, in
/// order, in one write: the scheduler logs two lines per delivery, and a list of 8,192
/// recipients should not cost 16,384 writes.
pub fn batch<T>(f: impl FnOnce() -> T) -> T {
    let spare = SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()));
    HELD.with(|h| *h.borrow_mut() = Some(spare));
    let out = f();
    if let Some(text) = HELD.with(|h| h.borrow_mut().take()) {
        if !text.is_empty() {
            emit(&text);
        }
        keep_spare(text);
    }
    out
}

/// The most a thread keeps of an emptied batch buffer for its next batch.
const SPARE_MAX: usize = 4 << 20;

/// Keeps `text`'s allocation for the next [`batch`] on this thread: a batch of thousands
/// of lines grows a buffer of a megabyte, and a new one each time costs a page fault per
/// 4 KB (the allocator returns big blocks to the kernel when they are freed).
fn keep_spare(mut text: String) {
    if text.capacity() <= SPARE_MAX {
        text.clear();
        SPARE.with(|s| *s.borrow_mut() = text);
    }
}

/// Writes the lines this thread holds in a [`batch`] now, and keeps batching: before
/// handing work to a thread whose lines must come after them.
pub fn flush_held() {
    HELD.with(|h| {
        if let Some(held) = h.borrow_mut().as_mut()
            && !held.is_empty()
        {
            emit(held);
            held.clear();
        }
    });
}

/// The current time in whole seconds since the epoch (0 if the clock is before it), as
/// the date formatters of mta-core take it.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// qmail's logsafe: `\n` → `/`; bytes < 33, > 126 and `%` → `_`.
pub fn safe(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'\n' => '/',
            b'%' => '_',
            33..=126 => b as char,
            _ => '_',
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS.uuuuuu` in UTC.
pub fn timestamp(secs: u64, micros: u32) -> String {
    mta_core::date::log_stamp(i64::try_from(secs).unwrap_or(i64::MAX), micros)
}

/// Logs the messages [`Queue::open`](mta_queue::Queue::open) removed because a power loss
/// tore them mid-commit (never acknowledged: their `250` waited for the sync that did not
/// finish), one `warning:` line each. Every process that opens the queue for writing calls
/// it, since whichever opens first after a restart does the check.
pub fn torn_messages(queue: &mta_queue::Queue) {
    for (id, why) in queue.torn_at_open() {
        line(&format!(
            "warning: removed msg {id} at queue open: {why}; a power loss cut its commit \
             short, before it was acknowledged"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logsafe_like_qmail() {
        assert_eq!(safe(b"did 1+0+0\n"), "did_1+0+0/");
        assert_eq!(safe(b"a%b\r\x00\xff"), "a_b___");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0, 0), "1970-01-01 00:00:00.000000");
        assert_eq!(timestamp(1_795_925_628, 5), "2026-11-29 04:13:48.000005");
        assert_eq!(timestamp(951_782_400, 0), "2000-02-29 00:00:00.000000");
    }

    /// The per-thread cached second gives the same text as [`timestamp`], across a change
    /// of second and day.
    #[test]
    fn cached_stamps_match_the_full_formatting() {
        for (secs, micros) in [
            (1_795_925_628, 5),
            (1_795_925_628, 999_999),
            (1_795_925_629, 0),
            (1_795_939_199, 123_456),
            (1_795_939_200, 7),
            (0, 42),
        ] {
            let mut buf = String::from("x");
            push_timestamp(&mut buf, secs, micros);
            assert_eq!(buf, format!("x{}", timestamp(secs, micros)));
        }
    }
}
