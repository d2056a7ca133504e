//! Command dispatch for [`ServerSession`]: qmail-smtpd's `smtp_*` functions, and the
//! replies the session sends on its own.

use crate::server::auth::{self, Exchange, ResponseError};
use crate::server::command::{ArgError, Command, parse_command, parse_mail, parse_rcpt};
use crate::server::{AbortReason, AuthMechanism, DataError, Event, RcptParams};

use super::{Pending, Phase, ServerSession};

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Replies the session sends by itself: qmail-smtpd's texts, with RFC 2034 codes in front.
pub(super) mod text {
    pub(crate) const OK: &[u8] = b"250 2.0.0 ok\r\n";
    pub(crate) const MAIL_OK: &[u8] = b"250 2.1.0 ok\r\n";
    pub(crate) const RCPT_OK: &[u8] = b"250 2.1.5 ok\r\n";
    pub(crate) const DATA_OK: &[u8] = b"250 2.0.0 ok\r\n";
    pub(crate) const GO_AHEAD: &[u8] = b"354 go ahead\r\n";
    pub(crate) const FLUSHED: &[u8] = b"250 2.0.0 flushed\r\n";
    pub(crate) const VRFY: &[u8] = b"252 2.5.2 send some mail, i'll try my best\r\n";
    pub(crate) const HELP: &[u8] = b"214 2.0.0 mta-smtp: see RFC 5321\r\n";
    pub(crate) const UNIMPLEMENTED: &[u8] = b"502 5.5.1 unimplemented\r\n";
    pub(crate) const MAIL_FIRST: &[u8] = b"503 5.5.1 MAIL first\r\n";
    pub(crate) const RCPT_FIRST: &[u8] = b"503 5.5.1 RCPT first\r\n";
    pub(crate) const NESTED_MAIL: &[u8] = b"503 5.5.1 nested MAIL command\r\n";
    pub(crate) const ALREADY_TLS: &[u8] = b"503 5.5.1 TLS already active\r\n";
    pub(crate) const TLS_FIRST: &[u8] = b"530 5.7.0 must issue a STARTTLS command first\r\n";
    pub(crate) const AUTH_OK: &[u8] = b"235 2.7.0 authentication successful\r\n";
    pub(crate) const AUTH_FIRST: &[u8] = b"530 5.7.0 authentication required\r\n";
    pub(crate) const AUTH_NOT_OFFERED: &[u8] = b"503 5.5.1 AUTH not available\r\n";
    pub(crate) const AUTH_AGAIN: &[u8] = b"503 5.5.1 already authenticated\r\n";
    pub(crate) const AUTH_IN_MAIL: &[u8] =
        b"503 5.5.1 AUTH not allowed during a mail transaction\r\n";
    pub(crate) const AUTH_MECHANISM: &[u8] = b"504 5.5.4 unrecognized authentication type\r\n";
    pub(crate) const AUTH_CANCELLED: &[u8] = b"501 5.7.0 authentication cancelled\r\n";
    pub(crate) const AUTH_BASE64: &[u8] = b"501 5.5.2 cannot decode response\r\n";
    pub(crate) const AUTH_MALFORMED: &[u8] = b"501 5.5.2 malformed authentication response\r\n";
    pub(crate) const NO_ARGS: &[u8] = b"501 5.5.4 no arguments allowed\r\n";
    pub(crate) const BAD_CHARS: &[u8] = b"501 5.5.2 bare CR or NUL in command\r\n";
    pub(crate) const SYNTAX: &[u8] = b"501 5.5.4 syntax error\r\n";
    pub(crate) const BAD_ADDRESS: &[u8] = b"555 5.5.4 syntax error\r\n";
    pub(crate) const UNKNOWN_PARAM: &[u8] = b"555 5.5.4 unsupported parameter\r\n";
    pub(crate) const BAD_PARAM: &[u8] = b"501 5.5.4 bad parameter\r\n";
    pub(crate) const SIZE_PARAM: &[u8] =
        b"552 5.3.4 message size exceeds fixed maximum message size\r\n";
    pub(crate) const NEED_UTF8: &[u8] = b"553 5.6.7 non-ASCII address needs SMTPUTF8\r\n";
    pub(crate) const TOO_MANY_RCPTS: &[u8] = b"452 4.5.3 too many recipients\r\n";
    pub(crate) const TOO_LONG: &[u8] = b"500 5.5.2 line too long\r\n";
    pub(crate) const TOO_MANY_ERRORS: &[u8] = b"421 4.7.0 too many errors\r\n";
    pub(crate) const TIMEOUT: &[u8] = b"421 4.4.2 timeout\r\n";
    pub(crate) const TLS_READY: &[u8] = b"220 2.0.0 ready to start TLS\r\n";
    pub(crate) const SMTPLF: &[u8] = b"451 4.6.0 See https://cr.yp.to/docs/smtplf.html.\r\n";
    pub(crate) const HOPS: &[u8] = b"554 5.4.6 too many hops, this message is looping\r\n";
    pub(crate) const DATABYTES: &[u8] =
        b"552 5.3.4 sorry, that message size exceeds my databytes limit\r\n";
    pub(crate) const NUL: &[u8] = b"554 5.6.0 message contains NUL\r\n";
    pub(crate) const LONG_LINE: &[u8] = b"554 5.6.0 message line too long\r\n";
}

