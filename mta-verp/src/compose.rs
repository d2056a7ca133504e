//! Composing bounces the way qmail-send does (`addbounce`, `injectbounce`; reference §4).
//!
//! The caller (the queue's scheduler) collects one [`Failure`] per permanently failed
//! recipient, and when the message is finished calls [`compose_bounce`] with the original
//! envelope sender, a date and the stored message. The result is a [`Bounce`]: a single
//! bounce to the sender, a double bounce to the postmaster, or nothing (a triple bounce is
//! never sent, RFCLOOPS). The message bytes use LF line endings, as the queue stores them.
//!
//! Two formats are available ([`BounceFormat`]): QSBMF, byte for byte what qmail-send
//! writes, and an RFC 3464 `multipart/report` DSN whose first part is the same QSBMF text.

use std::io::{self, Read};

use mta_core::header::{quote2, return_path_line};
use mta_core::{Address, Envelope};

use crate::dsn;
use crate::text::quote_local;
use crate::verp::strip_verp_marker;

/// The text qmail-send appends to a deferral report when the message has been in the queue
/// longer than `queuelifetime`, turning it into a permanent failure.
pub const QUEUE_LIFETIME_TEXT: &str =
    "I'm not going to try again; this message has been in the queue too long.\n";

/// The bounce message format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BounceFormat {
    /// qmail-send's format (QSBMF), exact.
    #[default]
    Qsbmf,
    /// RFC 3464 delivery status notification (`multipart/report; report-type=delivery-status`,
    /// RFC 6522), with the QSBMF text as its human-readable part.
    Dsn,
}

/// Where bounces come from and go to: qmail's `bouncefrom`, `bouncehost`, `doublebounceto`
/// and `doublebouncehost` control files, plus the format and a size cap on the returned copy.
///
/// ```
/// use mta_verp::{BounceConfig, BounceFormat};
/// let cfg = BounceConfig::new("mx.example.org")
///     .doublebounceto("postmaster")
///     .max_original_bytes(Some(64 * 1024))
///     .format(BounceFormat::Dsn);
/// assert_eq!(cfg.bouncehost_name(), "mx.example.org");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BounceConfig {
    bouncefrom: String,
    bouncehost: String,
    doublebounceto: String,
    doublebouncehost: String,
    max_original: Option<usize>,
    format: BounceFormat,
}

impl BounceConfig {
    /// qmail's defaults for a host whose `me` is `me`: `bouncefrom` = `MAILER-DAEMON`,
    /// `bouncehost` = `me`, `doublebounceto` = `postmaster`, `doublebouncehost` = `me`, no
    /// cap on the copy of the original message, QSBMF.
    pub fn new(me: &str) -> Self {
        BounceConfig {
            bouncefrom: "MAILER-DAEMON".to_owned(),
            bouncehost: me.to_owned(),
            doublebounceto: "postmaster".to_owned(),
            doublebouncehost: me.to_owned(),
            max_original: None,
            format: BounceFormat::Qsbmf,
        }
    }

    /// Sets `bouncefrom`, the local part of the bounce's `From:`.
    #[must_use]
    pub fn bouncefrom(mut self, v: &str) -> Self {
        v.clone_into(&mut self.bouncefrom);
        self
    }

    /// Sets `bouncehost`, the host of the bounce's `From:` and of its first line.
    #[must_use]
    pub fn bouncehost(mut self, v: &str) -> Self {
        v.clone_into(&mut self.bouncehost);
        self
    }

    /// Sets `doublebounceto`, the local part double bounces go to. An empty value sends them
    /// to `@doublebouncehost`, which local delivery discards (the RFCLOOPS trick).
    #[must_use]
    pub fn doublebounceto(mut self, v: &str) -> Self {
        v.clone_into(&mut self.doublebounceto);
        self
    }

    /// Sets `doublebouncehost`.
    #[must_use]
    pub fn doublebouncehost(mut self, v: &str) -> Self {
        v.clone_into(&mut self.doublebouncehost);
        self
    }

    /// Caps the copy of the original message at this many bytes, cut at a line end. `None`
    /// (qmail's behaviour) returns it whole.
    #[must_use]
    pub fn max_original_bytes(mut self, v: Option<usize>) -> Self {
        self.max_original = v;
        self
    }

    /// Chooses the format.
    #[must_use]
    pub fn format(mut self, f: BounceFormat) -> Self {
        self.format = f;
        self
    }

