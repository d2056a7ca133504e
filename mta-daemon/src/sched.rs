//! The scheduler: our qmail-send.
//!
//! One thread owns the in-memory view of the queue. It learns of new messages at once
//! (a channel message from an SMTP session or a forward, or a trigger pull from
//! `mta inject`), splits each message's recipients into local and remote
//! ([`crate::route`]), hands deliveries to the local and remote pools within
//! `concurrencylocal` / `concurrencyremote`, records each result durably in the queue (results
//! that arrive together share one fsync through `mark_many`), retries deferred recipients on
//! qmail's schedule, turns deferrals into failures after `queuelifetime`, and when a message
//! is finished queues its bounce (qmail-send's single, double and discarded triple bounce)
//! before removing it.
//!
//! Log order is qmail-send's: `new msg` and `info msg` once per message, when it arrives
//! while this process runs (not again for messages found queued at start), then each
//! `starting delivery` and its result, then `bounce msg` and `end msg` (written by the
//! finishing threads after this thread's held lines).
//!
//! Crash reasoning: a result is marked durably before the message is removed or bounced;
//! a crash between a delivery and its mark repeats that one delivery (qmail accepts the same
//! duplicate); a crash between queueing a bounce and removing the message sends the bounce
//! twice, and so may a power loss soon after the removal (removals are not synced, as in
//! qmail). Nothing accepted is lost: on start every message in the queue is rescheduled.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use mta_core::{Address, DeliveryResult, Envelope};
use mta_queue::{MessageId, Queue, Status};

use crate::log;
use crate::pool::{Done, Finish};
use crate::route::{Route, Router};

/// Which pool a delivery belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Local delivery (.qmail, maildir, mbox, programs).
    Local,
    /// Remote delivery over SMTP.
    Remote,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Local => "local",
            Channel::Remote => "remote",
        }
    }
}

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

/// Work handed to a pool: one recipient for local delivery; for remote delivery, every
/// due recipient of one message at one domain with one sender, so they share one SMTP
/// transaction (qmail-remote sent one recipient per connection; we batch as the issue
/// asks).
#[derive(Clone, Debug)]
pub struct Job {
    /// The message.
    pub id: MessageId,
    /// The envelope sender for this delivery (VERP applied).
    pub sender: Address,
    /// Which pool.
    pub channel: Channel,
    /// The recipients; never empty.
    pub targets: Vec<Target>,
    /// The message's birth time (retry schedule and `queuelifetime`).
    pub birth: SystemTime,
    /// The targets are every recipient of the message: if all are delivered, the pool
    /// may remove the message at once instead of recording each result first.
    pub whole: bool,
}

/// What the scheduler's single input channel carries.
#[derive(Debug)]
pub enum Input {
    /// A message was committed to the queue.
    New(MessageId),
    /// Something outside (inject) committed messages: rescan the queue for unknown ids.
    Rescan,
    /// Retry everything now (`mta queue flush`).
    Flush,
    /// A job finished and its statuses were recorded.
    Done(Box<Done>),
    /// A finished message was bounced (if needed) and removed.
    Finished(MessageId),
    /// Finishing a message failed (its bounce could not be queued); retry later.
    Unfinished(MessageId),
    /// Stop: finish in-flight deliveries, start no new ones.
    Shutdown,
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

struct Recipient {
    route: Route,
    status: Status,
    busy: bool,
}

struct Message {
    envelope: Envelope,
    birth: SystemTime,
    recipients: Vec<Recipient>,
    finishing: bool,
}

/// The scheduler state; [`Scheduler::run`] is its thread.
pub struct Scheduler {
    queue: Arc<Queue>,
    router: Arc<dyn Router>,
    finisher: Sender<Finish>,
    settings: Settings,
    input: Receiver<Input>,
    local: Sender<Job>,
    remote: Option<Sender<Job>>,
    messages: HashMap<MessageId, Message>,
    timers: BinaryHeap<Reverse<(SystemTime, MessageId)>>,
    ready: [VecDeque<(MessageId, u32)>; 2],
    busy: [usize; 2],
    domain_busy: HashMap<Vec<u8>, usize>,
    finishing: usize,
    next_delivery: u64,
    stopping: bool,
    /// The messages queued before this process started, when the caller knows them.
    queued_at_start: Option<HashSet<MessageId>>,
}

/// Most recipients of one message in one local job.
const LOCAL_BATCH: usize = 64;

const BOUNCE_RETRY: Duration = Duration::from_secs(123);

impl Scheduler {
    /// A scheduler reading `input` and dispatching to the `local` (and `remote`) pools.
    pub fn new(
        queue: Arc<Queue>,
        router: Arc<dyn Router>,
        finisher: Sender<Finish>,
        settings: Settings,
        input: Receiver<Input>,
        local: Sender<Job>,
        remote: Option<Sender<Job>>,
    ) -> Scheduler {
        Scheduler {
            queue,
            router,
            finisher,
            settings,
            input,
            local,
            remote,
            messages: HashMap::new(),
            timers: BinaryHeap::new(),
            ready: [VecDeque::new(), VecDeque::new()],
            busy: [0, 0],
            domain_busy: HashMap::new(),
            finishing: 0,
            next_delivery: 1,
            queued_at_start: None,
            stopping: false,
        }
    }

