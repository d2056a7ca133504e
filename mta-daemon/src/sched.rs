//! The scheduler thread: our qmail-send, driving mta-sched's state machine.
//!
//! [`mta_sched::Scheduler`] decides (which delivery next, concurrency and fairness, qmail's
//! retry schedule, `queuelifetime`, bounce before removal, holds); this thread does its
//! I/O. It learns of new messages at once (a channel message from an SMTP session or a
//! forward, or a trigger pull from `mta inject`), reads each one's envelope and statuses
//! from the queue, routes its recipients (`crate::route`), and after every input drains
//! the state machine's outputs in the order mta-sched prescribes: bounces and removals to
//! the finishing pool, jobs to the local and remote pools. The marks (statuses made
//! durable) are written by the finishing pool, several at once so they share fsyncs; a
//! message's bounce and removal wait until its marks are durable
//! (`Config::wait_for_marks`). Operator commands ([`Command`]: hold, release, delete,
//! flush) arrive on the same channel and change the queue on disk before the state machine.
//!
//! Log order is qmail-send's: `new msg` and `info msg` once per message, when it arrives
//! while this process runs (not again for messages found queued at start), then each
//! `starting delivery` and its result, then `bounce msg` and `end msg`.
//!
//! Crash reasoning: a result is marked durably before the message is bounced or removed; a
//! crash between a delivery and its mark repeats that one delivery (qmail accepts the same
//! duplicate); a crash between queueing a bounce and removing the message sends the bounce
//! twice. Nothing accepted is lost: on start every message in the queue is scheduled again,
//! with its holds.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use mta_core::{Address, DeliveryResult, Envelope};
use mta_queue::{MessageId, Queue, Status};
use mta_sched::{JobId, NewMessage, Recipient};

pub use mta_sched::Channel;

use crate::log;
use crate::pool::{Done, Finish};
use crate::route::{Route, Router};

/// One recipient of a [`Job`].
#[derive(Clone, Debug)]
pub struct Target {
    /// The delivery number in the log (`starting delivery N`).
    pub delivery: u64,
    /// The recipient's index in the envelope.
    pub index: u32,
    /// The recipient after routing (virtualdomain prefix applied for local ones).
    pub address: Address,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// Work handed to a pool: recipients of one message on one route (every due local
/// recipient of the message, up to a batch; for remote delivery those at one domain, so
/// they share one SMTP transaction). A VERP sender gets one recipient per job.
#[derive(Clone, Debug)]
pub struct Job {
    /// The scheduler's name for the job (handed back in `pool::Done`).
    pub job: JobId,
    /// The message.
    pub id: MessageId,
    /// The envelope sender for this delivery (VERP applied).
    pub sender: Address,
    /// Which pool.
    pub channel: Channel,
    /// The recipients; never empty.
    pub targets: Vec<Target>,
    /// The message's birth time.
    pub birth: SystemTime,
    /// The targets are every recipient of the message: if all are delivered, the pool
    /// may remove the message at once instead of recording each result first.
    pub whole: bool,
}

/// An operator's command (`mta queue hold|release|delete|flush` through the control
/// socket), answered on its channel with `Ok` or the reason it failed.
#[derive(Debug)]
pub enum Command {
    /// Hold these messages (durably) until released.
    Hold(Vec<MessageId>),
    /// Release these messages.
    Release(Vec<MessageId>),
    /// Remove these messages without a bounce.
    Delete(Vec<MessageId>),
}

/// A message the queue process committed itself ([`mta_queue::submit::serve`]), with what
/// the scheduler would otherwise read from its file.
#[derive(Debug)]
pub struct Committed {
    /// As [`Queue::info`](mta_queue::Queue::info) would read it.
    pub info: mta_queue::MessageInfo,
    /// The message's first bytes (its trace line names who queued it; see the `origin` module).
    pub head: Vec<u8>,
}

/// What the scheduler's single input channel carries.
#[derive(Debug)]
pub enum Input {
    /// A message was committed to the queue.
    New(MessageId),
    /// A message was committed by this process, which knows what the file holds: the
    /// scheduler takes it without reading the file back.
    Committed(Box<Committed>),
    /// Something outside (inject) committed messages: rescan the queue for unknown ids.
    Rescan,
    /// Retry everything now (`mta queue flush`); held messages stay held.
    Flush,
    /// A job finished.
    Done(Box<Done>),
    /// The marks of a job were written (or failed to be: the text).
    Marked(MessageId, Result<(), String>),
    /// A finished message's bounce was queued (or discarded, for a triple bounce).
    Bounced(MessageId),
    /// Queueing a bounce failed; it is offered again later.
    BounceFailed(MessageId),
    /// A finished message was removed from the queue.
    Removed(MessageId),
    /// An operator's command, with where to send the answer.
    Command(Command, Sender<Result<String, String>>),
    /// Stop: finish in-flight deliveries, start no new ones.
    Shutdown,
}

/// The marks of one message while a [`Finish::Mark`] of it is out.
#[derive(Debug, Default)]
struct Marking {
    /// How many jobs' marks the one out carries.
    out: usize,
    /// Later jobs' marks, in the order their results came.
    waiting: Vec<(u32, Status)>,
    /// How many jobs `waiting` holds.
    waiting_jobs: usize,
}

/// Scheduler settings (from the control files).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `concurrencylocal`.
    pub concurrency_local: usize,
    /// `concurrencyremote`.
    pub concurrency_remote: usize,
    /// `queuelifetime`.
    pub lifetime: Duration,
    /// Whether a remote pool exists. Without one, remote recipients stay queued.
    pub remote_enabled: bool,
    /// The uid SMTP sessions and bounces queue as (`info msg`'s uid for them).
    pub queue_uid: u32,
}