    /// The configured `bouncehost`.
    pub fn bouncehost_name(&self) -> &str {
        &self.bouncehost
    }

    /// `doublebounceto@doublebouncehost`.
    pub fn double_bounce_recipient(&self) -> Address {
        Address::from_parts(
            self.doublebounceto.as_bytes(),
            self.doublebouncehost.as_bytes(),
        )
    }
}

/// One permanently failed recipient and the full report text of the failure (for a remote
/// delivery, everything the remote server said).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    recipient: Address,
    report: Vec<u8>,
}

impl Failure {
    /// A failure of `recipient` with report text `report`.
    pub fn new(recipient: impl Into<Address>, report: impl Into<Vec<u8>>) -> Self {
        Failure {
            recipient: recipient.into(),
            report: report.into(),
        }
    }

    /// The recipient.
    pub fn recipient(&self) -> &Address {
        &self.recipient
    }

    /// The report text.
    pub fn report(&self) -> &[u8] {
        &self.report
    }
}

/// Which kind of bounce a finished message gets (qmail-send `injectbounce`, RFCLOOPS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BounceDecision {
    /// Normal sender: bounce to it from `<>`.
    Single {
        /// The sender, with a VERP `-@[]` suffix removed.
        to: Address,
    },
    /// The failed message was itself a bounce (sender `<>`): send from `#@[]` to
    /// `doublebounceto@doublebouncehost`.
    Double {
        /// `doublebounceto@doublebouncehost`.
        to: Address,
    },
    /// The failed message was a double bounce (sender `#@[]`): discard. qmail logs
    /// `triple bounce: discarding bounce/<id>`.
    Discard,
}

/// Decides where the bounce of a message from `sender` goes.
///
/// ```
/// use mta_core::Address;
/// use mta_verp::{decide_bounce, BounceConfig, BounceDecision};
/// let cfg = BounceConfig::new("example.org");
/// assert_eq!(
///     decide_bounce(&Address::from("list-@example.org-@[]"), &cfg),
///     BounceDecision::Single { to: Address::from("list-@example.org") },
/// );
/// assert_eq!(decide_bounce(&Address::double_bounce(), &cfg), BounceDecision::Discard);
/// ```
pub fn decide_bounce(sender: &Address, cfg: &BounceConfig) -> BounceDecision {
    let s = strip_verp_marker(sender);
    if s.is_double_bounce() {
        BounceDecision::Discard
    } else if s.is_null() {
        BounceDecision::Double {
            to: cfg.double_bounce_recipient(),
        }
    } else {
        BounceDecision::Single { to: s }
    }
}

/// A bounce ready to be queued.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BounceMessage {
    /// True for a double bounce.
    pub double: bool,
    /// Sender `<>` (single) or `#@[]` (double), and the one recipient.
    pub envelope: Envelope,
    /// The message, LF line endings.
    pub message: Vec<u8>,
}

/// The outcome of [`compose_bounce`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bounce {
    /// Queue this message.
    Send(BounceMessage),
    /// A triple bounce (the failed message came from `#@[]`): send nothing. qmail logs
    /// `triple bounce: discarding bounce/<id>`.
    Discard,
    /// No recipient failed: there is nothing to bounce (qmail-send finds no `bounce/<id>`
    /// file and injects nothing).
    NoFailures,
}

/// The paragraph qmail-send appends to `bounce/<id>` for one failure (`addbounce`):
/// `<recipient>:` (any `\n` in it as `_`), then the report with a final `\n` added if
/// missing and every `\n` that follows another `\n` turned into `/` so the paragraph has no
/// blank line, then the blank line.
///
/// Deliberate difference: qmail's loop skips the report's last byte, so a report ending in
/// `\n\n` left a blank line inside the paragraph (breaking QSBMF); here the rule covers the
/// last byte too (`x\n\n` gives `x\n/\n`).
pub fn failure_paragraph(out: &mut Vec<u8>, failure: &Failure) {
    out.push(b'<');
    out.extend(
        failure
            .recipient
            .as_bytes()
            .iter()
            .map(|&b| if b == b'\n' { b'_' } else { b }),
    );
    out.extend_from_slice(b">:\n");
    let mut prev = b'\n';
    for &b in &failure.report {
        out.push(if b == b'\n' && prev == b'\n' { b'/' } else { b });
        prev = b;
    }
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Reads the original message, keeping at most `limit` bytes cut after the last whole line
/// that fits. Returns the bytes (ending in `\n`) and whether anything was cut.
pub(crate) fn read_original<R: Read>(
    original: R,
    limit: Option<usize>,
) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let truncated = match limit {
        None => {
            let mut r = original;
            r.read_to_end(&mut buf)?;
            false
        }
        Some(n) => {
            original.take(n as u64 + 1).read_to_end(&mut buf)?;
            if buf.len() > n {
                buf.truncate(n);
                if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
                    buf.truncate(i + 1);
                }
                true
            } else {
                false
            }
        }
    };
    if !buf.is_empty() && buf.last() != Some(&b'\n') {
        buf.push(b'\n');
    }
    Ok((buf, truncated))
}