    /// Names the messages that were in the queue before anything could add to it (taken
    /// before SMTP, pickup and the trigger start): they were announced by the process that
    /// saw them arrive and get no `new msg` now; every other message does, even one that
    /// arrives before this thread's first scan. Without it, whatever the first scan finds
    /// counts as queued before.
    #[must_use]
    pub fn queued_at_start(mut self, ids: Vec<MessageId>) -> Scheduler {
        self.queued_at_start = Some(ids.into_iter().collect());
        self
    }

    fn status_line(&self, suffix: &str) {
        log::line(&format!(
            "status: local {}/{} remote {}/{}{suffix}",
            self.busy[0],
            self.settings.concurrency_local,
            self.busy[1],
            self.settings.concurrency_remote
        ));
    }

    /// Runs until [`Input::Shutdown`] and every in-flight delivery has reported.
    pub fn run(mut self) {
        self.status_line("");
        // Messages queued before this start were logged as new by the process that saw
        // them arrive (qmail logs `new msg` once, at todo processing).
        log::batch(|| {
            // Messages announced before this thread ran (pickup imported at start) are new.
            let mut done = Vec::new();
            while let Ok(input) = self.input.try_recv() {
                self.accept(input, &mut done);
            }
            if !done.is_empty() {
                self.record(done);
            }
            let first = if self.queued_at_start.is_some() {
                Seen::Now
            } else {
                Seen::Before
            };
            self.rescan(first);
        });
        loop {
            log::batch(|| self.dispatch());
            if self.stopping && self.busy == [0, 0] && self.finishing == 0 {
                break;
            }
            let now = SystemTime::now();
            let wait = self
                .timers
                .peek()
                .map_or(Duration::from_mins(25), |Reverse((t, _))| {
                    t.duration_since(now).unwrap_or(Duration::ZERO)
                });
            match self.input.recv_timeout(wait) {
                Ok(first) => log::batch(|| {
                    let mut done = Vec::new();
                    self.accept(first, &mut done);
                    while done.len() < 4096 {
                        match self.input.try_recv() {
                            Ok(more) => self.accept(more, &mut done),
                            Err(_) => break,
                        }
                    }
                    if !done.is_empty() {
                        self.record(done);
                    }
                }),
                Err(RecvTimeoutError::Timeout) => log::batch(|| self.fire_timers()),
                Err(RecvTimeoutError::Disconnected) => self.stopping = true,
            }
        }
        self.status_line(" exitasap");
        log::line("status: exiting");
    }

    fn accept(&mut self, input: Input, done: &mut Vec<Done>) {
        match input {
            Input::New(id) => self.load(id, Seen::Now),
            Input::Rescan => self.rescan(Seen::Now),
            Input::Flush => self.flush(),
            Input::Done(d) => done.push(*d),
            Input::Finished(id) => {
                self.finishing = self.finishing.saturating_sub(1);
                if let Some(m) = self.messages.remove(&id) {
                    crate::metrics::dequeued(m.birth);
                }
            }
            Input::Unfinished(id) => {
                self.finishing = self.finishing.saturating_sub(1);
                if let Some(m) = self.messages.get_mut(&id) {
                    m.finishing = false;
                }
                self.timers
                    .push(Reverse((SystemTime::now() + BOUNCE_RETRY, id)));
            }
            Input::Shutdown => self.stopping = true,
        }
    }

    fn rescan(&mut self, seen: Seen) {
        match self.queue.scan() {
            Ok(ids) => {
                for id in ids {
                    if !self.messages.contains_key(&id) {
                        self.load(id, seen);
                    }
                }
            }
            Err(e) => log::line(&format!("alert: unable to scan queue: {e}, will retry")),
        }
    }

    fn flush(&mut self) {
        let now = SystemTime::now();
        for (id, msg) in &mut self.messages {
            for r in &mut msg.recipients {
                if let Status::Deferred { next_attempt, .. } = &mut r.status {
                    *next_attempt = now;
                }
            }
            self.timers.push(Reverse((now, *id)));
        }
    }