/// Builds and queues bounces; the daemon's glue to mta-verp.
pub trait Bouncer: Send + Sync {
    /// Queues the bounce for a finished message with `failures` (recipient, report text),
    /// returning the new message's id, or `None` when the bounce is discarded (triple
    /// bounce).
    ///
    /// # Errors
    /// Any error composing or queueing; the scheduler retries later.
    fn bounce(
        &self,
        queue: &Queue,
        id: MessageId,
        envelope: &Envelope,
        failures: &[(Address, Vec<u8>)],
    ) -> Result<Option<MessageId>, String>;
}

/// Whether a loaded message arrived while this process runs or was queued before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// Queued before this start: already logged.
    Before,
    /// New now: log `new msg` and `info msg`.
    Now,
}

/// The scheduler thread's state; [`Scheduler::run`] is its thread.
pub struct Scheduler {
    core: mta_sched::Scheduler,
    queue: Arc<Queue>,
    router: Arc<dyn Router>,
    finisher: Sender<Finish>,
    settings: Settings,
    input: Receiver<Input>,
    local: Sender<Job>,
    remote: Option<Sender<Job>>,
    /// Birth times of known messages (for the queue metrics at removal).
    births: HashMap<MessageId, SystemTime>,
    /// Messages a delivery pool removed itself (every recipient delivered by one job).
    removed_early: HashSet<MessageId>,
    /// Tasks handed to the finishing pool and not yet reported.
    finishing: usize,
    /// Messages with a [`Finish::Mark`] out, and the marks that wait for it to return.
    marking: HashMap<MessageId, Marking>,
    next_delivery: u64,
    stopping: bool,
    /// The messages queued before this process started, when the caller knows them.
    queued_at_start: Option<HashSet<MessageId>>,
    /// Of those, the ones born at or after this time are new all the same: queued directly
    /// while no queue process ran (`serve::NEW_SINCE_ENV`).
    new_since: Option<SystemTime>,
}

