//! The blocking server driver: [`serve_connection`] runs a [`ServerSession`] over a
//! [`Connection`], answering events through a [`Policy`]; [`serve`] and [`serve_with`] are
//! that loop over a [`Transport`].

// The driver owns the clock; the state machines never read it (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mta_core::path::{ForwardPath, ReversePath};

use super::{BUF, Conn, DATA_BUF, IDLE_BUF, Timeouts, TlsUpgrade, Transport};
use crate::{
    AbortReason, Credentials, DataError, DataSummary, Event, MailParams, RcptParams, Reply,
    ServerConfig, ServerSession, Verdict,
};

/// A connection that [`serve_connection`] runs a session over and that upgrades itself to
/// TLS in place: a daemon's socket that is plain or encrypted, or stdin and stdout (as
/// `sendmail -bs`). Both methods have defaults: reads block until input or EOF, and STARTTLS
/// fails (the session then ends, as RFC 3207 §4.1 lets a server do after a failed
/// negotiation). A [`Transport`] is adapted by [`serve`] and [`serve_with`].
pub trait Connection: Read + Write {
    /// Limits the next read to `wait` (`None`: no limit). A read that runs out returns
    /// `WouldBlock` or `TimedOut`, as a socket's read timeout does.
    ///
    /// # Errors
    /// The limit could not be set (a socket option failing).
    fn set_read_wait(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let _ = wait;
        Ok(())
    }

    /// STARTTLS, after the session's `220 2.0.0 ready to start TLS` went out: runs the
    /// server handshake and goes on encrypted. Returns a description of what was negotiated
    /// (e.g. `TLSv1.3 TLS13_AES_256_GCM_SHA384`), given to [`Policy::tls_started`].
    ///
    /// # Errors
    /// The handshake failed or timed out, or this connection cannot do TLS; the session
    /// then ends ([`Policy::tls_failed`]).
    fn start_tls(&mut self) -> io::Result<String> {
        Err(io::Error::new(
            ErrorKind::Unsupported,
            "no TLS on this connection",
        ))
    }
}

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
    /// TLS is up after STARTTLS (`described` comes from [`Connection::start_tls`]; empty
    /// from a [`TlsUpgrade`] hook). The session forgot the client's HELO and transaction
    /// (RFC 3207 §4.2): the next [`Policy::hello`] is the one that counts.
    fn tls_started(&mut self, described: &str) {
        let _ = described;
    }
    /// The STARTTLS handshake failed; the session ends.
    fn tls_failed(&mut self, error: &io::Error) {
        let _ = error;
    }
    /// The client did not send a command in time or fell below DATA's minimum rate;
    /// `421 4.4.2` went out and the session ends ([`Event::Timeout`]).
    fn timed_out(&mut self) {}
    /// A RCPT beyond `max_recipients` was refused with `452` ([`Event::TooManyRecipients`]).
    fn too_many_recipients(&mut self) {}
    /// The session ended for `reason` ([`Event::Aborted`]); any transaction is void.
    fn aborted(&mut self, reason: AbortReason) {
        let _ = reason;
    }
    /// Asked before every read: `Some(reply)` ends the session with `reply` (a server
    /// stopping answers `421 4.3.2`); a transaction in progress is void.
    fn stop(&mut self) -> Option<Reply> {
        None
    }
    /// The longest a read may wait before [`Policy::stop`] is asked again (`None`: until
    /// the session's own deadline). A policy whose `stop` can change sets this.
    fn stop_poll(&self) -> Option<Duration> {
        None
    }
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
    let mut conn = Adapted {
        conn: Conn::Plain(stream),
        timeouts: &*timeouts,
        tls: tls.as_mut(),
        read_wait: ReadWait::default(),
    };
    serve_connection(&mut conn, session, policy)
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
    let mut conn = Adapted::<std::net::TcpStream> {
        conn: Conn::Tls(stream),
        timeouts: socket,
        tls: None,
        read_wait: ReadWait::default(),
    };
    serve_connection(&mut conn, session, policy)
}

/// How much later than asked a read may time out, to keep the socket's timeout from one
/// command to the next ([`ReadWait`]).
const READ_WAIT_SLACK: Duration = Duration::from_millis(50);

/// The read timeout a socket has (`SO_RCVTIMEO`), remembered so that a
/// [`Connection::set_read_wait`] before every read costs a system call only when the
/// timeout must change: when the one set would wake the read more than 1/16 of the wait
/// early, or late by more than 50 ms (or 1/64 of the wait, if less). The wait before each
/// command is the same idle timeout, give or take the time the previous one took, so most
/// turns keep it. An early wake-up is harmless: the session sees its deadline has not
/// passed and reads again. Waits are at least a millisecond (a zero timeout would mean
/// none to the socket).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadWait {
    set: SetWait,
}

/// The timeout a [`ReadWait`] last set.
#[derive(Clone, Copy, Debug, Default)]
enum SetWait {
    /// Nothing yet (or a failed attempt): the next wait is set whatever it is.
    #[default]
    Unknown,
    /// No timeout.
    Forever,
    /// This one.
    At(Duration),
}

