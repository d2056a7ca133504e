//! Blocking drivers: run a [`ServerSession`] or a [`ClientSession`] over a
//! [`std::net::TcpStream`], one thread per connection.
//!
//! Reads go through a 64 KiB buffer (no per-byte system calls); each batch of replies is
//! written with one `write_all`, which is what makes PIPELINING cheap. The session's
//! `poll_timeout` becomes the socket's read timeout. This module is the only place in the
//! crate that reads the clock.

// The driver owns the clock; the state machines never read it (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mta_core::path::{ForwardPath, ReversePath};
use mta_core::{DeliveryResult, Envelope};

use crate::{
    ClientConfig, ClientEvent, ClientSession, DataError, DataSummary, Event, MailParams,
    RcptParams, Reply, ServerConfig, ServerSession, Verdict,
};

const BUF: usize = 64 * 1024;

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
    /// The message is complete: commit it and give the final reply.
    fn data_end(&mut self, summary: &DataSummary) -> Verdict {
        let _ = summary;
        Verdict::Accept
    }
    /// The message was refused by the session: discard what `data_chunk` received.
    fn data_rejected(&mut self, error: DataError) {
        let _ = error;
    }
    /// RSET, or the end of the session: discard any transaction state.
    fn reset(&mut self) {}
}

/// Runs one server session on `stream` until QUIT, timeout, EOF or a fatal error, without
/// TLS: if `config.offer_starttls` is set, a STARTTLS ends the session (use
/// [`serve_with`] and a TLS hook instead).
///
/// Reads wait at most until the session's deadline (`config.timeout` of inactivity, then
/// `451 4.4.2 timeout`); each write may take at most `config.timeout`.
///
/// # Errors
/// I/O errors other than read timeouts (a write timeout is an error), as qmail-smtpd
/// exited on them.
pub fn serve(stream: TcpStream, config: ServerConfig, policy: &mut impl Policy) -> io::Result<()> {
    serve_with(stream, config, policy, None)
}