impl Scheduler {
    /// A scheduler reading `input` and dispatching to the `local` (and `remote`) pools and
    /// the `finisher`.
    pub fn new(
        queue: Arc<Queue>,
        router: Arc<dyn Router>,
        finisher: Sender<Finish>,
        settings: Settings,
        input: Receiver<Input>,
        local: Sender<Job>,
        remote: Option<Sender<Job>>,
    ) -> Scheduler {
        let core = mta_sched::Scheduler::new(mta_sched::Config {
            concurrency_local: settings.concurrency_local,
            concurrency_remote: settings.concurrency_remote,
            queue_lifetime: settings.lifetime,
            remote_enabled: settings.remote_enabled && remote.is_some(),
            wait_for_marks: true,
            // A silent domain never holds more than half the remote slots.
            remote_per_domain: Some((settings.concurrency_remote / 2).max(1)),
            ..mta_sched::Config::default()
        });
        Scheduler {
            core,
            queue,
            router,
            finisher,
            settings,
            input,
            local,
            remote,
            births: HashMap::new(),
            removed_early: HashSet::new(),
            finishing: 0,
            marking: HashMap::new(),
            next_delivery: 1,
            queued_at_start: None,
            new_since: None,
            stopping: false,
        }
    }

    /// Names the messages that were in the queue before anything could add to it (taken
    /// before SMTP, pickup and the trigger start): they were announced by the process that
    /// saw them arrive and get no `new msg` now; every other message does, even one that
    /// arrives before this thread's first scan. Without it, whatever the first scan finds
    /// counts as queued before. Of the named ones, those born at or after `new_since` are
    /// announced all the same: `mta inject` queued them directly while no queue process
    /// ran (after the master started, or after this process's predecessor died).
    #[must_use]
    pub fn queued_at_start(
        mut self,
        ids: Vec<MessageId>,
        new_since: Option<SystemTime>,
    ) -> Scheduler {
        self.queued_at_start = Some(ids.into_iter().collect());
        self.new_since = new_since;
        self
    }

    fn status_line(&self, suffix: &str) {
        log::line(&format!(
            "status: local {}/{} remote {}/{}{suffix}",
            self.core.running(Channel::Local),
            self.settings.concurrency_local,
            self.core.running(Channel::Remote),
            self.settings.concurrency_remote
        ));
    }

    /// Runs until [`Input::Shutdown`] and every in-flight delivery has reported.
    pub fn run(mut self) {
        self.status_line("");
        log::batch(|| {
            // Messages announced before this thread ran (pickup imported at start) are new.
            while let Ok(input) = self.input.try_recv() {
                self.accept(input);
            }
            let first = if self.queued_at_start.is_some() {
                Seen::Now
            } else {
                Seen::Before
            };
            self.rescan(first);
            self.restore_holds();
        });
        loop {
            log::batch(|| self.drain());
            let running = self.core.running(Channel::Local) + self.core.running(Channel::Remote);
            if self.stopping && running == 0 && self.finishing == 0 {
                break;
            }
            let wait = self
                .core
                .poll_timeout()
                .map_or(Duration::from_mins(25), |at| {
                    at.duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                });
            if running == 0 && self.finishing == 0 && self.input.is_empty() {
                // Nothing in flight: the lines of the work just done (`end msg` last) go out
                // now instead of after the log's delay.
                log::flush();
            }
            match self.input.recv_timeout(wait) {
                Ok(first) => log::batch(|| {
                    self.accept(first);
                    for _ in 0..4096 {
                        match self.input.try_recv() {
                            Ok(more) => self.accept(more),
                            Err(_) => break,
                        }
                    }
                }),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.stopping = true,
            }
        }
        self.status_line(" exitasap");
        log::line("status: exiting");
    }

    /// Hands out what the state machine decided, in mta-sched's order: bounces, removals,
    /// then jobs (none once stopping).
    fn drain(&mut self) {
        let mut changed = false;
        while let Some(bounce) = self.core.poll_bounce() {
            self.finish(Finish::Bounce(bounce));
        }
        while let Some(id) = self.core.poll_remove() {
            if self.removed_early.remove(&id) {
                log::line(&format!("end msg {id}"));
                self.forget(id);
            } else {
                self.finish(Finish::Remove(id));
            }
        }
        if self.stopping {
            return;
        }
        let now = SystemTime::now();
        while let Some(job) = self.core.poll_job(now) {
            let job = self.job(&job);
            let pool = match job.channel {
                Channel::Local => Some(&self.local),
                Channel::Remote => self.remote.as_ref(),
            };
            // A send fails only when the pool is gone (shutdown); the job stays running in
            // the state machine, and the next start retries it.
            if pool.is_some_and(|p| p.send(job).is_ok()) {
                changed = true;
            }
        }
        if changed {
            self.status_line("");
        }
    }