impl ReadWait {
    /// Sets `wait` through `set_timeout` (e.g. `TcpStream::set_read_timeout`) unless the
    /// timeout set last still fits it.
    ///
    /// # Errors
    /// `set_timeout`'s; the next call then sets the timeout again.
    pub fn apply(
        &mut self,
        wait: Option<Duration>,
        set_timeout: impl FnOnce(Option<Duration>) -> io::Result<()>,
    ) -> io::Result<()> {
        let wait = wait.map(|w| w.max(Duration::from_millis(1)));
        let still_fits = match (self.set, wait) {
            (SetWait::Forever, None) => true,
            (SetWait::At(set), Some(w)) => {
                set <= w + (w / 64).min(READ_WAIT_SLACK) && set + w / 16 >= w
            }
            _ => false,
        };
        if still_fits {
            return Ok(());
        }
        self.set = SetWait::Unknown;
        set_timeout(wait)?;
        self.set = wait.map_or(SetWait::Forever, SetWait::At);
        Ok(())
    }
}

/// A [`Transport`] (plain, or encrypted by a [`TlsUpgrade`] hook) as a [`Connection`].
struct Adapted<'a, 'h, S> {
    conn: Conn<S>,
    timeouts: &'a dyn Timeouts,
    tls: Option<&'a mut TlsUpgrade<'h, S>>,
    read_wait: ReadWait,
}

impl<S: Read + Write> Read for Adapted<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.io()?.read(buf)
    }
}

impl<S: Read + Write> Write for Adapted<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.io()?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.conn.io()?.flush()
    }
}

impl<S: Read + Write> Connection for Adapted<'_, '_, S> {
    fn set_read_wait(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let timeouts = self.timeouts;
        self.read_wait.apply(wait, |t| timeouts.set_read_timeout(t))
    }
    fn start_tls(&mut self) -> io::Result<String> {
        // The upgrade hook may set timeouts of its own: the next wait is set afresh.
        self.read_wait = ReadWait::default();
        self.conn.upgrade(self.tls.as_deref_mut())?;
        Ok(String::new())
    }
}

/// Runs one server session over `conn` until QUIT, timeout, EOF, a fatal error or
/// [`Policy::stop`]: the loop every server entry point of this module shares.
///
/// The caller made `session` (with [`ServerSession::with_peer`] for a network client) and
/// set any write timeout on the connection. Each turn hands the session's events to
/// `policy` and applies its verdicts, writes the replies in one batch, runs STARTTLS
/// through [`Connection::start_tls`], asks [`Policy::stop`], then reads once, waiting at
/// most until the session's deadline ([`ServerSession::poll_timeout`]: `421 4.4.2` when
/// it passes) or [`Policy::stop_poll`]. [`Policy::reset`] runs when the session ends.
///
/// A verdict of the wrong class for its event (a `250` to a refusal, say) is replaced by
/// `451 local error in policy`: the session fails safe, temporarily.
///
/// # Errors
/// Read and write errors other than read timeouts, as qmail-smtpd exited on them.
pub fn serve_connection<C: Connection + ?Sized>(
    conn: &mut C,
    mut session: ServerSession,
    policy: &mut impl Policy,
) -> io::Result<()> {
    let result = run(conn, &mut session, policy);
    policy.reset();
    result
}

