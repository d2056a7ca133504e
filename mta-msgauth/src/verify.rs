//! Checking received mail: SPF (RFC 7208), DKIM (RFC 6376, RFC 8463) and DMARC (RFC 7489),
//! with every DNS query sent to the configured servers.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mail_auth::hickory_resolver::config::{
    NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimOutput, MessageAuthenticator, SpfOutput};

use crate::error::VerifierError;
use crate::results::{
    AuthResults, DkimCheck, DkimResult, DmarcCheck, DmarcPolicy, DmarcResult, SpfCheck,
    SpfIdentity, SpfResult,
};

/// Settings for a [`Verifier`].
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    dns_servers: Vec<SocketAddr>,
    query_timeout: Duration,
    check_timeout: Duration,
    hostname: String,
}

impl VerifierConfig {
    /// Settings that send every DNS query to `dns_servers` (`control/dnsservers`; UDP, and
    /// TCP for truncated answers), never to `/etc/resolv.conf`'s servers or `/etc/hosts`.
    /// Defaults: 5 s per query, 20 s per check (RFC 7208 §4.6.4 asks for at least 20 s
    /// for SPF), host name `localhost`.
    pub fn new(dns_servers: impl Into<Vec<SocketAddr>>) -> VerifierConfig {
        VerifierConfig {
            dns_servers: dns_servers.into(),
            query_timeout: Duration::from_secs(5),
            check_timeout: Duration::from_secs(20),
            hostname: "localhost".to_string(),
        }
    }

    /// How long to wait for one DNS answer before trying again or another server.
    #[must_use]
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// How long each of the SPF, DKIM and DMARC checks may take in all; one that takes
    /// longer gives `temperror`.
    #[must_use]
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// This host's name (`control/me`), which SPF macros may ask for (`%{r}`, RFC 7208
    /// §7.3).
    #[must_use]
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }
}

