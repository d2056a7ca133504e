//! [`ServerSession`]: the sans-IO SMTP server state machine.

use core::net::SocketAddr;
use std::collections::VecDeque;
use std::time::Instant;

use mta_core::{Address, Envelope};

use crate::Reply;
use crate::server::auth::{Exchange, MAX_AUTH_LINE};
use crate::server::data::DataReceiver;
use crate::server::{AbortReason, DecideError, Event, ServerConfig, Verdict};

mod dispatch;

use dispatch::text;

/// Most message bytes decoded per [`Event::DataChunk`].
const CHUNK: usize = 256 * 1024;

/// Unread input above which [`ServerSession::wants_input`] says stop reading.
const INPUT_HIGH_WATER: usize = 256 * 1024;

/// The session's phase (RFC 5321 §3.3 order: greeting done, then commands, then data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading command lines.
    Command,
    /// Reading message data after `354`.
    Data,
    /// `220` to STARTTLS sent; waiting for the driver's handshake.
    TlsHandshake,
    /// Nothing more is read.
    Closed,
}

/// The transaction (RFC 5321 §3.3): started by an accepted MAIL.
#[derive(Clone, Copy, Debug, Default)]
struct Transaction {
    smtputf8: bool,
    recipients: usize,
}

/// An event waiting for [`ServerSession::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Mail {
        smtputf8: bool,
    },
    Rcpt,
    DataStart,
    DataEnd,
    /// AUTH credentials for this login.
    Auth,
}

/// What one step of the machine produced.
enum Step {
    Event(Event<'static>),
    Chunk,
}

/// A sans-IO SMTP server session (RFC 5321, qmail-smtpd's behaviour plus ESMTP).
///
/// No socket, thread or clock inside: the driver feeds received bytes with
/// [`handle_input`](Self::handle_input), passes the time in, and drains three outputs.
/// After any input, call in this order until each is empty:
///
/// 1. [`poll_event`](Self::poll_event): commands are parsed here, one event at a time; answer
///    events that need a verdict with [`decide`](Self::decide) (right away, or later).
/// 2. [`poll_transmit`](Self::poll_transmit): reply bytes to write, in command order.
/// 3. [`poll_timeout`](Self::poll_timeout): when to call
///    [`handle_timeout`](Self::handle_timeout) if no input arrives.
///
/// Stop when [`is_closed`](Self::is_closed) and the output is written.
///
/// ```
/// use std::time::Instant;
/// use mta_smtp::{Event, ServerConfig, ServerSession, Verdict};
/// # #[allow(clippy::disallowed_methods)]
/// let now = Instant::now();
/// let mut s = ServerSession::new(ServerConfig::new("mx.example"), now);
/// s.handle_input(b"HELO client.example\r\nQUIT\r\n", now);
/// while let Some(ev) = s.poll_event() {
///     if matches!(ev, Event::Quit) { break; }
/// }
/// let mut out = Vec::new();
/// assert!(s.poll_transmit(&mut out));
/// assert_eq!(out, b"220 mx.example ESMTP\r\n250 mx.example\r\n221 mx.example\r\n");
/// assert!(s.is_closed());
/// ```
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    phase: Phase,
    input: Vec<u8>,
    pos: usize,
    scanned: usize,
    line: Vec<u8>,
    out: Vec<u8>,
    chunk: Vec<u8>,
    queued: VecDeque<Event<'static>>,
    pending: Option<Pending>,
    transaction: Option<Transaction>,
    data: DataReceiver,
    errors: usize,
    tls: bool,
    eof: bool,
    helo: Option<String>,
    /// When the client must have sent its next command line (or, in DATA, enough bytes).
    deadline: Option<Instant>,
    /// The latest time the driver passed in (input, timeout checks, the greeting).
    now: Instant,
    /// DATA in progress: when `354` was decided, and the bytes received since.
    data_clock: Option<(Instant, u64)>,
    /// An AUTH exchange waiting for the client's next response line.
    sasl: Option<Exchange>,
    /// The login being checked ([`Pending::Auth`]), then the one that succeeded.
    auth_login: Option<String>,
    /// True once AUTH succeeded.
    authenticated: bool,
    /// The transaction's envelope: the accepted sender and recipients so far (valid while
    /// `transaction` is `Some`; replaced at each accepted MAIL).
    envelope: Envelope,
    /// The address of the MAIL or RCPT event waiting for its verdict.
    pending_address: Option<Address>,
    /// The client's address, if the driver gave it ([`ServerSession::with_peer`]).
    peer: Option<SocketAddr>,
}

