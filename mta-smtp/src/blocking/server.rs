//! The blocking server driver: [`serve`] and [`serve_with`] run a [`ServerSession`] over a
//! [`Transport`], answering events through a [`Policy`].

// The driver owns the clock; the state machines never read it (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mta_core::path::{ForwardPath, ReversePath};

use super::{BUF, Conn, Timeouts, TlsUpgrade, Transport};
use crate::{
    Credentials, DataError, DataSummary, Event, MailParams, RcptParams, Reply, ServerConfig,
    ServerSession, Verdict,
};

/// The application side of [`serve`]: every method has a permissive default, so a sink
/// needs only `data_chunk` and `data_end`.
///
/// Verdict methods answer synchronously; a daemon streams chunks into its queue and
/// commits in `data_end`, returning the `250` text with the queue id, or a `451`/`554`.
pub trait Policy {
    /// HELO or EHLO with the client's name; any transaction was reset.
    fn hello(&mut self, name: &str) {
        let _ = name;
    }
    /// MAIL FROM: accept or refuse the sender.
    fn mail(&mut self, path: &ReversePath, params: &MailParams) -> Verdict {
        let _ = (path, params);
        Verdict::Accept
    }
    /// RCPT TO: accept or refuse the recipient.
    fn rcpt(&mut self, path: &ForwardPath, params: &RcptParams) -> Verdict {
        let _ = (path, params);
        Verdict::Accept
    }
    /// DATA: accept (354) or refuse, e.g. when the queue cannot start.
    fn data_start(&mut self) -> Verdict {
        Verdict::Accept
    }
    /// The next piece of the message (see [`Event::DataChunk`]).
    fn data_chunk(&mut self, chunk: &[u8]) {
        let _ = chunk;
    }
    /// The message is complete: commit it and give the final reply. `summary` carries
    /// the envelope (sender and accepted recipients) and the peer address, what a queue
    /// needs to commit the message.
    fn data_end(&mut self, summary: &DataSummary) -> Verdict {
        let _ = summary;
        Verdict::Accept
    }
    /// The message was refused by the session: discard what `data_chunk` received.
    fn data_rejected(&mut self, error: DataError) {
        let _ = error;
    }
    /// AUTH with well-formed credentials (only when `config.offer_auth`): accept or
    /// refuse. The default refuses every login with `535 5.7.8`.
    fn auth(&mut self, credentials: &Credentials) -> Verdict {
        let _ = credentials;
        // invariant: a fixed, valid 5xx reply.
        #[allow(clippy::expect_used)]
        let refused =
            Reply::new(535, "5.7.8 authentication credentials invalid").expect("valid fixed reply");
        Verdict::Reject(refused)
    }
    /// RSET, or the end of the session: discard any transaction state.
    fn reset(&mut self) {}
}

/// Runs one server session on `stream` (a `TcpStream`, a `UnixStream`, or any
/// [`Transport`]) until QUIT, timeout, EOF or a fatal error, without
/// TLS: if `config.offer_starttls` is set, a STARTTLS ends the session (use
/// [`serve_with`] and a TLS hook instead).
///
/// Reads wait at most until the session's deadline (`config.timeout` of inactivity, then
/// `421 4.4.2 timeout`); each write may take at most `config.timeout`.
///
/// # Errors
/// I/O errors other than read timeouts (a write timeout is an error), as qmail-smtpd
/// exited on them.
pub fn serve<S: Transport>(
    stream: S,
    config: ServerConfig,
    policy: &mut impl Policy,
) -> io::Result<()> {
    serve_with(stream, config, policy, None)
}