/// Composes the bounce for a finished message, as qmail-send's `injectbounce` does.
///
/// - `sender`: the original envelope sender (a VERP `-@[]` suffix is removed first).
/// - `failures`: the failed recipients, in the order they failed.
/// - `date`: the text of the `Date:` field, e.g. `29 Nov 2026 04:08:05 -0000`
///   (`mta_core::date::qmail_date822`); the caller owns the clock.
/// - `original`: the stored message (qmail-queue's `Received` line and the message), read
///   up to [`BounceConfig::max_original_bytes`].
///
/// QSBMF layout (each line ends in `\n`): `Date`, `From: bouncefrom@bouncehost`,
/// `To: <sender or doublebounceto@doublebouncehost>`, `Subject: failure notice`, a blank
/// line, `Hi. This is the qmail-send program at <bouncehost>.` and the intro, one
/// [`failure_paragraph`] per failure, the break line (`--- Below this line is a copy of the
/// message.`, or `... is the original bounce.` for a double bounce), a blank line,
/// `Return-Path: <sender>` and the original.
///
/// With no failures the result is [`Bounce::NoFailures`]; a triple bounce is
/// [`Bounce::Discard`]. Neither reads `original`.
///
/// # Errors
/// Errors reading `original`.
///
/// ```
/// use mta_core::Address;
/// use mta_verp::{compose_bounce, Bounce, BounceConfig, Failure};
/// let cfg = BounceConfig::new("mx.example.org");
/// let failures = [Failure::new("bob@example.net", "Sorry, no mailbox here by that name. (#5.1.1)\n")];
/// let original = &b"Subject: hi\n\nhello\n"[..];
/// let Bounce::Send(b) = compose_bounce(&cfg, &Address::from("alice@example.com"), &failures,
///     "29 Nov 2026 04:08:05 -0000", original)? else { unreachable!() };
/// assert!(b.message.starts_with(b"Date: 29 Nov 2026 04:08:05 -0000\nFrom: MAILER-DAEMON@mx.example.org\n"));
/// assert_eq!(b.envelope.recipients, [Address::from("alice@example.com")]);
/// assert!(b.envelope.sender.is_null());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn compose_bounce<R: Read>(
    cfg: &BounceConfig,
    sender: &Address,
    failures: &[Failure],
    date: &str,
    original: R,
) -> io::Result<Bounce> {
    if failures.is_empty() {
        return Ok(Bounce::NoFailures);
    }
    let (to, double) = match decide_bounce(sender, cfg) {
        BounceDecision::Discard => return Ok(Bounce::Discard),
        BounceDecision::Single { to } => (to, false),
        BounceDecision::Double { to } => (to, true),
    };
    let return_path = strip_verp_marker(sender);
    let (orig, truncated) = read_original(original, cfg.max_original)?;
    let parts = Parts {
        cfg,
        to: &to,
        double,
        return_path: &return_path,
        failures,
        date,
        original: &orig,
        truncated,
    };
    let message = match cfg.format {
        BounceFormat::Qsbmf => qsbmf(&parts),
        BounceFormat::Dsn => dsn::compose(&parts),
    };
    let bounce_sender = if double {
        Address::double_bounce()
    } else {
        Address::null()
    };
    Ok(Bounce::Send(BounceMessage {
        double,
        envelope: Envelope::new(bounce_sender, [to]),
        message,
    }))
}

