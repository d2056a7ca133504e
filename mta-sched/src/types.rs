//! The values that cross the scheduler's boundary: what the driver hands in
//! ([`NewMessage`], [`Recipient`], [`Route`]) and what it gets out ([`Job`], [`Bounce`],
//! [`Recorded`]).

use std::fmt;
use std::time::SystemTime;

use mta_core::Address;
use mta_queue::{MessageId, Status};

/// Which delivery channel (and so which concurrency limit and retry schedule) a recipient
/// uses: qmail-send's `local` and `remote` files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Local delivery (qmail-lspawn: `.qmail`, maildir, mbox, programs).
    Local,
    /// Remote delivery over SMTP (qmail-rspawn).
    Remote,
}

impl Channel {
    /// `"local"` or `"remote"`, as in qmail-send's log lines.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Local => "local",
            Channel::Remote => "remote",
        }
    }

    pub(crate) fn slot(self) -> usize {
        match self {
            Channel::Local => 0,
            Channel::Remote => 1,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a recipient goes, as the driver's router decided (qmail-send's rewriting: locals,
/// virtualdomains, percenthack). The key is what jobs are grouped by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// Local delivery. Recipients of one message with the same `user` key go out together
    /// in one [`Job`] (one message read, one durable mark). The key is opaque to the
    /// scheduler: an account name, a uid, or one constant value to batch every local
    /// recipient of a message together as mta-daemon's scheduler does today.
    Local {
        /// The batching key, usually the users/assign account the address resolves to.
        user: Vec<u8>,
    },
    /// Remote delivery. Recipients of one message at one domain go out together in one
    /// [`Job`] (one SMTP transaction); fairness is counted per domain.
    Remote {
        /// The domain; compared without regard to ASCII case.
        domain: Vec<u8>,
    },
}

impl Route {
    /// A local route with this batching key.
    pub fn local(user: impl Into<Vec<u8>>) -> Route {
        Route::Local { user: user.into() }
    }

    /// A remote route to this domain.
    pub fn remote(domain: impl Into<Vec<u8>>) -> Route {
        Route::Remote {
            domain: domain.into(),
        }
    }

    /// The channel this route uses.
    pub fn channel(&self) -> Channel {
        match self {
            Route::Local { .. } => Channel::Local,
            Route::Remote { .. } => Channel::Remote,
        }
    }

    /// The grouping key: the user for a local route, the lowercased domain for a remote one.
    pub(crate) fn key(&self) -> Vec<u8> {
        match self {
            Route::Local { user } => user.clone(),
            Route::Remote { domain } => domain.to_ascii_lowercase(),
        }
    }
}

/// One recipient of a [`NewMessage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The address jobs deliver to (after the driver's rewriting, e.g. `P-user@dom` for a
    /// virtual domain). [`Bounce`]s name recipients by index too, so the driver can report
    /// the envelope's original address.
    pub address: Address,
    /// Where it goes.
    pub route: Route,
    /// Its status as recorded in the queue: [`Status::Pending`] for a new message; at
    /// startup whatever [`mta_queue::Queue::info`] found (deferred with its next retry time,
    /// delivered, failed).
    pub status: Status,
}

impl Recipient {
    /// A pending recipient.
    pub fn new(address: impl Into<Address>, route: Route) -> Recipient {
        Recipient {
            address: address.into(),
            route,
            status: Status::Pending,
        }
    }

    /// A pending local recipient whose jobs are batched under `user`.
    pub fn local(address: impl Into<Address>, user: impl Into<Vec<u8>>) -> Recipient {
        Recipient::new(address, Route::local(user))
    }

    /// A pending remote recipient, routed to its address's domain (empty without an `@`).
    pub fn remote(address: impl Into<Address>) -> Recipient {
        let address = address.into();
        let domain = address.domain().unwrap_or_default().to_vec();
        Recipient::new(address, Route::Remote { domain })
    }

    /// The same recipient with another status (for messages found at startup).
    #[must_use]
    pub fn with_status(mut self, status: Status) -> Recipient {
        self.status = status;
        self
    }
}

/// A message for [`Scheduler::handle_new`](crate::Scheduler::handle_new): just committed,
/// or found in the queue at startup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The queue's id.
    pub id: MessageId,
    /// When it was queued ([`mta_queue::MessageInfo::birth`]): the base of the retry
    /// schedule and of `queuelifetime`.
    pub birth: SystemTime,
    /// The envelope sender (`""` for `<>`, `#@[]` for a double bounce, `P@H-@[]` to ask
    /// for VERP).
    pub sender: Address,
    /// The recipients, in the envelope's order (their index is the one marks use).
    pub recipients: Vec<Recipient>,
}

/// Names one [`Job`] between [`poll_job`](crate::Scheduler::poll_job) and
/// [`handle_done`](crate::Scheduler::handle_done).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(crate) u64);

impl JobId {
    /// A job id from its number, for drivers' tests that build jobs by hand. The scheduler
    /// only knows the ids its [`poll_job`](crate::Scheduler::poll_job) handed out; any
    /// other gets [`SchedError::UnknownJob`](crate::SchedError::UnknownJob).
    pub const fn from_u64(n: u64) -> JobId {
        JobId(n)
    }

