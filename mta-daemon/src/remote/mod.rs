//! Remote delivery: our qmail-remote (reference §6) and qmail-tcpto (§1.10), run in the
//! remote process (`mtar`, `rspawn.rs`) by one thread per connection from the queue
//! process (at most `concurrencyremote` jobs run at once).
//!
//! [`RemoteDelivery::deliver`] takes one scheduler [`Job`] (every due recipient of one
//! message at one domain with one sender) and returns one [`DeliveryResult`] per target:
//!
//! 1. **Routing** (`plan.rs`): `control/smtproutes` first; else an address
//!    literal; else MX records from our stub resolver (`dns.rs`, UDP with TCP fallback,
//!    CNAMEs followed, TTL cache shared by the pool), ascending preference with random
//!    order among equals, each exchanger resolved to IPv6 then IPv4 addresses; no MX
//!    means the domain's own addresses; a null MX (RFC 7505) fails at once. MXes at or
//!    below the preference of one that is this host (`me`, `localiphost`, a `listen`
//!    address) are dropped, and if none is left the mail "loops back to myself" (5.4.6).
//! 2. **Transmission** (`deliver.rs`): the addresses in order, skipping downed hosts
//!    (`tcpto.rs`), `timeoutconnect` per connect; the first that greets with 220 gets one
//!    transaction with all recipients through mta-smtp's client (`timeoutremote` per
//!    read/write, `helohost`), and its per-recipient replies are the results.
//!
//! Results carry qmail-remote's report texts (`<ip> accepted message.` / `Remote host
//! said: ...`, `Connected to <ip> but greeting failed.`, `... does not like recipient.`,
//! `... but connection died. Possible duplicate!`, DNS texts with `#4.1.2` / `#5.1.2`)
//! and the enhanced status code when known.
//!
//! Tests and unusual setups can change the SMTP port used for MX and A deliveries and the
//! resolv.conf path with [`RemoteOptions`].
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//! use mta_daemon::remote::RemoteDelivery;
//! use mta_queue::{Queue, QueueOptions};
//!
//! let queue = Arc::new(Queue::open("/var/mta/queue", QueueOptions::default())?);
//! let remote = Arc::new(RemoteDelivery::new(Path::new("/var/mta/control"), queue)?);
//! // The remote process's thread for each connection runs, for every job it is handed:
//! //     let results = remote.deliver(&job); // one DeliveryResult per job.targets entry
//! // and `mta queue flush` forgets the downed hosts (qmail-tcpok):
//! remote.reset_downed_hosts();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod deliver;
mod dns;
mod plan;
mod tcpto;
mod tls;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mta_core::{DeliveryResult, EnhancedStatus, StatusClass};
use mta_queue::Queue;

pub use tcpto::TcptoPolicy;

use crate::sched::Job;

/// Knobs that are not control files. [`Default`] is what `mta serve` uses.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// Where to find nameservers when `control/dnsservers` is absent (`/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// The port for MX, A and literal deliveries (25). smtproutes entries give their own.
    /// Tests point this at sinks on 127.0.0.x.
    pub smtp_port: u16,
    /// How long to wait for one DNS answer (5 s).
    pub dns_timeout: Duration,
    /// Rounds over the DNS server list before a lookup fails temporarily (2).
    pub dns_attempts: u32,
    /// When a host counts as down (qmail's values).
    pub tcpto: TcptoPolicy,
}

impl Default for RemoteOptions {
    fn default() -> RemoteOptions {
        RemoteOptions {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            smtp_port: 25,
            dns_timeout: Duration::from_secs(5),
            dns_attempts: 2,
            tcpto: TcptoPolicy::default(),
        }
    }
}

/// One IP in the downed-host table (what qmail-tcpto prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownedHost {
    /// The address.
    pub ip: IpAddr,
    /// Time since its last counted timeout.
    pub since: Duration,
    /// Recent timeouts (at most 10).
    pub count: u32,
}