    fn finish(&mut self, task: Finish) {
        // The finisher logs `bounce msg` and `end msg`: this thread's held lines (`new
        // msg`, the last results) go out first.
        log::flush_held();
        if self.finisher.send(task).is_ok() {
            self.finishing += 1;
        }
    }

    /// Makes one job's marks durable: at once when no mark of the message is out,
    /// otherwise together with every other job's that waits for it to return. A message
    /// whose jobs finish one after another (a thousand domains of one message) then costs
    /// one fsync per round trip of the finishing pool, not one per job; each job's results
    /// still count only once durable (the state machine hears of them after the fsync).
    fn mark(&mut self, id: MessageId, marks: Vec<(u32, Status)>) {
        let m = self.marking.entry(id).or_default();
        if m.out > 0 {
            m.waiting.extend(marks);
            m.waiting_jobs += 1;
        } else {
            m.out = 1;
            self.finish(Finish::Mark(id, marks));
        }
    }

    /// A [`Finish::Mark`] of `id` returned: every job it carried is confirmed to the state
    /// machine, and the marks that waited meanwhile go out together.
    fn marked(&mut self, id: MessageId) {
        let confirmed = self.marking.get(&id).map_or(1, |m| m.out);
        for _ in 0..confirmed {
            // Unknown only when the message was deleted meanwhile.
            let _ = self.core.handle_marked(id);
        }
        let next = match self.marking.get_mut(&id) {
            Some(m) if m.waiting_jobs > 0 && self.core.contains(id) => {
                m.out = std::mem::take(&mut m.waiting_jobs);
                Some(std::mem::take(&mut m.waiting))
            }
            _ => None,
        };
        match next {
            Some(marks) => self.finish(Finish::Mark(id, marks)),
            None => {
                self.marking.remove(&id);
            }
        }
    }

    fn forget(&mut self, id: MessageId) {
        if let Some(birth) = self.births.remove(&id) {
            crate::metrics::dequeued(birth);
        }
    }

    fn accept(&mut self, input: Input) {
        let now = SystemTime::now();
        match input {
            Input::New(id) => self.load(id, Seen::Now),
            Input::Committed(c) => {
                let Committed { info, head } = *c;
                let queue_uid = self.settings.queue_uid;
                self.admit(info, Seen::Now, |_| {
                    crate::origin::parse(&head, queue_uid).unwrap_or_default()
                });
            }
            Input::Rescan => self.rescan(Seen::Now),
            Input::Flush => self.core.flush(now),
            Input::Done(d) => self.record(&d),
            Input::Marked(id, result) => {
                self.finishing = self.finishing.saturating_sub(1);
                if let Err(e) = result {
                    log::line(&format!(
                        "warning: trouble marking msg {id}: {}; deliveries will be retried \
                         after a restart",
                        log::safe(e.as_bytes())
                    ));
                }
                self.marked(id);
            }
            Input::Bounced(id) => {
                self.finishing = self.finishing.saturating_sub(1);
                let _ = self.core.handle_bounced(id);
            }
            Input::BounceFailed(id) => {
                self.finishing = self.finishing.saturating_sub(1);
                let _ = self.core.handle_bounce_failed(id, now);
            }
            Input::Removed(id) => {
                self.finishing = self.finishing.saturating_sub(1);
                self.forget(id);
            }
            Input::Command(command, reply) => {
                // The operator may have gone away; the command was carried out anyway.
                let _ = reply.send(self.command(&command, now));
            }
            Input::Shutdown => self.stopping = true,
        }
    }

