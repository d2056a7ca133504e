//! The server side: [`ServerSession`], its configuration, events and verdicts.

pub(crate) mod auth;
mod command;
mod config;
pub(crate) mod data;
mod line;
mod session;

use std::fmt;

use mta_core::path::{ForwardPath, ReversePath};

use crate::Reply;

pub use auth::{AuthMechanism, Credentials, Secret};
pub use config::{DEFAULT_MAX_MESSAGE_SIZE, LineEnding, ServerConfig};
pub use data::DataSummary;
pub use line::{Command, ParseCommandError};
pub use session::ServerSession;

/// Something the application must see, from [`ServerSession::poll_event`].
///
/// Events marked *verdict* stop the session until [`ServerSession::decide`] is called;
/// until then `poll_event` returns `None` and no further input is processed, so replies stay
/// in order however much the client pipelined (RFC 2920).
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// `HELO name`: replied to already; any transaction was reset.
    Helo {
        /// The argument as given (not validated, possibly empty, as in qmail-smtpd; bytes
        /// that are not UTF-8 become U+FFFD). Use [`crate::received_line`], which filters
        /// it, before writing it into a header.
        name: String,
    },
    /// `EHLO name`: replied to already; any transaction was reset.
    Ehlo {
        /// The argument as given (see [`Event::Helo`]).
        name: String,
    },
    /// `MAIL FROM:` with a syntactically valid path and parameters. *Verdict*: accept
    /// (`250 2.1.0 ok`) or refuse.
    Mail {
        /// The reverse path.
        path: ReversePath,
        /// The ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:` within a transaction, under the recipient limit. *Verdict*: accept
    /// (`250 2.1.5 ok`) or refuse (qmail: `553 5.7.1` for relaying denied).
    Rcpt {
        /// The forward path.
        path: ForwardPath,
        /// The RCPT parameters (none are advertised yet, so always empty).
        params: RcptParams,
    },
    /// `AUTH` (RFC 4954) with well-formed credentials. *Verdict*: accept
    /// (`235 2.7.0 authentication successful`; the session is then authenticated as
    /// [`Credentials::login`]) or refuse (`535 5.7.8 authentication credentials invalid`,
    /// or `454 4.7.0` when the check could not be made). A refusal counts toward
    /// [`ServerConfig::max_errors`]. The session checked only the syntax.
    Auth(Credentials),
    /// A `RCPT TO:` past [`ServerConfig::max_recipients`]: the session answered
    /// `452 4.5.3 too many recipients` by itself (RFC 5321 §4.5.3.1.10) and counted it
    /// toward [`ServerConfig::max_errors`]. For the application's logs and counters; no
    /// verdict.
    TooManyRecipients,
    /// `DATA` after at least one accepted recipient. *Verdict*: accept (`354 go ahead`) or
    /// refuse (qmail: `451 4.3.0 qqt failure` when the queue would not start).
    DataStart,
    /// Message bytes, dot-unstuffed, in the configured [`LineEnding`]. Chunks are only
    /// valid until the next call; they arrive in order. Nothing is final until
    /// [`Event::DataEnd`]: on [`Event::DataRejected`] or [`Event::Aborted`] the
    /// application must throw away what it got.
    DataChunk(&'a [u8]),
    /// The message ended well. *Verdict*: the final reply; accept with the queue id
    /// (`250 ok <id>`), or refuse with `451`/`554`/`552` if it could not be queued.
    DataEnd(DataSummary),
    /// The message ended but is refused; the session has sent the reply. Discard it.
    DataRejected(DataError),
    /// `RSET`: the transaction is gone (`250 flushed` was sent).
    Rset,
    /// `STARTTLS` was accepted and `220` queued. The driver must send pending output,
    /// run the TLS handshake, then call [`ServerSession::tls_established`] (or
    /// [`ServerSession::tls_failed`]). Input pipelined after STARTTLS has been discarded
    /// (the CVE-2011-0411 class).
    StartTls,
    /// `QUIT`: `221` is queued; the session is closed once it is sent.
    Quit,
    /// The client did not send a whole command line in time, or DATA fell below its
    /// minimum rate ([`ServerSession::poll_timeout`]); `421 4.4.2 timeout` is queued and
    /// the session is closed (qmail-smtpd's timeoutsmtpd).
    Timeout,
    /// The session ended for another reason; any transaction in progress is void.
    Aborted(AbortReason),
}

/// Why a session ended other than by QUIT or timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortReason {
    /// The client closed the connection ([`ServerSession::handle_eof`]).
    ConnectionClosed,
    /// A command line exceeded [`ServerConfig::max_command_line`]; `500 5.5.2` was sent.
    CommandTooLong,
    /// [`ServerConfig::max_errors`] refused commands; `421 4.7.0` was sent.
    TooManyErrors,
    /// The message had a bare CR or LF; qmail's `451` was sent after its real end.
    BareLineEnding,
    /// The driver reported a failed TLS handshake.
    TlsFailed,
    /// The application ended the session with [`ServerSession::shutdown`].
    Shutdown,
}

