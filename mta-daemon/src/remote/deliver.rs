//! The SMTP part of a remote delivery: connect to each planned address in turn
//! (`timeoutconnect`, downed hosts skipped), then run mta-smtp's client over the
//! connection (`timeoutremote` per read and write), one transaction with every recipient.
//!
//! qmail-remote stopped at the first successful connect. We go on to the next address
//! when the server sends no greeting within `timeoutremote`, closes the connection
//! before greeting, or greets with something other than 220 (RFC 5321 §3.1 and §5.1:
//! try the next MX when the first will not talk); in these cases nothing has been sent,
//! so there is no risk of a duplicate.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use mta_core::control::TlsDestination;
use mta_core::header::Submission;
use mta_core::{DeliveryResult, EnhancedStatus, Envelope, StatusClass};
use mta_smtp::blocking::{self, Stream};
use mta_smtp::tls as smtp_tls;
use mta_smtp::{ClientConfig, TlsPolicy};

use super::RemoteDelivery;
use super::plan::Hop;
use crate::log;
use crate::sched::Job;

/// How the server began the session.
enum Greeting {
    /// Bytes arrived (or a read error): let the client session judge them.
    Started,
    /// The server closed the connection without a word.
    Closed,
    /// Nothing within `timeoutremote`.
    Silent,
}

fn deferred(text: String, subject: u16, detail: u16) -> DeliveryResult {
    DeliveryResult::Deferred {
        text,
        status: EnhancedStatus::new(StatusClass::Transient, subject, detail).ok(),
    }
}

/// Messages whose signatures are kept for their other jobs (the cache starts over when
/// full; a message to more domains than this is signed again, which costs only time).
const SIGNATURE_CACHE: usize = 1024;

/// What one address gave.
enum Attempt {
    /// The delivery happened there: these are the results.
    Done(Vec<DeliveryResult>),
    /// Try the next address; the results, if any, stand should every address fail.
    Next(Option<Vec<DeliveryResult>>),
}

impl RemoteDelivery {
    /// Delivers `job` to the first address in `hops` that talks SMTP.
    pub(crate) fn transmit(&self, hops: &[Hop], job: &Job) -> Vec<DeliveryResult> {
        let n = job.targets.len();
        let envelope = Envelope {
            sender: job.sender.clone(),
            recipients: job.targets.iter().map(|t| t.address.clone()).collect(),
        };
        let dkim = match self.dkim_signatures(job) {
            Ok(d) => d,
            Err(text) => return vec![deferred(text, 3, 0); n],
        };
        let mut last: Option<Vec<DeliveryResult>> = None;
        let mut down = 0;
        for hop in hops {
            if self.downed.is_down(hop.ip, Instant::now()) {
                down += 1;
                continue;
            }
            match self.attempt(hop, job, &envelope, &dkim, false) {
                Attempt::Done(results) => return results,
                Attempt::Next(results) => last = results.or(last),
            }
        }
        last.unwrap_or_else(|| {
            let why = if down > 0 {
                format!(
                    " {down} of {} addresses are marked down after timeouts.",
                    hops.len()
                )
            } else {
                String::new()
            };
            let text =
                format!("Sorry, I wasn't able to establish an SMTP connection.{why} (#4.4.1)");
            vec![deferred(text, 4, 1); n]
        })
    }