/// Where remote delivery reads a job's message: the queue itself, or, in the remote
/// delivery process, the descriptors the queue process passed (`crate::rspawn`).
pub trait Messages: Send + Sync + std::fmt::Debug {
    /// The bytes of message `id` (LF line ends, as queued) and their length.
    ///
    /// # Errors
    /// The message cannot be read.
    fn open(
        &self,
        id: mta_queue::MessageId,
    ) -> std::io::Result<(Box<dyn std::io::Read + Send>, u64)>;
}

impl Messages for Queue {
    fn open(
        &self,
        id: mta_queue::MessageId,
    ) -> std::io::Result<(Box<dyn std::io::Read + Send>, u64)> {
        let reader = self.open_message(id).map_err(std::io::Error::other)?;
        let len = reader.len();
        Ok((Box::new(reader), len))
    }
}

/// Remote delivery shared by the pool threads (`Send + Sync`; every method takes `&self`).
#[derive(Debug)]
pub struct RemoteDelivery {
    control: RwLock<Arc<config::Control>>,
    resolv_conf: PathBuf,
    resolver: dns::Resolver,
    downed: tcpto::DownedHosts,
    messages: Arc<dyn Messages>,
    port: u16,
    tls: tls::Outbound,
    /// DKIM keys under `control/dkim/` (re-read when they change).
    signer: mta_msgauth::Signer,
    /// The signatures made for recent messages: a message to many domains is one job per
    /// domain, and every job sends the same signed bytes.
    signatures: std::sync::Mutex<std::collections::HashMap<mta_queue::MessageId, Arc<Vec<u8>>>>,
}

impl RemoteDelivery {
    /// Reads the control files in `control_dir` (smtproutes, dnsservers or
    /// `/etc/resolv.conf`, timeoutconnect 60, timeoutremote 1200, helohost, me,
    /// localiphost, listen) with qmail's rules and defaults; messages are read from `queue`.
    ///
    /// # Errors
    /// A message naming the file (and line) that could not be read or parsed.
    pub fn new(control_dir: &Path, queue: Arc<Queue>) -> Result<RemoteDelivery, String> {
        RemoteDelivery::with_options(control_dir, queue, RemoteOptions::default())
    }

    /// [`RemoteDelivery::new`] reading messages from `messages` instead of a queue (the
    /// remote delivery process, which gets each message's descriptor from the queue
    /// process).
    ///
    /// # Errors
    /// As [`RemoteDelivery::new`].
    pub fn with_messages(
        control_dir: &Path,
        messages: Arc<dyn Messages>,
    ) -> Result<RemoteDelivery, String> {
        RemoteDelivery::with_options(control_dir, messages, RemoteOptions::default())
    }

    /// [`RemoteDelivery::new`] with explicit [`RemoteOptions`].
    ///
    /// # Errors
    /// As [`RemoteDelivery::new`].
    pub fn with_options(
        control_dir: &Path,
        messages: Arc<dyn Messages>,
        options: RemoteOptions,
    ) -> Result<RemoteDelivery, String> {
        let RemoteOptions {
            resolv_conf,
            smtp_port,
            dns_timeout,
            dns_attempts,
            tcpto,
        } = options;
        let control = config::Control::load(control_dir, &resolv_conf)?;
        let resolver = dns::Resolver::new(dns::ResolverConfig {
            servers: control.dns_servers.clone(),
            timeout: dns_timeout,
            attempts: dns_attempts,
        });
        let tls = tls::Outbound::load(control_dir)?;
        Ok(RemoteDelivery {
            control: RwLock::new(Arc::new(control)),
            resolv_conf,
            resolver,
            downed: tcpto::DownedHosts::new(tcpto),
            messages,
            port: smtp_port,
            tls,
            signer: mta_msgauth::Signer::new(mta_msgauth::KeyStore::new(control_dir.join("dkim"))),
            signatures: std::sync::Mutex::default(),
        })
    }

