//! [`Scheduler`]: the state machine.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use mta_core::{Address, DeliveryResult};
use mta_queue::{MessageId, Status};

use crate::ready::Ready;
use crate::types::VERP_MARKER;
use crate::{
    Bounce, BounceKind, Channel, Config, Failure, Job, JobId, NewMessage, Recorded, Route,
    SchedError, Target,
};

/// The sentence qmail-send appends to a deferral's report when the message has been queued
/// longer than `queuelifetime`, turning it into a failure (the same text as
/// `mta_verp::QUEUE_LIFETIME_TEXT`).
pub const LIFETIME_TEXT: &str =
    "I'm not going to try again; this message has been in the queue too long.\n";

/// Where one recipient is in the scheduler (its queue [`Status`] is kept beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Final, held, or parked (remote disabled): on no list.
    Idle,
    /// Waiting for its retry time: a timer entry of this generation.
    Timed(u64),
    /// Due: a ready entry of this generation.
    Ready(u64),
    /// In a running job.
    Running(JobId),
}

/// Where a message is on its way out (qmail-send: deliveries, then bounce, then removal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Some recipient is not final yet.
    Delivering,
    /// All final, some failed: on the bounce list (entry of this generation).
    BounceQueued(u64),
    /// The driver's injection failed: offered again when this timer fires.
    BounceRetry(u64),
    /// Held before its bounce was handed out.
    BounceParked,
    /// Handed out by `poll_bounce`, awaiting `handle_bounced`.
    BounceOut,
    /// On the removal list (entry of this generation).
    RemoveQueued(u64),
    /// Held before its removal was handed out.
    RemoveParked,
}

#[derive(Debug)]
struct Rcpt {
    address: Address,
    route: Route,
    key: Vec<u8>,
    status: Status,
    state: State,
}

#[derive(Debug)]
struct Msg {
    sender: Address,
    birth: SystemTime,
    verp: bool,
    held: bool,
    rcpts: Vec<Rcpt>,
    unfinished: usize,
    failed: usize,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retry {
        id: MessageId,
        index: u32,
        generation: u64,
    },
    Bounce {
        id: MessageId,
        generation: u64,
    },
}

#[derive(Debug)]
struct RunningJob {
    message: MessageId,
    started: SystemTime,
    channel: Channel,
    key: Vec<u8>,
    indexes: Vec<u32>,
}