/// Checks mail asynchronously on the caller's tokio runtime.
///
/// Use one `Verifier` from one runtime only: the resolver's connections belong to the
/// runtime they were made on. [`BlockingVerifier`] wraps one with a runtime of its own.
#[derive(Clone)]
pub struct Verifier {
    auth: MessageAuthenticator,
    config: VerifierConfig,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier using `config`'s DNS servers.
    ///
    /// # Errors
    ///
    /// [`VerifierError::NoDnsServers`] for an empty server list, [`VerifierError::Setup`]
    /// when the resolver cannot be built.
    pub fn new(config: VerifierConfig) -> Result<Verifier, VerifierError> {
        if config.dns_servers.is_empty() {
            return Err(VerifierError::NoDnsServers);
        }
        let servers = config
            .dns_servers
            .iter()
            .map(|addr| {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                ns
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.timeout = config.query_timeout;
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let auth =
            MessageAuthenticator::new(ResolverConfig::from_parts(None, vec![], servers), opts)
                .map_err(|e| VerifierError::Setup {
                    reason: e.to_string(),
                })?;
        Ok(Verifier { auth, config })
    }

    /// The SPF check at MAIL FROM time (RFC 7208 §2.4): the MAIL FROM domain, or the HELO
    /// name for the null reverse-path `<>` (§2.3). `mail_from` is the address without
    /// brackets, empty for `<>`. An identity that is not a multi-label domain name gives
    /// `none` without a lookup (§4.3); a timeout gives `temperror`.
    pub async fn check_spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> SpfCheck {
        let helo = helo.trim_end_matches('.');
        let (identity, subject, domain) = match mail_from.rsplit_once('@') {
            _ if mail_from.is_empty() => (SpfIdentity::Helo, helo, helo),
            Some((_, d)) => (SpfIdentity::MailFrom, mail_from, d.trim_end_matches('.')),
            // RFC 7208 §4.3: a MAIL FROM without '@' is postmaster at that domain
            None => (SpfIdentity::MailFrom, mail_from, mail_from),
        };
        let domain = domain.to_ascii_lowercase();
        let output = if checkable(&domain) {
            let params = match identity {
                SpfIdentity::Helo => SpfParameters::verify_ehlo(ip, helo, &self.config.hostname),
                SpfIdentity::MailFrom if mail_from.contains('@') => {
                    SpfParameters::verify_mail_from(ip, helo, &self.config.hostname, mail_from)
                }
                SpfIdentity::MailFrom => {
                    SpfParameters::verify_ehlo(ip, &domain, &self.config.hostname)
                }
            };
            match self.bounded(self.auth.verify_spf(params)).await {
                Some(out) => out,
                None => SpfOutput::new(domain.clone()).with_result(mail_auth::SpfResult::TempError),
            }
        } else {
            SpfOutput::new(domain.clone()).with_result(mail_auth::SpfResult::None)
        };
        SpfCheck {
            result: spf_result(output.result()),
            identity,
            subject: subject.to_string(),
            domain,
            output,
        }
    }

    /// DKIM and DMARC checks of `message` (header and body as received, CRLF or LF line
    /// ends), given the SPF outcome from [`check_spf`](Self::check_spf) for the same
    /// session. Every DKIM-Signature field is verified; DMARC combines them with SPF, each
    /// aligned with the From: domain as the record asks (relaxed or strict, RFC 7489 §3.1).
    pub async fn check_message(&self, spf: &SpfCheck, message: &[u8]) -> AuthResults {
        let Some(msg) = AuthenticatedMessage::parse(message) else {
            return AuthResults {
                spf: spf.clone(),
                dkim: Vec::new(),
                dmarc: DmarcCheck {
                    result: DmarcResult::None,
                    from_domain: String::new(),
                    policy: None,
                },
            };
        };
        let dkim_out: Vec<DkimOutput<'_>> = match self.bounded(self.auth.verify_dkim(&msg)).await {
            Some(out) => out,
            None => msg
                .dkim_headers
                .iter()
                .map(|h| DkimOutput::temp_err(timeout_error()).with_signature(&h.header))
                .collect(),
        };
        let dkim = dkim_out.iter().map(dkim_check).collect();
        let from_domain = single_from_domain(&msg);
        let params = mail_auth::dmarc::verify::DmarcParameters::new(
            &msg,
            &dkim_out,
            &spf.domain,
            &spf.output,
        );
        let dmarc = match self.bounded(self.auth.verify_dmarc(params)).await {
            Some(out) => dmarc_check(&out, from_domain),
            None => DmarcCheck {
                result: DmarcResult::TempError,
                from_domain,
                policy: None,
            },
        };
        AuthResults {
            spf: spf.clone(),
            dkim,
            dmarc,
        }
    }

    /// [`check_spf`](Self::check_spf) then [`check_message`](Self::check_message).
    pub async fn check(
        &self,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        message: &[u8],
    ) -> AuthResults {
        let spf = self.check_spf(ip, helo, mail_from).await;
        self.check_message(&spf, message).await
    }

    /// Runs `f` for at most the check timeout.
    async fn bounded<T>(&self, f: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout(self.config.check_timeout, f)
            .await
            .ok()
    }
}

/// A [`Verifier`] with a small current-thread tokio runtime of its own, for callers without
/// one: each call blocks the calling thread until the check is done (at most the check
/// timeout per step).
///
/// Can be shared by a pool of worker threads: calls from several threads run concurrently,
/// each future polled on its caller's thread, so DNS waits overlap.
#[derive(Debug)]
pub struct BlockingVerifier {
    verifier: Verifier,
    runtime: tokio::runtime::Runtime,
}

impl BlockingVerifier {
    /// A blocking verifier using `config`'s DNS servers.
    ///
    /// # Errors
    ///
    /// As [`Verifier::new`], and [`VerifierError::Setup`] when the runtime cannot be made.
    pub fn new(config: VerifierConfig) -> Result<BlockingVerifier, VerifierError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| VerifierError::Setup {
                reason: e.to_string(),
            })?;
        let verifier = {
            let _guard = runtime.enter();
            Verifier::new(config)?
        };
        Ok(BlockingVerifier { verifier, runtime })
    }

    /// Blocking [`Verifier::check_spf`].
    pub fn check_spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> SpfCheck {
        self.runtime
            .block_on(self.verifier.check_spf(ip, helo, mail_from))
    }

    /// Blocking [`Verifier::check_message`].
    pub fn check_message(&self, spf: &SpfCheck, message: &[u8]) -> AuthResults {
        self.runtime
            .block_on(self.verifier.check_message(spf, message))
    }

    /// Blocking [`Verifier::check`].
    pub fn check(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> AuthResults {
        self.runtime
            .block_on(self.verifier.check(ip, helo, mail_from, message))
    }
}