fn run<C: Connection + ?Sized>(
    conn: &mut C,
    s: &mut ServerSession,
    policy: &mut impl Policy,
) -> io::Result<()> {
    // Small while the client is idle (thousands of idle sessions must stay cheap); once a
    // DATA is under way it is at least DATA_BUF (a message of a few KB then takes one
    // read, not two), and it doubles each time the client fills it, up to BUF (doubling,
    // not one step to BUF: a short message does not pay for zeroing 64 KiB).
    let mut buf = vec![0u8; IDLE_BUF];
    let mut out = Vec::new();
    loop {
        let (start_tls, data) = drain_server_events(s, policy);
        if data && buf.len() < DATA_BUF {
            buf.resize(DATA_BUF, 0);
        }
        out.clear();
        if s.poll_transmit(&mut out) {
            conn.write_all(&out)?;
            conn.flush()?;
        }
        if start_tls {
            match conn.start_tls() {
                Ok(described) => {
                    s.tls_established(Instant::now());
                    policy.tls_started(&described);
                }
                Err(e) => {
                    policy.tls_failed(&e);
                    s.tls_failed();
                }
            }
            continue;
        }
        if s.is_closed() {
            return Ok(());
        }
        if let Some(reply) = policy.stop() {
            s.shutdown(&reply);
            continue;
        }
        let now = Instant::now();
        let wait = s.poll_timeout().map(|d| d.saturating_duration_since(now));
        if wait.is_some_and(|w| w.is_zero()) {
            s.handle_timeout(now);
            continue;
        }
        let wait = match (wait, policy.stop_poll()) {
            (Some(w), Some(p)) => Some(w.min(p)),
            (w, p) => w.or(p),
        };
        conn.set_read_wait(wait)?;
        match conn.read(&mut buf) {
            Ok(0) => s.handle_eof(),
            Ok(n) => {
                s.handle_input(&buf[..n], Instant::now());
                if n == buf.len() && buf.len() < BUF {
                    buf.resize((buf.len() * 2).min(BUF), 0);
                }
            }
            // The deadline, or a stop poll: the session decides whether time is up.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                s.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Hands events to the policy and applies its verdicts; returns whether STARTTLS was
/// asked for, and whether a DATA was.
fn drain_server_events(s: &mut ServerSession, policy: &mut impl Policy) -> (bool, bool) {
    let (mut tls, mut data) = (false, false);
    loop {
        let verdict = match s.poll_event() {
            None => return (tls, data),
            Some(Event::Helo { name } | Event::Ehlo { name }) => {
                policy.hello(&name);
                None
            }
            Some(Event::Mail { path, params }) => Some(policy.mail(&path, &params)),
            Some(Event::Rcpt { path, params }) => Some(policy.rcpt(&path, &params)),
            Some(Event::DataStart) => {
                data = true;
                Some(policy.data_start())
            }
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
            Some(Event::Timeout) => {
                policy.timed_out();
                None
            }
            Some(Event::TooManyRecipients) => {
                policy.too_many_recipients();
                None
            }
            Some(Event::Aborted(reason)) => {
                policy.aborted(reason);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records every read timeout set.
    #[derive(Default)]
    struct Recorded(RefCell<Vec<Option<Duration>>>);

    impl Timeouts for Recorded {
        fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.0.borrow_mut().push(timeout);
            Ok(())
        }
        fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
    }

    /// A client that sends one scripted piece per read, and records how much room each
    /// read was given.
    struct Scripted {
        pieces: std::collections::VecDeque<Vec<u8>>,
        offered: Vec<usize>,
        replies: Vec<u8>,
    }

    impl io::Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.offered.push(buf.len());
            let Some(mut piece) = self.pieces.pop_front() else {
                return Ok(0);
            };
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            if n < piece.len() {
                self.pieces.push_front(piece.split_off(n));
            }
            Ok(n)
        }
    }

    impl io::Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.replies.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    // By reference, so the test reads the record after `serve` is done with it.
    impl Transport for &mut Scripted {}

    struct Accept;
    impl Policy for Accept {}

    /// Commands are read into the small idle buffer; once DATA is accepted the buffer is
    /// DATA_BUF, so a message of a few KB (here 5 KB, as one TCP segment train would bring
    /// it) is taken in one read instead of an IDLE_BUF-sized read and another.
    #[test]
    fn a_message_of_a_few_kilobytes_is_read_at_once() {
        let mut message = b"Subject: x\r\n\r\n".to_vec();
        message.extend(std::iter::repeat_n(b'x', 5000));
        message.extend_from_slice(b"\r\n.\r\n");
        let script: [&[u8]; 6] = [
            b"EHLO c.example\r\n",
            b"MAIL FROM:<a@example.com>\r\n",
            b"RCPT TO:<b@example.org>\r\n",
            b"DATA\r\n",
            &message,
            b"QUIT\r\n",
        ];
        let mut client = Scripted {
            pieces: script.iter().map(|p| p.to_vec()).collect(),
            offered: Vec::new(),
            replies: Vec::new(),
        };
        serve(
            &mut client,
            ServerConfig::new("mx.example.org"),
            &mut Accept,
        )
        .unwrap();
        let replies = String::from_utf8_lossy(&client.replies);
        let offered = &client.offered;
        assert!(replies.contains("354 "), "{replies}");
        assert!(replies.contains("\r\n221 "), "{replies}");
        assert_eq!(
            offered[..5],
            [IDLE_BUF, IDLE_BUF, IDLE_BUF, IDLE_BUF, DATA_BUF],
            "the idle buffer for commands, DATA_BUF once DATA was accepted"
        );
        assert_eq!(offered.len(), 6, "one read per piece: {offered:?}");
    }

    #[test]
    fn the_read_timeout_is_set_again_only_when_it_no_longer_fits() {
        let set = Recorded::default();
        let mut conn = Adapted::<std::io::Cursor<Vec<u8>>> {
            conn: Conn::Plain(std::io::Cursor::new(Vec::new())),
            timeouts: &set,
            tls: None,
            read_wait: ReadWait::default(),
        };
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // The idle timeout before each command, less what the last one took: kept.
        for wait in [ms(300_000), ms(299_998), ms(299_999), ms(299_970)] {
            conn.set_read_wait(Some(wait)).unwrap();
        }
        // Far shorter (a deadline near): set, or the read would sleep past it.
        conn.set_read_wait(Some(s(10))).unwrap();
        // Longer again by more than 1/16: set, or the read would wake needlessly early.
        conn.set_read_wait(Some(s(300))).unwrap();
        conn.set_read_wait(None).unwrap();
        conn.set_read_wait(None).unwrap();
        // A millisecond floor: a zero wait would mean "no timeout" to the socket.
        conn.set_read_wait(Some(Duration::ZERO)).unwrap();
        assert_eq!(
            *set.0.borrow(),
            [Some(s(300)), Some(s(10)), Some(s(300)), None, Some(ms(1))]
        );
    }
}