    /// Reads a message's envelope and statuses and schedules what is due; a message new
    /// to the queue gets its `new msg` and `info msg` lines.
    fn load(&mut self, id: MessageId, seen: Seen) {
        if self.messages.contains_key(&id) {
            return;
        }
        // Each id is looked up once: the set empties as the queue is loaded.
        let queued_before = self
            .queued_at_start
            .as_mut()
            .is_some_and(|before| before.remove(&id));
        let seen = if queued_before { Seen::Before } else { seen };
        let info = match self.queue.info(id) {
            Ok(info) => info,
            Err(e) => {
                log::line(&format!(
                    "warning: trouble reading msg {id}: {e}; will try again later"
                ));
                return;
            }
        };
        if seen == Seen::Now {
            let origin = crate::origin::of_message(&self.queue, id, self.settings.queue_uid);
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
            .map(|(rcpt, status)| Recipient {
                route: self.router.route(rcpt),
                status,
                busy: false,
            })
            .collect();
        crate::metrics::queued(info.birth);
        self.messages.insert(
            id,
            Message {
                envelope: info.envelope,
                birth: info.birth,
                recipients,
                finishing: false,
            },
        );
        self.timers.push(Reverse((SystemTime::now(), id)));
        self.fire_timers();
        self.maybe_finish(id);
    }

    /// Moves every recipient whose time has come into the ready lists.
    fn fire_timers(&mut self) {
        let now = SystemTime::now();
        let mut complete = Vec::new();
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let remote_enabled = self.settings.remote_enabled;
            let Some(msg) = self.messages.get_mut(&id) else {
                continue;
            };
            for (i, r) in msg.recipients.iter_mut().enumerate() {
                if r.busy {
                    continue;
                }
                let due = match &r.status {
                    Status::Pending => true,
                    Status::Deferred { next_attempt, .. } => *next_attempt <= now,
                    _ => false,
                };
                if !due {
                    continue;
                }
                let ch = match r.route {
                    Route::Local(_) => 0,
                    Route::Remote(_) if remote_enabled => 1,
                    Route::Remote(_) => continue,
                };
                r.busy = true;
                self.ready[ch].push_back((id, i as u32));
            }
            if msg
                .recipients
                .iter()
                .all(|r| !r.busy && r.status.is_final())
            {
                complete.push(id);
            }
        }
        for id in complete {
            self.finish(id);
        }
    }

    fn dispatch(&mut self) {
        if self.stopping {
            return;
        }
        while self.busy[0] < self.settings.concurrency_local {
            let Some((id, index)) = self.ready[0].pop_front() else {
                break;
            };
            // A long list is cut into batches (one message read and one durable mark per
            // batch), small enough that every delivery slot gets work.
            let batch = (self.ready[0].len() / self.settings.concurrency_local.max(1))
                .clamp(1, LOCAL_BATCH);
            let verp = self
                .messages
                .get(&id)
                .is_some_and(|m| mta_verp::is_verp_request(&m.envelope.sender));
            let mut indexes = vec![index];
            while !verp && indexes.len() < batch {
                match self.ready[0].front() {
                    Some(&(next_id, next)) if next_id == id => {
                        indexes.push(next);
                        self.ready[0].pop_front();
                    }
                    _ => break,
                }
            }
            let Some(job) = self.job(id, &indexes, Channel::Local) else {
                continue;
            };
            if self.local.send(job).is_ok() {
                self.busy[0] += 1;
                self.status_line("");
            }
        }
        // Remote: one slow domain may hold at most half the slots (fairness).
        let per_domain = (self.settings.concurrency_remote / 2).max(1);
        let mut skipped = VecDeque::new();
        while self.busy[1] < self.settings.concurrency_remote {
            let Some((id, index)) = self.ready[1].pop_front() else {
                break;
            };
            let Some((domain, sender)) = self.remote_key(id, index) else {
                continue;
            };
            if self.domain_busy.get(&domain).copied().unwrap_or(0) >= per_domain {
                skipped.push_back((id, index));
                continue;
            }
            // Batch every ready recipient of this message with the same domain and sender.
            let mut indexes = vec![index];
            let mut rest = VecDeque::with_capacity(self.ready[1].len());
            while let Some((other_id, other)) = self.ready[1].pop_front() {
                if other_id == id
                    && self.remote_key(id, other).as_ref()
                        == Some(&(domain.clone(), sender.clone()))
                {
                    indexes.push(other);
                } else {
                    rest.push_back((other_id, other));
                }
            }
            self.ready[1] = rest;
            let Some(job) = self.job(id, &indexes, Channel::Remote) else {
                continue;
            };
            let sent = self.remote.as_ref().is_some_and(|s| s.send(job).is_ok());
            if sent {
                self.busy[1] += 1;
                *self.domain_busy.entry(domain).or_default() += 1;
                self.status_line("");
            }
        }
        skipped.extend(self.ready[1].drain(..));
        self.ready[1] = skipped;
    }

