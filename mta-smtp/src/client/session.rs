//! [`ClientSession`]: the sans-IO SMTP client for one delivery.

use std::collections::VecDeque;
use std::time::Instant;

use mta_core::{DeliveryResult, EnhancedStatus, Envelope, StatusClass};

use crate::client::body::BodyEncoder;
mod transaction;
use crate::client::{ClientConfig, ClientEvent, TlsPolicy};
use crate::reply::{Reply, ReplyParser, ReplyStatus};

/// RFC 5321 §4.5.3.1.4: command line length including CRLF.
const MAX_COMMAND: usize = 512;

/// Where the dialogue is (RFC 5321 §3 phases, in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    /// AUTH sent; the next reply is `235`, or a `334` challenge for LOGIN.
    Auth(AuthStep),
    /// MAIL/RCPT/DATA replies are awaited (see `expect`).
    Transaction,
    Body,
    /// The message is done and the connection kept for another
    /// ([`ClientConfig::reuse_connection`]).
    Idle,
    /// QUIT sent; every result is final. The reply (or the server's close) ends the
    /// dialogue, so the server reads the QUIT before the connection goes.
    Quit,
    Done,
}

/// Where a client AUTH exchange is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthStep {
    /// `AUTH PLAIN <initial response>` sent.
    Plain,
    /// `AUTH LOGIN` sent: the user name is asked for next.
    LoginUser,
    /// The user name sent: the password is asked for next.
    LoginPassword,
    /// The password sent.
    LoginDone,
}

/// What the next reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    /// The answer to an empty message sent after a 354 with no recipient accepted.
    Ignored,
}

/// What the server offered in its EHLO reply.
#[derive(Clone, Copy, Debug, Default)]
struct Caps {
    pipelining: bool,
    starttls: bool,
    eight_bit: bool,
    smtputf8: bool,
    size: Option<u64>,
    auth_plain: bool,
    auth_login: bool,
}

fn caps_of(reply: &Reply) -> Caps {
    let mut c = Caps::default();
    for line in reply.lines().iter().skip(1) {
        let mut words = line.split_ascii_whitespace();
        let kw = words.next().unwrap_or("").to_ascii_uppercase();
        match kw.as_str() {
            "PIPELINING" => c.pipelining = true,
            "STARTTLS" => c.starttls = true,
            "8BITMIME" => c.eight_bit = true,
            "SMTPUTF8" => c.smtputf8 = true,
            "AUTH" => {
                for m in words.clone() {
                    c.auth_plain |= m.eq_ignore_ascii_case("PLAIN");
                    c.auth_login |= m.eq_ignore_ascii_case("LOGIN");
                }
            }
            "SIZE" => c.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
            _ => {}
        }
    }
    c
}

fn status(class: StatusClass, subject: u16, detail: u16) -> Option<EnhancedStatus> {
    EnhancedStatus::new(class, subject, detail).ok()
}

/// A sans-IO SMTP client session: one message, one server, many recipients.
///
/// Create it on a connected stream, then loop: feed what the server sent with
/// [`handle_input`](Self::handle_input) (or [`handle_eof`](Self::handle_eof)), act on
/// [`poll_event`](Self::poll_event), write what [`poll_transmit`](Self::poll_transmit)
/// gives, and wait no longer than [`poll_timeout`](Self::poll_timeout). When
/// [`is_finished`](Self::is_finished), [`results`](Self::results) has one
/// [`DeliveryResult`] per recipient, in envelope order, decided by qmail-remote's rules:
///
/// | step | outcome |
/// |---|---|
/// | greeting not 220, HELO refused | all deferred |
/// | MAIL refused | all failed (5xx) or deferred |
/// | RCPT | 2xx accepted, 5xx failed, anything else deferred, per recipient |
/// | DATA refused, or reply after the final dot | accepted recipients failed (5xx) / deferred / delivered (2xx) |
/// | connection lost, timeout, malformed reply | undecided recipients deferred (`4.4.2`), "Possible duplicate!" after the final dot |
///
/// Each result's text carries the remote's full reply (`Remote host said: ...`).
/// Envelope addresses with control bytes are never sent (that recipient, or for the
/// sender every recipient, fails with `5.1.3`/`5.1.7`), and no command line exceeds
/// 512 octets.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    envelope: Envelope,
    state: State,
    parser: ReplyParser,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    expect: VecDeque<Expect>,
    /// Recipients to send RCPT for, in order (those whose address could be written).
    sendable: Vec<usize>,
    next_rcpt: usize,
    results: Vec<Option<DeliveryResult>>,
    accepted: Vec<bool>,
    caps: Caps,
    tls: bool,
    /// The server sent bytes behind its `220` to STARTTLS (they were dropped).
    discarded_after_starttls: bool,
    mail_failed: bool,
    pipelined: bool,
    body: BodyEncoder,
    deadline: Option<Instant>,
}