/// qmail-send's decisions for a whole queue. See the [crate docs](crate) for the driver
/// loop and the order of the polls.
///
/// Inputs: [`handle_new`](Self::handle_new), [`handle_done`](Self::handle_done),
/// [`handle_bounced`](Self::handle_bounced), [`handle_bounce_failed`](Self::handle_bounce_failed),
/// [`handle_timeout`](Self::handle_timeout). Commands: [`hold`](Self::hold),
/// [`release`](Self::release), [`flush`](Self::flush), [`delete`](Self::delete),
/// [`set_concurrency`](Self::set_concurrency). Outputs: [`poll_bounce`](Self::poll_bounce),
/// [`poll_remove`](Self::poll_remove), [`poll_job`](Self::poll_job),
/// [`poll_timeout`](Self::poll_timeout). Getters for metrics: [`messages`](Self::messages),
/// [`oldest_birth`](Self::oldest_birth), [`running`](Self::running),
/// [`running_at`](Self::running_at), [`waiting`](Self::waiting).
#[derive(Debug)]
pub struct Scheduler {
    config: Config,
    messages: HashMap<MessageId, Msg>,
    births: BTreeSet<(SystemTime, MessageId)>,
    timers: BinaryHeap<Reverse<(SystemTime, Timer)>>,
    ready: Ready,
    jobs: HashMap<JobId, RunningJob>,
    running: [usize; 2],
    bounces: VecDeque<(MessageId, u64)>,
    removals: VecDeque<(MessageId, u64)>,
    next_job: u64,
    next_generation: u64,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(config: Config) -> Scheduler {
        Scheduler {
            config,
            messages: HashMap::new(),
            births: BTreeSet::new(),
            timers: BinaryHeap::new(),
            ready: Ready::default(),
            jobs: HashMap::new(),
            running: [0, 0],
            bounces: VecDeque::new(),
            removals: VecDeque::new(),
            next_job: 1,
            next_generation: 1,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- getters -------------------------------------------------------------------

    /// Messages known (`mta_queue_messages`): from `handle_new` until `poll_remove` or
    /// `delete`.
    pub fn messages(&self) -> usize {
        self.messages.len()
    }

    /// The oldest known message's birth (for `mta_queue_oldest_seconds`).
    pub fn oldest_birth(&self) -> Option<SystemTime> {
        self.births.first().map(|(t, _)| *t)
    }

    /// Jobs running on `channel`.
    pub fn running(&self, channel: Channel) -> usize {
        self.running[channel.slot()]
    }

    /// Recipients due on `channel` and waiting for a slot.
    pub fn waiting(&self, channel: Channel) -> usize {
        self.ready.waiting(channel)
    }

    /// Remote jobs running for `domain` (compared without regard to ASCII case).
    pub fn running_at(&self, domain: &[u8]) -> usize {
        self.ready.domain_running(&domain.to_ascii_lowercase())
    }

    /// Whether message `id` is known.
    pub fn contains(&self, id: MessageId) -> bool {
        self.messages.contains_key(&id)
    }

    /// Whether message `id` is held.
    pub fn is_held(&self, id: MessageId) -> bool {
        self.messages.get(&id).is_some_and(|m| m.held)
    }

    // ---- inputs --------------------------------------------------------------------

    /// A message to schedule: just committed (every recipient [`Status::Pending`]), or
    /// found in the queue at startup with the statuses recorded there. Pending recipients
    /// are due at once; deferred ones at their `next_attempt` (at once if that has passed);
    /// final ones count toward the message's completion. A message with nothing left to do
    /// goes straight to its bounce or removal.
    ///
    /// # Errors
    /// [`SchedError::DuplicateMessage`] if `message.id` is already known (a rescan can
    /// simply ignore it).
    pub fn handle_new(&mut self, message: NewMessage, now: SystemTime) -> Result<(), SchedError> {
        let id = message.id;
        if self.messages.contains_key(&id) {
            return Err(SchedError::DuplicateMessage(id));
        }
        let mut due = Vec::with_capacity(message.recipients.len());
        let rcpts: Vec<Rcpt> = message
            .recipients
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                match &r.status {
                    Status::Pending => due.push((i as u32, now)),
                    Status::Deferred { next_attempt, .. } => due.push((i as u32, *next_attempt)),
                    _ => {}
                }
                Rcpt {
                    key: r.route.key(),
                    address: r.address,
                    route: r.route,
                    status: r.status,
                    state: State::Idle,
                }
            })
            .collect();
        let unfinished = rcpts.iter().filter(|r| !r.status.is_final()).count();
        let failed = rcpts
            .iter()
            .filter(|r| matches!(r.status, Status::Failed(_)))
            .count();
        self.births.insert((message.birth, id));
        self.messages.insert(
            id,
            Msg {
                verp: message.sender.as_bytes().ends_with(VERP_MARKER),
                sender: message.sender,
                birth: message.birth,
                held: false,
                rcpts,
                unfinished,
                failed,
                phase: Phase::Delivering,
            },
        );
        for (index, at) in due {
            self.schedule(id, index, at, now);
        }
        self.maybe_finish(id);
        Ok(())
    }