    /// Delivers `job` and returns one result per target, in order: `Delivered` with the
    /// server's reply, `Deferred` (retry later: DNS trouble, no host reachable, 4xx
    /// replies, a lost connection) or `Failed` (bounce: no such domain, null MX, mail
    /// looping back to us, 5xx replies), as qmail-remote and qmail-rspawn decided.
    ///
    /// The scheduler gives one domain per job; should a job mix domains, each domain's
    /// recipients are delivered separately (results still in target order).
    pub fn deliver(&self, job: &Job) -> Vec<DeliveryResult> {
        let domain_of =
            |t: &crate::sched::Target| t.address.domain().map(<[u8]>::to_ascii_lowercase);
        let first = job.targets.first().map(domain_of);
        if job.targets.iter().all(|t| Some(domain_of(t)) == first) {
            return self.deliver_domain(job);
        }
        let mut groups: Vec<(Option<Vec<u8>>, Vec<usize>)> = Vec::new();
        for (i, t) in job.targets.iter().enumerate() {
            let d = domain_of(t);
            match groups.iter_mut().find(|(g, _)| *g == d) {
                Some((_, v)) => v.push(i),
                None => groups.push((d, vec![i])),
            }
        }
        let mut results: Vec<Option<DeliveryResult>> = vec![None; job.targets.len()];
        for (_, indexes) in groups {
            let sub = Job {
                targets: indexes.iter().map(|&i| job.targets[i].clone()).collect(),
                ..job.clone()
            };
            for (i, r) in indexes.into_iter().zip(self.deliver_domain(&sub)) {
                results[i] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| DeliveryResult::Deferred {
                    text: "Internal error: no result. (#4.3.0)".into(),
                    status: EnhancedStatus::new(StatusClass::Transient, 3, 0).ok(),
                })
            })
            .collect()
    }

    /// [`RemoteDelivery::deliver`] for a job whose targets share one domain.
    fn deliver_domain(&self, job: &Job) -> Vec<DeliveryResult> {
        let n = job.targets.len();
        let Some(domain) = job.targets.first().and_then(|t| t.address.domain()) else {
            let status = EnhancedStatus::new(StatusClass::Permanent, 1, 2).ok();
            return vec![
                DeliveryResult::Failed {
                    text: "Sorry, the recipient has no domain. (#5.1.2)".into(),
                    status
                };
                n
            ];
        };
        let domain = String::from_utf8_lossy(domain).into_owned();
        match self.plan(&domain) {
            Ok(hops) => self.transmit(&hops, job),
            Err(result) => vec![result; n],
        }
    }

    /// The control settings in force now (a snapshot: a delivery keeps the one it took).
    fn control(&self) -> Arc<config::Control> {
        Arc::clone(&self.control.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads `control_dir` again (SIGHUP): smtproutes, timeouts, helohost, me, localiphost
    /// and listen apply to the next delivery. The DNS servers stay those read at start.
    ///
    /// # Errors
    /// The `file:line` error of a file that does not parse; the old settings stay.
    pub fn reload(&self, control_dir: &Path) -> Result<(), String> {
        let fresh = config::Control::load(control_dir, &self.resolv_conf)?;
        *self.control.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }

    /// Forgets every downed host (qmail-tcpok); `mta queue flush` calls it.
    pub fn reset_downed_hosts(&self) {
        self.downed.reset();
    }

    /// The downed-host table, sorted by address (qmail-tcpto's listing).
    pub fn downed_hosts(&self) -> Vec<DownedHost> {
        self.downed
            .list(Instant::now())
            .into_iter()
            .map(|(ip, since, count)| DownedHost { ip, since, count })
            .collect()
    }
}

/// A random number for DNS query ids and MX shuffling: SipHash with the process's random
/// keys over a counter (unpredictable to outsiders; no extra dependency).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STATE: RandomState = RandomState::new();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    STATE.with(|s| s.hash_one((n, std::thread::current().id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_numbers_differ() {
        let v: std::collections::HashSet<u64> = (0..1000).map(|_| random_u64()).collect();
        assert_eq!(v.len(), 1000);
    }

    #[test]
    fn shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RemoteDelivery>();
    }
}
