//! [`ServerConfig`]: everything the embedder sets for a server session.

use std::time::Duration;

/// The message size cap used when the embedder sets none (`databytes` 0): 50 MiB,
/// [`mta_core::control::DEFAULT_DATABYTES`].
///
/// qmail's "0 means unlimited" let a client push gigabytes at a 32-bit length counter
/// (CVE-2005-1513); every session here has a finite cap.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = mta_core::control::DEFAULT_DATABYTES as usize;

/// The line ending of message bytes handed to the application in
/// [`crate::Event::DataChunk`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n`, qmail's stored form (qmail-smtpd stored CRLF as LF). Lossless here, since a
    /// message with a bare CR or LF is refused.
    #[default]
    Lf,
    /// `\r\n`, the wire form.
    Crlf,
}

/// Server session settings. Build with [`ServerConfig::new`] and adjust the fields.
///
/// ```
/// use mta_smtp::ServerConfig;
/// let mut c = ServerConfig::new("mx.example.org");
/// c.max_recipients = 50;
/// c.set_databytes(0); // qmail's "no limit" still gets the default cap
/// assert_eq!(c.max_message_size, mta_smtp::DEFAULT_MAX_MESSAGE_SIZE);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Greeting text (qmail's `smtpgreeting`, default `me`): sent as `220 <greeting> ESMTP`,
    /// `250 <greeting>` to HELO and as the first EHLO line, `221 <greeting>` to QUIT.
    pub greeting: String,
    /// Largest message accepted, in stored octets (qmail's `databytes`); also advertised
    /// as `SIZE` (RFC 1870). Never unlimited: see [`ServerConfig::set_databytes`].
    pub max_message_size: usize,
    /// Most accepted recipients per message; beyond, `452 4.5.3 too many recipients`
    /// (RFC 5321 §4.5.3.1.10 requires at least 100). Default 1000.
    pub max_recipients: usize,
    /// Refused commands allowed per session: protocol errors (unknown commands, bad
    /// syntax, bad sequence, too many recipients) and MAIL, RCPT or DATA refused by the
    /// application's verdict. At this count the session sends `421 4.7.0 too many errors`
    /// and ends (Postfix's `smtpd_hard_error_limit`). Default 20.
    pub max_errors: usize,
    /// Longest command line including CRLF. RFC 5321 §4.5.3.1.4 says 512; extensions
    /// (§4.5.3.1.4, RFC 1870, RFC 6531) add parameters, so the default tolerates 1024.
    /// A longer line gets `500 5.5.2 line too long` and ends the session.
    pub max_command_line: usize,
    /// Longest message line including CRLF. RFC 5321 §4.5.3.1.6 says 1000; real mail
    /// (HTML generators) often breaks it, so the default tolerates 16384. The message is
    /// then refused after its end.
    pub max_data_line: usize,
    /// Refuse messages with this many hops or more (qmail-smtpd: 100). `None` only counts.
    pub max_hops: Option<usize>,
    /// Time a client has to send a whole command line after the previous reply (qmail's
    /// `timeoutsmtpd`, default 1200 s), and the grace period of DATA; see
    /// [`ServerSession::poll_timeout`](crate::ServerSession::poll_timeout).
    pub timeout: Duration,
    /// Bytes per second DATA must average after the `timeout` grace (Postfix's
    /// `smtpd_min_data_rate`); 0 turns it off and DATA only has the inactivity `timeout`.
    /// Default 500.
    pub min_data_rate: u64,
    /// Advertise and accept STARTTLS (RFC 3207); the driver runs the handshake.
    pub offer_starttls: bool,
    /// Refuse MAIL with `530 5.7.0 must issue a STARTTLS command first` until TLS is up
    /// (RFC 3207 §4: allowed on a submission port, never on a public MX).
    pub require_tls: bool,
    /// The connection is TLS from its first byte (implicit TLS, port 465, RFC 8314): the
    /// session starts encrypted and never offers STARTTLS. The driver runs the handshake
    /// before it sends the greeting.
    pub implicit_tls: bool,
    /// Offer SMTP AUTH PLAIN and LOGIN (RFC 4954); the application checks the credentials
    /// ([`crate::Event::Auth`]).
    pub offer_auth: bool,
    /// Offer AUTH only once TLS is up (default true: RFC 4954 §4, plaintext passwords
    /// never cross the network in clear).
    pub auth_requires_tls: bool,
    /// Refuse MAIL with `530 5.7.0 authentication required` until AUTH succeeded (a
    /// submission port, RFC 6409 §4.3).
    pub require_auth: bool,
    /// Advertise SMTPUTF8 (RFC 6531) and accept UTF-8 paths with the MAIL parameter.
    pub offer_smtputf8: bool,
    /// Line ending of the bytes in [`crate::Event::DataChunk`].
    pub line_ending: LineEnding,
}

impl ServerConfig {
    /// Defaults as documented on each field, with `greeting` set.
    pub fn new(greeting: impl Into<String>) -> ServerConfig {
        ServerConfig {
            greeting: greeting.into(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: 1000,
            max_errors: 20,
            max_command_line: 1024,
            max_data_line: 16384,
            max_hops: Some(100),
            timeout: Duration::from_mins(20),
            min_data_rate: 500,
            offer_starttls: false,
            require_tls: false,
            implicit_tls: false,
            offer_auth: false,
            auth_requires_tls: true,
            require_auth: false,
            offer_smtputf8: true,
            line_ending: LineEnding::Lf,
        }
    }

    /// Sets the size limit from qmail's `databytes` value: 0 (qmail: unlimited) and
    /// values beyond `usize` give [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn set_databytes(&mut self, databytes: u64) {
        self.max_message_size = match usize::try_from(databytes) {
            Ok(0) | Err(_) => DEFAULT_MAX_MESSAGE_SIZE,
            Ok(n) => n,
        };
    }
}
