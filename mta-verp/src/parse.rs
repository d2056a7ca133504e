//! Reading bounces: which recipients failed, and why.
//!
//! [`parse_bounce`] understands the two machine-readable bounce formats:
//!
//! - **RFC 3464 DSNs**: a `message/delivery-status` (or RFC 6533
//!   `message/global-delivery-status`) part anywhere in the MIME tree, found with
//!   mail-parser, which also undoes any transfer encoding. Its per-recipient blocks give
//!   `Final-Recipient` (or `Original-Recipient`), `Action`, `Status`, `Diagnostic-Code` and
//!   `Remote-MTA`. Postfix, Exim, Gmail, Exchange and most others send these.
//! - **QSBMF** (qmail): a text body starting `Hi. This is the`, with one `<address>:`
//!   paragraph per failure before the `-` break paragraph.
//!
//! - As a last resort, Exim's `X-Failed-Recipients` header field (recipients only).
//!
//! Anything else is [`ParseBounceError::NotABounce`]. With VERP a list manager needs none of
//! this: the envelope recipient of the bounce names the subscriber ([`Verp::decode`],
//! [`envelope_recipient`]); the parsed reasons are then only for the log. That is also the
//! safer source: anyone can mail a list owner a forged report naming any subscriber, while
//! a VERP address only reaches the owner if the list sent to that subscriber.
//!
//! [`Verp::decode`]: crate::Verp::decode

use std::fmt;

use mail_parser::{MessageParser, MimeHeaders};
use mta_core::{Address, EnhancedStatus};

use crate::text::{find_status, status_at};

/// Which format a parsed bounce was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParsedFormat {
    /// qmail-send bounce message format.
    Qsbmf,
    /// RFC 3464 delivery status notification.
    Dsn,
    /// Only Exim's `X-Failed-Recipients` header field: older Exim sends plain-text bounces
    /// whose one machine-readable part is that field. No reasons are available.
    XFailedRecipients,
}

/// The RFC 3464 §2.3.3 `Action` of one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DsnAction {
    /// Permanent failure: the subscriber bounced.
    Failed,
    /// Still trying (a warning, not a bounce).
    Delayed,
    /// Delivered (a positive DSN).
    Delivered,
    /// Relayed to a system that sends no DSNs.
    Relayed,
    /// Delivered and expanded (e.g. to a list).
    Expanded,
    /// Missing or unknown action word.
    Unknown,
}

impl DsnAction {
    fn parse(v: &str) -> Self {
        let word = v
            .split(|c: char| c == '(' || c.is_whitespace())
            .find(|w| !w.is_empty());
        match word.map(str::to_ascii_lowercase).as_deref() {
            Some("failed") => DsnAction::Failed,
            Some("delayed") => DsnAction::Delayed,
            Some("delivered") => DsnAction::Delivered,
            Some("relayed") => DsnAction::Relayed,
            Some("expanded") => DsnAction::Expanded,
            _ => DsnAction::Unknown,
        }
    }
}

/// What a bounce says about one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecipientReport {
    /// The recipient (`Final-Recipient`, else `Original-Recipient`; QSBMF: the paragraph's
    /// address).
    pub recipient: Address,
    /// The DSN `Original-Recipient`: the address as the sender gave it, before the remote
    /// side rewrote it (aliases, virtual domains). For a list, this is the subscriber.
    pub original_recipient: Option<Address>,
    /// The action; QSBMF paragraphs are always [`DsnAction::Failed`].
    pub action: DsnAction,
    /// The RFC 3463 status: the DSN `Status` field, or the first code found in the text.
    pub status: Option<EnhancedStatus>,
    /// The reason: the DSN `Diagnostic-Code` (its type prefix such as `smtp;` removed), or
    /// the QSBMF paragraph's text. Folded lines are joined.
    pub reason: String,
    /// The DSN `Remote-MTA` name, if given.
    pub remote_mta: Option<String>,
}