    /// A job finished: one result per target, in the job's order (a missing result counts
    /// as a deferral; extra ones are ignored). Frees the job's slot and decides each
    /// target's new status:
    ///
    /// - delivered and failed are final;
    /// - a deferral is retried at the channel's [`RetrySchedule`](mta_queue::retry::RetrySchedule)
    ///   time from the message's birth (qmail: `birth + (isqrt(now - birth) + skip)^2`,
    ///   never earlier than one second after `now`), with one more attempt counted;
    /// - a deferral once the message is `queue_lifetime` old becomes a failure with
    ///   [`LIFETIME_TEXT`] appended (qmail-send's "dying" pass), unless the message is held.
    ///
    /// As in qmail-send, the schedule and the lifetime count from the moment the attempt
    /// started (the `now` given to [`poll_job`](Self::poll_job)), so on-time attempts fall
    /// exactly at qmail's times however long each one takes. A retry time that has already
    /// passed when the job ends (a very slow attempt) is moved to one second after `now`.
    ///
    /// The returned [`Recorded`] lists the statuses to make durable. A job of a message
    /// deleted meanwhile only frees its slot and records nothing.
    ///
    /// # Errors
    /// [`SchedError::UnknownJob`] if `job` is not running.
    pub fn handle_done(
        &mut self,
        job: JobId,
        results: &[DeliveryResult],
        now: SystemTime,
    ) -> Result<Recorded, SchedError> {
        let run = self.jobs.remove(&job).ok_or(SchedError::UnknownJob(job))?;
        let slot = run.channel.slot();
        self.running[slot] = self.running[slot].saturating_sub(1);
        if run.channel == Channel::Remote {
            self.ready.remote_done(&run.key);
        }
        let mut recorded = Recorded {
            message: run.message,
            marks: Vec::with_capacity(run.indexes.len()),
            finished: false,
        };
        let Some(msg) = self.messages.get_mut(&run.message) else {
            return Ok(recorded);
        };
        let mut retries = Vec::new();
        for (i, &index) in run.indexes.iter().enumerate() {
            let Some(r) = msg.rcpts.get_mut(index as usize) else {
                continue;
            };
            if r.state != State::Running(job) {
                continue;
            }
            let schedule = match run.channel {
                Channel::Local => &*self.config.retry_local,
                Channel::Remote => &*self.config.retry_remote,
            };
            let status = decide(
                results.get(i),
                &r.status,
                msg.birth,
                (run.started, now),
                !msg.held
                    && mta_queue::retry::is_dying(
                        msg.birth,
                        run.started,
                        self.config.queue_lifetime,
                    ),
                schedule,
            );
            r.state = State::Idle;
            match &status {
                Status::Deferred { next_attempt, .. } => retries.push((index, *next_attempt)),
                Status::Failed(_) => {
                    msg.unfinished = msg.unfinished.saturating_sub(1);
                    msg.failed += 1;
                }
                _ => msg.unfinished = msg.unfinished.saturating_sub(1),
            }
            r.status = status.clone();
            recorded.marks.push((index, status));
        }
        recorded.finished = msg.unfinished == 0;
        for (index, at) in retries {
            self.schedule(run.message, index, at, now);
        }
        self.maybe_finish(run.message);
        Ok(recorded)
    }

    /// The driver queued the bounce [`poll_bounce`](Self::poll_bounce) handed out for
    /// `message` (or discarded it, for [`BounceKind::Discard`]): the message may now be
    /// removed, and [`poll_remove`](Self::poll_remove) will name it (after a
    /// [`release`](Self::release), if it is held).
    ///
    /// # Errors
    /// [`SchedError::UnknownMessage`], or [`SchedError::NoBounceOut`] when no bounce of it
    /// is out.
    pub fn handle_bounced(&mut self, message: MessageId) -> Result<(), SchedError> {
        let msg = self
            .messages
            .get_mut(&message)
            .ok_or(SchedError::UnknownMessage(message))?;
        if msg.phase != Phase::BounceOut {
            return Err(SchedError::NoBounceOut(message));
        }
        msg.phase = if msg.held {
            Phase::RemoveParked
        } else {
            self.next_generation += 1;
            self.removals.push_back((message, self.next_generation));
            Phase::RemoveQueued(self.next_generation)
        };
        Ok(())
    }

