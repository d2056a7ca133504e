//! Downed-host memory: qmail's `tcpto` (reference §1.10), kept in memory and shared by
//! the remote delivery pool.
//!
//! A connection attempt that **times out** counts as an error for that IP; the count goes
//! up only when at least [`TcptoPolicy::bump_interval`] (120 s) has passed since the last
//! counted error, and stops at 10. A connection that gets through, or fails quickly
//! (refused, unreachable), clears the count. An IP whose count is at least
//! [`TcptoPolicy::down_after`] (2) and whose last error is younger than
//! [`TcptoPolicy::down_for`] (qmail: `(60 + (pid & 31)) * 64` s, 64–97 minutes) is
//! skipped. [`DownedHosts::reset`] is qmail-tcpok. Besides a connect timeout, we also
//! count a server that accepts the connection but sends no greeting within
//! `timeoutremote` (a host that is "up" only in its kernel is no more useful).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// qmail keeps 64 records; we keep more but still a bounded number.
const CAPACITY: usize = 1024;
/// qmail caps the error count at 10.
const MAX_COUNT: u32 = 10;

/// When a host counts as down. [`Default`] gives qmail's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcptoPolicy {
    /// A timeout raises the count only this long after the previous counted one (120 s).
    pub bump_interval: Duration,
    /// The count at which a host is skipped (2).
    pub down_after: u32,
    /// How long after its last timeout a host is skipped (64–97 minutes, by process id).
    pub down_for: Duration,
}

impl Default for TcptoPolicy {
    fn default() -> TcptoPolicy {
        TcptoPolicy {
            bump_interval: Duration::from_mins(2),
            down_after: 2,
            down_for: Duration::from_secs((60 + u64::from(std::process::id() & 31)) * 64),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    count: u32,
    last: Instant,
}

/// The table of recently failing IPs.
#[derive(Debug)]
pub(crate) struct DownedHosts {
    policy: TcptoPolicy,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl DownedHosts {
    pub(crate) fn new(policy: TcptoPolicy) -> DownedHosts {
        DownedHosts {
            policy,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        // A panic while holding the lock leaves a consistent map (every update is one
        // insert or remove), so a poisoned lock is still usable.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True if `ip` should be skipped at `now`.
    pub(crate) fn is_down(&self, ip: IpAddr, now: Instant) -> bool {
        self.table().get(&ip).is_some_and(|e| {
            e.count >= self.policy.down_after
                && now.saturating_duration_since(e.last) < self.policy.down_for
        })
    }

    /// Records a timeout for `ip` at `now` (qmail's `tcpto_err(ip, 1)`).
    pub(crate) fn timed_out(&self, ip: IpAddr, now: Instant) {
        let mut t = self.table();
        if let Some(e) = t.get_mut(&ip) {
            if e.count == 0 || now.saturating_duration_since(e.last) >= self.policy.bump_interval {
                e.count = (e.count + 1).min(MAX_COUNT);
                e.last = now;
            }
            return;
        }
        if t.len() >= CAPACITY {
            // qmail replaces the record with the smallest `time + count * 1024`.
            let victim = t
                .iter()
                .min_by_key(|(_, e)| (e.last, e.count))
                .map(|(ip, _)| *ip);
            if let Some(v) = victim {
                t.remove(&v);
            }
        }
        t.insert(
            ip,
            Entry {
                count: 1,
                last: now,
            },
        );
    }

    /// Records a connection that got through or failed without a timeout.
    pub(crate) fn reachable(&self, ip: IpAddr) {
        let mut t = self.table();
        if t.contains_key(&ip) {
            t.remove(&ip);
        }
    }

    /// Forgets every error (qmail-tcpok).
    pub(crate) fn reset(&self) {
        self.table().clear();
    }

    /// `(ip, age of the last timeout, count)` for every IP with a count (qmail-tcpto).
    pub(crate) fn list(&self, now: Instant) -> Vec<(IpAddr, Duration, u32)> {
        let mut v: Vec<_> = self
            .table()
            .iter()
            .map(|(ip, e)| (*ip, now.saturating_duration_since(e.last), e.count))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn policy() -> TcptoPolicy {
        TcptoPolicy {
            down_for: Duration::from_mins(64),
            ..TcptoPolicy::default()
        }
    }

    #[test]
    fn two_spaced_timeouts_mark_down_for_about_an_hour() {
        let d = DownedHosts::new(policy());
        let t0 = Instant::now();
        d.timed_out(IP, t0);
        assert!(!d.is_down(IP, t0), "one timeout is not enough");
        // A second timeout within 120 s does not count.
        d.timed_out(IP, t0 + Duration::from_mins(1));
        assert!(!d.is_down(IP, t0 + Duration::from_secs(61)));
        assert_eq!(d.list(t0)[0].2, 1);
        let t2 = t0 + Duration::from_secs(121);
        d.timed_out(IP, t2);
        assert!(d.is_down(IP, t2));
        assert!(d.is_down(IP, t2 + Duration::from_secs(3839)));
        assert!(
            !d.is_down(IP, t2 + Duration::from_mins(64)),
            "down only for down_for"
        );
        assert!(!d.is_down(OTHER, t2), "other hosts unaffected");
    }

    #[test]
    fn success_clears_and_tcpok_resets() {
        let d = DownedHosts::new(TcptoPolicy {
            bump_interval: Duration::ZERO,
            ..policy()
        });
        let t0 = Instant::now();
        d.timed_out(IP, t0);
        d.timed_out(IP, t0);
        d.timed_out(OTHER, t0);
        d.timed_out(OTHER, t0);
        assert!(d.is_down(IP, t0) && d.is_down(OTHER, t0));
        d.reachable(IP);
        assert!(!d.is_down(IP, t0));
        assert!(d.is_down(OTHER, t0));
        d.reset();
        assert!(!d.is_down(OTHER, t0));
        assert!(d.list(t0).is_empty());
    }

    #[test]
    fn count_is_capped_and_table_bounded() {
        let d = DownedHosts::new(TcptoPolicy {
            bump_interval: Duration::ZERO,
            ..policy()
        });
        let t0 = Instant::now();
        for _ in 0..20 {
            d.timed_out(IP, t0);
        }
        assert_eq!(d.list(t0)[0].2, MAX_COUNT);
        for i in 0..(CAPACITY as u32 + 10) {
            d.timed_out(
                IpAddr::V4(i.into()),
                t0 + Duration::from_millis(u64::from(i) + 1),
            );
        }
        assert_eq!(d.list(t0).len(), CAPACITY);
    }
}