/// Why a message was refused after its end; the session sent the reply named here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataError {
    /// A bare LF or bare CR (RFC 5321 §2.3.8): `451 4.6.0 See https://cr.yp.to/docs/smtplf.html.`,
    /// then the session ends ([`AbortReason::BareLineEnding`] follows), as qmail-smtpd did.
    BareLineEnding,
    /// At least [`ServerConfig::max_hops`] Received/Delivered header lines:
    /// `554 5.4.6 too many hops, this message is looping` (qmail-smtpd, RFCLOOPS).
    TooManyHops,
    /// Over the size limit: `552 5.3.4 sorry, that message size exceeds my databytes limit`.
    TooLarge,
    /// A NUL byte (RFC 5322 §2.1 forbids it; a NUL-stripping next hop would otherwise see
    /// a smuggled `CRLF.CRLF`): `554 5.6.0 message contains NUL`.
    Nul,
    /// A line over [`ServerConfig::max_data_line`]: `554 5.6.0 message line too long`.
    LineTooLong,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataError::BareLineEnding => "bare cr or lf in message",
            DataError::TooManyHops => "too many hops",
            DataError::TooLarge => "message too large",
            DataError::Nul => "nul byte in message",
            DataError::LineTooLong => "message line too long",
        })
    }
}

impl std::error::Error for DataError {}

/// `BODY=` (RFC 6152).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// The MAIL parameters this server advertises (RFC 5321 §4.1.1.2 `Mail-parameters`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailParams {
    /// `SIZE=n` (RFC 1870): the client's estimate, already checked against the limit.
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531): UTF-8 addresses and headers are allowed in this transaction.
    pub smtputf8: bool,
    /// `AUTH=` (RFC 4954 §5): the identity the client says submitted the message, as sent
    /// (xtext, `<>` for unknown). Accepted when AUTH is offered; informational only.
    pub auth: Option<String>,
}

/// The RCPT parameters (RFC 5321 §4.1.1.3 `Rcpt-parameters`). This server advertises no
/// RCPT extension (such as DSN), so a RCPT with any parameter gets `555 5.5.4` and this is
/// always empty; it exists so that adding one later is not a breaking change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RcptParams {}

/// The application's answer to an event that needs a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accept with the default reply for the stage (`250 2.1.0 ok`, `250 2.1.5 ok`,
    /// `354 go ahead`, `250 2.0.0 ok`).
    Accept,
    /// Accept with this reply: 2xx, or 354 for [`Event::DataStart`].
    AcceptWith(Reply),
    /// Refuse with this 4xx or 5xx reply.
    Reject(Reply),
}

/// [`ServerSession::decide`] could not apply the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecideError {
    /// No event is waiting for a verdict.
    NothingPending,
    /// The reply's code does not fit the verdict (e.g. `Reject` with a 250).
    WrongReplyCode,
}

impl fmt::Display for DecideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecideError::NothingPending => "no event is waiting for a verdict",
            DecideError::WrongReplyCode => "reply code does not fit the verdict",
        })
    }
}

impl std::error::Error for DecideError {}