    /// Carries out an operator's command: the queue on disk first, then the state machine.
    fn command(&mut self, command: &Command, now: SystemTime) -> Result<String, String> {
        let mut out = String::new();
        let mut failed = Vec::new();
        let (ids, verb) = match command {
            Command::Hold(ids) => (ids, "held"),
            Command::Release(ids) => (ids, "released"),
            Command::Delete(ids) => (ids, "deleted"),
        };
        for &id in ids {
            let done = match command {
                Command::Hold(_) => self
                    .queue
                    .hold(id)
                    .map_err(|e| e.to_string())
                    .map(|()| drop(self.core.hold(id))),
                Command::Release(_) => self
                    .queue
                    .release(id)
                    .map_err(|e| e.to_string())
                    .map(|()| drop(self.core.release(id, now))),
                Command::Delete(_) => self.delete(id),
            };
            match done {
                Ok(()) => {
                    log::line(&format!("info msg {id}: {verb} by the operator"));
                    let _ = writeln!(out, "{verb} {id}");
                }
                Err(e) => failed.push(format!("msg {id}: {e}")),
            }
        }
        if failed.is_empty() {
            Ok(out)
        } else {
            Err(format!("{out}{}", failed.join("\n")))
        }
    }

    /// Removes message `id` without a bounce (`mta queue delete`). Jobs running for it
    /// finish; their results are not recorded.
    fn delete(&mut self, id: MessageId) -> Result<(), String> {
        if self.removed_early.contains(&id) {
            return Err("already delivered".into());
        }
        match self.queue.remove_delivered(id) {
            Ok(()) => {}
            Err(mta_queue::QueueError::NotFound(_)) => return Err("not in the queue".into()),
            Err(e) => return Err(e.to_string()),
        }
        if self.core.delete(id).is_ok() {
            log::line(&format!("end msg {id}"));
        }
        self.forget(id);
        Ok(())
    }

    fn rescan(&mut self, seen: Seen) {
        match self.queue.scan() {
            Ok(ids) => {
                for id in ids {
                    if !self.core.contains(id) {
                        self.load(id, seen);
                    }
                }
            }
            Err(e) => log::line(&format!("alert: unable to scan queue: {e}, will retry")),
        }
    }

    /// Holds recorded in the queue (by an operator, before a restart) apply again.
    fn restore_holds(&mut self) {
        match self.queue.holds() {
            Ok(ids) => {
                for id in ids {
                    // Unknown only if it is being removed.
                    let _ = self.core.hold(id);
                }
            }
            Err(e) => log::line(&format!("alert: unable to read holds: {e}")),
        }
    }

    /// Reads a message's envelope and statuses and gives it to the state machine; a message
    /// new to the queue gets its `new msg` and `info msg` lines.
    fn load(&mut self, id: MessageId, seen: Seen) {
        if self.core.contains(id) || self.removed_early.contains(&id) {
            return;
        }
        let info = match self.queue.info(id) {
            Ok(info) => info,
            Err(mta_queue::QueueError::NotFound(_)) => return, // deleted meanwhile
            Err(e) => {
                log::line(&format!(
                    "warning: trouble reading msg {id}: {e}; will try again later"
                ));
                return;
            }
        };
        self.admit(info, seen, |s: &Self| {
            crate::origin::of_message(&s.queue, id, s.settings.queue_uid)
        });
    }