    /// Connects to `hop` and, if it greets, runs the SMTP transaction there, with STARTTLS
    /// as the domain's `tlsdestinations` policy says (`plain`: no TLS, the retry after a
    /// failed handshake under `may`).
    fn attempt(
        &self,
        hop: &Hop,
        job: &Job,
        envelope: &Envelope,
        dkim: &[u8],
        plain: bool,
    ) -> Attempt {
        let n = job.targets.len();
        let stream = match self.connect_and_greet(hop, n) {
            Ok(s) => s,
            Err(next) => return next,
        };
        let (message, len) = match self.messages.open(job.id) {
            Ok(m) => m,
            Err(e) => {
                let text = format!("Unable to read message: {e}. (#4.3.0)");
                return Attempt::Done(vec![deferred(text, 3, 0); n]);
            }
        };
        let peer = hop.ip.to_string();
        let size = len + dkim.len() as u64;
        let (config, policy, tls_config) = self.client_config(hop, envelope, size, plain);
        let message = std::io::Read::chain(dkim, message);
        let mode = config.tls;
        // What the handshake gave, if one ran: the version and cipher, or the error.
        let mut handshake: Option<Result<String, String>> = None;
        let results = {
            let mut hook = |tcp: TcpStream| -> io::Result<Box<dyn Stream>> {
                let Some(cfg) = tls_config.clone() else {
                    return Err(io::Error::other("no TLS configuration"));
                };
                match smtp_tls::connect(tcp, cfg, &hop.name) {
                    Ok(t) => {
                        handshake = Some(Ok(smtp_tls::describe(&t.conn)));
                        Ok(Box::new(t))
                    }
                    Err(e) => {
                        handshake = Some(Err(e.to_string()));
                        Err(e)
                    }
                }
            };
            let hook: Option<blocking::TlsUpgrade<'_>> =
                (mode != TlsPolicy::Never).then_some(&mut hook);
            blocking::deliver_with(stream, envelope, message, config, hook)
        };
        match handshake {
            Some(Ok(described)) => {
                log::line(&format!("remote: tls {peer} {} {described}", hop.name));
            }
            Some(Err(e)) => {
                return self.handshake_failed(hop, job, envelope, dkim, policy, &e);
            }
            None => {}
        }
        // Nothing was sent after a greeting other than 220, or TLS was required and not
        // offered: another MX may do better.
        let refused = format!("Connected to {peer} but greeting failed.");
        let no_tls = "STARTTLS, which is required.";
        if results.iter().all(|r| {
            matches!(r, DeliveryResult::Deferred { .. })
                && (r.text().starts_with(&refused) || r.text().contains(no_tls))
        }) {
            return Attempt::Next(Some(results));
        }
        Attempt::Done(results)
    }