/// [`serve`] with a STARTTLS hook: after the session's `220 2.0.0 ready to start TLS` is
/// written, `tls` gets the plain stream and returns the encrypted one; the session then
/// forgets the client's HELO and transaction (RFC 3207 §4.2). A failed handshake ends the
/// session. Set `config.offer_starttls` to advertise it.
///
/// # Errors
/// As [`serve`].
pub fn serve_with(
    stream: TcpStream,
    config: ServerConfig,
    policy: &mut impl Policy,
    mut tls: Option<TlsUpgrade<'_>>,
) -> io::Result<()> {
    // A client that stops reading must not hold the thread forever (qmail-smtpd: "a write
    // timeout exits silently").
    stream.set_write_timeout(Some(config.timeout.max(Duration::from_millis(1))))?;
    // Timeouts are set on the socket, which a TLS wrapper reads through.
    let socket = stream.try_clone()?;
    let mut conn = Conn::Plain(stream);
    let mut s = ServerSession::new(config, Instant::now());
    let mut buf = vec![0u8; BUF];
    let mut out = Vec::with_capacity(4096);
    let result = loop {
        let start_tls = drain_server_events(&mut s, policy);
        if s.poll_transmit(&mut out) {
            let written = conn
                .io()
                .and_then(|io| io.write_all(&out).and_then(|()| io.flush()));
            out.clear();
            if let Err(e) = written {
                break Err(e);
            }
        }
        if start_tls {
            conn = match (std::mem::replace(&mut conn, Conn::Gone), tls.as_mut()) {
                (Conn::Plain(plain), Some(upgrade)) => match upgrade(plain) {
                    Ok(encrypted) => {
                        s.tls_established(Instant::now());
                        Conn::Tls(encrypted)
                    }
                    Err(_) => Conn::Gone,
                },
                (other, _) => other,
            };
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

/// Something TLS-wrapped (or not) to talk SMTP over, for [`deliver_with`]'s upgrade hook.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// The STARTTLS hook: given the plain stream after the server's `220`, run the TLS
/// handshake and return the encrypted stream.
pub type TlsUpgrade<'a> = &'a mut dyn FnMut(TcpStream) -> io::Result<Box<dyn Stream>>;

enum Conn {
    Plain(TcpStream),
    Tls(Box<dyn Stream>),
    Gone,
}

impl Conn {
    fn io(&mut self) -> io::Result<&mut dyn Stream> {
        match self {
            Conn::Plain(s) => Ok(s),
            Conn::Tls(s) => Ok(s.as_mut()),
            Conn::Gone => Err(io::Error::new(
                ErrorKind::NotConnected,
                "tls upgrade failed",
            )),
        }
    }
}

/// Delivers one message over a connected `stream` with qmail-remote's defaults (no TLS,
/// `helo` as the EHLO name, the peer's IP in report texts), returning one result per
/// recipient of `envelope`, in order. `message` is the stored message (LF line ends).
pub fn deliver(
    stream: TcpStream,
    envelope: &Envelope,
    message: impl Read,
    helo: &str,
) -> Vec<DeliveryResult> {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "unknown".to_owned(), |a| a.ip().to_string());
    deliver_with(
        stream,
        envelope,
        message,
        ClientConfig::new(helo, peer),
        None,
    )
}

/// [`deliver`] with a full [`ClientConfig`] and an optional STARTTLS hook (required when
/// `config.tls` is not `Never`; without it STARTTLS is treated as failed).
///
/// Socket read and write timeouts are set to `config.timeout`. I/O errors never escape:
/// they become deferrals (qmail's "connection died", with "Possible duplicate!" after the
/// final dot), and an unreadable message defers every recipient.
pub fn deliver_with(
    stream: TcpStream,
    envelope: &Envelope,
    mut message: impl Read,
    config: ClientConfig,
    mut tls: Option<TlsUpgrade<'_>>,
) -> Vec<DeliveryResult> {
    let timeout = config.timeout.max(Duration::from_millis(1));
    let mut s = ClientSession::new(config, envelope.clone(), Instant::now());
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
    {
        s.abort("Unable to set socket timeouts.");
        return s.results();
    }
    let mut conn = Conn::Plain(stream);
    let mut buf = vec![0u8; BUF];
    let mut out = Vec::with_capacity(BUF * 2);
    while !s.is_finished() {
        while let Some(ev) = s.poll_event() {
            match ev {
                ClientEvent::StartTls => {
                    flush(&mut s, &mut conn, &mut out);
                    conn = match (std::mem::replace(&mut conn, Conn::Gone), tls.as_mut()) {
                        (Conn::Plain(p), Some(up)) => match up(p) {
                            Ok(t) => {
                                s.tls_established(Instant::now());
                                Conn::Tls(t)
                            }
                            Err(_) => Conn::Gone,
                        },
                        _ => Conn::Gone,
                    };
                    if matches!(conn, Conn::Gone) {
                        s.handle_eof();
                    }
                }
                ClientEvent::SendBody => loop {
                    match message.read(&mut buf) {
                        Ok(0) => {
                            s.finish_body(Instant::now());
                            break;
                        }
                        Ok(n) => {
                            s.send_body(&buf[..n]);
                            if !flush(&mut s, &mut conn, &mut out) {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            s.abort(&format!("Unable to read message: {e}."));
                            break;
                        }
                    }
                },
                _ => {}
            }
        }
        flush(&mut s, &mut conn, &mut out);
        if s.is_finished() {
            break;
        }
        let read = conn.io().and_then(|io| io.read(&mut buf));
        match read {
            Ok(0) => s.handle_eof(),
            Ok(n) => s.handle_input(&buf[..n], Instant::now()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => s.handle_eof(),
        }
    }
    s.results()
}

/// Writes pending output; on failure the session learns the connection died.
fn flush(s: &mut ClientSession, conn: &mut Conn, out: &mut Vec<u8>) -> bool {
    if !s.poll_transmit(out) {
        return true;
    }
    let r = conn
        .io()
        .and_then(|io| io.write_all(out).and_then(|()| io.flush()));
    out.clear();
    if r.is_err() {
        s.handle_eof();
        return false;
    }
    true
}