    /// Gives a message, read by [`load`](Self::load) or known from its commit
    /// ([`Input::Committed`]), to the state machine; one new to the queue gets its `new msg`
    /// and `info msg` lines, with the origin `origin` finds.
    fn admit(
        &mut self,
        info: mta_queue::MessageInfo,
        seen: Seen,
        origin: impl FnOnce(&Self) -> crate::origin::Origin,
    ) {
        let id = info.id;
        if self.core.contains(id) || self.removed_early.contains(&id) {
            return;
        }
        // Each id is looked up once: the set empties as the queue is loaded.
        let queued_before = self
            .queued_at_start
            .as_mut()
            .is_some_and(|before| before.remove(&id));
        let seen = if queued_before && self.new_since.is_none_or(|t| info.birth < t) {
            Seen::Before
        } else {
            seen
        };
        if seen == Seen::Now {
            let origin = origin(self);
            log::line(&format!("new msg {id}"));
            log::line(&format!(
                "info msg {id}: bytes {} from <{}> qp {} uid {}",
                info.body_len,
                log::safe(info.envelope.sender.as_bytes()),
                origin.qp,
                origin.uid
            ));
        }
        let recipients = info
            .envelope
            .recipients
            .iter()
            .zip(info.statuses)
            .map(|(rcpt, status)| {
                let (address, route) = match self.router.route(rcpt) {
                    // One key for every local recipient: a message's local recipients go
                    // out in batches, read once per batch.
                    Route::Local(a) => (a, mta_sched::Route::local(Vec::new())),
                    Route::Remote(a) => {
                        let domain = a.domain().unwrap_or_default().to_vec();
                        (a, mta_sched::Route::remote(domain))
                    }
                };
                Recipient::new(address, route).with_status(status)
            })
            .collect();
        crate::metrics::queued(info.birth);
        self.births.insert(id, info.birth);
        let message = NewMessage {
            id,
            birth: info.birth,
            sender: info.envelope.sender,
            recipients,
        };
        // A duplicate is impossible: `contains` was checked above.
        let _ = self.core.handle_new(message, SystemTime::now());
    }

    /// The pool's form of a job, logging `starting delivery` for each target.
    fn job(&mut self, job: &mta_sched::Job) -> Job {
        let mut targets = Vec::with_capacity(job.targets.len());
        for t in &job.targets {
            log::line(&format!(
                "starting delivery {}: msg {} to {} {}",
                self.next_delivery,
                job.message,
                job.channel().name(),
                log::safe(t.address.as_bytes())
            ));
            targets.push(Target {
                delivery: self.next_delivery,
                index: t.index,
                address: t.address.clone(),
                attempts: t.attempts,
            });
            self.next_delivery += 1;
        }
        // With a VERP request every job has one target: its own sender.
        let sender = job.targets.first().map_or_else(
            || job.sender.clone(),
            |t| mta_verp::sender_for_recipient(&job.sender, &t.address),
        );
        Job {
            job: job.id,
            id: job.message,
            sender,
            channel: job.channel(),
            targets,
            birth: job.birth,
            whole: job.whole,
        }
    }

    /// A finished job: logs its results, lets the state machine decide the new statuses,
    /// and hands them to the finishing pool to make durable.
    fn record(&mut self, d: &Done) {
        let job = &d.job;
        for (target, result) in job.targets.iter().zip(&d.results) {
            // qmail's reports end in a newline, logged as the trailing `/`.
            let mut raw = result.text().as_bytes().to_vec();
            if !raw.ends_with(b"\n") {
                raw.push(b'\n');
            }
            let text = log::safe(&raw);
            let word = match result {
                DeliveryResult::Delivered { .. } => "success",
                DeliveryResult::Failed { .. } => "failure",
                _ => "deferral",
            };
            log::line(&format!("delivery {}: {word}: {text}", target.delivery));
            crate::metrics::delivery(job.channel, result);
        }
        let Ok(recorded) = self.core.handle_done(job.job, &d.results, d.started) else {
            return;
        };
        if d.removed {
            // Nothing to mark: the message is gone. Its removal is still the state
            // machine's to hand out (then only logged), unless it is held meanwhile.
            self.removed_early.insert(job.id);
            if !recorded.marks.is_empty() {
                let _ = self.core.handle_marked(job.id);
            }
            if self.core.is_held(job.id) {
                let _ = self.core.delete(job.id);
                self.removed_early.remove(&job.id);
                log::line(&format!("end msg {}", job.id));
                self.forget(job.id);
            }
        } else if !recorded.marks.is_empty() {
            self.mark(recorded.message, recorded.marks);
        }
        self.status_line("");
    }
}