/// RFC 7208 §4.3: a domain that can be checked is a multi-label name of valid labels.
fn checkable(domain: &str) -> bool {
    domain.contains('.')
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

fn timeout_error() -> mail_auth::Error {
    mail_auth::Error::Dns(mail_auth::DnsError::Resolver("timed out".to_string()))
}

fn spf_result(r: mail_auth::SpfResult) -> SpfResult {
    match r {
        mail_auth::SpfResult::Pass => SpfResult::Pass,
        mail_auth::SpfResult::Fail => SpfResult::Fail,
        mail_auth::SpfResult::SoftFail => SpfResult::SoftFail,
        mail_auth::SpfResult::Neutral => SpfResult::Neutral,
        mail_auth::SpfResult::TempError => SpfResult::TempError,
        mail_auth::SpfResult::PermError => SpfResult::PermError,
        mail_auth::SpfResult::None => SpfResult::None,
    }
}

fn dkim_check(o: &DkimOutput<'_>) -> DkimCheck {
    let (result, reason) = match o.result() {
        mail_auth::DkimResult::Pass => (DkimResult::Pass, None),
        // RFC 6376 §6.1.3: a body hash mismatch is a failed verification (PERMFAIL), which
        // RFC 8601 §2.7.1 writes as `fail`; mail-auth reports it as neutral.
        mail_auth::DkimResult::Fail(e)
        | mail_auth::DkimResult::Neutral(
            e @ mail_auth::Error::Dkim(mail_auth::dkim::DkimError::FailedBodyHashMatch),
        ) => (DkimResult::Fail, Some(e.to_string())),
        mail_auth::DkimResult::Neutral(e) => (DkimResult::Neutral, Some(e.to_string())),
        mail_auth::DkimResult::PermError(e) => (DkimResult::PermError, Some(e.to_string())),
        mail_auth::DkimResult::TempError(e) => (DkimResult::TempError, Some(e.to_string())),
        mail_auth::DkimResult::None => (DkimResult::None, None),
    };
    let sig = o.signature();
    DkimCheck {
        result,
        domain: sig.map(|s| s.d.clone()).unwrap_or_default(),
        selector: sig.map(|s| s.s.clone()).unwrap_or_default(),
        algorithm: sig.map(|s| match s.a {
            mail_auth::common::crypto::Algorithm::RsaSha256 => "rsa-sha256",
            mail_auth::common::crypto::Algorithm::RsaSha1 => "rsa-sha1",
            mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }),
        reason,
    }
}

/// The From: domain DMARC applies to: the one domain of all From: addresses (RFC 7489
/// §6.6.1), else empty.
fn single_from_domain(msg: &AuthenticatedMessage<'_>) -> String {
    let mut domains = msg
        .from
        .iter()
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()));
    let Some(first) = domains.next() else {
        return String::new();
    };
    if domains.all(|d| d == first) {
        first
    } else {
        String::new()
    }
}

fn dmarc_check(o: &mail_auth::DmarcOutput, from_domain: String) -> DmarcCheck {
    let result = match o.result() {
        mail_auth::DmarcResult::Pass => DmarcResult::Pass,
        mail_auth::DmarcResult::Fail(_) => DmarcResult::Fail,
        mail_auth::DmarcResult::TempError(_) => DmarcResult::TempError,
        mail_auth::DmarcResult::PermError(_) => DmarcResult::PermError,
        mail_auth::DmarcResult::None => DmarcResult::None,
    };
    let policy = o.dmarc_record().map(|_| match o.policy() {
        mail_auth::dmarc::Policy::Reject => DmarcPolicy::Reject,
        mail_auth::dmarc::Policy::Quarantine => DmarcPolicy::Quarantine,
        mail_auth::dmarc::Policy::None | mail_auth::dmarc::Policy::Unspecified => DmarcPolicy::None,
    });
    DmarcCheck {
        result,
        from_domain,
        policy,
    }
}
