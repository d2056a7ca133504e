//! The delivery and finishing pools: the scheduler's hands.
//!
//! The scheduler thread never touches the disk. A delivery thread runs a [`Job`], turns
//! each result into a queue [`Status`] (qmail's retry schedule, `queuelifetime`), makes the
//! statuses durable with one `mark_many`, and only then reports back. A finishing thread
//! queues a finished message's bounce (if any recipient failed) and removes it. Several
//! threads doing these at once share fsyncs through mta-queue's group commit, which is what
//! lets a busy server deliver faster than one fsync at a time.

use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use mta_core::{Address, DeliveryResult, Envelope};
use mta_queue::{MessageId, Queue, Status};

use crate::log;
use crate::sched::{Bouncer, Channel, Input, Job};

/// Runs jobs of one channel.
pub trait Deliver: Send + Sync {
    /// Delivers `job`: one result per target, in order.
    fn deliver(&self, job: &Job) -> Vec<DeliveryResult>;
}

/// A job's outcome, as reported to the scheduler.
#[derive(Debug)]
pub struct Done {
    /// The job.
    pub job: Job,
    /// One result per target.
    pub results: Vec<DeliveryResult>,
    /// The statuses recorded for the targets (same order).
    pub statuses: Vec<Status>,
    /// Whether the statuses are durable; on an error they are not, and the targets will be
    /// tried again (a duplicate rather than a loss).
    pub marked: Result<(), String>,
    /// Every recipient was delivered by this job and the message is already removed
    /// (`end msg` is logged by the scheduler).
    pub removed: bool,
}

/// qmail-send's bookkeeping for one result: delivered and failed are final; a deferral is
/// retried at `birth + (floor(sqrt(age)) + skip)^2` (skip 10 local, 20 remote), unless the
/// message has been queued longer than `lifetime`, which turns it into a failure.
pub fn status_for(
    result: &DeliveryResult,
    birth: SystemTime,
    now: SystemTime,
    attempts: u32,
    channel: Channel,
    lifetime: Duration,
) -> Status {
    match result {
        DeliveryResult::Delivered { .. } => Status::Delivered,
        DeliveryResult::Failed { text, .. } => Status::Failed(text.clone().into_bytes()),
        DeliveryResult::Deferred { text, .. } => {
            if mta_queue::retry::is_dying(birth, now, lifetime) {
                let mut t = text.clone();
                if !t.ends_with('\n') {
                    t.push('\n');
                }
                t.push_str(mta_verp::QUEUE_LIFETIME_TEXT);
                return Status::Failed(t.into_bytes());
            }
            let skip = match channel {
                Channel::Local => 10,
                Channel::Remote => 20,
            };
            Status::Deferred {
                attempts: attempts.saturating_add(1),
                next_attempt: mta_queue::retry::qmail_next_retry(birth, now, skip),
                reason: text.clone().into_bytes(),
            }
        }
        // A result kind added later is retried, never dropped.
        _ => Status::Deferred {
            attempts: attempts.saturating_add(1),
            next_attempt: now + Duration::from_secs(123), // qmail's "retry in 123 s"
            reason: result.text().as_bytes().to_vec(),
        },
    }
}

/// A delivery thread: runs jobs from `jobs` until the channel closes.
pub fn run_deliveries(
    jobs: &Receiver<Job>,
    deliverer: &dyn Deliver,
    queue: &Queue,
    scheduler: &Sender<Input>,
    lifetime: Duration,
) {
    for job in jobs {
        let started = std::time::Instant::now();
        let results = deliverer.deliver(&job);
        crate::metrics::delivery_time(started.elapsed());
        let now = SystemTime::now();
        let statuses: Vec<Status> = job
            .targets
            .iter()
            .zip(&results)
            .map(|(t, r)| status_for(r, job.birth, now, t.attempts, job.channel, lifetime))
            .collect();
        // The common case of a message to one local user: nothing to record, nothing to
        // bounce, so remove it now: no mark to fdatasync, and the removal itself is not
        // synced (a power loss may repeat the delivery, as a crash before a mark would).
        let all_delivered = job.whole
            && results.len() == job.targets.len()
            && statuses.iter().all(|s| *s == Status::Delivered);
        let removed = all_delivered && queue.remove_delivered(job.id).is_ok();
        let marked = if removed {
            Ok(())
        } else {
            let marks: Vec<(u32, Status)> = job
                .targets
                .iter()
                .zip(&statuses)
                .map(|(t, s)| (t.index, s.clone()))
                .collect();
            queue.mark_many(job.id, &marks).map_err(|e| e.to_string())
        };
        let done = Done {
            job,
            results,
            statuses,
            marked,
            removed,
        };
        if scheduler.send(Input::Done(Box::new(done))).is_err() {
            break;
        }
    }
}

/// A finished message to bounce (if needed) and remove.
#[derive(Debug)]
pub struct Finish {
    /// The message.
    pub id: MessageId,
    /// Its envelope.
    pub envelope: Envelope,
    /// Failed recipients (original addresses) and their reports.
    pub failures: Vec<(Address, Vec<u8>)>,
}

/// A finishing thread: qmail-send's completion (bounce, `end msg`, removal).
pub fn run_finisher(
    finishes: &Receiver<Finish>,
    queue: &Queue,
    bouncer: &dyn Bouncer,
    scheduler: &Sender<Input>,
) {
    for f in finishes {
        let id = f.id;
        if !f.failures.is_empty() {
            match bouncer.bounce(queue, id, &f.envelope, &f.failures) {
                Ok(Some(bounce_id)) => {
                    log::line(&format!("bounce msg {id} qp {bounce_id}"));
                    // A send fails only at shutdown; the next start finds the bounce.
                    let _ = scheduler.send(Input::New(bounce_id));
                }
                Ok(None) => log::line(&format!("triple bounce: discarding bounce/{id}")),
                Err(e) => {
                    log::line(&format!(
                        "warning: trouble injecting bounce message, will try later: {}",
                        log::safe(e.as_bytes())
                    ));
                    if scheduler.send(Input::Unfinished(id)).is_err() {
                        break;
                    }
                    continue;
                }
            }
        }
        log::line(&format!("end msg {id}"));
        if let Err(e) = queue.remove(id) {
            log::line(&format!("warning: unable to remove msg {id}: {e}"));
        }
        if scheduler.send(Input::Finished(id)).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmail_schedule_and_lifetime() {
        let birth = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let deferred = DeliveryResult::Deferred {
            text: "later".into(),
            status: None,
        };
        let week = Duration::from_hours(168);
        // First retry of a local delivery right after birth: 100 s later.
        match status_for(&deferred, birth, birth, 0, Channel::Local, week) {
            Status::Deferred {
                attempts,
                next_attempt,
                ..
            } => {
                assert_eq!(attempts, 1);
                assert_eq!(next_attempt, birth + Duration::from_secs(100));
            }
            other => panic!("{other:?}"),
        }
        // Remote: 400 s.
        match status_for(&deferred, birth, birth, 3, Channel::Remote, week) {
            Status::Deferred { next_attempt, .. } => {
                assert_eq!(next_attempt, birth + Duration::from_secs(400));
            }
            other => panic!("{other:?}"),
        }
        // Past the lifetime a deferral becomes a failure with qmail's sentence.
        match status_for(&deferred, birth, birth + week, 9, Channel::Remote, week) {
            Status::Failed(t) => assert!(String::from_utf8_lossy(&t).ends_with("too long.\n")),
            other => panic!("{other:?}"),
        }
    }
}