/// The statuses a queue listing shows for one recipient: `(state, attempts, next retry,
/// last error)` with state `pending`, `deferred`, `delivered` or `failed`.
pub fn describe(status: &Status) -> (&'static str, u32, Option<SystemTime>, Option<&[u8]>) {
    match status {
        Status::Pending => ("pending", 0, None, None),
        Status::Deferred {
            attempts,
            next_attempt,
            reason,
        } => ("deferred", *attempts, Some(*next_attempt), Some(reason)),
        Status::Delivered => ("delivered", 0, None, None),
        Status::Failed(reason) => ("failed", 0, None, Some(reason)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    /// Every recipient is remote.
    struct AllRemote;
    impl Router for AllRemote {
        fn route(&self, recipient: &Address) -> Route {
            Route::Remote(recipient.clone())
        }
    }

    fn done(job: Job) -> Input {
        let results = job
            .targets
            .iter()
            .map(|_| DeliveryResult::Deferred {
                text: "try later".into(),
                status: None,
            })
            .collect();
        Input::Done(Box::new(Done {
            job,
            results,
            started: SystemTime::now(),
            removed: false,
        }))
    }

    /// Issue 22: while one job's marks are being made durable, the marks of the message's
    /// other jobs wait and then go out together in one `Finish::Mark`: one fsync for them,
    /// not one per job. Each job still counts as done only after its marks returned.
    #[test]
    fn marks_of_one_message_wait_for_the_one_out_and_go_together() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(
            Queue::open(dir.path().join("queue"), mta_queue::QueueOptions::default()).unwrap(),
        );
        let env = Envelope::new("a@example.org", ["x@a.test", "y@b.test", "z@c.test"]);
        let id = queue.enqueue(&env, &b"Subject: t\n\nhi\n"[..]).unwrap();
        let (input_tx, input_rx) = unbounded();
        let (finish_tx, finish_rx) = unbounded();
        let (local_tx, _local_rx) = unbounded();
        let (remote_tx, remote_rx) = unbounded();
        let settings = Settings {
            concurrency_local: 2,
            concurrency_remote: 10,
            lifetime: Duration::from_hours(1),
            remote_enabled: true,
            queue_uid: 0,
        };
        let scheduler = Scheduler::new(
            Arc::clone(&queue),
            Arc::new(AllRemote),
            finish_tx,
            settings,
            input_rx,
            local_tx,
            Some(remote_tx),
        );
        let running = std::thread::spawn(move || scheduler.run());
        input_tx.send(Input::New(id)).unwrap();
        let wait = Duration::from_secs(10);
        let jobs: Vec<Job> = (0..3)
            .map(|_| remote_rx.recv_timeout(wait).unwrap())
            .collect();
        let mut jobs = jobs.into_iter();

        // The first job's marks go out at once.
        input_tx.send(done(jobs.next().unwrap())).unwrap();
        let first = match finish_rx.recv_timeout(wait).unwrap() {
            Finish::Mark(m, marks) if m == id && marks.len() == 1 => marks[0].0,
            other => panic!("expected the first job's mark, got {other:?}"),
        };
        // The others wait while it is out.
        input_tx.send(done(jobs.next().unwrap())).unwrap();
        input_tx.send(done(jobs.next().unwrap())).unwrap();
        assert!(finish_rx.recv_timeout(Duration::from_millis(300)).is_err());
        // It returns: both waiting jobs' marks go out in one task.
        input_tx.send(Input::Marked(id, Ok(()))).unwrap();
        match finish_rx.recv_timeout(wait).unwrap() {
            Finish::Mark(m, marks) => {
                assert_eq!(m, id);
                let mut indexes: Vec<u32> = marks.iter().map(|(i, _)| *i).collect();
                indexes.sort_unstable();
                assert_eq!(indexes.len(), 2);
                assert!(!indexes.contains(&first));
            }
            other => panic!("expected the merged marks, got {other:?}"),
        }
        // Nothing more until that one returns; then the scheduler is idle again (every
        // job counted once: a missing confirmation would keep it from stopping).
        assert!(finish_rx.recv_timeout(Duration::from_millis(300)).is_err());
        input_tx.send(Input::Marked(id, Ok(()))).unwrap();
        input_tx.send(Input::Shutdown).unwrap();
        let stopped = std::thread::spawn(move || running.join());
        let deadline = std::time::Instant::now() + wait;
        while !stopped.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the scheduler did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