    /// The DKIM-Signature fields for message `job.id` (LF line ends, as queued), or none
    /// (made once per message: its other jobs, one per domain, reuse them):
    /// signed only when `control/dkim/` has keys for its From: domain and it was submitted
    /// by someone this host vouches for (a local user, a bounce of ours, an authenticated
    /// client or one in `relayclients`; a forward counts as its original). `Err` is the
    /// deferral text when the keys or the message cannot be read.
    fn dkim_signatures(&self, job: &Job) -> Result<Arc<Vec<u8>>, String> {
        let has_keys = std::fs::read_dir(self.signer.keys().dir())
            .is_ok_and(|mut entries| entries.next().is_some());
        if !has_keys {
            return Ok(Arc::default());
        }
        let cache = || {
            self.signatures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(signed) = cache().get(&job.id) {
            return Ok(Arc::clone(signed));
        }
        let signed = Arc::new(self.sign_message(job)?);
        let mut cache = cache();
        if cache.len() >= SIGNATURE_CACHE {
            cache.clear();
        }
        cache.insert(job.id, Arc::clone(&signed));
        Ok(signed)
    }

    /// [`Self::dkim_signatures`] without the cache.
    fn sign_message(&self, job: &Job) -> Result<Vec<u8>, String> {
        let mut message = Vec::new();
        self.messages
            .open(job.id)
            .and_then(|(mut m, _)| std::io::Read::read_to_end(&mut m, &mut message))
            .map_err(|e| format!("Unable to read message: {e}. (#4.3.0)"))?;
        let trusted = match mta_core::header::submission(&message) {
            Submission::Local | Submission::Bounce => true,
            Submission::Network { authenticated, ip } => {
                authenticated || ip.is_some_and(|ip| self.control().relay_clients.contains(ip))
            }
            Submission::Unknown => false,
        };
        if !trusted {
            return Ok(Vec::new());
        }
        // Signed as it goes on the wire: the queue keeps LF, the SMTP client sends CRLF.
        let mut wire = Vec::with_capacity(message.len() + message.len() / 32);
        for line in message.split_inclusive(|&b| b == b'\n') {
            match line.strip_suffix(b"\n") {
                Some(text) => {
                    wire.extend_from_slice(text);
                    wire.extend_from_slice(b"\r\n");
                }
                None => wire.extend_from_slice(line),
            }
        }
        let signed = self
            .signer
            .sign(&wire)
            .map_err(|e| format!("DKIM signing failed: {e}. (#4.3.0)"))?;
        // The queue keeps LF line ends; the SMTP client sends CRLF.
        Ok(signed.into_iter().filter(|&b| b != b'\r').collect())
    }

    /// Connects to `hop` and waits for the first byte of its greeting; the attempt's end
    /// (try the next hop, with or without results) when that fails. Keeps the downed-hosts
    /// table (qmail's tcpto) up to date either way.
    fn connect_and_greet(&self, hop: &Hop, n: usize) -> Result<TcpStream, Attempt> {
        let addr = SocketAddr::new(hop.ip, hop.port);
        let stream = match TcpStream::connect_timeout(&addr, self.control().timeout_connect) {
            Ok(s) => {
                // The client writes whole pipelined groups; without this the final ".\r\n"
                // after the body waits for the server's delayed ACK (about 40 ms a message).
                // A socket option that cannot be set only costs speed.
                let _ = s.set_nodelay(true);
                s
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::TimedOut {
                    self.downed.timed_out(hop.ip, Instant::now());
                } else {
                    self.downed.reachable(hop.ip);
                }
                return Err(Attempt::Next(None));
            }
        };
        match self.wait_greeting(&stream) {
            Greeting::Silent => {
                self.downed.timed_out(hop.ip, Instant::now());
                let text = format!("Connected to {} but greeting timed out.", hop.ip);
                Err(Attempt::Next(Some(vec![deferred(text, 4, 2); n])))
            }
            Greeting::Closed => {
                self.downed.reachable(hop.ip);
                let text = format!(
                    "Connected to {} but connection died before the greeting.",
                    hop.ip
                );
                Err(Attempt::Next(Some(vec![deferred(text, 4, 2); n])))
            }
            Greeting::Started => {
                self.downed.reachable(hop.ip);
                Ok(stream)
            }
        }
    }

    /// The SMTP client's settings for one attempt at `hop`: HELO host, timeouts, size, the
    /// TLS policy (`tlsdestinations`, raised to `encrypt` when `smtpauth` has a login for
    /// the hop; `plain` for the retry without TLS) and the AUTH login.
    fn client_config(
        &self,
        hop: &Hop,
        envelope: &Envelope,
        size: u64,
        plain: bool,
    ) -> (
        ClientConfig,
        TlsDestination,
        Option<std::sync::Arc<mta_smtp::tls::rustls::ClientConfig>>,
    ) {
        let mut config = ClientConfig::new(self.control().helohost.clone(), hop.ip.to_string());
        config.timeout = self.control().timeout_remote;
        config.message_size = Some(size);
        let domain = envelope
            .recipients
            .first()
            .and_then(|r| r.domain())
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default();
        let policy = if plain {
            TlsDestination::None
        } else {
            self.control().tls_destinations.lookup(&domain)
        };
        // A smarthost with a login in control/smtpauth: AUTH after STARTTLS, which is then
        // required (mta-smtp's client never sends credentials outside TLS: without TLS
        // the message is deferred).
        let login = self.control().smtp_auth.lookup(&hop.name).cloned();
        let policy = match (&login, policy) {
            (Some(_), TlsDestination::None | TlsDestination::May) if !plain => {
                TlsDestination::Encrypt
            }
            (_, p) => p,
        };
        let (mode, tls_config) = self.tls.for_policy(policy);
        config.tls = mode;
        config.auth = login.map(|entry| mta_smtp::ClientAuth {
            login: entry.login,
            password: mta_smtp::Secret::new(entry.password.into_bytes()),
        });
        (config, policy, tls_config)
    }

    /// A failed STARTTLS handshake with `hop` (only EHLO and STARTTLS were sent, so
    /// nothing can be duplicated): under `may` the same host again in plain text; under
    /// `encrypt` and `verify` a deferral that says why, and the next address.
    fn handshake_failed(
        &self,
        hop: &Hop,
        job: &Job,
        envelope: &Envelope,
        dkim: &[u8],
        policy: TlsDestination,
        error: &str,
    ) -> Attempt {
        let error = log::safe(error.as_bytes());
        log::line(&format!(
            "remote: tls handshake with {} {} failed: {error}",
            hop.ip, hop.name
        ));
        if policy == TlsDestination::May {
            return self.attempt(hop, job, envelope, dkim, true);
        }
        let text = format!(
            "TLS handshake with {} ({}) failed: {error}; tlsdestinations requires {} for \
             this domain. (#4.7.5)",
            hop.ip,
            hop.name,
            policy.as_str()
        );
        Attempt::Next(Some(vec![deferred(text, 7, 5); job.targets.len()]))
    }

    /// Waits up to `timeoutremote` for the first byte of the greeting, without consuming it.
    fn wait_greeting(&self, stream: &TcpStream) -> Greeting {
        if stream
            .set_read_timeout(Some(self.control().timeout_remote))
            .is_err()
        {
            return Greeting::Started;
        }
        let mut byte = [0u8; 1];
        match stream.peek(&mut byte) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Greeting::Silent
            }
            Ok(0) => Greeting::Closed,
            // Data or another error: the session reports it ("connection died").
            _ => Greeting::Started,
        }
    }
}