/// [`serve`] with a STARTTLS hook: after the session's `220 2.0.0 ready to start TLS` is
/// written, `tls` gets the plain stream and returns the encrypted one; the session then
/// forgets the client's HELO and transaction (RFC 3207 §4.2). A failed handshake ends the
/// session. Set `config.offer_starttls` to advertise it.
///
/// # Errors
/// As [`serve`].
pub fn serve_with<S: Transport>(
    stream: S,
    config: ServerConfig,
    policy: &mut impl Policy,
    mut tls: Option<TlsUpgrade<'_, S>>,
) -> io::Result<()> {
    // Timeouts are set on the socket, which a TLS wrapper reads through.
    let timeouts = stream.timeouts()?;
    // A client that stops reading must not hold the thread forever (qmail-smtpd: "a write
    // timeout exits silently").
    timeouts.set_write_timeout(Some(config.timeout.max(Duration::from_millis(1))))?;
    let peer = stream.peer();
    let mut session = ServerSession::new(config, Instant::now());
    if let Some(peer) = peer {
        session = session.with_peer(peer);
    }
    run(
        Conn::Plain(stream),
        &*timeouts,
        session,
        policy,
        tls.as_mut(),
    )
}

/// [`serve_with`] on a stream that is encrypted already (implicit TLS); `socket` is the
/// connection underneath, for its timeouts.
#[cfg(feature = "rustls")]
pub(crate) fn serve_stream(
    stream: Box<dyn super::Stream>,
    socket: &std::net::TcpStream,
    config: ServerConfig,
    policy: &mut impl Policy,
) -> io::Result<()> {
    let mut session = ServerSession::new(config, Instant::now());
    if let Ok(peer) = socket.peer_addr() {
        session = session.with_peer(peer);
    }
    run::<std::net::TcpStream>(Conn::Tls(stream), socket, session, policy, None)
}

fn run<S: Read + Write>(
    mut conn: Conn<S>,
    socket: &dyn Timeouts,
    mut s: ServerSession,
    policy: &mut impl Policy,
    mut tls: Option<&mut TlsUpgrade<'_, S>>,
) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    let mut out = Vec::with_capacity(4096);
    let result = loop {
        let start_tls = drain_server_events(&mut s, policy);
        if s.poll_transmit(&mut out)
            && let Err(e) = conn.write_out(&mut out)
        {
            break Err(e);
        }
        if start_tls {
            if conn.start_tls(tls.as_deref_mut()) {
                s.tls_established(Instant::now());
            }
            if !s.is_tls() {
                s.tls_failed();
            }
            continue;
        }
        if s.is_closed() {
            break Ok(());
        }
        let wait = s
            .poll_timeout()
            .map(|d| d.saturating_duration_since(Instant::now()));
        if wait.is_some_and(|w| w.is_zero()) {
            s.handle_timeout(Instant::now());
            continue;
        }
        socket.set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1))))?;
        match conn.io().and_then(|io| io.read(&mut buf)) {
            Ok(0) => s.handle_eof(),
            Ok(n) => s.handle_input(&buf[..n], Instant::now()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                s.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    policy.reset();
    result
}

/// Hands events to the policy and applies its verdicts; returns true on STARTTLS.
fn drain_server_events(s: &mut ServerSession, policy: &mut impl Policy) -> bool {
    let mut tls = false;
    loop {
        let verdict = match s.poll_event() {
            None => return tls,
            Some(Event::Helo { name } | Event::Ehlo { name }) => {
                policy.hello(&name);
                None
            }
            Some(Event::Mail { path, params }) => Some(policy.mail(&path, &params)),
            Some(Event::Rcpt { path, params }) => Some(policy.rcpt(&path, &params)),
            Some(Event::DataStart) => Some(policy.data_start()),
            Some(Event::DataChunk(c)) => {
                policy.data_chunk(c);
                None
            }
            Some(Event::DataEnd(summary)) => Some(policy.data_end(&summary)),
            Some(Event::DataRejected(e)) => {
                policy.data_rejected(e);
                None
            }
            Some(Event::Rset) => {
                policy.reset();
                None
            }
            Some(Event::StartTls) => {
                tls = true;
                None
            }
            Some(Event::Auth(credentials)) => Some(policy.auth(&credentials)),
            Some(_) => None,
        };
        if let Some(v) = verdict
            && s.decide(v).is_err()
        {
            {
                // The policy returned a reply of the wrong class: fail safe, temporarily.
                let local = Reply::new(451, "local error in policy").map(Verdict::Reject);
                if let Ok(v) = local {
                    // invariant: an event is pending (decide only fails on the reply class
                    // here) and 451 is a valid rejection, so this cannot fail.
                    let _ = s.decide(v);
                }
            }
        }
    }
}
