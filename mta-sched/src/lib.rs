#![doc = include_str!("../README.md")]
//!
//! ## API overview
//!
//! What qmail-send decides, as a sans-IO state machine in the style of quinn-proto: which
//! delivery to start next, how many run at once, when a deferred recipient is tried again,
//! when a message has been queued too long, and that a message's bounce is queued before
//! the message is removed. It reads no clock, opens no file and starts no thread: the
//! driver passes the time in (`now`, a [`SystemTime`](std::time::SystemTime) value, the
//! type mta-queue's statuses use) and does the I/O the scheduler asks for.
//!
//! - [`Scheduler`]: the state machine, built from a [`Config`] (concurrencylocal,
//!   concurrencyremote, queuelifetime, the retry schedules).
//! - In: [`NewMessage`] (id, birth, sender, each [`Recipient`] with its [`Route`] and its
//!   queue [`Status`](mta_queue::Status)), and per job one
//!   [`DeliveryResult`](mta_core::DeliveryResult) per target.
//! - Out: [`Job`] (recipients of one message on one route), [`Recorded`] (the statuses to
//!   make durable), [`Bounce`] (the failures of a finished message, with its
//!   [`BounceKind`]), the ids of messages to remove, and the next timer.
//!
//! The rules, each a test with a fake clock (`tests/integration.rs`):
//!
//! - **Retries**: qmail-send's schedule, `birth + (isqrt(now - birth) + skip)^2` with skip
//!   10 local and 20 remote (mta-queue's [`QmailSchedule`](mta_queue::retry::QmailSchedule)),
//!   so on-time attempts fall 100, 400, 900 s (local) or 400, 1600, 3600 s (remote) after
//!   birth. Any [`RetrySchedule`](mta_queue::retry::RetrySchedule) can replace it.
//! - **queuelifetime**: a deferral reported once the message is that old becomes a failure
//!   (qmail's "dying" pass; there is no separate expiry sweep).
//! - **Concurrency**: at most `concurrency_local` local and `concurrency_remote` remote jobs
//!   at once (0 holds the channel).
//! - **Fairness**: while another domain has remote work waiting, no domain holds more than
//!   half the remote slots; a domain alone may use them all, unless
//!   [`Config::remote_per_domain`] caps it. Domains take turns.
//! - **Batching**: a local job carries the due recipients of one message for one user key;
//!   a remote job those of one message at one domain (one SMTP transaction). A VERP sender
//!   gets one recipient per job.
//! - **Bounce before removal**: a message with failed recipients is handed out by
//!   [`poll_bounce`](Scheduler::poll_bounce) once every recipient is final, and by
//!   [`poll_remove`](Scheduler::poll_remove) only after the driver confirmed the bounce
//!   with [`handle_bounced`](Scheduler::handle_bounced). Single, double and discarded
//!   (triple) bounces are decided from the sender as qmail-send does; composing the bounce
//!   is the driver's (mta-verp's) job.
//! - **Holds**: a held message gets no job, even after [`flush`](Scheduler::flush), and
//!   does not expire, bounce or leave the queue until [`release`](Scheduler::release).
//!
//! No operation's cost grows with the number of queued messages: timers are a binary heap,
//! ready recipients sit in per-route lists, stale entries are skipped lazily. Only
//! [`flush`](Scheduler::flush) walks every message, as it must.
//!
//! ## The driver
//!
//! The driver owns the queue, the delivery workers and the clock. After any input (a new
//! message, a finished job, a confirmed bounce, a timer, a hold or a flush) it drains the
//! outputs **in this order**:
//!
//! 1. [`poll_bounce`](Scheduler::poll_bounce) until `None`: queue each bounce, then
//!    [`handle_bounced`](Scheduler::handle_bounced) (or
//!    [`handle_bounce_failed`](Scheduler::handle_bounce_failed));
//! 2. [`poll_remove`](Scheduler::poll_remove) until `None`: remove each message from the
//!    queue;
//! 3. [`poll_job`](Scheduler::poll_job) until `None`: start each job; when it ends, make
//!    the statuses [`handle_done`](Scheduler::handle_done) returns durable (with
//!    [`Config::wait_for_marks`], then confirm them with
//!    [`handle_marked`](Scheduler::handle_marked): until then the message is neither
//!    bounced nor removed, so the marks may be written by other threads, in parallel);
//! 4. [`poll_timeout`](Scheduler::poll_timeout): sleep until then, or until the next input.
//!
//! Bounces come first so that a message's removal never overtakes its bounce, and jobs
//! last so that the slots a finished job freed are refilled in the same round.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use mta_core::DeliveryResult;
//! use mta_queue::MessageId;
//! use mta_sched::{BounceKind, Config, NewMessage, Recipient, Route, Scheduler};
//!
//! let mut sched = Scheduler::new(Config::default());
//! let mut now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! sched.handle_new(
//!     NewMessage {
//!         id: MessageId::from_u64(1),
//!         birth: now,
//!         sender: "alice@example.org".into(),
//!         recipients: vec![
//!             Recipient::new("bob@example.org", Route::local("bob")),
//!             Recipient::new("carol@example.net", Route::remote("example.net")),
//!         ],
//!     },
//!     now,
//! )?;
//!
//! let mut log = Vec::new();
//! for _round in 0..10 {
//!     while let Some(bounce) = sched.poll_bounce() {
//!         assert_eq!(bounce.kind, BounceKind::Single); // queue it (mta-verp), then:
//!         log.push(format!("bounce msg {}", bounce.message));
//!         sched.handle_bounced(bounce.message)?;
//!     }
//!     while let Some(id) = sched.poll_remove() {
//!         log.push(format!("end msg {id}")); // queue.remove(id)
//!     }
//!     while let Some(job) = sched.poll_job(now) {
//!         // Run it (here: bob is delivered, carol's server refuses her for good).
//!         let results: Vec<DeliveryResult> = job
//!             .targets
//!             .iter()
//!             .map(|t| match t.address.as_bytes() {
//!                 b"bob@example.org" => DeliveryResult::Delivered { text: "did 1+0+0".into() },
//!                 _ => DeliveryResult::Failed { text: "550 no such user".into(), status: None },
//!             })
//!             .collect();
//!         log.push(format!("{} job to {}", job.channel(), job.targets[0].address.to_string_lossy()));
//!         let recorded = sched.handle_done(job.id, &results, now)?;
//!         // queue.mark_many(recorded.message, &recorded.marks)
//!         # let _ = recorded;
//!     }
//!     match sched.poll_timeout() {
//!         Some(at) => now = now.max(at), // sleep until `at` (or an input)
//!         None if sched.messages() == 0 => break,
//!         None => {}
//!     }
//! }
//! assert_eq!(
//!     log,
//!     ["local job to bob@example.org", "remote job to carol@example.net", "bounce msg 1", "end msg 1"]
//! );
//! # Ok::<(), mta_sched::SchedError>(())
//! ```
//!
//! `examples/fake_clock.rs` runs a longer scenario (retries, expiry, fairness, holds) and
//! checks what it prints.

#![forbid(unsafe_code)]

mod config;
pub mod control;
mod error;
mod ready;
mod scheduler;
mod types;

#[doc(hidden)]
pub mod fuzzing;

/// The `mta-core` crate, re-exported: this crate's public API takes and returns its types
/// ([`Address`](mta_core::Address) in [`Recipient`], [`DeliveryResult`](mta_core::DeliveryResult) in [`Scheduler::handle_done`]), so callers can name them as `mta_sched::mta_core::...` without a
/// dependency of their own that could drift to another version.
pub use mta_core;

/// The `mta-queue` crate, re-exported: [`NewMessage`] and [`Recorded`] carry its
/// [`MessageId`](mta_queue::MessageId) and [`Status`](mta_queue::Status).
pub use mta_queue;

pub use config::Config;
pub use error::SchedError;
pub use scheduler::{LIFETIME_TEXT, Scheduler};
pub use types::{
    Bounce, BounceKind, Channel, Failure, Job, JobId, NewMessage, Recipient, Recorded, Route,
    Target,
};