impl ServerSession {
    /// Starts a session for a new connection at time `now`; the `220` greeting is queued.
    pub fn new(config: ServerConfig, now: Instant) -> ServerSession {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"220 ");
        out.extend_from_slice(config.greeting.as_bytes());
        out.extend_from_slice(b" ESMTP\r\n");
        let data = DataReceiver::new(
            config.line_ending,
            config.max_message_size,
            config.max_data_line,
        );
        ServerSession {
            tls: config.implicit_tls,
            deadline: now.checked_add(config.timeout),
            now,
            data_clock: None,
            sasl: None,
            auth_login: None,
            authenticated: false,
            config,
            phase: Phase::Command,
            input: Vec::new(),
            pos: 0,
            scanned: 0,
            line: Vec::new(),
            out,
            chunk: Vec::new(),
            queued: VecDeque::new(),
            pending: None,
            transaction: None,
            data,
            errors: 0,
            eof: false,
            helo: None,
            envelope: Envelope::default(),
            pending_address: None,
            peer: None,
        }
    }

    /// Records the client's address, reported in [`DataSummary::peer`](crate::DataSummary)
    /// and by [`ServerSession::peer`]. The session never uses it for a decision; it is a
    /// plain value (no socket), so a driver over a Unix socket or a pipe just leaves it out.
    #[must_use]
    pub fn with_peer(mut self, peer: SocketAddr) -> ServerSession {
        self.peer = Some(peer);
        self
    }

    /// The client's address given to [`ServerSession::with_peer`], if any.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The envelope of the transaction in progress (RFC 5321 §3.3): the sender of the
    /// accepted MAIL and the recipients accepted so far, in qmail's internal form; `None`
    /// outside a transaction. [`DataSummary::envelope`](crate::DataSummary) carries the same
    /// at the end of the message.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.transaction.map(|_| &self.envelope)
    }

    /// A session that refuses the connection: `reply` (e.g. `554 5.7.1 no SMTP service
    /// here`, or `421 4.3.2 too many connections`) is its only output and the session is
    /// closed (RFC 5321 §3.1 allows a 554 greeting; qmail left such limits to tcpserver).
    pub fn refuse(config: ServerConfig, reply: &Reply, now: Instant) -> ServerSession {
        let mut s = ServerSession::new(config, now);
        s.out.clear();
        reply.write_to(&mut s.out);
        s.close();
        s
    }

    /// Ends the session from the application side (for example on shutdown), queueing
    /// `reply` (typically `421 4.3.2 shutting down`) after any replies already pending.
    /// A transaction in progress is void; [`Event::Aborted`] with
    /// [`AbortReason::Shutdown`] follows. Does nothing once the session is closed.
    pub fn shutdown(&mut self, reply: &Reply) {
        if self.phase != Phase::Closed {
            reply.write_to(&mut self.out);
            self.close();
            self.pending = None;
            self.queued.push_back(Event::Aborted(AbortReason::Shutdown));
        }
    }

    /// The configuration this session runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The name the client gave in its last HELO or EHLO, for the `Received:` line.
    pub fn client_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// True once [`ServerSession::tls_established`] was called, or from the start with
    /// [`ServerConfig::implicit_tls`].
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The login of a successful AUTH (RFC 4954), for relaying rules and `Received:`
    /// lines (`ESMTPA`, `ESMTPSA`, RFC 3848).
    pub fn authenticated(&self) -> Option<&str> {
        if self.authenticated {
            self.auth_login.as_deref()
        } else {
            None
        }
    }

    /// True when the session reads nothing more; close the connection once the output
    /// from [`ServerSession::poll_transmit`] is written.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// False while a lot of received input is still unprocessed (for example while an
    /// event waits for its verdict): the driver should stop reading until it drains.
    pub fn wants_input(&self) -> bool {
        self.phase != Phase::Closed && self.input.len() - self.pos < INPUT_HIGH_WATER
    }

    /// Takes bytes received at time `now`. Nothing is parsed until
    /// [`ServerSession::poll_event`]. Input after the session closed, or while a STARTTLS
    /// handshake is pending, is discarded.
    ///
    /// Input does not move the command deadline (see [`ServerSession::poll_timeout`]): a
    /// client dripping a line one byte at a time is cut off like a silent one. In DATA it
    /// earns time at [`ServerConfig::min_data_rate`].
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if bytes.is_empty() || matches!(self.phase, Phase::Closed | Phase::TlsHandshake) {
            return;
        }
        self.now = self.now.max(now);
        if let Some((started, received)) = self.data_clock.as_mut() {
            *received = received.saturating_add(bytes.len() as u64);
            let (started, received) = (*started, *received);
            self.deadline = self.data_deadline(started, received);
        }
        if self.pos > 0 && (self.pos == self.input.len() || self.pos >= 64 * 1024) {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The client closed its side. Input already received is still processed; then the
    /// session ends with [`AbortReason::ConnectionClosed`] (unless it ended before).
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// The next event, or `None` when more input (or a verdict) is needed.
    ///
    /// [`Event::DataChunk`] borrows from the session; it is valid until the next call.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        self.chunk.clear();
        match self.step()? {
            Step::Event(e) => Some(e),
            Step::Chunk => Some(Event::DataChunk(&self.chunk)),
        }
    }

    /// Appends pending reply bytes to `buf`; returns whether there were any.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let any = !self.out.is_empty();
        buf.append(&mut self.out);
        any
    }

    /// When [`ServerSession::handle_timeout`] should run if no input arrives before; `None`
    /// when closed, during a TLS handshake, or while a verdict is awaited (the client is
    /// then waiting for us, not the other way round).
    ///
    /// The deadline (design.md "Limits", RFC 5321 §4.5.3.2.7 asks for at least 5 minutes):
    /// - a command line must arrive whole within [`ServerConfig::timeout`] of the previous
    ///   reply (the greeting, or the latest time the driver passed in when the previous
    ///   command was answered); bytes that arrive meanwhile do not extend it;
    /// - after `354`, the message gets `timeout` as a grace period plus one second for
    ///   every [`ServerConfig::min_data_rate`] bytes received (with a rate of 0, each
    ///   input restarts the `timeout`, qmail-smtpd's inactivity rule).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed
            || self.phase == Phase::TlsHandshake
            || self.pending.is_some()
        {
            return None;
        }
        self.deadline
    }

    /// Fires the timeout if it is due at `now`: `421 4.4.2 timeout` is queued,
    /// [`Event::Timeout`] follows and the session closes (qmail-smtpd's timeoutsmtpd).
    /// Also tells the session the time: a driver that takes long over a verdict may call
    /// this before [`decide`](Self::decide) so the client's next deadline counts from then.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.poll_timeout().is_some_and(|d| now >= d) {
            self.out.extend_from_slice(text::TIMEOUT);
            self.close();
            self.queued.push_back(Event::Timeout);
        }
    }

    /// The driver finished the TLS handshake after [`Event::StartTls`]. As RFC 3207 §4.2
    /// requires, everything learnt before is forgotten: the client must EHLO again.
    pub fn tls_established(&mut self, now: Instant) {
        if self.phase == Phase::TlsHandshake {
            self.phase = Phase::Command;
            self.tls = true;
            self.helo = None;
            self.transaction = None;
            self.sasl = None;
            self.auth_login = None;
            self.authenticated = false;
            self.now = self.now.max(now);
            self.deadline = now.checked_add(self.config.timeout);
        }
    }

    /// The TLS handshake failed: the session ends with [`AbortReason::TlsFailed`].
    pub fn tls_failed(&mut self) {
        if self.phase == Phase::TlsHandshake {
            self.close();
            self.queued
                .push_back(Event::Aborted(AbortReason::TlsFailed));
        }
    }

    /// Answers the event that is waiting for a verdict ([`Event::Mail`], [`Event::Rcpt`],
    /// [`Event::DataStart`], [`Event::DataEnd`]) and queues the reply.
    ///
    /// # Errors
    /// [`DecideError::NothingPending`] when no event waits; [`DecideError::WrongReplyCode`]
    /// when an `AcceptWith` reply is not 2xx (354 for DataStart) or a `Reject` reply is
    /// not 4xx/5xx. The event stays pending after an error.
    pub fn decide(&mut self, verdict: Verdict) -> Result<(), DecideError> {
        let pending = self.pending.ok_or(DecideError::NothingPending)?;
        let accepted = match &verdict {
            Verdict::Accept => true,
            Verdict::AcceptWith(r) => {
                let class = if pending == Pending::DataStart { 3 } else { 2 };
                if r.code() / 100 != class {
                    return Err(DecideError::WrongReplyCode);
                }
                true
            }
            Verdict::Reject(r) => {
                if r.code() < 400 {
                    return Err(DecideError::WrongReplyCode);
                }
                false
            }
        };
        self.pending = None;
        // The reply goes out now: the client's clock for its next line starts.
        self.restart_deadline();
        match verdict {
            Verdict::Accept => self.out.extend_from_slice(match pending {
                Pending::Mail { .. } => text::MAIL_OK,
                Pending::Rcpt => text::RCPT_OK,
                Pending::DataStart => text::GO_AHEAD,
                Pending::DataEnd => text::DATA_OK,
                Pending::Auth => text::AUTH_OK,
            }),
            Verdict::AcceptWith(r) | Verdict::Reject(r) => r.write_to(&mut self.out),
        }
        let address = self.pending_address.take();
        match pending {
            Pending::Mail { smtputf8 } => {
                if accepted {
                    self.transaction = Some(Transaction {
                        smtputf8,
                        recipients: 0,
                    });
                    self.envelope = Envelope::new(address.unwrap_or_default(), [] as [Address; 0]);
                }
            }
            Pending::Rcpt => {
                if let (true, Some(t)) = (accepted, self.transaction.as_mut()) {
                    t.recipients += 1;
                    self.envelope.recipients.extend(address);
                }
            }
            Pending::DataStart => {
                if accepted {
                    self.phase = Phase::Data;
                    self.data = DataReceiver::new(
                        self.config.line_ending,
                        self.config.max_message_size,
                        self.config.max_data_line,
                    );
                    self.data_clock = Some((self.now, 0));
                } else {
                    self.transaction = None;
                }
            }
            Pending::DataEnd => self.transaction = None,
            Pending::Auth => {
                self.authenticated = accepted;
                if !accepted {
                    self.auth_login = None;
                }
            }
        }
        // A refused MAIL, RCPT or DATA counts toward `max_errors` like a protocol error,
        // so a client cannot probe thousands of addresses in one session.
        if !accepted && pending != Pending::DataEnd {
            self.count_error();
        }
        Ok(())
    }

    /// Convenience for [`ServerSession::decide`] with a reply built from code and text.
    ///
    /// # Errors
    /// As `decide`; an invalid reply is [`DecideError::WrongReplyCode`].
    pub fn reject(&mut self, code: u16, text: &str) -> Result<(), DecideError> {
        let r = Reply::new(code, text).map_err(|_| DecideError::WrongReplyCode)?;
        self.decide(Verdict::Reject(r))
    }

    /// The deadline for the next command line: [`ServerConfig::timeout`] from now.
    pub(super) fn restart_deadline(&mut self) {
        self.deadline = self.now.checked_add(self.config.timeout);
    }

    /// DATA's deadline: the grace `timeout` from `354`, plus a second per
    /// `min_data_rate` bytes received; with no rate, `timeout` from the last input.
    fn data_deadline(&self, started: Instant, received: u64) -> Option<Instant> {
        match self.config.min_data_rate {
            0 => self.now.checked_add(self.config.timeout),
            rate => {
                let earned = std::time::Duration::from_secs_f64(received as f64 / rate as f64);
                started
                    .checked_add(self.config.timeout)
                    .and_then(|t| t.checked_add(earned))
            }
        }
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.data_clock = None;
        self.input = Vec::new();
        self.pos = 0;
        self.scanned = 0;
    }

    fn step(&mut self) -> Option<Step> {
        loop {
            if let Some(ev) = self.queued.pop_front() {
                // The verdict is awaited from the moment the application can see the event.
                if matches!(ev, Event::DataEnd(_)) {
                    self.pending = Some(Pending::DataEnd);
                }
                return Some(Step::Event(ev));
            }
            if self.pending.is_some() {
                return None;
            }
            match self.phase {
                Phase::Closed => return None,
                Phase::TlsHandshake => return self.at_eof(),
                Phase::Command => {
                    if !self.next_line() {
                        return self.at_eof();
                    }
                    if self.phase == Phase::Closed {
                        continue;
                    }
                    // A whole line arrived: the clock for the next one starts (again at
                    // the verdict, if this one needs one).
                    self.restart_deadline();
                    let line = std::mem::take(&mut self.line);
                    let ev = if self.sasl.is_some() {
                        self.sasl_response(&line)
                    } else {
                        self.command(&line)
                    };
                    self.line = line;
                    if let Some(ev) = ev {
                        return Some(Step::Event(ev));
                    }
                }
                Phase::Data => {
                    let avail = &self.input[self.pos..];
                    if avail.is_empty() {
                        return self.at_eof();
                    }
                    let take = avail.len().min(CHUNK);
                    let (used, ended) = self.data.feed(&avail[..take], &mut self.chunk);
                    self.pos += used;
                    if ended {
                        self.end_data();
                    }
                    if !self.chunk.is_empty() {
                        return Some(Step::Chunk);
                    }
                }
            }
        }
    }

    /// No more input to process: at EOF the session ends.
    fn at_eof(&mut self) -> Option<Step> {
        if self.eof && self.phase != Phase::Closed {
            self.close();
            return Some(Step::Event(Event::Aborted(AbortReason::ConnectionClosed)));
        }
        None
    }

    /// Frames the next command line into `self.line`. Returns false when more input is
    /// needed; true with the session closed when the line is over the limit.
    fn next_line(&mut self) -> bool {
        let avail = &self.input[self.pos..];
        // RFC 4954 §4: AUTH lines and responses may be up to 12,288 octets.
        let auth_line = self.sasl.is_some()
            || avail
                .get(..5)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"auth "));
        let max = if auth_line {
            MAX_AUTH_LINE.max(self.config.max_command_line)
        } else {
            self.config.max_command_line.max(8)
        };
        match avail[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(k) => {
                let end = self.scanned + k;
                if end >= max {
                    self.too_long();
                    return true;
                }
                // lenient: a command may end in a bare LF; qmail-smtpd's commands.c read
                // up to LF and dropped one CR. (DATA is strict.)
                let text = avail[..end].strip_suffix(b"\r").unwrap_or(&avail[..end]);
                self.line.clear();
                self.line.extend_from_slice(text);
                self.pos += end + 1;
                self.scanned = 0;
                true
            }
            None if avail.len() >= max => {
                self.too_long();
                true
            }
            None => {
                self.scanned = avail.len();
                false
            }
        }
    }

    fn too_long(&mut self) {
        self.out.extend_from_slice(text::TOO_LONG);
        self.close();
        self.queued
            .push_back(Event::Aborted(AbortReason::CommandTooLong));
    }
}