impl ServerSession {
    /// A protocol error: reply, count, and end the session at the limit.
    pub(super) fn error(&mut self, reply: &[u8]) -> Option<Event<'static>> {
        self.out.extend_from_slice(reply);
        self.count_error();
        None
    }

    /// Counts a refused command; at [`ServerConfig::max_errors`](crate::ServerConfig)
    /// `421 4.7.0 too many errors` follows and the session ends with
    /// [`AbortReason::TooManyErrors`].
    pub(super) fn count_error(&mut self) {
        self.errors = self.errors.saturating_add(1);
        if self.errors >= self.config.max_errors && self.phase != Phase::Closed {
            self.out.extend_from_slice(text::TOO_MANY_ERRORS);
            self.close();
            self.pending = None;
            self.queued
                .push_back(Event::Aborted(AbortReason::TooManyErrors));
        }
    }

    pub(super) fn arg_error(&mut self, e: ArgError) -> Option<Event<'static>> {
        match e {
            ArgError::Syntax => self.error(text::SYNTAX),
            ArgError::Address => self.error(text::BAD_ADDRESS),
            ArgError::UnknownParam => self.error(text::UNKNOWN_PARAM),
            ArgError::BadParam => self.error(text::BAD_PARAM),
            ArgError::TooBig => self.error(text::SIZE_PARAM),
            ArgError::Utf8NotAllowed => self.error(text::NEED_UTF8),
        }
    }

    pub(super) fn greeting_line(&mut self, code: &[u8]) {
        self.out.extend_from_slice(code);
        self.out.extend_from_slice(self.config.greeting.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    pub(super) fn ehlo_reply(&mut self) {
        let mut lines = vec![
            self.config.greeting.clone(),
            "PIPELINING".to_owned(),
            "8BITMIME".to_owned(),
            format!("SIZE {}", self.config.max_message_size),
            "ENHANCEDSTATUSCODES".to_owned(),
        ];
        if self.config.offer_smtputf8 {
            lines.push("SMTPUTF8".to_owned());
        }
        if self.config.offer_starttls && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".to_owned());
        }
        let n = lines.len();
        for (i, l) in lines.iter().enumerate() {
            self.out
                .extend_from_slice(if i + 1 == n { b"250 " } else { b"250-" });
            self.out.extend_from_slice(l.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Runs one command line (qmail-smtpd's `smtp_*` functions).
    pub(super) fn command(&mut self, line: &[u8]) -> Option<Event<'static>> {
        // A CR inside a line or a NUL would reach logs and events; qmail cut lines at NUL.
        if line.iter().any(|&b| b == b'\r' || b == 0) {
            return self.error(text::BAD_CHARS);
        }
        match parse_command(line) {
            Command::Helo(arg) => {
                // lenient: HELO/EHLO with an empty or odd name is accepted, as qmail did.
                self.transaction = None;
                let name = lossy(arg);
                self.helo = Some(name.clone());
                self.greeting_line(b"250 ");
                Some(Event::Helo { name })
            }
            Command::Ehlo(arg) => {
                self.transaction = None;
                let name = lossy(arg);
                self.helo = Some(name.clone());
                self.ehlo_reply();
                Some(Event::Ehlo { name })
            }
            Command::Mail(arg) => {
                if self.config.require_tls && !self.tls {
                    return self.error(text::TLS_FIRST);
                }
                if self.config.require_auth && !self.authenticated {
                    return self.error(text::AUTH_FIRST);
                }
                if self.transaction.is_some() {
                    return self.error(text::NESTED_MAIL);
                }
                match parse_mail(
                    arg,
                    self.config.max_message_size,
                    self.config.offer_smtputf8,
                    self.auth_offered(),
                ) {
                    Ok((path, params)) => {
                        self.pending_address = Some(path.to_address());
                        self.pending = Some(Pending::Mail {
                            smtputf8: params.smtputf8,
                        });
                        Some(Event::Mail { path, params })
                    }
                    Err(e) => self.arg_error(e),
                }
            }
            Command::Rcpt(arg) => {
                let Some(t) = self.transaction else {
                    return self.error(text::MAIL_FIRST);
                };
                match parse_rcpt(arg, t.smtputf8) {
                    Ok(path) => {
                        if t.recipients >= self.config.max_recipients {
                            self.error(text::TOO_MANY_RCPTS);
                            return Some(Event::TooManyRecipients);
                        }
                        self.pending_address = Some(path.to_address());
                        self.pending = Some(Pending::Rcpt);
                        Some(Event::Rcpt {
                            path,
                            params: RcptParams::default(),
                        })
                    }
                    Err(e) => self.arg_error(e),
                }
            }
            Command::Data(arg) => {
                let Some(t) = self.transaction else {
                    return self.error(text::MAIL_FIRST);
                };
                if t.recipients == 0 {
                    return self.error(text::RCPT_FIRST);
                }
                if !arg.is_empty() {
                    return self.error(text::NO_ARGS);
                }
                self.pending = Some(Pending::DataStart);
                Some(Event::DataStart)
            }
            Command::Rset => {
                self.transaction = None;
                self.out.extend_from_slice(text::FLUSHED);
                Some(Event::Rset)
            }
            Command::Noop => {
                self.out.extend_from_slice(text::OK);
                None
            }
            Command::Vrfy => {
                self.out.extend_from_slice(text::VRFY);
                None
            }
            Command::Help => {
                self.out.extend_from_slice(text::HELP);
                None
            }
            Command::Quit => {
                self.greeting_line(b"221 ");
                self.close();
                Some(Event::Quit)
            }
            Command::StartTls(arg) => {
                if !self.config.offer_starttls || self.config.implicit_tls {
                    return self.error(text::UNIMPLEMENTED);
                }
                if self.tls {
                    return self.error(text::ALREADY_TLS);
                }
                // RFC 3207 §4: STARTTLS takes no parameters; 501 otherwise.
                if !arg.is_empty() {
                    return self.error(text::NO_ARGS);
                }
                self.out.extend_from_slice(text::TLS_READY);
                // RFC 3207 §5 / CVE-2011-0411: nothing pipelined after STARTTLS may be
                // taken as sent under TLS.
                self.input = Vec::new();
                self.pos = 0;
                self.scanned = 0;
                self.phase = Phase::TlsHandshake;
                Some(Event::StartTls)
            }
            Command::Auth(arg) => self.auth_command(arg),
            Command::Unknown => self.error(text::UNIMPLEMENTED),
        }
    }

    /// AUTH is offered now: configured, and inside TLS unless allowed in clear.
    pub(super) fn auth_offered(&self) -> bool {
        self.config.offer_auth && (self.tls || !self.config.auth_requires_tls)
    }

    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    fn auth_command(&mut self, arg: &[u8]) -> Option<Event<'static>> {
        if !self.config.offer_auth {
            return self.error(text::UNIMPLEMENTED);
        }
        if !self.auth_offered() {
            return self.error(text::AUTH_NOT_OFFERED);
        }
        if self.authenticated {
            return self.error(text::AUTH_AGAIN);
        }
        if self.transaction.is_some() {
            return self.error(text::AUTH_IN_MAIL);
        }
        let (mechanism, initial) = match arg.iter().position(|&b| b == b' ') {
            Some(i) => (&arg[..i], Some(&arg[i + 1..])),
            None => (arg, None),
        };
        if mechanism.eq_ignore_ascii_case(b"plain") {
            if let Some(r) = initial {
                self.sasl_answer(Exchange::Plain, r)
            } else {
                self.sasl = Some(Exchange::Plain);
                auth::challenge(&mut self.out, b"");
                None
            }
        } else if mechanism.eq_ignore_ascii_case(b"login") {
            if let Some(r) = initial {
                self.sasl_answer(Exchange::LoginUser, r)
            } else {
                self.sasl = Some(Exchange::LoginUser);
                auth::challenge(&mut self.out, b"Username:");
                None
            }
        } else {
            self.error(text::AUTH_MECHANISM)
        }
    }

    /// A response line during an AUTH exchange.
    pub(super) fn sasl_response(&mut self, line: &[u8]) -> Option<Event<'static>> {
        let state = self.sasl.take()?;
        self.sasl_answer(state, line)
    }

    /// Handles `response` in `state`: the next challenge, or the credentials for a verdict.
    fn sasl_answer(&mut self, state: Exchange, response: &[u8]) -> Option<Event<'static>> {
        let decoded = match auth::decode_response(response) {
            Ok(d) => d,
            Err(e) => return self.sasl_error(e),
        };
        let credentials = match state {
            Exchange::Plain => match auth::parse_plain(&decoded) {
                Ok(c) => c,
                Err(e) => return self.sasl_error(e),
            },
            Exchange::LoginUser => match auth::text(&decoded) {
                Ok(user) if !user.is_empty() => {
                    self.sasl = Some(Exchange::LoginPassword(user));
                    auth::challenge(&mut self.out, b"Password:");
                    return None;
                }
                _ => return self.sasl_error(ResponseError::Malformed),
            },
            Exchange::LoginPassword(login) => crate::server::Credentials {
                mechanism: AuthMechanism::Login,
                authzid: String::new(),
                login,
                password: auth::Secret::new(decoded),
            },
        };
        self.auth_login = Some(credentials.login.clone());
        self.pending = Some(super::Pending::Auth);
        Some(Event::Auth(credentials))
    }

    fn sasl_error(&mut self, e: ResponseError) -> Option<Event<'static>> {
        self.error(match e {
            ResponseError::Cancelled => text::AUTH_CANCELLED,
            ResponseError::BadBase64 => text::AUTH_BASE64,
            ResponseError::Malformed => text::AUTH_MALFORMED,
        })
    }

    pub(super) fn end_data(&mut self) {
        self.phase = Phase::Command;
        self.data_clock = None;
        self.restart_deadline();
        match self.data.finish(self.config.max_hops) {
            Ok(mut summary) => {
                summary.envelope = self.envelope.clone();
                summary.peer = self.peer;
                self.queued.push_back(Event::DataEnd(summary));
            }
            Err(e) => {
                self.transaction = None;
                self.out.extend_from_slice(match e {
                    DataError::BareLineEnding => text::SMTPLF,
                    DataError::TooManyHops => text::HOPS,
                    DataError::TooLarge => text::DATABYTES,
                    DataError::Nul => text::NUL,
                    DataError::LineTooLong => text::LONG_LINE,
                });
                self.queued.push_back(Event::DataRejected(e));
                if e == DataError::BareLineEnding {
                    self.close();
                    self.queued
                        .push_back(Event::Aborted(AbortReason::BareLineEnding));
                }
            }
        }
    }
}