impl ClientSession {
    /// Starts a delivery of `envelope` at `now`; the session first waits for the greeting.
    pub fn new(config: ClientConfig, envelope: Envelope, now: Instant) -> ClientSession {
        let n = envelope.recipients.len();
        ClientSession {
            deadline: now.checked_add(config.timeout),
            config,
            envelope,
            state: State::Greeting,
            parser: ReplyParser::new(),
            out: Vec::new(),
            events: VecDeque::new(),
            expect: VecDeque::new(),
            sendable: Vec::new(),
            next_rcpt: 0,
            results: vec![None; n],
            accepted: vec![false; n],
            caps: Caps::default(),
            tls: false,
            discarded_after_starttls: false,
            mail_failed: false,
            pipelined: false,
            body: BodyEncoder::new(),
        }
    }

    /// True when the delivery is over and [`ClientSession::results`] is complete (also
    /// when the session is [idle](ClientSession::is_idle)).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Idle)
    }

    /// True when the message is done and the connection can carry another one
    /// ([`ClientConfig::reuse_connection`], [`ClientEvent::Idle`]).
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Starts the next message on an [idle](ClientSession::is_idle) connection at `now`
    /// (MAIL, RCPTs and DATA go out as for the first; what the server offered and the TLS
    /// state are kept). Returns false, changing nothing, when the session is not idle.
    pub fn next_message(&mut self, envelope: Envelope, now: Instant) -> bool {
        if self.state != State::Idle {
            return false;
        }
        let n = envelope.recipients.len();
        self.envelope = envelope;
        self.results = vec![None; n];
        self.accepted = vec![false; n];
        self.expect.clear();
        self.sendable.clear();
        self.next_rcpt = 0;
        self.mail_failed = false;
        self.pipelined = false;
        self.body = BodyEncoder::new();
        self.deadline = now.checked_add(self.config.timeout);
        self.start_mail();
        true
    }

    /// Ends an [idle](ClientSession::is_idle) connection: QUIT is queued and the session
    /// finishes at its reply (or at EOF). Does nothing in other states.
    pub fn close(&mut self, now: Instant) {
        if self.state == State::Idle {
            self.deadline = now.checked_add(self.config.timeout);
            self.quit();
        }
    }

    /// True once [`ClientSession::tls_established`] was called.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// True when the server sent bytes behind its `220` to STARTTLS: they were discarded,
    /// never read as replies (CVE-2011-0411's mirror); worth a log line.
    pub fn discarded_after_starttls(&self) -> bool {
        self.discarded_after_starttls
    }

    /// One result per recipient, in envelope order, once finished (before that, results
    /// known so far are included and undecided recipients are deferred).
    pub fn results(&self) -> Vec<DeliveryResult> {
        self.results
            .iter()
            .map(|r| {
                r.clone().unwrap_or_else(|| DeliveryResult::Deferred {
                    text: "delivery not finished".to_owned(),
                    status: None,
                })
            })
            .collect()
    }

    /// Takes bytes the server sent at `now`, and processes every complete reply.
    pub fn handle_input(&mut self, mut bytes: &[u8], now: Instant) {
        if self.state == State::Done {
            return;
        }
        self.deadline = now.checked_add(self.config.timeout);
        while !bytes.is_empty() && self.state != State::Done {
            match self.parser.feed(bytes) {
                Err(e) => {
                    let text = format!("{} sent a bad reply ({e}).", self.config.peer);
                    self.died(&text);
                }
                Ok(ReplyStatus::Partial) => return,
                Ok(ReplyStatus::Complete(reply, n)) => {
                    bytes = &bytes[n..];
                    let more = !bytes.is_empty() || self.parser.is_mid_reply();
                    self.on_reply(&reply, more);
                    if self.state == State::TlsHandshake {
                        // CVE-2011-0411, client side: whatever the server sent behind its
                        // 220 to STARTTLS was not sent under TLS and is never read as a
                        // reply. It is dropped here; the parser starts afresh after the
                        // handshake.
                        return;
                    }
                }
            }
        }
    }

    /// The connection was closed or failed (read/write error, TLS handshake failure).
    pub fn handle_eof(&mut self) {
        if matches!(self.state, State::Quit | State::Idle) {
            self.done();
        } else if self.state != State::Done {
            let text = format!("Connected to {} but connection died.", self.config.peer);
            self.died(&text);
        }
    }

    /// Gives up at once (the driver could not read the message, or a local error):
    /// every undecided recipient is deferred with `reason`.
    pub fn abort(&mut self, reason: &str) {
        if self.state != State::Done {
            self.died(reason);
        }
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Appends pending command bytes to `buf`; returns whether there were any.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let any = !self.out.is_empty();
        buf.append(&mut self.out);
        any
    }

    /// When to call [`ClientSession::handle_timeout`] if the server stays silent; `None`
    /// when finished, during the TLS handshake, or while the caller sends the body.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done | State::TlsHandshake | State::Body | State::Idle => None,
            _ => self.deadline,
        }
    }

    /// Fires the reply timeout if due at `now`: undecided recipients are deferred (after
    /// QUIT, the dialogue just ends).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Quit && self.poll_timeout().is_some_and(|d| now >= d) {
            self.done();
        } else if self.poll_timeout().is_some_and(|d| now >= d) {
            let text = format!("Connected to {} but connection died.", self.config.peer);
            self.died(&text);
        }
    }

    /// The TLS handshake after [`ClientEvent::StartTls`] succeeded: EHLO is sent again
    /// (RFC 3207 §4.2).
    pub fn tls_established(&mut self, now: Instant) {
        if self.state == State::TlsHandshake {
            self.tls = true;
            self.parser = ReplyParser::new();
            self.deadline = now.checked_add(self.config.timeout);
            self.send_hello(true);
        }
    }

    /// Encodes the next part of the message (stored form, LF line ends) after
    /// [`ClientEvent::SendBody`]; ignored at other times.
    pub fn send_body(&mut self, chunk: &[u8]) {
        if self.state == State::Body {
            self.body.encode(chunk, &mut self.out);
        }
    }

    /// Ends the message (`.` CRLF) at `now`; the reply timeout runs from here.
    pub fn finish_body(&mut self, now: Instant) {
        if self.state == State::Body {
            self.deadline = now.checked_add(self.config.timeout);
            self.body.finish(&mut self.out);
            self.state = State::Transaction;
            self.expect.push_back(Expect::DataEnd);
        }
    }

    fn send(&mut self, line: &[u8]) {
        self.out.extend_from_slice(line);
        self.out.extend_from_slice(b"\r\n");
    }

    fn send_hello(&mut self, extended: bool) {
        let verb: &[u8] = if extended { b"EHLO " } else { b"HELO " };
        let mut line = verb.to_vec();
        // The configured name is ours, but never let it carry a line break either.
        line.extend(self.config.helo.bytes().filter(|&b| b >= 0x20 && b != 0x7f));
        line.truncate(MAX_COMMAND - 2);
        self.send(&line);
        self.state = if extended { State::Ehlo } else { State::Helo };
    }

    /// Sends QUIT and waits for its reply (qmail-remote closed at once, which can reset
    /// the connection before the server reads the QUIT); every result is final already.
    fn quit(&mut self) {
        self.send(b"QUIT");
        self.settle_undecided();
        self.state = State::Quit;
    }

    /// The dialogue is over: [`ClientEvent::Finished`].
    fn done(&mut self) {
        self.state = State::Done;
        self.events.push_back(ClientEvent::Finished);
    }

    fn finish(&mut self) {
        self.settle_undecided();
        self.done();
    }

    fn settle_undecided(&mut self) {
        let peer = self.config.peer.clone();
        for r in &mut self.results {
            if r.is_none() {
                *r = Some(DeliveryResult::Deferred {
                    text: format!("{peer} ended the dialogue without a result."),
                    status: status(StatusClass::Transient, 4, 2),
                });
            }
        }
    }

    /// Connection-level failure: everything undecided is deferred.
    fn died(&mut self, text: &str) {
        let dup = self.expect.contains(&Expect::DataEnd);
        let text = if dup {
            format!("{text} Possible duplicate!")
        } else {
            text.to_owned()
        };
        for r in &mut self.results {
            if r.is_none() {
                *r = Some(DeliveryResult::Deferred {
                    text: text.clone(),
                    status: status(StatusClass::Transient, 4, 2),
                });
            }
        }
        self.finish();
    }

    fn result_for(reply: &Reply, what: &str) -> DeliveryResult {
        let text = format!("{what}\nRemote host said: {reply}");
        let st = reply.status();
        if reply.code() / 100 == 2 {
            DeliveryResult::Delivered { text }
        } else if reply.is_permanent() {
            DeliveryResult::Failed { text, status: st }
        } else {
            DeliveryResult::Deferred { text, status: st }
        }
    }

    /// Sets the result of every recipient still undecided (`only_accepted`: only those
    /// the server accepted).
    fn settle(&mut self, reply: &Reply, what: &str, only_accepted: bool) {
        let r = Self::result_for(reply, what);
        for (i, slot) in self.results.iter_mut().enumerate() {
            if slot.is_none() && (!only_accepted || self.accepted[i]) {
                *slot = Some(r.clone());
            }
        }
    }

    fn fail_all(&mut self, text: &str, st: Option<EnhancedStatus>, permanent: bool) {
        for slot in &mut self.results {
            if slot.is_none() {
                *slot = Some(if permanent {
                    DeliveryResult::Failed {
                        text: text.to_owned(),
                        status: st,
                    }
                } else {
                    DeliveryResult::Deferred {
                        text: text.to_owned(),
                        status: st,
                    }
                });
            }
        }
        self.quit();
    }

    fn on_reply(&mut self, reply: &Reply, more_input: bool) {
        let peer = self.config.peer.clone();
        let ok = reply.code() / 100 == 2;
        match self.state {
            State::Greeting => {
                if reply.code() == 220 {
                    self.send_hello(true);
                } else {
                    // qmail-remote: any greeting but 220 is temporary (try another MX).
                    self.settle_temp(reply, &format!("Connected to {peer} but greeting failed."));
                }
            }
            State::Ehlo => {
                if ok {
                    self.caps = caps_of(reply);
                    self.after_hello();
                } else {
                    self.send_hello(false);
                }
            }
            State::Helo => {
                if ok {
                    self.caps = Caps::default();
                    self.after_hello();
                } else {
                    self.settle_temp(
                        reply,
                        &format!("Connected to {peer} but my name was rejected."),
                    );
                }
            }
            State::StartTls => {
                if reply.code() == 220 {
                    // Bytes behind the 220 (`more_input`) are discarded by handle_input.
                    self.discarded_after_starttls = more_input;
                    self.state = State::TlsHandshake;
                    self.events.push_back(ClientEvent::StartTls);
                } else if self.config.tls == TlsPolicy::Required {
                    self.settle_temp(
                        reply,
                        &format!("{peer} refused STARTTLS, which is required."),
                    );
                } else {
                    self.start_mail();
                }
            }
            State::Auth(step) => self.on_auth_reply(step, reply),
            State::Transaction => self.on_transaction_reply(reply),
            State::Body => {
                self.settle_temp(reply, &format!("{peer} sent an unexpected reply."));
            }
            // Anything the server says to an idle connection (a 421 before it closes) ends it.
            State::Quit | State::Idle => self.done(),
            State::TlsHandshake | State::Done => {}
        }
    }

    /// Defers every undecided recipient with the remote text and quits.
    fn settle_temp(&mut self, reply: &Reply, what: &str) {
        let text = format!("{what}\nRemote host said: {reply}");
        let st = reply.status().filter(|s| s.is_transient());
        self.fail_all(&text, st, false);
    }

    fn after_hello(&mut self) {
        let peer = self.config.peer.clone();
        let wants_tls = self.config.tls != TlsPolicy::Never && !self.tls;
        if wants_tls && self.caps.starttls {
            self.send(b"STARTTLS");
            self.state = State::StartTls;
        } else if self.config.tls == TlsPolicy::Required && !self.tls {
            let text = format!("{peer} does not offer STARTTLS, which is required.");
            self.fail_all(&text, status(StatusClass::Transient, 7, 10), false);
        } else if self.config.auth.is_some() {
            self.start_auth();
        } else {
            self.start_mail();
        }
    }

    /// AUTH before MAIL (RFC 4954): PLAIN with an initial response, else LOGIN; never
    /// outside TLS.
    fn start_auth(&mut self) {
        let peer = self.config.peer.clone();
        let Some(auth) = self.config.auth.clone() else {
            return self.start_mail();
        };
        if !self.tls {
            let text = format!("Refusing to send credentials to {peer} without TLS. (#4.7.0)");
            return self.fail_all(&text, status(StatusClass::Transient, 7, 0), false);
        }
        if self.caps.auth_plain {
            let mut message = vec![0u8];
            message.extend_from_slice(auth.login.as_bytes());
            message.push(0);
            message.extend_from_slice(auth.password.expose());
            let line = format!("AUTH PLAIN {}", crate::server::auth::encode(&message));
            self.send(line.as_bytes());
            self.state = State::Auth(AuthStep::Plain);
        } else if self.caps.auth_login {
            self.send(b"AUTH LOGIN");
            self.state = State::Auth(AuthStep::LoginUser);
        } else {
            let text = format!("{peer} offers neither AUTH PLAIN nor AUTH LOGIN. (#4.7.0)");
            self.fail_all(&text, status(StatusClass::Transient, 7, 0), false);
        }
    }

    fn on_auth_reply(&mut self, step: AuthStep, reply: &Reply) {
        let peer = self.config.peer.clone();
        let Some(auth) = self.config.auth.clone() else {
            return self.start_mail();
        };
        match (step, reply.code()) {
            (_, 235) => self.start_mail(),
            (AuthStep::LoginUser, 334) => {
                let line = crate::server::auth::encode(auth.login.as_bytes());
                self.send(line.as_bytes());
                self.state = State::Auth(AuthStep::LoginPassword);
            }
            (AuthStep::LoginPassword, 334) => {
                let line = crate::server::auth::encode(auth.password.expose());
                self.send(line.as_bytes());
                self.state = State::Auth(AuthStep::LoginDone);
            }
            _ => {
                // A refused login is the sender's configuration, not the recipients'
                // fault: deferred, so a fixed password delivers later.
                let text = format!("{peer} refused my AUTH.\nRemote host said: {reply}");
                let st = reply.status().filter(|s| s.is_transient()).or(status(
                    StatusClass::Transient,
                    7,
                    8,
                ));
                self.fail_all(&text, st, false);
            }
        }
    }
}