impl RecipientReport {
    /// The address the sender used: [`RecipientReport::original_recipient`] when given,
    /// else [`RecipientReport::recipient`]. A list manager looks this one up.
    pub fn subscriber(&self) -> &Address {
        self.original_recipient.as_ref().unwrap_or(&self.recipient)
    }

    /// True when this recipient failed permanently: action `failed`, or an unknown action
    /// with a permanent (5.x.x) status.
    pub fn is_failure(&self) -> bool {
        match self.action {
            DsnAction::Failed => true,
            DsnAction::Unknown => self.status.is_some_and(EnhancedStatus::is_permanent),
            _ => false,
        }
    }
}

/// A parsed bounce.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParsedBounce {
    /// The format it was in.
    pub format: ParsedFormat,
    /// The DSN `Reporting-MTA` name, or the host named in the QSBMF first line.
    pub reporting_mta: Option<String>,
    /// Every recipient the bounce reports on, in order (at least one).
    pub recipients: Vec<RecipientReport>,
}

impl ParsedBounce {
    /// The recipients that failed permanently ([`RecipientReport::is_failure`]).
    pub fn failures(&self) -> impl Iterator<Item = &RecipientReport> {
        self.recipients.iter().filter(|r| r.is_failure())
    }
}

/// Why a message was not read as a bounce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseBounceError {
    /// No DSN status part, QSBMF body or `X-Failed-Recipients` field naming at least one
    /// recipient was found.
    NotABounce,
}

impl fmt::Display for ParseBounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a bounce: no delivery-status part and no qmail failure paragraph")
    }
}

impl std::error::Error for ParseBounceError {}

/// Reads a bounce message (header and body, CRLF or LF line endings).
///
/// A DSN status part is preferred over QSBMF text when a message has both.
///
/// # Errors
/// [`ParseBounceError::NotABounce`] for anything else, including malformed input; this
/// function never panics.
///
/// ```
/// use mta_verp::{parse_bounce, ParsedFormat};
/// let msg = b"From: MAILER-DAEMON@a.example\nSubject: failure notice\n\n\
/// Hi. This is the qmail-send program at a.example.\n\
/// I'm afraid I wasn't able to deliver your message to the following addresses.\n\
/// This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
/// <bob@b.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n\
/// --- Below this line is a copy of the message.\n\nReturn-Path: <alice@a.example>\n";
/// let b = parse_bounce(msg)?;
/// assert_eq!(b.format, ParsedFormat::Qsbmf);
/// assert_eq!(b.recipients[0].recipient.as_bytes(), b"bob@b.example");
/// assert_eq!(b.recipients[0].status.map(|s| s.to_string()).as_deref(), Some("5.1.1"));
/// # Ok::<(), mta_verp::ParseBounceError>(())
/// ```
pub fn parse_bounce(raw: &[u8]) -> Result<ParsedBounce, ParseBounceError> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(ParseBounceError::NotABounce)?;
    for part in &msg.parts {
        let is_status = part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status")
                        || s.eq_ignore_ascii_case("global-delivery-status")
                })
        });
        if let Some(b) = is_status
            .then(|| parse_delivery_status(part.contents()))
            .flatten()
        {
            return Ok(b);
        }
    }
    for i in 0..msg.text_body.len() {
        if let Some(b) = msg.body_text(i).and_then(|t| parse_qsbmf(&t)) {
            return Ok(b);
        }
    }
    let recipients: Vec<RecipientReport> = msg
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("X-Failed-Recipients"))
        .flat_map(|(_, value)| value.split([',', ' ', '\t', '\r', '\n']))
        .map(|a| a.trim_start_matches('<').trim_end_matches('>'))
        .filter(|a| a.contains('@'))
        .map(|a| RecipientReport {
            recipient: Address::from(a),
            original_recipient: None,
            action: DsnAction::Failed,
            status: None,
            reason: String::new(),
            remote_mta: None,
        })
        .collect();
    if recipients.is_empty() {
        return Err(ParseBounceError::NotABounce);
    }
    Ok(ParsedBounce {
        format: ParsedFormat::XFailedRecipients,
        reporting_mta: None,
        recipients,
    })
}