    /// The raw number (unique for the scheduler's lifetime; usable as qmail's delivery
    /// number in logs).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One recipient of a [`Job`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The recipient's index in the envelope (for [`mta_queue::Queue::mark`]).
    pub index: u32,
    /// The address to deliver to.
    pub address: Address,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// A delivery to start: recipients of one message that share a route (one local user, or
/// one remote domain). The driver runs it and reports with
/// [`handle_done`](crate::Scheduler::handle_done), one result per target, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The job's name for `handle_done`.
    pub id: JobId,
    /// The message.
    pub message: MessageId,
    /// The route shared by every target (its channel, and the user or domain).
    pub route: Route,
    /// The message's envelope sender, unchanged. With a VERP request (`P@H-@[]`) every job
    /// has one target and the driver builds the per-recipient sender itself
    /// (`mta_verp::sender_for_recipient`).
    pub sender: Address,
    /// The message's birth time.
    pub birth: SystemTime,
    /// The recipients; never empty.
    pub targets: Vec<Target>,
    /// The targets are every recipient of the message: when all are delivered the driver
    /// may remove the message at once instead of marking them first
    /// (`mta_queue::Queue::remove_delivered`); [`poll_remove`](crate::Scheduler::poll_remove)
    /// will name it next.
    pub whole: bool,
}

impl Job {
    /// The channel the job runs on.
    pub fn channel(&self) -> Channel {
        self.route.channel()
    }
}

/// What [`handle_done`](crate::Scheduler::handle_done) decided for a job's targets: the
/// statuses the driver makes durable (`mta_queue::Queue::mark_many`), and with
/// [`Config::wait_for_marks`](crate::Config::wait_for_marks) confirms with
/// [`handle_marked`](crate::Scheduler::handle_marked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The message.
    pub message: MessageId,
    /// `(recipient index, new status)` per target, in the job's order. A deferral carries
    /// its next retry time; a deferral past `queuelifetime` is already a failure here.
    pub marks: Vec<(u32, Status)>,
    /// Every recipient of the message is now final: a bounce (if any failed) and a removal
    /// follow through [`poll_bounce`](crate::Scheduler::poll_bounce) and
    /// [`poll_remove`](crate::Scheduler::poll_remove).
    pub finished: bool,
}

/// Where the bounce of a finished message goes (qmail-send's `injectbounce`, RFCLOOPS);
/// decided from the envelope sender after removing a VERP `-@[]` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BounceKind {
    /// A normal sender: a bounce from `<>` to it.
    Single,
    /// The message was a bounce (sender `<>`): a double bounce from `#@[]` to
    /// `doublebounceto@doublebouncehost`.
    Double,
    /// The message was a double bounce (sender `#@[]`): discard it (qmail logs
    /// `triple bounce: discarding bounce/<id>`). The driver still confirms with
    /// [`handle_bounced`](crate::Scheduler::handle_bounced).
    Discard,
}

impl BounceKind {
    /// The kind for a message from `sender`.
    pub fn for_sender(sender: &Address) -> BounceKind {
        let bytes = sender.as_bytes();
        let bytes = bytes.strip_suffix(VERP_MARKER).unwrap_or(bytes);
        if bytes == b"#@[]" {
            BounceKind::Discard
        } else if bytes.is_empty() {
            BounceKind::Double
        } else {
            BounceKind::Single
        }
    }
}

/// qmail's VERP request suffix (RFCVERP): a sender `P@H-@[]` gets `P-R=D@H` per recipient.
pub(crate) const VERP_MARKER: &[u8] = b"-@[]";

/// One failed recipient in a [`Bounce`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The recipient's index in the envelope.
    pub index: u32,
    /// The address given in [`Recipient::address`].
    pub address: Address,
    /// The report text of the failure (opaque bytes).
    pub reason: Vec<u8>,
}

/// A finished message with failed recipients: the driver queues its bounce (or discards
/// it, for [`BounceKind::Discard`]) and then calls
/// [`handle_bounced`](crate::Scheduler::handle_bounced); only then may the message be
/// removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounce {
    /// The message.
    pub message: MessageId,
    /// Its envelope sender, unchanged.
    pub sender: Address,
    /// Single, double or discarded.
    pub kind: BounceKind,
    /// Every failed recipient, in envelope order; never empty.
    pub failures: Vec<Failure>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_kinds_follow_rfcloops() {
        let k = |s: &str| BounceKind::for_sender(&Address::from(s));
        assert_eq!(k("alice@example.org"), BounceKind::Single);
        assert_eq!(k("list-@example.org-@[]"), BounceKind::Single);
        assert_eq!(k(""), BounceKind::Double);
        assert_eq!(k("-@[]"), BounceKind::Double);
        assert_eq!(k("#@[]"), BounceKind::Discard);
        assert_eq!(k("#@[]-@[]"), BounceKind::Discard);
    }

    #[test]
    fn remote_keys_ignore_case() {
        assert_eq!(Route::remote("Example.ORG").key(), b"example.org");
        assert_eq!(Route::local("Joe").key(), b"Joe");
    }
}
