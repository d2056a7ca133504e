//! Retry schedules: qmail-send's `nextretry`, and a trait to plug in another.
//!
//! qmail-send computes the next attempt for every recipient still pending after a delivery
//! pass that started at `now` (qmail-send.c, `nextretry`):
//!
//! ```text
//! next = birth + (floor(sqrt(max(0, now - birth))) + skip)^2      skip: local 10, remote 20
//! ```
//!
//! `birth` is the message's [`birth`](crate::MessageInfo::birth) time; the first attempt is
//! immediate. When every attempt runs on time, attempt *k* falls (skip·k)² seconds after
//! birth: locally at 100 s, 400 s, 900 s, 1600 s, 2500 s, 3600 s, ..., remotely at 400 s
//! (6m40s), 1600 s (26m40s), 3600 s (1h), 6400 s, 10000 s, 14400 s (4h), ...; the last attempt
//! inside one week is local k=77 (592900 s) and remote k=38 (577600 s). A late attempt moves
//! the rest of the schedule.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use mta_queue::retry::{QmailSchedule, RetrySchedule};
//! let birth = UNIX_EPOCH + Duration::from_secs(1_000_000);
//! // The first (immediate) attempt failed: the next remote one is 400 s after birth.
//! let next = QmailSchedule::REMOTE.next_attempt(birth, birth, 1);
//! assert_eq!(next, birth + Duration::from_secs(400));
//! // Tried again on time at 400 s: next at (20 + 20)^2 = 1600 s.
//! let next = QmailSchedule::REMOTE.next_attempt(birth, next, 2);
//! assert_eq!(next, birth + Duration::from_secs(1600));
//! ```

use std::time::{Duration, SystemTime};

/// Decides when a recipient that failed temporarily is tried again.
///
/// The daemon calls it after each deferral and stores the result with
/// [`Status::Deferred`](crate::Status::Deferred).
pub trait RetrySchedule: Send + Sync {
    /// The time of the next attempt for a message born at `birth`, after the delivery pass
    /// that started at `now` and was attempt number `attempts` (1 for the first).
    fn next_attempt(&self, birth: SystemTime, now: SystemTime, attempts: u32) -> SystemTime;
}

/// qmail-send's schedule: `birth + (floor(sqrt(now - birth)) + skip)^2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QmailSchedule {
    skip: u64,
}

impl QmailSchedule {
    /// qmail's local channel (`chanskip` 10).
    pub const LOCAL: QmailSchedule = QmailSchedule { skip: 10 };
    /// qmail's remote channel (`chanskip` 20).
    pub const REMOTE: QmailSchedule = QmailSchedule { skip: 20 };

    /// A schedule with another skip value.
    pub const fn with_skip(skip: u64) -> Self {
        QmailSchedule { skip }
    }

    /// The skip value.
    pub const fn skip(self) -> u64 {
        self.skip
    }

    /// How long after birth attempt `k` (counting the immediate first attempt as 0) falls
    /// when every attempt runs on time: `(skip * k)^2` seconds.
    pub fn on_time_offset(self, k: u64) -> Duration {
        let s = self.skip.saturating_mul(k);
        Duration::from_secs(s.saturating_mul(s))
    }
}

impl RetrySchedule for QmailSchedule {
    fn next_attempt(&self, birth: SystemTime, now: SystemTime, _attempts: u32) -> SystemTime {
        qmail_next_retry(birth, now, self.skip)
    }
}

/// qmail-send's `nextretry`: `birth + (floor(sqrt(max(0, now - birth))) + skip)^2`, in whole
/// seconds as qmail computes it.
pub fn qmail_next_retry(birth: SystemTime, now: SystemTime, skip: u64) -> SystemTime {
    let age = now.duration_since(birth).map_or(0, |d| d.as_secs());
    let n = age.isqrt().saturating_add(skip);
    birth + Duration::from_secs(n.saturating_mul(n))
}

/// True when a delivery pass starting at `now` is "dying" for a message born at `birth`:
/// qmail-send turns every temporary failure into a permanent one once
/// `now >= birth + queuelifetime` (default 604800 s, one week).
pub fn is_dying(birth: SystemTime, now: SystemTime, queuelifetime: Duration) -> bool {
    now.duration_since(birth)
        .is_ok_and(|age| age >= queuelifetime)
}

/// A simple alternative schedule: the delay doubles after each attempt, from `first` up to
/// `max`, independent of the birth time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExponentialBackoff {
    /// Delay after the first attempt.
    pub first: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl RetrySchedule for ExponentialBackoff {
    fn next_attempt(&self, _birth: SystemTime, now: SystemTime, attempts: u32) -> SystemTime {
        let shift = attempts.saturating_sub(1).min(31);
        let delay = self.first.saturating_mul(1 << shift).min(self.max);
        now + delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn age_before_birth_counts_as_zero() {
        let birth = UNIX_EPOCH + Duration::from_secs(10_000);
        let early = birth - Duration::from_secs(50);
        assert_eq!(
            qmail_next_retry(birth, early, 10),
            birth + Duration::from_secs(100)
        );
    }

    #[test]
    fn late_attempt_moves_the_schedule() {
        let birth = UNIX_EPOCH + Duration::from_secs(10_000);
        // Tried at 1000 s instead of 400 s: floor(sqrt(1000)) = 31, (31 + 20)^2 = 2601.
        let now = birth + Duration::from_secs(1000);
        assert_eq!(
            qmail_next_retry(birth, now, 20),
            birth + Duration::from_secs(2601)
        );
    }

    #[test]
    fn dying_after_lifetime() {
        let birth = UNIX_EPOCH + Duration::from_secs(10_000);
        let week = Duration::from_hours(168);
        assert!(!is_dying(
            birth,
            birth + week - Duration::from_secs(1),
            week
        ));
        assert!(is_dying(birth, birth + week, week));
        assert!(!is_dying(birth, birth - Duration::from_secs(1), week));
    }

    #[test]
    fn exponential_backoff_caps() {
        let s = ExponentialBackoff {
            first: Duration::from_mins(1),
            max: Duration::from_hours(1),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1);
        assert_eq!(s.next_attempt(now, now, 1), now + Duration::from_mins(1));
        assert_eq!(s.next_attempt(now, now, 3), now + Duration::from_mins(4));
        assert_eq!(s.next_attempt(now, now, 40), now + Duration::from_hours(1));
    }
}
