#![doc = include_str!("../README.md")]
//!
//! ## API overview
//!
//! The parts of a mail system that deal with mail coming back: qmail's variable envelope
//! return paths, mail loop detection, and bounces, both writing them and reading them.
//!
//! - **VERP** ([`Verp`], [`sender_for_recipient`], [`strip_verp_marker`]): the `-@[]` sender
//!   convention and qmail's `prefix-box=domain@host` return paths, with configurable
//!   delimiters (`-`/`=` for qmail, `+`/`=` for Mailman-style lists). Decoding splits at the
//!   last separator, so every recipient [`Verp::encode`] accepts comes back unchanged.
//! - **Loops** ([`HeaderScanner`], [`scan_header`], [`scan_header_from`],
//!   [`delivered_to_line`]): qmail-local's exact `Delivered-To` line check and
//!   qmail-smtpd's hop count (`Received` + `Delivered` lines, limit [`MAX_HOPS`]), in one
//!   streaming pass that stops at the end of the header and never reads the body.
//! - **Composing bounces** ([`compose_bounce`], [`BounceConfig`], [`Failure`],
//!   [`decide_bounce`]): single bounces to the sender, double bounces to the postmaster, no
//!   triple bounces; in qmail-send's QSBMF format byte for byte, or as an RFC 3464 DSN.
//! - **Reading bounces** ([`parse_bounce`], [`ParsedBounce`]): failed recipients and their
//!   reasons from RFC 3464 DSNs (via mail-parser's MIME tree) and QSBMF, or just the
//!   recipients from Exim's `X-Failed-Recipients`; anything else is a clear
//!   [`ParseBounceError::NotABounce`].
//!
//! The crate does no I/O of its own beyond reading what it is handed, reads no clock and
//! never panics on input.
//!
//! ```
//! use mta_core::Address;
//! use mta_verp::{compose_bounce, parse_bounce, sender_for_recipient, Bounce, BounceConfig,
//!     Failure, Verp};
//!
//! // A list sends with VERP; the queue picks a sender per recipient.
//! let list = Address::from("list-owner@example.org");
//! let request = Verp::QMAIL.request_sender(&list)?;           // list-owner-@example.org-@[]
//! let rcpt = Address::from("bob@example.net");
//! let sender = sender_for_recipient(&request, &rcpt);         // list-owner-bob=example.net@example.org
//!
//! // Delivery to bob fails; the queue bounces to that sender.
//! let cfg = BounceConfig::new("mx.example.org");
//! let failures = [Failure::new(rcpt.clone(), "Remote host said: 550 5.1.1 no such user\n")];
//! let Bounce::Send(b) = compose_bounce(&cfg, &sender, &failures,
//!     "29 Nov 2026 04:08:05 -0000", &b"Subject: hi\n\nhello\n"[..])? else { unreachable!() };
//!
//! // The list learns who bounced from the envelope recipient alone...
//! let bounced = Verp::QMAIL.decode(&list, &b.envelope.recipients[0])?;
//! assert_eq!(bounced, rcpt);
//! // ...and why, from the body.
//! let parsed = parse_bounce(&b.message)?;
//! assert_eq!(parsed.recipients[0].recipient, rcpt);
//! assert_eq!(parsed.recipients[0].status.map(|s| s.to_string()).as_deref(), Some("5.1.1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod compose;
mod dsn;
mod loops;
mod parse;
mod text;
mod verp;

/// The `mta-core` crate, re-exported: this crate's public API takes and returns its types
/// ([`Address`](mta_core::Address) and [`Envelope`](mta_core::Envelope) everywhere), so callers can name them as `mta_verp::mta_core::...` without a
/// dependency of their own that could drift to another version.
pub use mta_core;

pub use compose::{
    Bounce, BounceConfig, BounceDecision, BounceFormat, BounceMessage, Failure,
    QUEUE_LIFETIME_TEXT, compose_bounce, decide_bounce, failure_paragraph,
};
pub use loops::{
    DELIVERED_TO_LOOP_TEXT, HeaderScan, HeaderScanner, MAX_HOPS, TOO_MANY_HOPS_REPLY,
    delivered_to_line, scan_header, scan_header_from,
};
pub use parse::{
    DsnAction, ParseBounceError, ParsedBounce, ParsedFormat, RecipientReport, envelope_recipient,
    parse_bounce,
};
pub use verp::{
    VERP_MARKER, Verp, VerpError, is_verp_request, sender_for_recipient, strip_verp_marker,
};
