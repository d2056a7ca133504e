//! [`SchedError`]: a call that does not fit the scheduler's state.

use std::fmt;

use mta_queue::MessageId;

use crate::JobId;

/// A call named something the scheduler does not know, or came in the wrong order. The
/// state is unchanged when one is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchedError {
    /// [`handle_new`](crate::Scheduler::handle_new) for an id already scheduled.
    DuplicateMessage(MessageId),
    /// No such message (never added, or already removed or deleted).
    UnknownMessage(MessageId),
    /// [`handle_done`](crate::Scheduler::handle_done) for a job not running.
    UnknownJob(JobId),
    /// [`handle_bounced`](crate::Scheduler::handle_bounced) or
    /// [`handle_bounce_failed`](crate::Scheduler::handle_bounce_failed) for a message whose
    /// bounce was not handed out by [`poll_bounce`](crate::Scheduler::poll_bounce).
    NoBounceOut(MessageId),
    /// [`handle_marked`](crate::Scheduler::handle_marked) for a message with no
    /// [`Recorded`](crate::Recorded) awaiting it.
    NoMarksOut(MessageId),
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::DuplicateMessage(id) => write!(f, "msg {id} is already scheduled"),
            SchedError::UnknownMessage(id) => write!(f, "msg {id} is not scheduled"),
            SchedError::UnknownJob(id) => write!(f, "job {id} is not running"),
            SchedError::NoBounceOut(id) => write!(f, "no bounce of msg {id} is out"),
            SchedError::NoMarksOut(id) => write!(f, "no marks of msg {id} are out"),
        }
    }
}

impl std::error::Error for SchedError {}
