//! [`Handler`]: the application side of the async server, and the [`SessionInfo`] it sees.

use std::future::Future;
use std::net::SocketAddr;

use mta_core::Envelope;
use mta_core::path::{ForwardPath, ReversePath};
use mta_smtp::{Credentials, DataError, DataSummary, MailParams, RcptParams, Reply, Verdict};

/// How a [`Handler`] wants the message bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageMode {
    /// Streamed through [`Handler::data_chunk`] as they arrive (dot-unstuffed, in the
    /// configured [`mta_smtp::LineEnding`]); [`Handler::data_end`] gets `None`. The next
    /// bytes are read from the client only when `data_chunk` returns, so a slow handler
    /// slows the client down instead of making the server buffer the message.
    #[default]
    Chunks,
    /// Collected by the driver (at most [`mta_smtp::ServerConfig::max_message_size`]
    /// bytes) and handed whole to [`Handler::data_end`]; `data_chunk` is not called.
    Whole,
}

/// What the server knows about a session, for every [`Handler`] call: the peer, the
/// client's name, TLS, the AUTH login, and the transaction's envelope so far.
#[derive(Clone, Debug, Default)]
pub struct SessionInfo {
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) helo: Option<String>,
    pub(crate) tls: bool,
    pub(crate) authenticated: Option<String>,
    pub(crate) sender: Option<ReversePath>,
    pub(crate) recipients: Vec<ForwardPath>,
}

impl SessionInfo {
    /// Information for a connection from `peer` (`None` when the transport has no
    /// address, such as an in-memory pipe).
    pub fn new(peer: Option<SocketAddr>) -> SessionInfo {
        SessionInfo {
            peer,
            ..SessionInfo::default()
        }
    }

    /// The client's address, as given to the driver.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The name in the client's last HELO/EHLO (RFC 5321 §4.1.1.1), unvalidated.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// True once the session runs over TLS (STARTTLS, RFC 3207, or implicit TLS, RFC 8314).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The login of a successful AUTH (RFC 4954).
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// The accepted `MAIL FROM` of the transaction in progress (RFC 5321 §3.3).
    pub fn sender(&self) -> Option<&ReversePath> {
        self.sender.as_ref()
    }

    /// The accepted `RCPT TO`s of the transaction in progress, in order.
    pub fn recipients(&self) -> &[ForwardPath] {
        &self.recipients
    }

    /// The transaction's envelope (sender and accepted recipients), once MAIL was accepted.
    pub fn envelope(&self) -> Option<Envelope> {
        let sender = self.sender.as_ref()?;
        Some(Envelope::new(
            sender.to_address(),
            self.recipients.iter().map(ForwardPath::to_address),
        ))
    }

    /// Forgets the transaction (RSET, HELO/EHLO, the end of a message, STARTTLS).
    pub(crate) fn reset_transaction(&mut self) {
        self.sender = None;
        self.recipients.clear();
    }
}

/// The application side of the async server: policy decisions and the message.
///
/// Every method has a default: accept MAIL, RCPT, DATA and the message, refuse AUTH
/// (`535 5.7.8`), ignore the bytes. Methods that return a [`Verdict`] answer a command
/// (RFC 5321 §4.2 reply codes: 2xx to accept, 4xx/5xx to refuse; 354 for
/// [`data_start`](Handler::data_start)); a verdict of the wrong class is replaced by
/// `451 local error in policy`, as the blocking driver does.
///
/// The driver awaits each call before it reads on: while a verdict is pending the client
/// waits for its reply, and while [`data_chunk`](Handler::data_chunk) runs no more of the
/// message is read (backpressure through TCP).
///
/// Cancel safety: the driver may drop a returned future only when the whole session is
/// dropped (its task cancelled or the runtime shut down); implementations should leave no
/// half-written state behind that they cannot clean up in `Drop`.
pub trait Handler: Send {
    /// How the message bytes are delivered; asked once per message, at `DATA`.
    fn message_mode(&self) -> MessageMode {
        MessageMode::Chunks
    }

    /// `HELO`/`EHLO` (RFC 5321 §4.1.1.1); [`SessionInfo::helo`] has the name. Any
    /// transaction was reset.
    fn hello(&mut self, info: &SessionInfo) -> impl Future<Output = ()> + Send {
        let _ = info;
        async {}
    }

    /// `MAIL FROM` (RFC 5321 §4.1.1.2): accept or refuse the sender.
    fn mail(
        &mut self,
        path: &ReversePath,
        params: &MailParams,
        info: &SessionInfo,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (path, params, info);
        async { Verdict::Accept }
    }

    /// `RCPT TO` (RFC 5321 §4.1.1.3): accept or refuse the recipient
    /// (qmail: `553 5.7.1` for relaying denied).
    fn rcpt(
        &mut self,
        path: &ForwardPath,
        params: &RcptParams,
        info: &SessionInfo,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (path, params, info);
        async { Verdict::Accept }
    }

    /// `AUTH` with well-formed credentials (RFC 4954; only when the server offers it):
    /// accept (`235`) or refuse. The default refuses every login with `535 5.7.8`.
    fn auth(
        &mut self,
        credentials: &Credentials,
        info: &SessionInfo,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (credentials, info);
        async {
            match Reply::new(535, "5.7.8 authentication credentials invalid") {
                Ok(r) => Verdict::Reject(r),
                // Unreachable (a fixed valid reply); the driver turns a wrong class into 451.
                Err(_) => Verdict::Accept,
            }
        }
    }

    /// `DATA` (RFC 5321 §4.1.1.4) after at least one accepted recipient: accept (`354`)
    /// or refuse (qmail: `451` when the queue cannot start). [`SessionInfo::envelope`]
    /// is complete here.
    fn data_start(&mut self, info: &SessionInfo) -> impl Future<Output = Verdict> + Send {
        let _ = info;
        async { Verdict::Accept }
    }

    /// The next piece of the message ([`MessageMode::Chunks`] only). Nothing is final
    /// until [`data_end`](Handler::data_end); a failure here should be remembered and
    /// answered there with a 4xx.
    fn data_chunk(&mut self, chunk: &[u8], info: &SessionInfo) -> impl Future<Output = ()> + Send {
        let _ = (chunk, info);
        async {}
    }

    /// The message ended well (`CRLF.CRLF`, RFC 5321 §4.1.1.4): commit it and give the
    /// final reply (`250` with the queue id, or `451`/`554`). `message` is the whole
    /// message in [`MessageMode::Whole`], `None` in [`MessageMode::Chunks`].
    fn data_end(
        &mut self,
        summary: &DataSummary,
        message: Option<&[u8]>,
        info: &SessionInfo,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (summary, message, info);
        async { Verdict::Accept }
    }

    /// The session refused the message after its end (bare LF or CR, NUL, too large,
    /// looping); the reply was sent. Discard what [`data_chunk`](Handler::data_chunk) got.
    fn data_rejected(
        &mut self,
        error: DataError,
        info: &SessionInfo,
    ) -> impl Future<Output = ()> + Send {
        let _ = (error, info);
        async {}
    }

    /// `RSET`, or the end of the session (also after an error): discard any transaction
    /// state.
    fn reset(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