/// The envelope recipient a stored message was delivered to, from its header alone: the
/// topmost `Delivered-To` (qmail-local, Postfix), else `X-Original-To` (Postfix), else
/// `Envelope-to` (Exim). For a VERP bounce this names the subscriber ([`Verp::decode`])
/// when the caller no longer has the envelope. Only the header is read; case is ignored
/// in field names.
///
/// ```
/// use mta_verp::envelope_recipient;
/// let msg = b"Delivered-To: list-owner-bob=example.net@example.org\nSubject: x\n\nbody\n";
/// let r = envelope_recipient(msg).ok_or("no envelope recipient")?;
/// assert_eq!(r.as_bytes(), b"list-owner-bob=example.net@example.org");
/// # Ok::<(), &str>(())
/// ```
///
/// [`Verp::decode`]: crate::Verp::decode
pub fn envelope_recipient(raw: &[u8]) -> Option<Address> {
    const NAMES: [&[u8]; 3] = [b"delivered-to:", b"x-original-to:", b"envelope-to:"];
    let mut found: [Option<&[u8]>; 3] = [None; 3];
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        for (slot, name) in found.iter_mut().zip(NAMES) {
            if slot.is_none()
                && line.len() >= name.len()
                && line[..name.len()].eq_ignore_ascii_case(name)
            {
                *slot = Some(&line[name.len()..]);
            }
        }
    }
    let value = found.into_iter().flatten().next()?;
    let value = value.trim_ascii();
    let value = value
        .strip_prefix(b"<")
        .and_then(|v| v.strip_suffix(b">"))
        .unwrap_or(value);
    (!value.is_empty()).then(|| Address::from(value))
}

/// Splits `text` into unfolded header-style fields, one `Vec` per blank-line block.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            cur.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    blocks
}

/// The value after `type;` (RFC 3464 `address-type ";" generic-address`), without angle
/// brackets, or the whole value when there is no `;`.
fn typed_value(v: &str) -> &str {
    let v = v.split_once(';').map_or(v, |(_, rest)| rest).trim();
    v.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(v)
        .trim()
}

