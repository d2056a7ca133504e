//! [`Scheduler`]: the state machine.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use mta_core::{Address, DeliveryResult};
use mta_queue::{MessageId, Status};

use crate::ready::Ready;
use crate::types::VERP_MARKER;
use crate::{Channel, Config, JobId, NewMessage, Recorded, Route, SchedError};

mod check;
mod commands;
mod outputs;

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
    /// `Recorded`s handed out and not yet confirmed (with `Config::wait_for_marks`).
    unmarked: usize,
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
/// [`handle_marked`](Self::handle_marked), [`handle_bounced`](Self::handle_bounced),
/// [`handle_bounce_failed`](Self::handle_bounce_failed), [`handle_timeout`](Self::handle_timeout). Commands: [`hold`](Self::hold),
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
                unmarked: 0,
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
    ///   time from the message's birth (qmail: `birth + (isqrt(start - birth) + skip)^2`,
    ///   never earlier than one second after `now`), with one more attempt counted;
    /// - a deferral once the message is `queue_lifetime` old becomes a failure with
    ///   [`LIFETIME_TEXT`] appended (qmail-send's "dying" pass), unless the message is held.
    ///
    /// As in qmail-send, the schedule and the lifetime count from the moment the attempt
    /// started (the `now` given to [`poll_job`](Self::poll_job)), so on-time attempts fall
    /// exactly at qmail's times however long each one takes. A retry time that has already
    /// passed when the job ends (a very slow attempt) is moved to one second after `now`.
    ///
    /// The returned [`Recorded`] lists the statuses to make durable. With
    /// [`Config::wait_for_marks`], confirm them with [`handle_marked`](Self::handle_marked)
    /// when its `marks` are not empty. A job of a message deleted meanwhile only frees its
    /// slot and records nothing.
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
        if self.config.wait_for_marks && !recorded.marks.is_empty() {
            msg.unmarked += 1;
        }
        for (index, at) in retries {
            self.schedule(run.message, index, at, now);
        }
        self.maybe_finish(run.message);
        Ok(recorded)
    }

    /// The statuses of one [`Recorded`] for `message` are durable (with
    /// [`Config::wait_for_marks`]; without, there is nothing to confirm). Once every
    /// `Recorded` of a finished message is confirmed, its bounce or removal is handed out.
    ///
    /// # Errors
    /// [`SchedError::UnknownMessage`], or [`SchedError::NoMarksOut`] when no `Recorded`
    /// with marks awaits confirmation.
    pub fn handle_marked(&mut self, message: MessageId) -> Result<(), SchedError> {
        let msg = self
            .messages
            .get_mut(&message)
            .ok_or(SchedError::UnknownMessage(message))?;
        if msg.unmarked == 0 {
            return Err(SchedError::NoMarksOut(message));
        }
        msg.unmarked -= 1;
        self.maybe_finish(message);
        Ok(())
    }

    /// The driver queued the bounce [`poll_bounce`](Self::poll_bounce) handed out for
    /// `message` (or discarded it, for [`BounceKind::Discard`](crate::BounceKind::Discard)): the message may now be
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
        if msg.phase != Phase::Delivering || msg.unfinished > 0 || msg.unmarked > 0 {
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
