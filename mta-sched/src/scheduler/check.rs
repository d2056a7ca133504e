//! The bookkeeping checker the property test and the fuzz target run after every call.

use mta_queue::Status;

use super::{Phase, Scheduler, State};
use crate::Channel;

impl Scheduler {
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
            if (msg.phase == Phase::Delivering) != (unfinished > 0 || msg.unmarked > 0) {
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
}
