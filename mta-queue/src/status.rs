//! Per-recipient delivery status and the summary of one queued message.

use std::time::SystemTime;

use mta_core::Envelope;

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
