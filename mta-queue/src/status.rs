//! Per-recipient delivery status and the summary of one queued message.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use mta_core::Envelope;
use mta_core::date::log_stamp;

use crate::MessageId;

/// Where one recipient of a queued message stands (qmail kept only `T` = pending and `D` =
/// done in its `local`/`remote` files, and the retry time in their mtime; we keep one status
/// per recipient, made durable by [`Queue::mark`](crate::Queue::mark)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not tried yet (every recipient starts here).
    Pending,
    /// Delivered: qmail's `K` result. Final.
    Delivered,
    /// Permanently failed (qmail's `D` result), with the reason to put in the bounce. The text
    /// is opaque bytes (a remote server's reply may hold anything). Final.
    Failed(Vec<u8>),
    /// Temporarily failed (qmail's `Z` result): try again at `next_attempt`.
    Deferred {
        /// How many delivery attempts have been made so far.
        attempts: u32,
        /// When to try next (see [`crate::retry`] for qmail's schedule).
        next_attempt: SystemTime,
        /// The last attempt's report (opaque bytes, e.g. the remote's reply), for queue
        /// listings; empty when none was recorded.
        reason: Vec<u8>,
    },
}

/// One line for queue listings and logs, in qmail-qread's spirit: `pending`, `delivered`,
/// `failed: REASON`, or `deferred after N attempts, next 2026-11-29 04:08:05: REASON`
/// (UTC). The reason's bytes outside printable ASCII are shown as `\xNN`, so an attacker's
/// reply text cannot split a log line.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mta_queue::Status;
/// assert_eq!(Status::Pending.to_string(), "pending");
/// assert_eq!(Status::Failed(b"550 no such user".to_vec()).to_string(), "failed: 550 no such user");
/// let next_attempt = UNIX_EPOCH + Duration::from_secs(1_795_925_285);
/// let s = Status::Deferred { attempts: 2, next_attempt, reason: b"451 try\r\nlater".to_vec() };
/// assert_eq!(s.to_string(), "deferred after 2 attempts, next 2026-11-29 04:08:05: 451 try\\x0d\\x0alater");
/// ```
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Pending => f.write_str("pending"),
            Status::Delivered => f.write_str("delivered"),
            Status::Failed(reason) => {
                f.write_str("failed")?;
                write_reason(f, reason)
            }
            Status::Deferred {
                attempts,
                next_attempt,
                reason,
            } => {
                let secs = match next_attempt.duration_since(UNIX_EPOCH) {
                    Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
                };
                let stamp = log_stamp(secs, 0);
                let stamp = stamp.split('.').next().unwrap_or(&stamp);
                let plural = if *attempts == 1 { "" } else { "s" };
                write!(f, "deferred after {attempts} attempt{plural}, next {stamp}")?;
                write_reason(f, reason)
            }
        }
    }
}

/// `: REASON` with unprintable bytes as `\xNN`, or nothing for an empty reason.
fn write_reason(f: &mut fmt::Formatter<'_>, reason: &[u8]) -> fmt::Result {
    if reason.is_empty() {
        return Ok(());
    }
    f.write_str(": ")?;
    for chunk in reason.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                write!(f, "\\x{:02x}", u32::from(c))?;
            } else {
                write!(f, "{c}")?;
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

impl Status {
    /// True for [`Status::Delivered`] and [`Status::Failed`]: nothing more will be tried.
    pub fn is_final(&self) -> bool {
        matches!(self, Status::Delivered | Status::Failed(_))
    }
}

/// Everything the queue knows about one message, read in one call by
/// [`Queue::info`](crate::Queue::info).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageInfo {
    /// The message's id.
    pub id: MessageId,
    /// When the message was committed: qmail's `info` mtime, the base of the retry schedule
    /// and of `queuelifetime`.
    pub birth: SystemTime,
    /// Length of the stored message bytes.
    pub body_len: u64,
    /// The envelope given at enqueue time.
    pub envelope: Envelope,
    /// One status per recipient, in the envelope's order.
    pub statuses: Vec<Status>,
}

impl MessageInfo {
    /// True when every recipient is [final](Status::is_final), so the message may be
    /// [removed](crate::Queue::remove) (after any bounce has been queued).
    pub fn is_complete(&self) -> bool {
        self.statuses.iter().all(Status::is_final)
    }

    /// The recipients still to be tried, with their index for
    /// [`Queue::mark`](crate::Queue::mark).
    pub fn unfinished(&self) -> impl Iterator<Item = (u32, &mta_core::Address)> {
        self.statuses
            .iter()
            .zip(&self.envelope.recipients)
            .enumerate()
            .filter(|(_, (s, _))| !s.is_final())
            .map(|(i, (_, r))| (i as u32, r))
    }
}
