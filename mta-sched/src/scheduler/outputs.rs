//! The polls: bounces, removals, jobs, the next timer; and how a job starts.

use std::cmp::Reverse;
use std::time::SystemTime;

use mta_core::Address;
use mta_queue::{MessageId, Status};

use super::{Phase, RunningJob, Scheduler, State, live};
use crate::{Bounce, BounceKind, Channel, Failure, Job, JobId, Route, Target};

impl Scheduler {
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
    /// - at most [`Config::concurrency_local`](crate::Config::concurrency_local) local and [`Config::concurrency_remote`](crate::Config::concurrency_remote)
    ///   remote jobs run at once;
    /// - a local job takes due recipients of one message with one user key, up to
    ///   [`Config::local_batch`](crate::Config::local_batch) and to `waiting / concurrency_local` (so every free slot
    ///   gets work); groups take turns, so a long list does not hold up a short message;
    /// - a remote job takes due recipients of one message at one domain, up to
    ///   [`Config::remote_batch`](crate::Config::remote_batch); domains with work take turns, and while another domain
    ///   has work waiting no domain gets more than half the remote slots (at least one);
    ///   a domain alone may use them all (or [`Config::remote_per_domain`](crate::Config::remote_per_domain));
    /// - a sender asking for VERP (`P@H-@[]`) gets one recipient per job;
    /// - held messages get no jobs; with [`Config::remote_enabled`](crate::Config::remote_enabled) off, remote recipients
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
                self.config.remote_per_domain,
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

    // ---- internals -----------------------------------------------------------------

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