    /// The (lowercased domain, sender) a remote recipient is grouped by.
    fn remote_key(&self, id: MessageId, index: u32) -> Option<(Vec<u8>, Address)> {
        let msg = self.messages.get(&id)?;
        let Route::Remote(a) = &msg.recipients.get(index as usize)?.route else {
            return None;
        };
        let sender = mta_verp::sender_for_recipient(&msg.envelope.sender, a);
        Some((a.domain().unwrap_or_default().to_ascii_lowercase(), sender))
    }

    /// Builds a job for `indexes` of message `id`, logging `starting delivery` for each.
    fn job(&mut self, id: MessageId, indexes: &[u32], channel: Channel) -> Option<Job> {
        let msg = self.messages.get(&id)?;
        let mut targets = Vec::with_capacity(indexes.len());
        let mut sender = None;
        for &index in indexes {
            let r = msg.recipients.get(index as usize)?;
            let address = match &r.route {
                Route::Local(a) | Route::Remote(a) => a.clone(),
            };
            sender.get_or_insert_with(|| {
                mta_verp::sender_for_recipient(&msg.envelope.sender, &address)
            });
            log::line(&format!(
                "starting delivery {}: msg {id} to {} {}",
                self.next_delivery,
                channel.name(),
                log::safe(address.as_bytes())
            ));
            let attempts = match r.status {
                Status::Deferred { attempts, .. } => attempts,
                _ => 0,
            };
            targets.push(Target {
                delivery: self.next_delivery,
                index,
                address,
                attempts,
            });
            self.next_delivery += 1;
        }
        Some(Job {
            id,
            sender: sender?,
            channel,
            whole: targets.len() == msg.recipients.len(),
            targets,
            birth: msg.birth,
        })
    }

    /// Applies recorded results: logs them, updates the in-memory statuses, schedules
    /// retries, and hands complete messages to the finishing pool.
    fn record(&mut self, done: Vec<Done>) {
        let now = SystemTime::now();
        let mut touched = Vec::new();
        for d in done {
            let job = &d.job;
            let ch = usize::from(job.channel == Channel::Remote);
            self.busy[ch] = self.busy[ch].saturating_sub(1);
            if job.channel == Channel::Remote
                && let Some(dom) = job.targets.first().and_then(|t| t.address.domain())
                && let Some(n) = self.domain_busy.get_mut(&dom.to_ascii_lowercase())
            {
                *n = n.saturating_sub(1);
            }
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
            if let Err(e) = &d.marked {
                log::line(&format!(
                    "warning: trouble marking msg {}: {}; deliveries will be retried",
                    job.id,
                    log::safe(e.as_bytes())
                ));
            }
            if d.removed {
                log::line(&format!("end msg {}", job.id));
                if let Some(m) = self.messages.remove(&job.id) {
                    crate::metrics::dequeued(m.birth);
                }
                continue;
            }
            let Some(msg) = self.messages.get_mut(&job.id) else {
                continue;
            };
            for (i, target) in job.targets.iter().enumerate() {
                let Some(r) = msg.recipients.get_mut(target.index as usize) else {
                    continue;
                };
                r.busy = false;
                match (&d.marked, d.statuses.get(i)) {
                    (Ok(()), Some(status)) => {
                        if let Status::Deferred { next_attempt, .. } = status {
                            self.timers.push(Reverse((*next_attempt, job.id)));
                        }
                        r.status = status.clone();
                    }
                    // Not durable (or a short answer): try again later.
                    _ => self.timers.push(Reverse((now + BOUNCE_RETRY, job.id))),
                }
            }
            touched.push(job.id);
        }
        touched.dedup();
        for id in touched {
            self.maybe_finish(id);
        }
        self.status_line("");
    }

    fn maybe_finish(&mut self, id: MessageId) {
        let complete = self.messages.get(&id).is_some_and(|m| {
            !m.finishing && m.recipients.iter().all(|r| !r.busy && r.status.is_final())
        });
        if complete {
            self.finish(id);
        }
    }

    /// Hands a complete message to the finishing pool (bounce, then removal).
    fn finish(&mut self, id: MessageId) {
        let Some(msg) = self.messages.get_mut(&id) else {
            return;
        };
        if msg.finishing {
            return;
        }
        let failures: Vec<(Address, Vec<u8>)> = msg
            .envelope
            .recipients
            .iter()
            .zip(&msg.recipients)
            .filter_map(|(a, r)| match &r.status {
                Status::Failed(t) => Some((a.clone(), t.clone())),
                _ => None,
            })
            .collect();
        let f = Finish {
            id,
            envelope: msg.envelope.clone(),
            failures,
        };
        // The finisher logs `bounce msg` and `end msg`: this thread's held lines (`new
        // msg`, the last results) go out first.
        log::flush_held();
        if self.finisher.send(f).is_ok() {
            msg.finishing = true;
            self.finishing += 1;
        }
    }
}
