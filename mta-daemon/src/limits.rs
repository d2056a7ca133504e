//! What an abusive client gets (design.md "Limits"): session slots counted in total
//! (`concurrencyincoming`) and per client address (`concurrencyperip`), and a counter per
//! refusal reason, so every limit hit is logged and counted.
//!
//! A [`Slot`] is taken before a session starts and given back when it is dropped, whatever
//! way the session ends; a connection that gets no slot is answered `421 4.7.0` and closed
//! at once (Postfix's `smtpd_client_connection_count_limit`, tcpserver's `-c`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Why the SMTP service refused something or ended a session. The names are the
/// `reason` label of the rejects counter and appear in the log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `concurrencyincoming` sessions were running.
    TooManySessions,
    /// `concurrencyperip` sessions from the client's address were running.
    TooManyFromIp,
    /// A command line (or DATA at its minimum rate) did not arrive in time.
    Timeout,
    /// `maxerrors` refused commands.
    TooManyErrors,
    /// `maxrcpt` recipients already.
    TooManyRecipients,
    /// A recipient outside rcpthosts from a client that may not relay.
    Relay,
    /// A local recipient nobody would take (`550 5.1.1`).
    UnknownUser,
    /// The sender is in badmailfrom.
    BadMailFrom,
    /// The recipient lookup failed for now (`451`).
    LookupFailed,
    /// The message could not be queued (`451`: disk full, queue trouble).
    QueueFailed,
    /// The message broke a DATA rule (size, bare LF, hops, NUL, long line).
    BadMessage,
    /// A wrong login or password.
    AuthFailed,
    /// AUTH from an address over `authfailmax` failures in 10 minutes.
    AuthLocked,
    /// A logged-in user's MAIL FROM outside its SENDERS.
    SenderNotAllowed,
    /// SPF `fail` for MAIL FROM, with `spfreject` on (`550 5.7.23`).
    SpfFail,
    /// DMARC failure under `p=reject`, with `dmarcreject` on (`550 5.7.1`).
    DmarcReject,
}

impl Reason {
    /// Every reason, in counter order.
    pub(crate) const ALL: [Reason; 16] = [
        Reason::TooManySessions,
        Reason::TooManyFromIp,
        Reason::Timeout,
        Reason::TooManyErrors,
        Reason::TooManyRecipients,
        Reason::Relay,
        Reason::UnknownUser,
        Reason::BadMailFrom,
        Reason::LookupFailed,
        Reason::QueueFailed,
        Reason::BadMessage,
        Reason::AuthFailed,
        Reason::AuthLocked,
        Reason::SenderNotAllowed,
        Reason::SpfFail,
        Reason::DmarcReject,
    ];

    /// The label used in logs and metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::TooManySessions => "too_many_sessions",
            Reason::TooManyFromIp => "too_many_from_ip",
            Reason::Timeout => "timeout",
            Reason::TooManyErrors => "too_many_errors",
            Reason::TooManyRecipients => "too_many_recipients",
            Reason::Relay => "relay_denied",
            Reason::UnknownUser => "unknown_user",
            Reason::BadMailFrom => "badmailfrom",
            Reason::LookupFailed => "lookup_failed",
            Reason::QueueFailed => "queue_failed",
            Reason::BadMessage => "bad_message",
            Reason::AuthFailed => "auth_failed",
            Reason::AuthLocked => "auth_locked",
            Reason::SenderNotAllowed => "sender_not_allowed",
            Reason::SpfFail => "spf_fail",
            Reason::DmarcReject => "dmarc_reject",
        }
    }
}

/// Session slots and refusal counters, shared by every acceptor and session.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    active: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    rejects: [AtomicU64; Reason::ALL.len()],
}

/// A session's place under the limits; given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    limits: Arc<Limits>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.active.fetch_sub(1, Ordering::SeqCst);
        if let Some(ip) = self.ip {
            let mut map = self
                .limits
                .per_ip
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

/// An IPv4 client seen through an IPv6 socket counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

impl Limits {
    /// Takes a slot for a session from `ip` (`None`: a local stdio session, counted only
    /// in total), or says which limit refused it.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<Slot, Reason> {
        if self.active.fetch_add(1, Ordering::SeqCst) >= max_total {
            self.active.fetch_sub(1, Ordering::SeqCst);
            return Err(Reason::TooManySessions);
        }
        let ip = ip.map(canonical);
        if let Some(ip) = ip {
            let mut map = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let n = map.entry(ip).or_insert(0);
            if *n >= max_per_ip {
                drop(map);
                self.active.fetch_sub(1, Ordering::SeqCst);
                return Err(Reason::TooManyFromIp);
            }
            *n += 1;
        }
        Ok(Slot {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// Sessions running now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Counts one refusal.
    pub(crate) fn count(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.rejects[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Refusals so far, per reason (for the metrics endpoint and tests).
    pub(crate) fn rejects(&self) -> Vec<(Reason, u64)> {
        Reason::ALL
            .iter()
            .zip(&self.rejects)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_in_total_and_per_address() {
        let limits = Arc::new(Limits::default());
        let a: IpAddr = "127.0.0.2".parse().unwrap_or_else(|_| unreachable!());
        let a6: IpAddr = "::ffff:127.0.0.2"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let b: IpAddr = "::1".parse().unwrap_or_else(|_| unreachable!());
        let s1 = limits.admit(Some(a), 4, 2);
        let s2 = limits.admit(Some(a6), 4, 2);
        assert!(s1.is_ok() && s2.is_ok());
        assert_eq!(
            limits.admit(Some(a), 4, 2).err(),
            Some(Reason::TooManyFromIp),
            "the mapped address is the same client"
        );
        let s3 = limits.admit(Some(b), 4, 2);
        let s4 = limits.admit(None, 4, 2);
        assert!(s3.is_ok() && s4.is_ok());
        assert_eq!(limits.active(), 4);
        assert_eq!(
            limits.admit(Some(b), 4, 2).err(),
            Some(Reason::TooManySessions)
        );
        drop(s1);
        assert!(limits.admit(Some(a), 4, 2).is_ok(), "a slot came back");
        drop((s2, s3, s4));
        assert_eq!(limits.active(), 0);
        assert!(
            limits
                .per_ip
                .lock()
                .unwrap_or_else(|_| unreachable!())
                .is_empty()
        );
        limits.count(Reason::Timeout);
        assert!(limits.rejects().contains(&(Reason::Timeout, 1)));
    }
}
