//! Bounces: the scheduler's glue to mta-verp (qmail-send's `injectbounce`).
//!
//! When a message finishes with failed recipients, one bounce is composed in QSBMF (or RFC
//! 3464, per `control/bounceformat`), carrying every failure's full report text and the
//! original message, and queued like any other message. A bounce of a bounce goes to
//! `doublebounceto@doublebouncehost` from `#@[]`; a failure of that is discarded.

use std::sync::{Arc, PoisonError, RwLock};

use mta_core::{Address, Envelope};
use mta_queue::{MessageId, Queue};
use mta_verp::{Bounce, BounceConfig, Failure, compose_bounce};

use crate::sched::Bouncer;

/// Composes bounces with the current configuration and queues them.
#[derive(Debug)]
pub struct QueueBouncer {
    config: RwLock<Arc<BounceConfig>>,
}

impl QueueBouncer {
    /// A bouncer using `config` (from bouncefrom, bouncehost, doublebounceto,
    /// doublebouncehost).
    pub fn new(config: BounceConfig) -> QueueBouncer {
        QueueBouncer {
            config: RwLock::new(Arc::new(config)),
        }
    }

    /// Replaces the configuration for the next bounce (SIGHUP).
    pub fn set_config(&self, config: BounceConfig) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

impl Bouncer for QueueBouncer {
    fn bounce(
        &self,
        queue: &Queue,
        id: MessageId,
        envelope: &Envelope,
        failures: &[(Address, Vec<u8>)],
    ) -> Result<Option<MessageId>, String> {
        let failures: Vec<Failure> = failures
            .iter()
            .map(|(a, t)| Failure::new(a.clone(), t.clone()))
            .collect();
        let original = queue
            .open_message(id)
            .map_err(|e| format!("unable to open msg {id}: {e}"))?;
        let now = crate::log::unix_now();
        let date = mta_core::date::qmail_date822(now);
        let config = Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner));
        let bounce = compose_bounce(&config, &envelope.sender, &failures, &date, original)
            .map_err(|e| format!("unable to read msg {id}: {e}"))?;
        match bounce {
            Bounce::Discard | Bounce::NoFailures => Ok(None),
            Bounce::Send(b) => {
                // The trace line's qp is the bounce's own id, as `bounce msg N qp Q` logs.
                let queued = queue.begin().and_then(|mut incoming| {
                    incoming.write(&mta_core::header::received_queue(
                        incoming.id().as_u64(),
                        mta_core::header::QueueInvoker::Bounce,
                        now,
                    ))?;
                    incoming.write(&b.message)?;
                    incoming.commit(&b.envelope)
                });
                queued
                    .map(Some)
                    .map_err(|e| format!("unable to queue bounce: {e}"))
            }
        }
    }
}
