#![doc = include_str!("../README.md")]
//!
//! ## API overview
//!
//! Sans-IO SMTP (RFC 5321) server and client state machines, with qmail's behaviour and
//! immune to SMTP smuggling, plus blocking `std::net` drivers.
//!
//! - [`ServerSession`]: bytes and the time in; [`Event`]s and reply bytes out. The
//!   application answers policy questions ([`Event::Mail`], [`Event::Rcpt`], ...) with a
//!   [`Verdict`]. PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8 and STARTTLS
//!   (as a hook). Only `CRLF.CRLF` ends a message; a bare CR or LF fails it.
//! - [`ClientSession`]: drives one delivery (greeting, EHLO/HELO, optional STARTTLS, MAIL,
//!   pipelined RCPTs, DATA with dot-stuffing, QUIT) and reports one
//!   [`mta_core::DeliveryResult`] per recipient with qmail-remote's temporary/permanent rules.
//! - [`Reply`] and [`ReplyParser`]: replies in and out; [`BodyEncoder`]: SMTP transparency.
//! - [`Command::parse`]: one whole command line with the session's grammar.
//! - [`received_line`]: qmail-smtpd's `Received:` line.
//! - [`blocking`] (feature `blocking`, default): `serve` and `deliver` over any
//!   [`blocking::Transport`] (`TcpStream`, `UnixStream`, an in-memory pipe), and
//!   `serve_with`/`deliver_with` taking a STARTTLS hook. The server's `Policy::data_end`
//!   gets the envelope and the peer in its [`DataSummary`]. `serve_connection` is the one
//!   server loop under all of them: over a [`blocking::Connection`] that upgrades itself
//!   to TLS, with `Policy` hooks for timeouts, limits, aborts and a server's stop (`mta
//!   serve`'s SMTP process runs on it).
//!
//! ## Behaviour, and where it differs from qmail on purpose
//!
//! Replies, texts and state rules are qmail-smtpd's (`503 5.5.1 MAIL first`, `555` for a bad
//! address, `252` to VRFY, `502` to the rest, qmail's `451` for a bare LF, `554 5.4.6` at 100
//! hops, `552 5.3.4` over databytes), with RFC 2034 codes in front. Kept leniencies are
//! marked `// lenient:` in the source and tested: a command ending in a bare LF, an empty
//! HELO, `MAIL FROM: user@host` without brackets. Deliberate differences, for safety or
//! RFC 5321: a bare CR or a NUL in DATA fails the message (qmail kept them); command lines,
//! errors per session and recipients per message are capped (qmail had no caps); the size
//! cap is never unlimited; `SIZE` is advertised and checked at MAIL; a nested MAIL gets
//! `503` (qmail restarted the transaction); bad MAIL/RCPT shapes get `501`. The client
//! speaks ESMTP with PIPELINING (qmail-remote only HELO), completes an unterminated last
//! line (qmail-remote refused it with `#5.6.2`), turns a bare CR into CRLF (notqmail), and
//! treats a 1xx/3xx answer to RCPT as temporary (qmail-remote counted it as accepted).
//!
//! Nothing in the state machines touches a socket, a thread or the clock: time is passed in
//! as [`std::time::Instant`] values by the caller (the crate's `clippy.toml` forbids
//! `Instant::now` and friends), so sessions are deterministic and testable in memory.
//!
//! ```
//! use std::time::Instant;
//! use mta_core::{Address, Envelope};
//! use mta_smtp::{ClientConfig, ClientEvent, ClientSession, Event, ServerConfig,
//!     ServerSession, Verdict};
//!
//! # #[allow(clippy::disallowed_methods)]
//! let now = Instant::now();
//! let mut server = ServerSession::new(ServerConfig::new("mx.example"), now);
//! let env = Envelope::new(Address::from("a@example.org"), ["b@example.net"]);
//! let mut client = ClientSession::new(ClientConfig::new("client.example", "mx"), env, now);
//! let (mut wire, mut message) = (Vec::new(), Vec::new());
//! while !client.is_finished() {
//!     if server.poll_transmit(&mut wire) {
//!         client.handle_input(&wire, now);
//!         wire.clear();
//!     }
//!     while let Some(ev) = client.poll_event() {
//!         if ev == ClientEvent::SendBody {
//!             client.send_body(b"Subject: hi\n\n.hello\n");
//!             client.finish_body(now);
//!         }
//!     }
//!     if client.poll_transmit(&mut wire) {
//!         server.handle_input(&wire, now);
//!         wire.clear();
//!     }
//!     while let Some(ev) = server.poll_event() {
//!         match ev {
//!             Event::DataChunk(c) => message.extend_from_slice(c),
//!             Event::Mail { .. } | Event::Rcpt { .. } | Event::DataStart | Event::DataEnd(_) => {
//!                 server.decide(Verdict::Accept)?;
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! assert_eq!(message, b"Subject: hi\n\n.hello\n");
//! assert!(client.results().iter().all(|r| r.is_delivered()));
//! # Ok::<(), mta_smtp::DecideError>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "blocking")]
pub mod blocking;
mod client;
mod received;
mod reply;
mod scan;
mod server;
#[cfg(feature = "rustls")]
pub mod tls;

/// The `mta-core` crate, re-exported: this crate's public API takes and returns its types
/// ([`Envelope`](mta_core::Envelope) in [`ClientSession::new`], [`EnhancedStatus`](mta_core::EnhancedStatus) in [`Reply`], [`DeliveryResult`](mta_core::DeliveryResult) from the client), so callers can name them as `mta_smtp::mta_core::...` without a
/// dependency of their own that could drift to another version.
pub use mta_core;

pub use client::{BodyEncoder, ClientAuth, ClientConfig, ClientEvent, ClientSession, TlsPolicy};
pub use received::{ReceivedInfo, received_line};
pub use reply::{
    InvalidReply, MAX_REPLY_BYTES, MAX_REPLY_LINE, MAX_REPLY_TEXT, ParseReplyError, Reply,
    ReplyParser, ReplyStatus,
};
pub use server::{
    AbortReason, AuthMechanism, BodyType, Command, Credentials, DEFAULT_MAX_MESSAGE_SIZE,
    DataError, DataSummary, DecideError, Event, LineEnding, MailParams, ParseCommandError,
    RcptParams, Secret, ServerConfig, ServerSession, Verdict,
};
