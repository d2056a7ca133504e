//! The delivery and finishing pools: the scheduler's hands.
//!
//! The scheduler thread never writes to the disk. A delivery thread runs a [`Job`] and
//! reports its results; when one job delivered every recipient of a message it removes the
//! message itself first (nothing to record, nothing to bounce). A finishing thread makes a
//! job's statuses durable (one `mark_many`), queues a finished message's bounce, or removes
//! a finished message, as the scheduler asks ([`Finish`]). Several threads doing these at
//! once share fsyncs through mta-queue's group commit, which is what lets a busy server
//! deliver faster than one fsync at a time.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender};
use mta_core::{Address, DeliveryResult};
use mta_queue::{MessageId, Queue, Status};

use crate::log;
use crate::sched::{Bouncer, Input, Job};

/// Runs jobs of one channel.
pub trait Deliver: Send + Sync {
    /// Delivers `job`: one result per target, in order.
    fn deliver(&self, job: &Job) -> Vec<DeliveryResult>;

    /// How many waiting jobs one delivery thread may take at once and hand to
    /// [`deliver_batch`](Deliver::deliver_batch) (1, the default: one at a time).
    fn batch_limit(&self) -> usize {
        1
    }

    /// Delivers several jobs: one result list per job, in order. The default runs them one
    /// after the other; local delivery commits their maildir lines together.
    fn deliver_batch(&self, jobs: &[Job]) -> Vec<Vec<DeliveryResult>> {
        jobs.iter().map(|job| self.deliver(job)).collect()
    }

    /// At most how many batches this channel's threads run at once (`None`, the default:
    /// as many as there are threads). Fewer batches in flight let the jobs that arrive
    /// meanwhile gather into the next batch instead of each waking a thread of its own.
    fn batches_in_flight(&self) -> Option<&Gate> {
        None
    }
}

/// A counting gate: at most `n` holders at once (a semaphore).
#[derive(Debug)]
pub struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Gate {
    /// A gate for `n` holders at once (at least one).
    pub fn new(n: usize) -> Gate {
        Gate {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Waits for a place; it is given back when the returned guard drops.
    fn enter(&self) -> GatePass<'_> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        GatePass(self)
    }
}

/// A place in a [`Gate`], given back on drop.
struct GatePass<'a>(&'a Gate);

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

/// A job's outcome, as reported to the scheduler.
#[derive(Debug)]
pub struct Done {
    /// The job.
    pub job: Job,
    /// One result per target.
    pub results: Vec<DeliveryResult>,
    /// When the attempt started (the retry schedule counts from it, as qmail-send's).
    pub started: SystemTime,
    /// Every recipient was delivered by this job and the message is already removed.
    pub removed: bool,
}

/// A batch stops taking more waiting jobs once it has this many targets (a large list's
/// jobs are better spread over threads than delivered one after the other).
const MAX_BATCH_TARGETS: usize = 64;

/// A delivery thread: runs jobs from `jobs` until the channel closes. Jobs already waiting
/// when it takes one go with it, up to the deliverer's [`batch_limit`](Deliver::batch_limit),
/// so that a busy channel commits several deliveries with one flush.
pub fn run_deliveries(
    jobs: &Receiver<Job>,
    deliverer: &dyn Deliver,
    queue: &Queue,
    scheduler: &Sender<Input>,
) {
    let limit = deliverer.batch_limit().max(1);
    loop {
        // The place is taken before the first job, so jobs arriving while the batches in
        // flight run wait in the channel and go together into the next one.
        let pass = deliverer.batches_in_flight().map(Gate::enter);
        let Ok(first) = jobs.recv() else { return };
        let mut targets = first.targets.len();
        let mut batch = vec![first];
        while batch.len() < limit && targets < MAX_BATCH_TARGETS {
            match jobs.try_recv() {
                Ok(job) => {
                    targets += job.targets.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let started = SystemTime::now();
        let clock = std::time::Instant::now();
        let all_results = deliverer.deliver_batch(&batch);
        drop(pass);
        let took = clock.elapsed() / u32::try_from(batch.len()).unwrap_or(1);
        for (job, results) in batch.into_iter().zip(all_results) {
            crate::metrics::delivery_time(took);
            // The common case of a message to one local user: nothing to record, nothing
            // to bounce, so remove it now: no mark to fdatasync, and the removal itself is
            // not synced (a power loss may repeat the delivery, as a crash before a mark
            // would).
            let all_delivered = job.whole
                && results.len() == job.targets.len()
                && results
                    .iter()
                    .all(|r| matches!(r, DeliveryResult::Delivered { .. }));
            let removed = all_delivered && queue.remove_delivered(job.id).is_ok();
            let done = Done {
                job,
                results,
                started,
                removed,
            };
            if scheduler.send(Input::Done(Box::new(done))).is_err() {
                return;
            }
        }
    }
}

/// Work for the finishing pool.
#[derive(Debug)]
pub enum Finish {
    /// Make these `(recipient index, status)` marks of a message durable.
    Mark(MessageId, Vec<(u32, Status)>),
    /// Queue the bounce of a finished message (or discard a triple bounce).
    Bounce(mta_sched::Bounce),
    /// Remove a finished message (its bounce, if any, is queued).
    Remove(MessageId),
}

/// A finishing thread: marks, then qmail-send's completion (bounce, `end msg`, removal).
pub fn run_finisher(
    tasks: &Receiver<Finish>,
    queue: &Queue,
    bouncer: &dyn Bouncer,
    scheduler: &Sender<Input>,
) {
    for task in tasks {
        let report = match task {
            Finish::Mark(id, marks) => {
                Input::Marked(id, queue.mark_many(id, &marks).map_err(|e| e.to_string()))
            }
            Finish::Bounce(bounce) => self::bounce(queue, bouncer, &bounce, scheduler),
            Finish::Remove(id) => {
                log::line(&format!("end msg {id}"));
                if let Err(e) = queue.remove(id) {
                    log::line(&format!("warning: unable to remove msg {id}: {e}"));
                }
                Input::Removed(id)
            }
        };
        if scheduler.send(report).is_err() {
            break;
        }
    }
}

/// Queues one bounce; the report for the scheduler.
fn bounce(
    queue: &Queue,
    bouncer: &dyn Bouncer,
    bounce: &mta_sched::Bounce,
    scheduler: &Sender<Input>,
) -> Input {
    let id = bounce.message;
    let queued = queue.info(id).map_err(|e| e.to_string()).and_then(|info| {
        // The bounce names the recipients as the sender wrote them (before routing).
        let failures: Vec<(Address, Vec<u8>)> = bounce
            .failures
            .iter()
            .map(|f| {
                let original = info.envelope.recipients.get(f.index as usize);
                (original.unwrap_or(&f.address).clone(), f.reason.clone())
            })
            .collect();
        bouncer.bounce(queue, id, &info.envelope, &failures)
    });
    match queued {
        Ok(Some(bounce_id)) => {
            log::line(&format!("bounce msg {id} qp {bounce_id}"));
            // A send fails only at shutdown; the next start finds the bounce.
            let _ = scheduler.send(Input::New(bounce_id));
            Input::Bounced(id)
        }
        Ok(None) => {
            log::line(&format!("triple bounce: discarding bounce/{id}"));
            Input::Bounced(id)
        }
        Err(e) => {
            log::line(&format!(
                "warning: trouble injecting bounce message, will try later: {}",
                log::safe(e.as_bytes())
            ));
            Input::BounceFailed(id)
        }
    }
}