    /// Queueing the bounce failed (a full disk, say): it is offered again after
    /// [`Config::bounce_retry`] (qmail: 123 s). The message is not removed meanwhile.
    ///
    /// # Errors
    /// As [`handle_bounced`](Self::handle_bounced).
    pub fn handle_bounce_failed(
        &mut self,
        message: MessageId,
        now: SystemTime,
    ) -> Result<(), SchedError> {
        let msg = self
            .messages
            .get_mut(&message)
            .ok_or(SchedError::UnknownMessage(message))?;
        if msg.phase != Phase::BounceOut {
            return Err(SchedError::NoBounceOut(message));
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        msg.phase = Phase::BounceRetry(generation);
        self.timers.push(Reverse((
            now + self.config.bounce_retry,
            Timer::Bounce {
                id: message,
                generation,
            },
        )));
        Ok(())
    }

    /// Fires every timer due at `now`: deferred recipients whose retry time has come join
    /// the ready lists, bounces to retry are offered again. [`poll_job`](Self::poll_job)
    /// calls it itself.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Retry {
                    id,
                    index,
                    generation,
                } => {
                    let Some(msg) = self.messages.get_mut(&id) else {
                        continue;
                    };
                    let Some(r) = msg.rcpts.get_mut(index as usize) else {
                        continue;
                    };
                    if r.state == State::Timed(generation) {
                        r.state = State::Ready(generation);
                        self.ready
                            .push(id, r.route.channel(), &r.key, index, generation);
                    }
                }
                Timer::Bounce { id, generation } => {
                    let Some(msg) = self.messages.get_mut(&id) else {
                        continue;
                    };
                    if msg.phase == Phase::BounceRetry(generation) {
                        msg.phase = if msg.held {
                            Phase::BounceParked
                        } else {
                            self.next_generation += 1;
                            self.bounces.push_back((id, self.next_generation));
                            Phase::BounceQueued(self.next_generation)
                        };
                    }
                }
            }
        }
    }

    // ---- commands ------------------------------------------------------------------

    /// Holds message `id` (`mta queue hold`): it gets no new job (not even after
    /// [`flush`](Self::flush)), no bounce is handed out for it and it is not removed until
    /// [`release`](Self::release). Jobs already running finish normally. A held message
    /// does not expire: a deferral reported while it is held stays a deferral, and the
    /// lifetime is checked again at its first attempt after the release (so a message held
    /// past its `queuelifetime` gets one more attempt, and bounces if that one defers).
    ///
    /// # Errors
    /// [`SchedError::UnknownMessage`].
    pub fn hold(&mut self, id: MessageId) -> Result<(), SchedError> {
        let msg = self
            .messages
            .get_mut(&id)
            .ok_or(SchedError::UnknownMessage(id))?;
        msg.held = true;
        for r in &mut msg.rcpts {
            match r.state {
                State::Timed(_) => r.state = State::Idle,
                State::Ready(_) => {
                    r.state = State::Idle;
                    self.ready.unready(r.route.channel(), &r.key);
                }
                State::Idle | State::Running(_) => {}
            }
        }
        msg.phase = match msg.phase {
            Phase::BounceQueued(_) | Phase::BounceRetry(_) => Phase::BounceParked,
            Phase::RemoveQueued(_) => Phase::RemoveParked,
            other => other,
        };
        Ok(())
    }

    /// Releases a held message (`mta queue release`): its recipients are scheduled again at
    /// their recorded retry times (at once if those have passed), and a parked bounce or
    /// removal is offered again. Releasing a message that is not held does nothing.
    ///
    /// # Errors
    /// [`SchedError::UnknownMessage`].
    pub fn release(&mut self, id: MessageId, now: SystemTime) -> Result<(), SchedError> {
        let msg = self
            .messages
            .get_mut(&id)
            .ok_or(SchedError::UnknownMessage(id))?;
        if !msg.held {
            return Ok(());
        }
        msg.held = false;
        let due: Vec<(u32, SystemTime)> = msg
            .rcpts
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == State::Idle && !r.status.is_final())
            .map(|(i, r)| match &r.status {
                Status::Deferred { next_attempt, .. } => (i as u32, *next_attempt),
                _ => (i as u32, now),
            })
            .collect();
        match msg.phase {
            Phase::BounceParked => {
                self.next_generation += 1;
                self.bounces.push_back((id, self.next_generation));
                msg.phase = Phase::BounceQueued(self.next_generation);
            }
            Phase::RemoveParked => {
                self.next_generation += 1;
                self.removals.push_back((id, self.next_generation));
                msg.phase = Phase::RemoveQueued(self.next_generation);
            }
            _ => {}
        }
        for (index, at) in due {
            self.schedule(id, index, at, now);
        }
        Ok(())
    }

    /// Makes every deferred recipient of every message that is not held due now (qmail's
    /// SIGALRM, `mta queue flush`). Birth times do not change, so neither does the
    /// schedule after the next attempt. Costs one pass over the known messages.
    pub fn flush(&mut self, now: SystemTime) {
        let _ = now; // the time is not needed today; kept for the quinn-style signature
        for (&id, msg) in &mut self.messages {
            if msg.held {
                continue;
            }
            for (index, r) in msg.rcpts.iter_mut().enumerate() {
                if let State::Timed(_) = r.state {
                    self.next_generation += 1;
                    r.state = State::Ready(self.next_generation);
                    self.ready.push(
                        id,
                        r.route.channel(),
                        &r.key,
                        index as u32,
                        self.next_generation,
                    );
                }
            }
        }
    }

    /// Forgets message `id` without a bounce (`mta queue delete`; the driver removes the
    /// file). Its running jobs still free their slots when they report.
    ///
    /// # Errors
    /// [`SchedError::UnknownMessage`].
    pub fn delete(&mut self, id: MessageId) -> Result<(), SchedError> {
        let msg = self
            .messages
            .remove(&id)
            .ok_or(SchedError::UnknownMessage(id))?;
        self.births.remove(&(msg.birth, id));
        for r in &msg.rcpts {
            if let State::Ready(_) = r.state {
                self.ready.unready(r.route.channel(), &r.key);
            }
        }
        Ok(())
    }

    /// New concurrency limits (control files re-read on SIGHUP). Running jobs are not
    /// stopped; a lower limit takes effect as they finish.
    pub fn set_concurrency(&mut self, local: usize, remote: usize) {
        self.config.concurrency_local = local;
        self.config.concurrency_remote = remote;
    }

    // ---- outputs -------------------------------------------------------------------

    /// The next finished message with failed recipients: the driver queues its bounce and
    /// confirms with [`handle_bounced`](Self::handle_bounced) (or reports
    /// [`handle_bounce_failed`](Self::handle_bounce_failed)). One bounce per message, with
    /// every failure, only once every recipient is final (qmail-send §1.5).
    #[must_use]
    pub fn poll_bounce(&mut self) -> Option<Bounce> {
        while let Some((id, generation)) = self.bounces.pop_front() {
            let Some(msg) = self.messages.get_mut(&id) else {
                continue;
            };
            if msg.phase != Phase::BounceQueued(generation) {
                continue;
            }
            msg.phase = Phase::BounceOut;
            let failures = msg
                .rcpts
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match &r.status {
                    Status::Failed(reason) => Some(Failure {
                        index: i as u32,
                        address: r.address.clone(),
                        reason: reason.clone(),
                    }),
                    _ => None,
                })
                .collect();
            return Some(Bounce {
                message: id,
                kind: BounceKind::for_sender(&msg.sender),
                sender: msg.sender.clone(),
                failures,
            });
        }
        None
    }

    /// The next message to remove from the queue: every recipient is final and, if any
    /// failed, its bounce was confirmed. The scheduler forgets it as it hands it out.
    #[must_use]
    pub fn poll_remove(&mut self) -> Option<MessageId> {
        while let Some((id, generation)) = self.removals.pop_front() {
            let Some(msg) = self.messages.get(&id) else {
                continue;
            };
            if msg.phase != Phase::RemoveQueued(generation) {
                continue;
            }
            self.births.remove(&(msg.birth, id));
            self.messages.remove(&id);
            return Some(id);
        }
        None
    }

    /// The next delivery to start, if a slot is free and a recipient is due at `now` (timers
    /// due by `now` fire first). Local jobs come before remote ones. Call it until it
    /// returns `None`.
    ///
    /// - at most [`Config::concurrency_local`] local and [`Config::concurrency_remote`]
    ///   remote jobs run at once;
    /// - a local job takes due recipients of one message with one user key, up to
    ///   [`Config::local_batch`] and to `waiting / concurrency_local` (so every free slot
    ///   gets work); groups take turns, so a long list does not hold up a short message;
    /// - a remote job takes due recipients of one message at one domain, up to
    ///   [`Config::remote_batch`]; domains with work take turns, and while another domain
    ///   has work waiting no domain gets more than half the remote slots (at least one);
    ///   a domain alone may use them all;
    /// - a sender asking for VERP (`P@H-@[]`) gets one recipient per job;
    /// - held messages get no jobs; with [`Config::remote_enabled`] off, remote recipients
    ///   none either.
    #[must_use]
    pub fn poll_job(&mut self, now: SystemTime) -> Option<Job> {
        self.handle_timeout(now);
        if self.running[0] < self.config.concurrency_local {
            let limit = self.config.concurrency_local.max(1);
            let most = self.config.local_batch.max(1);
            let messages = &self.messages;
            let taken = self.ready.take_local(
                |id, waiting| {
                    if messages.get(&id).is_some_and(|m| m.verp) {
                        1
                    } else {
                        (waiting / limit).clamp(1, most)
                    }
                },
                |id, index, generation| live(messages, id, index, generation),
            );
            if let Some(taken) = taken {
                return Some(self.start(Channel::Local, taken, now));
            }
        }
        if self.config.remote_enabled && self.running[1] < self.config.concurrency_remote {
            let most = self.config.remote_batch.max(1);
            let messages = &self.messages;
            let taken = self.ready.take_remote(
                self.config.concurrency_remote,
                |id| {
                    if messages.get(&id).is_some_and(|m| m.verp) {
                        1
                    } else {
                        most
                    }
                },
                |id, index, generation| live(messages, id, index, generation),
            );
            if let Some(taken) = taken {
                return Some(self.start(Channel::Remote, taken, now));
            }
        }
        None
    }

    /// The earliest time a timer falls due (a deferred recipient's retry, a bounce to
    /// offer again), or `None` when nothing waits on the clock. The driver sleeps until
    /// then (or until an input arrives) and calls [`poll_job`](Self::poll_job) or
    /// [`handle_timeout`](Self::handle_timeout). The time may already have passed.
    /// Recipients that are due but wait for a slot need no timer: a
    /// [`handle_done`](Self::handle_done) frees the slot.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<SystemTime> {
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if self.timer_live(timer) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Checks the bookkeeping against the state it summarizes; for tests and the fuzz
    /// target (linear in the queue: never call it on a hot path). Not a stable API.
    ///
    /// # Errors
    /// A description of the first inconsistency found.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        for ch in [Channel::Local, Channel::Remote] {
            let jobs = self.jobs.values().filter(|j| j.channel == ch).count();
            if jobs != self.running[ch.slot()] {
                return Err(format!(
                    "{ch}: {jobs} jobs but running {}",
                    self.running[ch.slot()]
                ));
            }
            let ready = self
                .messages
                .values()
                .flat_map(|m| &m.rcpts)
                .filter(|r| r.route.channel() == ch && matches!(r.state, State::Ready(_)))
                .count();
            if ready != self.ready.waiting(ch) {
                return Err(format!(
                    "{ch}: {ready} ready but waiting {}",
                    self.ready.waiting(ch)
                ));
            }
        }
        if self.ready.domains_running_total() != self.running[1] {
            return Err("per-domain running counts do not add up".into());
        }
        for (job_id, job) in &self.jobs {
            let Some(msg) = self.messages.get(&job.message) else {
                continue;
            };
            for &i in &job.indexes {
                let state = msg.rcpts.get(i as usize).map(|r| r.state);
                if state != Some(State::Running(*job_id)) {
                    return Err(format!("job {job_id}: recipient {i} is {state:?}"));
                }
            }
        }
        if self.births.len() != self.messages.len() {
            return Err("births and messages differ".into());
        }
        for (id, msg) in &self.messages {
            let unfinished = msg.rcpts.iter().filter(|r| !r.status.is_final()).count();
            let failed = msg
                .rcpts
                .iter()
                .filter(|r| matches!(r.status, Status::Failed(_)))
                .count();
            if unfinished != msg.unfinished || failed != msg.failed {
                return Err(format!("msg {id}: counts are off"));
            }
            if (msg.phase == Phase::Delivering) != (unfinished > 0) {
                return Err(format!(
                    "msg {id}: phase {:?} with {unfinished} left",
                    msg.phase
                ));
            }
            for r in &msg.rcpts {
                let scheduled = matches!(r.state, State::Ready(_) | State::Timed(_));
                if scheduled && (msg.held || r.status.is_final()) {
                    return Err(format!("msg {id}: {:?} recipient scheduled", r.status));
                }
                if let State::Running(j) = r.state
                    && !self.jobs.contains_key(&j)
                {
                    return Err(format!("msg {id}: running in unknown job {j}"));
                }
            }
        }
        Ok(())
    }

    // ---- internals -----------------------------------------------------------------

    fn timer_live(&self, timer: Timer) -> bool {
        match timer {
            Timer::Retry {
                id,
                index,
                generation,
            } => self
                .messages
                .get(&id)
                .and_then(|m| m.rcpts.get(index as usize))
                .is_some_and(|r| r.state == State::Timed(generation)),
            Timer::Bounce { id, generation } => self
                .messages
                .get(&id)
                .is_some_and(|m| m.phase == Phase::BounceRetry(generation)),
        }
    }

    /// Puts recipient `index` of `id` on a timer for `at`, or on the ready list if `at` has
    /// come; leaves it idle while the message is held or its channel is off.
    fn schedule(&mut self, id: MessageId, index: u32, at: SystemTime, now: SystemTime) {
        let Some(msg) = self.messages.get_mut(&id) else {
            return;
        };
        let Some(r) = msg.rcpts.get_mut(index as usize) else {
            return;
        };
        let channel = r.route.channel();
        if msg.held || (channel == Channel::Remote && !self.config.remote_enabled) {
            r.state = State::Idle;
            return;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        if at <= now {
            r.state = State::Ready(generation);
            self.ready.push(id, channel, &r.key, index, generation);
        } else {
            r.state = State::Timed(generation);
            self.timers.push(Reverse((
                at,
                Timer::Retry {
                    id,
                    index,
                    generation,
                },
            )));
        }
    }

    /// Moves a message whose recipients are all final on to its bounce or its removal.
    fn maybe_finish(&mut self, id: MessageId) {
        let Some(msg) = self.messages.get_mut(&id) else {
            return;
        };
        if msg.phase != Phase::Delivering || msg.unfinished > 0 {
            return;
        }
        msg.phase = match (msg.failed > 0, msg.held) {
            (true, true) => Phase::BounceParked,
            (false, true) => Phase::RemoveParked,
            (true, false) => {
                self.next_generation += 1;
                self.bounces.push_back((id, self.next_generation));
                Phase::BounceQueued(self.next_generation)
            }
            (false, false) => {
                self.next_generation += 1;
                self.removals.push_back((id, self.next_generation));
                Phase::RemoveQueued(self.next_generation)
            }
        };
    }

    /// Marks the taken recipients running and builds their job.
    fn start(
        &mut self,
        channel: Channel,
        (id, key, indexes): crate::ready::Taken,
        now: SystemTime,
    ) -> Job {
        let job_id = JobId(self.next_job);
        self.next_job += 1;
        self.running[channel.slot()] += 1;
        let mut job = Job {
            id: job_id,
            message: id,
            route: match channel {
                Channel::Local => Route::Local { user: key.clone() },
                Channel::Remote => Route::Remote {
                    domain: key.clone(),
                },
            },
            sender: Address::null(),
            birth: SystemTime::UNIX_EPOCH,
            targets: Vec::with_capacity(indexes.len()),
            whole: false,
        };
        if let Some(msg) = self.messages.get_mut(&id) {
            job.sender = msg.sender.clone();
            job.birth = msg.birth;
            job.whole = indexes.len() == msg.rcpts.len();
            for &index in &indexes {
                if let Some(r) = msg.rcpts.get_mut(index as usize) {
                    r.state = State::Running(job_id);
                    if job.targets.is_empty() {
                        job.route = r.route.clone();
                    }
                    job.targets.push(Target {
                        index,
                        address: r.address.clone(),
                        attempts: match r.status {
                            Status::Deferred { attempts, .. } => attempts,
                            _ => 0,
                        },
                    });
                }
            }
        }
        self.jobs.insert(
            job_id,
            RunningJob {
                message: id,
                started: now,
                channel,
                key,
                indexes,
            },
        );
        job
    }
}

