//! The operator's commands: hold, release, flush, delete, new limits.

use mta_queue::{MessageId, Status};
use std::time::SystemTime;

use super::{Phase, Scheduler, State};
use crate::SchedError;

impl Scheduler {
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
}
