//! [`Config`]: qmail-send's knobs (control/concurrencylocal, concurrencyremote,
//! queuelifetime) and the retry schedules.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mta_queue::retry::{QmailSchedule, RetrySchedule};

/// The scheduler's settings. Start from [`Config::default`] (qmail's defaults) and set the
/// fields the control files give (write `..Config::default()` last, so that fields added
/// later keep their defaults):
///
/// ```
/// use mta_sched::Config;
/// let config = Config {
///     concurrency_local: 4,
///     concurrency_remote: 40,
///     ..Config::default()
/// };
/// assert_eq!(config.queue_lifetime.as_secs(), 604_800);
/// ```
#[derive(Clone)]
pub struct Config {
    /// `control/concurrencylocal` (qmail default 10): local jobs running at once. 0 holds
    /// the local channel.
    pub concurrency_local: usize,
    /// `control/concurrencyremote` (qmail default 20): remote jobs running at once. 0 holds
    /// the remote channel.
    pub concurrency_remote: usize,
    /// `control/queuelifetime` (qmail default 604800 s): a deferral reported once a message
    /// is this old becomes a permanent failure ("dying", qmail-send.c).
    pub queue_lifetime: Duration,
    /// When a deferred local recipient is tried again (qmail:
    /// [`QmailSchedule::LOCAL`], `birth + (isqrt(age) + 10)^2`).
    pub retry_local: Arc<dyn RetrySchedule>,
    /// When a deferred remote recipient is tried again (qmail:
    /// [`QmailSchedule::REMOTE`], `birth + (isqrt(age) + 20)^2`).
    pub retry_remote: Arc<dyn RetrySchedule>,
    /// Whether remote deliveries can run at all. Without, remote recipients stay queued,
    /// produce no jobs and no timeouts, and never expire.
    pub remote_enabled: bool,
    /// Most targets in one local job (default 64, as mta-daemon). A long list is also cut
    /// so every free slot gets work: a job takes at most `waiting / concurrency_local`.
    pub local_batch: usize,
    /// Most targets in one remote job (default 100: RFC 5321 §4.5.3.1.8 has every server
    /// accept at least 100 recipients per transaction).
    pub remote_batch: usize,
    /// Most remote jobs one domain may run at once even when it is the only domain with
    /// work. `None` (the default) lets a domain alone use every remote slot; mta-daemon
    /// sets half of `concurrency_remote` (at least 1), so a domain whose servers accept
    /// connections and then stay silent can never hold up mail that arrives for others
    /// until `timeoutremote` ends their attempts.
    pub remote_per_domain: Option<usize>,
    /// How long after a failed bounce injection it is offered again (qmail: 123 s).
    pub bounce_retry: Duration,
    /// Hold a message's bounce and removal until the driver says the statuses of every
    /// finished job are durable ([`Scheduler::handle_marked`](crate::Scheduler::handle_marked)),
    /// so a crash can never find a bounced or removed message whose results were not
    /// recorded. Off by default: a driver that marks before it polls again needs no gate.
    pub wait_for_marks: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            concurrency_local: 10,
            concurrency_remote: 20,
            queue_lifetime: Duration::from_hours(168),
            retry_local: Arc::new(QmailSchedule::LOCAL),
            retry_remote: Arc::new(QmailSchedule::REMOTE),
            remote_enabled: true,
            local_batch: 64,
            remote_batch: 100,
            remote_per_domain: None,
            bounce_retry: Duration::from_secs(123),
            wait_for_marks: false,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("concurrency_local", &self.concurrency_local)
            .field("concurrency_remote", &self.concurrency_remote)
            .field("queue_lifetime", &self.queue_lifetime)
            .field("remote_enabled", &self.remote_enabled)
            .field("local_batch", &self.local_batch)
            .field("remote_batch", &self.remote_batch)
            .field("remote_per_domain", &self.remote_per_domain)
            .field("bounce_retry", &self.bounce_retry)
            .field("wait_for_marks", &self.wait_for_marks)
            .finish_non_exhaustive()
    }
}