/// Whether a ready entry still stands for its recipient.
fn live(messages: &HashMap<MessageId, Msg>, id: MessageId, index: u32, generation: u64) -> bool {
    messages
        .get(&id)
        .and_then(|m| m.rcpts.get(index as usize))
        .is_some_and(|r| r.state == State::Ready(generation))
}

/// The new status of a recipient after one attempt (qmail-send's bookkeeping for K, Z, D)
/// that ran from `started` to `now`.
fn decide(
    result: Option<&DeliveryResult>,
    previous: &Status,
    birth: SystemTime,
    (started, now): (SystemTime, SystemTime),
    dying: bool,
    schedule: &dyn mta_queue::retry::RetrySchedule,
) -> Status {
    let text = match result {
        Some(DeliveryResult::Delivered { .. }) => return Status::Delivered,
        Some(DeliveryResult::Failed { text, .. }) => {
            return Status::Failed(text.clone().into_bytes());
        }
        // A deferral, or a result kind added later: retried, never dropped.
        Some(other) => other.text().as_bytes().to_vec(),
        None => b"no result was reported for this recipient".to_vec(),
    };
    if dying {
        let mut text = text;
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(LIFETIME_TEXT.as_bytes());
        return Status::Failed(text);
    }
    let attempts = match previous {
        Status::Deferred { attempts, .. } => attempts.saturating_add(1),
        _ => 1,
    };
    let next = schedule
        .next_attempt(birth, started, attempts)
        .max(now + Duration::from_secs(1));
    Status::Deferred {
        attempts,
        next_attempt: next,
        reason: text,
    }
}
