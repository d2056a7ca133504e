//! The client side: [`ClientSession`] drives one delivery to an already-connected server.

mod body;
mod path;
mod session;

use std::time::Duration;

pub use body::BodyEncoder;
pub use session::ClientSession;

/// Whether to use STARTTLS (RFC 3207).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never send STARTTLS (qmail-remote's behaviour).
    #[default]
    Never,
    /// Use STARTTLS when the server offers it; go on in plain text otherwise.
    Opportunistic,
    /// Defer every recipient unless TLS is established.
    Required,
}

/// Client session settings. Build with [`ClientConfig::new`] and adjust the fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The name sent in EHLO/HELO (qmail's `helohost`).
    pub helo: String,
    /// How the server is named in report texts (qmail-remote used its IP address):
    /// `Connected to <peer> but ...`.
    pub peer: String,
    /// STARTTLS use; the driver performs the handshake on [`ClientEvent::StartTls`].
    pub tls: TlsPolicy,
    /// Inactivity limit while waiting for a reply (qmail's `timeoutremote`, 1200 s).
    pub timeout: Duration,
    /// Pipeline MAIL, RCPTs and DATA when the server offers PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// The message size, sent as `SIZE=` (RFC 1870) when the server offers SIZE; a
    /// message over the server's advertised limit fails before MAIL.
    pub message_size: Option<u64>,
    /// The message has 8-bit bytes: send `BODY=8BITMIME` when offered (RFC 6152).
    pub eight_bit: bool,
    /// Log in with AUTH PLAIN (or LOGIN when PLAIN is not offered) before MAIL (RFC 4954),
    /// only ever inside TLS: without TLS, or when the server offers neither mechanism,
    /// every recipient is deferred and no credential is sent.
    pub auth: Option<ClientAuth>,
    /// Keep the connection open after the message's final reply (RFC 5321 §4.1.1.4: a
    /// server is ready for the next MAIL after it): instead of QUIT the session becomes
    /// idle ([`ClientEvent::Idle`]), and [`ClientSession::next_message`] sends another
    /// message on it, [`ClientSession::close`] ends it. A transaction that ends any
    /// other way (MAIL or every RCPT refused, DATA refused) still ends with QUIT. Default
    /// false (qmail-remote: one message per connection).
    pub reuse_connection: bool,
}

/// Credentials the client presents (a smarthost's login).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuth {
    /// The login name.
    pub login: String,
    /// The password.
    pub password: crate::Secret,
}

impl ClientConfig {
    /// Defaults: no TLS, 1200 s timeout, pipelining on, no size hint, 7-bit.
    pub fn new(helo: impl Into<String>, peer: impl Into<String>) -> ClientConfig {
        ClientConfig {
            helo: helo.into(),
            peer: peer.into(),
            tls: TlsPolicy::Never,
            timeout: Duration::from_mins(20),
            pipelining: true,
            message_size: None,
            eight_bit: false,
            auth: None,
            reuse_connection: false,
        }
    }
}

/// Something the client driver must act on, from [`ClientSession::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Write pending output, then run the TLS handshake and call
    /// [`ClientSession::tls_established`] (or [`ClientSession::handle_eof`] on failure).
    StartTls,
    /// The server said `354`: push the message with [`ClientSession::send_body`], then
    /// call [`ClientSession::finish_body`].
    SendBody,
    /// The delivery is over; [`ClientSession::results`] holds one result per recipient.
    /// Write pending output (a QUIT) and close the connection.
    Finished,
    /// The message is done ([`ClientSession::results`] is complete) and, as
    /// [`ClientConfig::reuse_connection`] asked, the connection is kept: call
    /// [`ClientSession::next_message`] or [`ClientSession::close`].
    Idle,
}