fn parse_delivery_status(body: &[u8]) -> Option<ParsedBounce> {
    let text = String::from_utf8_lossy(body);
    let mut reporting_mta = None;
    let mut recipients = Vec::new();
    for block in field_blocks(&text) {
        let get = |name: &str| {
            block
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(m) = get("reporting-mta") {
            reporting_mta = Some(typed_value(m).to_owned());
        }
        let address = |name: &str| {
            get(name)
                .map(typed_value)
                .filter(|a| !a.is_empty())
                .map(|a| Address::from(unquote_local(a)))
        };
        let original_recipient = address("original-recipient");
        let Some(recipient) = address("final-recipient").or_else(|| original_recipient.clone())
        else {
            continue;
        };
        let diag = get("diagnostic-code").map(|d| typed_value_keep(d).to_owned());
        let status = get("status")
            .and_then(|s| status_at(s.trim().as_bytes()))
            .or_else(|| diag.as_deref().and_then(|d| find_status(d.as_bytes())));
        recipients.push(RecipientReport {
            recipient,
            original_recipient,
            action: get("action").map_or(DsnAction::Unknown, DsnAction::parse),
            status,
            reason: diag.unwrap_or_default(),
            remote_mta: get("remote-mta").map(|m| typed_value(m).to_owned()),
        });
    }
    (!recipients.is_empty()).then_some(ParsedBounce {
        format: ParsedFormat::Dsn,
        reporting_mta,
        recipients,
    })
}

/// qmail's internal form of an RFC 5322 address: a quoted local part (`"john doe"@x`) is
/// unquoted (`john doe@x`), its backslash escapes resolved.
fn unquote_local(a: &str) -> String {
    let Some(at) = a.rfind('@') else {
        return a.to_owned();
    };
    let local = &a[..at];
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return a.to_owned();
    };
    let mut out = String::with_capacity(a.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out.push_str(&a[at..]);
    out
}

/// A `Diagnostic-Code` value without its `type;` prefix (angle brackets are kept: they are
/// part of the text).
fn typed_value_keep(v: &str) -> &str {
    v.split_once(';').map_or(v, |(_, rest)| rest).trim()
}

/// QSBMF: intro paragraph starting `Hi. This is the`, failure paragraphs (`<addr>:`), then
/// the break paragraph starting with `-`.
fn parse_qsbmf(text: &str) -> Option<ParsedBounce> {
    // lenient: leading blank lines (some relays add one) are skipped.
    let text = text.trim_start_matches(['\r', '\n']);
    let first = text.lines().next()?;
    if !first.starts_with("Hi. This is the") {
        return None;
    }
    let reporting_mta = first
        .rsplit_once(" at ")
        .map(|(_, h)| h.trim_end_matches('.').trim().to_owned())
        .filter(|h| !h.is_empty());
    let mut recipients = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut intro = true;
    loop {
        let line = lines.next();
        if let Some(l) = line.filter(|l| !l.is_empty()) {
            para.push(l);
            continue;
        }
        if let Some(&head) = para.first() {
            if intro {
                intro = false;
            } else if head.starts_with('-') {
                break;
            } else if let Some(addr) = head.strip_prefix('<').and_then(|h| h.strip_suffix(">:")) {
                let reason = para[1..].join("\n");
                recipients.push(RecipientReport {
                    recipient: Address::from(addr),
                    original_recipient: None,
                    action: DsnAction::Failed,
                    status: find_status(reason.as_bytes()),
                    reason,
                    remote_mta: None,
                });
            }
            // lenient: other paragraphs (extra intro text some qmail patches add) are skipped.
            para.clear();
        }
        if line.is_none() {
            break;
        }
    }
    (!recipients.is_empty()).then_some(ParsedBounce {
        format: ParsedFormat::Qsbmf,
        reporting_mta,
        recipients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_unfold_and_split() {
        let b = field_blocks(
            "Reporting-MTA: dns; a\r\n\r\nFinal-Recipient: rfc822;x@y\n Status: 5.0.0\nAction:failed\n\n\n",
        );
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[1][0],
            ("final-recipient".into(), "rfc822;x@y Status: 5.0.0".into())
        );
        assert_eq!(b[1][1], ("action".into(), "failed".into()));
    }

    #[test]
    fn typed_values() {
        assert_eq!(typed_value("rfc822; <a@b>"), "a@b");
        assert_eq!(typed_value("RFC822;a@b"), "a@b");
        assert_eq!(typed_value("a@b"), "a@b");
        assert_eq!(typed_value_keep("smtp; 550 <a@b> no"), "550 <a@b> no");
    }

    #[test]
    fn unquoting() {
        assert_eq!(unquote_local("\"john doe\"@x"), "john doe@x");
        assert_eq!(unquote_local("\"a\\\"b\"@x"), "a\"b@x");
        assert_eq!(unquote_local("\"@x"), "\"@x");
        assert_eq!(unquote_local("plain@x"), "plain@x");
        assert_eq!(unquote_local("\"\"@x"), "@x");
    }

    #[test]
    fn actions() {
        assert_eq!(DsnAction::parse("FAILED"), DsnAction::Failed);
        assert_eq!(
            DsnAction::parse(" delayed (will retry)"),
            DsnAction::Delayed
        );
        assert_eq!(DsnAction::parse(""), DsnAction::Unknown);
    }

    #[test]
    fn qsbmf_needs_a_recipient() {
        assert!(parse_qsbmf("Hi. This is the x.\n\n--- Below\n").is_none());
        assert!(parse_qsbmf("Hello\n\n<a@b>:\nx\n").is_none());
    }
}