/// Everything a bounce body is built from.
pub(crate) struct Parts<'a> {
    pub(crate) cfg: &'a BounceConfig,
    pub(crate) to: &'a Address,
    pub(crate) double: bool,
    pub(crate) return_path: &'a Address,
    pub(crate) failures: &'a [Failure],
    pub(crate) date: &'a str,
    pub(crate) original: &'a [u8],
    pub(crate) truncated: bool,
}

impl Parts<'_> {
    /// `Date`, `From`, `To` and `Subject`, as qmail-send writes them.
    pub(crate) fn push_top_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(self.date.as_bytes());
        out.extend_from_slice(b"\nFrom: ");
        quote_local(out, self.cfg.bouncefrom.as_bytes());
        out.push(b'@');
        out.extend_from_slice(self.cfg.bouncehost.as_bytes());
        out.extend_from_slice(b"\nTo: ");
        out.extend_from_slice(&quote2(self.to.as_bytes()));
        out.extend_from_slice(b"\nSubject: failure notice\n");
    }

    /// The intro paragraph and the failure paragraphs.
    pub(crate) fn push_report_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Hi. This is the qmail-send program at ");
        out.extend_from_slice(self.cfg.bouncehost.as_bytes());
        out.extend_from_slice(if self.double {
            b".\nI tried to deliver a bounce message to this address, but the bounce bounced!\n\n"
                .as_slice()
        } else {
            b".\nI'm afraid I wasn't able to deliver your message to the following addresses.\n\
              This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
                .as_slice()
        });
        for f in self.failures {
            failure_paragraph(out, f);
        }
    }

    /// `Return-Path: <sender>` and the original message.
    pub(crate) fn push_returned(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&return_path_line(self.return_path));
        out.extend_from_slice(self.original);
    }
}

fn qsbmf(p: &Parts<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + p.original.len());
    p.push_top_fields(&mut out);
    out.push(b'\n');
    p.push_report_text(&mut out);
    out.extend_from_slice(if p.double {
        b"--- Below this line is the original bounce.\n\n".as_slice()
    } else {
        b"--- Below this line is a copy of the message.\n\n".as_slice()
    });
    p.push_returned(&mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn para(r: &str, text: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        failure_paragraph(&mut v, &Failure::new(r, text));
        v
    }

    #[test]
    fn paragraph_has_no_blank_lines() {
        assert_eq!(para("a@b", b"x"), b"<a@b>:\nx\n\n");
        assert_eq!(para("a@b", b"x\n"), b"<a@b>:\nx\n\n");
        assert_eq!(para("a@b", b"x\n\n\ny\n"), b"<a@b>:\nx\n//y\n\n");
        assert_eq!(para("a@b", b"x\n\n"), b"<a@b>:\nx\n/\n\n");
        assert_eq!(para("a@b", b""), b"<a@b>:\n\n");
        assert_eq!(para("a\nb@c", b"\nx"), b"<a_b@c>:\n/x\n\n");
    }

    #[test]
    fn decisions() {
        let cfg = BounceConfig::new("h")
            .doublebounceto("pm")
            .doublebouncehost("dh");
        assert_eq!(
            decide_bounce(&Address::null(), &cfg),
            BounceDecision::Double {
                to: Address::from("pm@dh")
            }
        );
        // qmail strips -@[] before looking: these become #@[] and "".
        assert_eq!(
            decide_bounce(&Address::from("#@[]-@[]"), &cfg),
            BounceDecision::Discard
        );
        assert_eq!(
            decide_bounce(&Address::from("-@[]"), &cfg),
            BounceDecision::Double {
                to: Address::from("pm@dh")
            }
        );
    }

    #[test]
    fn truncation_at_line_end() {
        let (v, t) = read_original(&b"aaaa\nbbbb\ncccc\n"[..], Some(12)).unwrap();
        assert_eq!((v.as_slice(), t), (&b"aaaa\nbbbb\n"[..], true));
        let (v, t) = read_original(&b"aaaa\nbbbb\n"[..], Some(10)).unwrap();
        assert_eq!((v.as_slice(), t), (&b"aaaa\nbbbb\n"[..], false));
        let (v, t) = read_original(&b"aaaaaaaaaa"[..], Some(4)).unwrap();
        assert_eq!((v.as_slice(), t), (&b"aaaa\n"[..], true));
        let (v, t) = read_original(&b"no newline"[..], None).unwrap();
        assert_eq!((v.as_slice(), t), (&b"no newline\n"[..], false));
    }
}
