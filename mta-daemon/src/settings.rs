//! The daemon's resolved settings: mta-core's typed [`Control`] (qmail's control files with
//! qmail's defaults, reference §8), plus the values the SMTP service, the scheduler and the
//! bounce composer derive from it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mta_core::Address;
use mta_core::control::Control;

/// Everything `serve` needs from `DIR/control`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The control files as read.
    pub control: Arc<Control>,
    /// `me` (default: the machine's host name).
    pub me: String,
    /// The text after `220 ` (smtpgreeting, else me).
    pub greeting: String,
    /// Addresses to listen on, and what each speaks.
    pub listen: Vec<mta_core::control::Listener>,
    /// `databytes` (0 = the SMTP crate's built-in cap).
    pub databytes: u64,
    /// `timeoutsmtpd`.
    pub timeout_smtpd: Duration,
    /// `concurrencyincoming`.
    pub concurrency_incoming: usize,
    /// `concurrencyperip`.
    pub concurrency_per_ip: usize,
    /// `maxrcpt`: recipients per message.
    pub max_rcpt: usize,
    /// `maxerrors`: refused commands per session.
    pub max_errors: usize,
    /// `mindatarate`: bytes/s DATA must average (0: no rate check).
    pub min_data_rate: u64,
    /// `timeoutlocal`: how long a `.qmail` program may run.
    pub timeout_local: Duration,
    /// `concurrencylocal`.
    pub concurrency_local: usize,
    /// `concurrencyremote`.
    pub concurrency_remote: usize,
    /// `queuelifetime`.
    pub queue_lifetime: Duration,
    /// `acceptunknown`: qmail's accept-every-local-recipient behaviour.
    pub accept_unknown: bool,
    /// Bounce settings.
    pub bounce: mta_verp::BounceConfig,
}

/// qmail-send caps concurrency at conf-spawn's hard limit of 255; we allow more threads
/// but keep a sane bound.
const MAX_CONCURRENCY: u64 = 1000;

/// Upper bound for `concurrencyincoming` (each session is a thread of about 12 KB).
const MAX_SESSIONS: u64 = 100_000;

impl Settings {
    /// Reads `dir` (the control directory).
    ///
    /// # Errors
    /// A message naming the file and line that could not be read or parsed.
    pub fn load(dir: &Path) -> Result<Settings, String> {
        let c = Control::load(dir).map_err(|e| e.to_string())?;
        Ok(Settings::from_control(c))
    }

    /// Resolves a loaded [`Control`].
    pub fn from_control(c: Control) -> Settings {
        let me = c.me.clone().unwrap_or_else(crate::root::system_hostname);
        let bounce = mta_verp::BounceConfig::new(&me)
            .bouncefrom(&c.bouncefrom)
            .bouncehost(&c.bouncehost)
            .doublebounceto(&c.doublebounceto)
            .doublebouncehost(&c.doublebouncehost);
        let conc = |n: u64| usize::try_from(n.min(MAX_CONCURRENCY)).unwrap_or(10);
        Settings {
            greeting: c.smtpgreeting.clone().unwrap_or_else(|| me.clone()),
            me,
            listen: c.listen.clone(),
            databytes: c.databytes,
            timeout_smtpd: Duration::from_secs(c.timeoutsmtpd.max(1)),
            concurrency_incoming: usize::try_from(c.concurrencyincoming.clamp(1, MAX_SESSIONS))
                .unwrap_or(100),
            concurrency_per_ip: usize::try_from(c.concurrencyperip.clamp(1, MAX_SESSIONS))
                .unwrap_or(10),
            // RFC 5321 §4.5.3.1.8 asks for at least 100; below that is the admin's choice.
            max_rcpt: usize::try_from(c.maxrcpt.clamp(1, 1_000_000)).unwrap_or(1000),
            max_errors: usize::try_from(c.maxerrors.clamp(1, 1_000_000)).unwrap_or(20),
            min_data_rate: c.mindatarate,
            timeout_local: Duration::from_secs(c.timeoutlocal.max(1)),
            concurrency_local: conc(c.concurrencylocal),
            concurrency_remote: conc(c.concurrencyremote),
            queue_lifetime: Duration::from_secs(c.queuelifetime),
            accept_unknown: c.acceptunknown,
            bounce,
            control: Arc::new(c),
        }
    }

    /// True when `ip` may relay (`relayclients`, qmail's RELAYCLIENT).
    pub fn is_relay_client(&self, ip: IpAddr) -> bool {
        self.control.is_relay_client(ip)
    }

    /// qmail-smtpd's rcpthosts rule (the whole domain, then each `.suffix`; addresses
    /// without `@` pass), except that with no rcpthosts file we refuse relaying: a
    /// deliberate difference from qmail, whose absent rcpthosts made an open relay.
    pub fn rcpthosts_allows(&self, recipient: &Address) -> bool {
        if recipient.domain().is_none() {
            return true;
        }
        self.control.rcpthosts.is_some() && self.control.rcpt_allowed(recipient)
    }

    /// qmail-smtpd's badmailfrom: the whole address, or `@domain`.
    pub fn is_bad_sender(&self, sender: &Address) -> bool {
        !sender.is_null() && self.control.badmailfrom_matches(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(files: &[(&str, &str)]) -> Settings {
        let c = Control::from_texts(files.iter().map(|(n, t)| (*n, t.as_bytes())), "")
            .unwrap_or_else(|e| panic!("{e}"));
        Settings::from_control(c)
    }

    #[test]
    fn relaying_rules() {
        let s = settings(&[
            ("me", "mx.example.org"),
            ("rcpthosts", "example.org\n.example.net\n"),
        ]);
        assert!(s.rcpthosts_allows(&Address::from("a@EXAMPLE.org")));
        assert!(s.rcpthosts_allows(&Address::from("a@x.example.net")));
        assert!(!s.rcpthosts_allows(&Address::from("a@example.com")));
        assert!(s.rcpthosts_allows(&Address::from("postmaster")));
        assert!(s.is_relay_client("127.0.0.1".parse().unwrap_or_else(|_| unreachable!())));
        assert!(
            s.is_relay_client(
                "::ffff:127.0.0.1"
                    .parse()
                    .unwrap_or_else(|_| unreachable!())
            )
        );
        assert!(!s.is_relay_client("192.0.2.1".parse().unwrap_or_else(|_| unreachable!())));
        let open = settings(&[("me", "mx.example.org")]);
        assert!(
            !open.rcpthosts_allows(&Address::from("a@example.com")),
            "no open relay"
        );
        assert_eq!(open.greeting, "mx.example.org");
        assert_eq!(open.concurrency_local, 10);
    }
}
