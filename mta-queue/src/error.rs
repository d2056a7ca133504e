//! [`QueueError`]: everything a queue operation can fail with.

use std::fmt;
use std::io;

use crate::MessageId;

/// Why a queue operation failed. Nothing is ever half-done from the caller's point of view:
/// a failed enqueue leaves no visible message, a failed mark leaves the previous status.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueueError {
    /// A file-system operation failed (`op` names it, `path` is relative to the queue).
    /// For an SMTP server this is a temporary failure (451, or 452 when
    /// [`QueueError::is_storage_full`]).
    Io {
        /// What was being done: "create", "write", "sync", "rename", ...
        op: &'static str,
        /// The path, relative to the queue directory.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process has this queue open (its `lock` file is locked).
    Locked,
    /// The queue was opened with [`Queue::inspect`](crate::Queue::inspect), which only
    /// reads.
    ReadOnly,
    /// No committed message has this id.
    NotFound(MessageId),
    /// The recipient index is beyond the message's recipient count.
    NoSuchRecipient {
        /// The message.
        id: MessageId,
        /// The index given.
        index: u32,
        /// How many recipients the message has.
        count: u32,
    },
    /// [`Queue::remove`](crate::Queue::remove) was called while a recipient was still pending
    /// or deferred.
    NotFinal(MessageId),
    /// A stored message file failed its checks (magic number, length or checksum).
    Corrupt {
        /// The message.
        id: MessageId,
        /// What was wrong.
        reason: &'static str,
    },
    /// An envelope field is too large for the queue format (an address or text over 4 GiB,
    /// or more than 2³² recipients).
    TooLarge,
}

impl QueueError {
    pub(crate) fn io(op: &'static str, path: impl Into<String>, source: io::Error) -> Self {
        QueueError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the failure is a full disk or an exceeded quota (ENOSPC, EDQUOT): an SMTP
    /// server answers 452 rather than 451 (RFC 5321 §4.2.3).
    pub fn is_storage_full(&self) -> bool {
        match self {
            QueueError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }

    /// A copy for another caller in the same group commit (an `io::Error` cannot be cloned;
    /// the copy keeps its kind, errno and message).
    pub(crate) fn duplicate(&self) -> QueueError {
        match self {
            QueueError::Io { op, path, source } => QueueError::Io {
                op,
                path: path.clone(),
                source: copy_io(source),
            },
            QueueError::Locked => QueueError::Locked,
            QueueError::ReadOnly => QueueError::ReadOnly,
            QueueError::NotFound(id) => QueueError::NotFound(*id),
            QueueError::NoSuchRecipient { id, index, count } => QueueError::NoSuchRecipient {
                id: *id,
                index: *index,
                count: *count,
            },
            QueueError::NotFinal(id) => QueueError::NotFinal(*id),
            QueueError::Corrupt { id, reason } => QueueError::Corrupt { id: *id, reason },
            QueueError::TooLarge => QueueError::TooLarge,
        }
    }
}

pub(crate) fn copy_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Io { op, path, .. } => write!(f, "queue i/o failed: {op} {path}"),
            QueueError::Locked => f.write_str("queue is locked by another process"),
            QueueError::ReadOnly => f.write_str("queue was opened read-only"),
            QueueError::NotFound(id) => write!(f, "message {id} is not in the queue"),
            QueueError::NoSuchRecipient { id, index, count } => {
                write!(f, "message {id} has {count} recipients, no index {index}")
            }
            QueueError::NotFinal(id) => write!(f, "message {id} still has unfinished recipients"),
            QueueError::Corrupt { id, reason } => write!(f, "message {id} is corrupt: {reason}"),
            QueueError::TooLarge => f.write_str("envelope too large for the queue format"),
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
