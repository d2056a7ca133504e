//! Header fields of a message (RFC 5322 §2.2, §3.6) and the trace lines qmail writes.
//!
//! - [`fields`] iterates the header fields of a raw message: folded continuation lines
//!   belong to their field, names compare without case, and the iterator knows where the
//!   header ends and the body starts (CRLF or bare-LF line ends, with or without a body).
//! - [`inject`] reads a header as qmail-inject does (streaming, `From ` lines kept as
//!   `MBOX-Line:`, the body starting at the first line that is not a field).
//! - [`hop_count`] counts `Received`/`Delivered` lines as qmail-smtpd does (mail loops,
//!   RFC 5321 §6.3).
//! - [`return_path_line`], [`delivered_to_line`], [`received_smtp`] and [`received_queue`]
//!   build qmail's RPLINE, DTLINE and `Received:` lines (qmail-reference §1.2, §2.5, §5).
//!
//! ```
//! use mta_core::header;
//! let msg = b"Subject: hi\r\nTo: a@b.example,\r\n c@d.example\r\n\r\nbody\r\n";
//! let mut it = header::fields(msg);
//! let subject = it.next().unwrap();
//! assert!(subject.is("SUBJECT"));
//! let to = it.next().unwrap();
//! assert_eq!(to.unfolded_value(), b" a@b.example, c@d.example");
//! assert!(it.next().is_none());
//! assert_eq!(&msg[it.body_offset()..], b"body\r\n");
//! ```

pub mod inject;

use crate::Address;
use crate::date::qmail_date822;

/// One header field: `field-name ":" unstructured CRLF` with its folds (RFC 5322 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderField<'a> {
    name: &'a [u8],
    value: &'a [u8],
    raw: &'a [u8],
    offset: usize,
}

impl<'a> HeaderField<'a> {
    /// The field name as written (without the colon or any white space before it, which
    /// §4.5 `obs-optional` allows).
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// True when the name equals `name`, ignoring ASCII case (RFC 5322 §1.2.2).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value after the colon, folds included, without the final line end.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The value unfolded (RFC 5322 §2.2.3): every CRLF or LF that is followed by white
    /// space is removed.
    pub fn unfolded_value(&self) -> Vec<u8> {
        let v = self.value;
        let mut out = Vec::with_capacity(v.len());
        let mut i = 0;
        while i < v.len() {
            match v[i] {
                b'\r' if v.get(i + 1) == Some(&b'\n') => i += 2,
                b'\n' => i += 1,
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    }

    /// The whole field as it appears in the message, final line end included.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Byte offset of the field in the message.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

/// Iterator over the header fields of a message; see [`fields`].
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    msg: &'a [u8],
    pos: usize,
    body: Option<usize>,
}

/// Iterates the header fields of `message` (RFC 5322 §2.1, §2.2, §3.6).
///
/// The header ends at the first empty line, whose line end is skipped: the body starts
/// after it. Lines may end in CRLF or a bare LF. The header also ends, without an empty
/// line, at the first line that is not a field (no colon, or a name with characters other
/// than §3.6.8 `ftext`), as qmail-inject's `headerbody` does: that line starts the body.
/// A message without an empty line is all header and has an empty body.
///
/// Never panics; linear in the length of the header.
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields {
        msg: message,
        pos: 0,
        body: None,
    }
}

impl Fields<'_> {
    /// Where the body starts. Iterates to the end of the header first if needed.
    pub fn body_offset(&mut self) -> usize {
        while self.body.is_none() {
            self.next();
        }
        self.body.unwrap_or(self.msg.len())
    }

    /// The end of the line starting at `from`, after its LF (or the end of the message).
    fn line_end(&self, from: usize) -> usize {
        self.msg[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.msg.len(), |i| from + i + 1)
    }
}

/// Length of a field name at the start of `line`, and of the name plus optional white
/// space and the colon; `None` if the line is not a field.
///
/// RFC 5322 §3.6.8 `field-name = 1*ftext` (printable ASCII except `:`), §4.5
/// `obs-optional = field-name *WSP ":" unstructured CRLF`.
fn field_name(line: &[u8]) -> Option<(usize, usize)> {
    let name = line
        .iter()
        .position(|&b| !(33..=126).contains(&b) || b == b':')?;
    if name == 0 {
        return None;
    }
    let ws = line[name..].iter().position(|&b| b != b' ' && b != b'\t')?;
    (line[name + ws] == b':').then_some((name, name + ws + 1))
}

impl<'a> Iterator for Fields<'a> {
    type Item = HeaderField<'a>;

    fn next(&mut self) -> Option<HeaderField<'a>> {
        if self.body.is_some() {
            return None;
        }
        let start = self.pos;
        let rest = &self.msg[start..];
        if rest.is_empty() {
            self.body = Some(start);
            return None;
        }
        if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            self.body = Some(start + if rest[0] == b'\r' { 2 } else { 1 });
            return None;
        }
        let Some((name_len, colon_end)) = field_name(rest) else {
            self.body = Some(start);
            return None;
        };
        let mut end = self.line_end(start);
        while matches!(self.msg.get(end), Some(b' ' | b'\t')) {
            end = self.line_end(end);
        }
        self.pos = end;
        let raw = &self.msg[start..end];
        let value = &self.msg[start + colon_end..end];
        let value = value
            .strip_suffix(b"\n")
            .map_or(value, |v| v.strip_suffix(b"\r").unwrap_or(v));
        Some(HeaderField {
            name: &rest[..name_len],
            value,
            raw,
            offset: start,
        })
    }
}

/// qmail-smtpd's hop count (qmail-reference §5): the number of header lines that start
/// with `received` (8 bytes) or `delivered` (9 bytes), ignoring case, before the first
/// empty line. Only the prefix is compared, so `Received-SPF:` counts too. qmail refuses a
/// message at 100 hops (RFC 5321 §6.3).
pub fn hop_count(message: &[u8]) -> usize {
    let mut n = 0;
    for line in message.split(|&b| b == b'\n') {
        if line.is_empty() || line == b"\r" {
            break;
        }
        let starts = |p: &[u8]| line.len() >= p.len() && line[..p.len()].eq_ignore_ascii_case(p);
        if starts(b"received") || starts(b"delivered") {
            n += 1;
        }
    }
    n
}

/// qmail's `quote_need` table: the bytes a local part may hold unquoted (RFC 5322
/// `atext` and `.`).
fn quote_ok(b: u8) -> bool {
    b == b'.' || crate::path::is_atext(b)
}

/// qmail's `quote2` (quote.c): the address with its local part (before the last `@`)
/// quoted RFC 821 style when it is not a plain dot-string (empty, a byte outside `atext`
/// and `.`, a leading, trailing or doubled dot). Inside quotes, CR, LF, `"` and `\` get a
/// backslash. The empty address stays empty.
pub fn quote2(address: &[u8]) -> Vec<u8> {
    if address.is_empty() {
        return Vec::new();
    }
    let at = address
        .iter()
        .rposition(|&b| b == b'@')
        .unwrap_or(address.len());
    let (local, domain) = address.split_at(at);
    let need = local.is_empty()
        || !local.iter().all(|&b| quote_ok(b))
        || local.starts_with(b".")
        || local.ends_with(b".")
        || local.windows(2).any(|w| w == b"..");
    let mut out = Vec::with_capacity(address.len() + 2);
    if need {
        out.push(b'"');
        for &b in local {
            if matches!(b, b'\r' | b'\n' | b'"' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(local);
    }
    out.extend_from_slice(domain);
    out
}

/// qmail-local's RPLINE (qmail-reference §2.5): `Return-Path: <Q>\n`, Q being
/// [`quote2`] of the sender with every LF turned into `_`; `Return-Path: <>\n` for the
/// null sender. RFC 5321 §4.4 trace field.
pub fn return_path_line(sender: &Address) -> Vec<u8> {
    let mut line = b"Return-Path: <".to_vec();
    line.extend(
        quote2(sender.as_bytes())
            .into_iter()
            .map(|b| if b == b'\n' { b'_' } else { b }),
    );
    line.extend_from_slice(b">\n");
    line
}

/// qmail-local's DTLINE (qmail-reference §2.5): `Delivered-To: L@D\n`, every LF in the
/// address turned into `_`. The same line found in a message's header means a loop
/// (§2.3).
pub fn delivered_to_line(recipient: &Address) -> Vec<u8> {
    let mut line = b"Delivered-To: ".to_vec();
    line.extend(
        recipient
            .as_bytes()
            .iter()
            .map(|&b| if b == b'\n' { b'_' } else { b }),
    );
    line.push(b'\n');
    line
}

/// What an SMTP server knows about a connection, for its `Received:` line
/// ([`received_smtp`]; `mta_smtp` re-exports it as `ReceivedInfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedSmtp<'a> {
    /// The client's host name from reverse DNS (`TCPREMOTEHOST`), or `unknown`.
    pub remote_host: &'a str,
    /// The client's IP address (`TCPREMOTEIP`).
    pub remote_ip: &'a str,
    /// An ident or authenticated name (`TCPREMOTEINFO`), if any.
    pub remote_info: Option<&'a str>,
    /// The HELO/EHLO argument, if any.
    pub helo: Option<&'a str>,
    /// This host's name (`TCPLOCALHOST`).
    pub local_host: &'a str,
    /// The protocol word: qmail wrote `SMTP`; RFC 3848 names `ESMTP`, `ESMTPS` (TLS),
    /// `ESMTPA` (AUTH) and `ESMTPSA` (both).
    pub protocol: &'a str,
    /// The TLS version and cipher suite when the session was encrypted (e.g.
    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384`), written as a comment after the protocol:
    /// `with ESMTPS (TLSv1.3 TLS13_AES_256_GCM_SHA384)`.
    pub tls: Option<&'a str>,
    /// The date, e.g. from [`qmail_date822`] (written as given, after the same character
    /// filter with space, comma and parentheses also allowed).
    pub date: &'a str,
}

impl<'a> ReceivedSmtp<'a> {
    /// Values with `protocol` = `SMTP` and no HELO, remote info or TLS.
    pub fn new(
        remote_host: &'a str,
        remote_ip: &'a str,
        local_host: &'a str,
        date: &'a str,
    ) -> ReceivedSmtp<'a> {
        ReceivedSmtp {
            remote_host,
            remote_ip,
            remote_info: None,
            helo: None,
            local_host,
            protocol: "SMTP",
            tls: None,
            date,
        }
    }
}

/// qmail's `safeput` (received.c): keeps `A-Za-z0-9.@%+/=:-` and notqmail's `[` `]`,
/// turns every other byte into `?`, so peer-supplied text cannot forge header syntax.
fn safe(out: &mut Vec<u8>, s: &str) {
    safe_with(out, s, b".@%+/=:-[]");
}

/// Keeps ASCII letters, digits and `extra`; every other byte becomes `?`.
fn safe_with(out: &mut Vec<u8>, s: &str, extra: &[u8]) {
    out.extend(s.bytes().map(|b| {
        if b.is_ascii_alphanumeric() || extra.contains(&b) {
            b
        } else {
            b'?'
        }
    }));
}

/// qmail-smtpd's `Received:` line (qmail-reference §5; RFC 5321 §4.4 time stamp line):
///
/// ```text
/// Received: from HOST (HELO helo) (info@IP)
///   by LOCAL with SMTP (tls); 29 Nov 2026 04:08:05 -0000
/// ```
///
/// `(HELO …)` appears only when the HELO argument differs (ignoring case) from the host
/// name, `info@` only when known, `(tls)` only with TLS. Every byte of the values outside
/// `A-Za-z0-9.@%+/=:-[]` becomes `?` (notqmail's safe set; the TLS comment also keeps `_`
/// and space, the date space, comma and parentheses), so nothing a client says can add a
/// header line or break the trace syntax. Lines end in `\n` (qmail's internal form).
///
/// ```
/// use mta_core::{date, header::{ReceivedSmtp, received_smtp}};
/// let date = date::qmail_date822(1_795_925_285);
/// let mut r = ReceivedSmtp::new("mx.example.com", "192.0.2.1", "mail.example.net", &date);
/// r.helo = Some("evil\r\nX-Injected: yes");
/// assert_eq!(
///     received_smtp(&r),
///     b"Received: from mx.example.com (HELO evil??X-Injected:?yes) (192.0.2.1)\n  \
///       by mail.example.net with SMTP; 29 Nov 2026 04:08:05 -0000\n"
/// );
/// ```
pub fn received_smtp(r: &ReceivedSmtp<'_>) -> Vec<u8> {
    let mut line = b"Received: from ".to_vec();
    safe(&mut line, r.remote_host);
    if let Some(helo) = r.helo.filter(|h| !h.eq_ignore_ascii_case(r.remote_host)) {
        line.extend_from_slice(b" (HELO ");
        safe(&mut line, helo);
        line.push(b')');
    }
    line.extend_from_slice(b" (");
    if let Some(info) = r.remote_info {
        safe(&mut line, info);
        line.push(b'@');
    }
    safe(&mut line, r.remote_ip);
    line.extend_from_slice(b")\n  by ");
    safe(&mut line, r.local_host);
    line.extend_from_slice(b" with ");
    safe(&mut line, r.protocol);
    if let Some(tls) = r.tls {
        // Cipher suite names use `_`; nothing else beyond letters, digits, `.-/:` and
        // space may pass.
        line.extend_from_slice(b" (");
        safe_with(&mut line, tls, b"._-/: ");
        line.push(b')');
    }
    line.extend_from_slice(b"; ");
    safe_with(&mut line, r.date, b".@%+/=:-[] ,()");
    line.push(b'\n');
    line
}

/// Who handed a message to the queue, as qmail-queue's `Received:` line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueInvoker {
    /// A local user: `invoked by uid N`.
    Uid(u32),
    /// The SMTP server: `invoked from network`.
    Network,
    /// The queue's own bounce: `invoked for bounce`.
    Bounce,
    /// The alias user: `invoked by alias`.
    Alias,
}

/// qmail-queue's `Received:` line (qmail-reference §1.2):
/// `Received: (qmail QP invoked by uid UID); 29 Nov 2026 04:08:05 -0000\n`.
///
/// `qp` is qmail-queue's pid in qmail; a queue with no separate queueing process may give
/// its own per-message number instead (what its `250 ok ... qp N` reply and its log show).
pub fn received_queue(qp: u64, invoker: QueueInvoker, unix_time: i64) -> Vec<u8> {
    let by = match invoker {
        QueueInvoker::Uid(uid) => format!("invoked by uid {uid}"),
        QueueInvoker::Network => "invoked from network".to_owned(),
        QueueInvoker::Bounce => "invoked for bounce".to_owned(),
        QueueInvoker::Alias => "invoked by alias".to_owned(),
    };
    format!(
        "Received: (qmail {qp} {by}); {}\n",
        qmail_date822(unix_time)
    )
    .into_bytes()
}

/// Reads back the start of the line [`received_queue`] writes: `(qp, invoker)` from a
/// message that begins `Received: (qmail QP invoked ...)`; `None` for anything else (a
/// message queued by a program that writes no such line). The date is not read.
///
/// ```
/// use mta_core::header::{QueueInvoker, parse_received_queue, received_queue};
/// let line = received_queue(4242, QueueInvoker::Uid(1000), 1_700_000_000);
/// assert_eq!(parse_received_queue(&line), Some((4242, QueueInvoker::Uid(1000))));
/// assert_eq!(parse_received_queue(b"Received: from x by y"), None);
/// ```
pub fn parse_received_queue(head: &[u8]) -> Option<(u64, QueueInvoker)> {
    let rest = head.strip_prefix(b"Received: (qmail ")?;
    let end = rest.iter().take(64).position(|&b| b == b')')?;
    let inner = std::str::from_utf8(rest.get(..end)?).ok()?;
    let (qp, how) = inner.split_once(' ')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(qp) {
        return None;
    }
    let qp = qp.parse().ok()?;
    let invoker = match how {
        "invoked from network" => QueueInvoker::Network,
        "invoked for bounce" => QueueInvoker::Bounce,
        "invoked by alias" => QueueInvoker::Alias,
        _ => {
            let uid = how.strip_prefix("invoked by uid ")?;
            if !digits(uid) {
                return None;
            }
            QueueInvoker::Uid(uid.parse().ok()?)
        }
    };
    Some((qp, invoker))
}

/// Where a queued message came from, as the trace lines this queue writes at its front
/// tell ([`received_queue`], then for SMTP [`received_smtp`]); see [`submission`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submission {
    /// Queued by a local user (`invoked by uid N`) or the alias user (`invoked by alias`).
    Local,
    /// A bounce the queue wrote itself (`invoked for bounce`).
    Bounce,
    /// Received over SMTP (`invoked from network`): the client's address from the
    /// `Received: from` line below, and whether it authenticated (`with ESMTPA` or
    /// `ESMTPSA`, RFC 3848).
    Network {
        /// The client's address, when the SMTP trace line names one.
        ip: Option<std::net::IpAddr>,
        /// The client logged in with SMTP AUTH.
        authenticated: bool,
    },
    /// No trace line of this queue at the front.
    Unknown,
}

/// Most forwards [`submission`] looks through (each a `.qmail` forward of the one below).
const MAX_FORWARDS: usize = 8;

/// Where the message in `head` (its first bytes; 4 KB is plenty) came from. A `.qmail`
/// forward is queued again with a new trace line and a `Delivered-To:` field in front of
/// the original: such a message is judged by the original's trace lines, so mail from
/// outside forwarded by a local user still counts as from outside (a signer must not
/// vouch for it).
///
/// ```
/// use mta_core::header::{QueueInvoker, Submission, received_queue, received_smtp, ReceivedSmtp, submission};
/// let mut msg = received_queue(7, QueueInvoker::Network, 0);
/// let mut r = ReceivedSmtp::new("unknown", "192.0.2.7", "mx.example.org", "date");
/// r.protocol = "ESMTPA";
/// msg.extend(received_smtp(&r));
/// msg.extend(b"From: a@example.org\n\nhi\n");
/// let outside = Submission::Network { ip: Some("192.0.2.7".parse()?), authenticated: true };
/// assert_eq!(submission(&msg), outside);
/// // Forwarded by a local user: still the original's origin.
/// let mut fwd = received_queue(8, QueueInvoker::Uid(1000), 0);
/// fwd.extend(b"Delivered-To: joe@example.org\n");
/// fwd.extend(&msg);
/// assert_eq!(submission(&fwd), outside);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn submission(head: &[u8]) -> Submission {
    let mut rest = head;
    for _ in 0..=MAX_FORWARDS {
        let Some((_, invoker)) = parse_received_queue(rest) else {
            return Submission::Unknown;
        };
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return Submission::Unknown;
        };
        rest = &rest[nl + 1..];
        match invoker {
            QueueInvoker::Bounce => return Submission::Bounce,
            QueueInvoker::Network => return network_origin(rest),
            QueueInvoker::Uid(_) | QueueInvoker::Alias => {
                if !starts_with_ignore_case(rest, b"Delivered-To:") {
                    return Submission::Local;
                }
                // A forward: skip its Delivered-To line(s) to the original's trace.
                while starts_with_ignore_case(rest, b"Delivered-To:") {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        return Submission::Unknown;
                    };
                    rest = &rest[nl + 1..];
                }
            }
        }
    }
    Submission::Unknown
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The client address and AUTH state from the `Received: from` line [`received_smtp`]
/// wrote at the front of `rest`.
fn network_origin(rest: &[u8]) -> Submission {
    let unknown = Submission::Network {
        ip: None,
        authenticated: false,
    };
    if !rest.starts_with(b"Received: from ") {
        return unknown;
    }
    let Some(by) = rest.windows(7).position(|w| w == b")\n  by ") else {
        return unknown;
    };
    let first = &rest[..by];
    let Some(open) = first.iter().rposition(|&b| b == b'(') else {
        return unknown;
    };
    let inside = &first[open + 1..];
    let addr = inside
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(inside, |at| &inside[at + 1..]);
    let ip = std::str::from_utf8(addr).ok().and_then(|a| a.parse().ok());
    let after = &rest[by + 7..];
    let line_end = after.iter().position(|&b| b == b';').unwrap_or(after.len());
    let line = &after[..line_end];
    let protocol = line
        .windows(6)
        .position(|w| w == b" with ")
        .map(|p| &line[p + 6..])
        .map(|p| p.split(|&b| b == b' ').next().unwrap_or(p));
    let authenticated = protocol.is_some_and(|p| p == b"ESMTPA" || p == b"ESMTPSA");
    Submission::Network { ip, authenticated }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn field_names() {
        assert_eq!(field_name(b"To: x"), Some((2, 3)));
        assert_eq!(field_name(b"To  : x"), Some((2, 5)));
        assert_eq!(field_name(b": x"), None);
        assert_eq!(field_name(b"From x"), None);
        assert_eq!(field_name(b"To\n"), None);
        assert_eq!(field_name(b" To: x"), None);
    }

    #[test]
    fn quote2_like_qmail() {
        assert_eq!(quote2(b""), b"");
        assert_eq!(quote2(b"joe@x"), b"joe@x");
        assert_eq!(quote2(b"a.b+c@x"), b"a.b+c@x");
        assert_eq!(quote2(b"joe user@x"), b"\"joe user\"@x");
        assert_eq!(quote2(b".joe@x"), b"\".joe\"@x");
        assert_eq!(quote2(b"a..b@x"), b"\"a..b\"@x");
        assert_eq!(quote2(b"a\"b\\@x"), b"\"a\\\"b\\\\\"@x");
        assert_eq!(quote2(b"a@b@x"), b"\"a@b\"@x");
        assert_eq!(quote2(b"postmaster"), b"postmaster");
        assert_eq!(quote2(b"#@[]"), b"#@[]");
        assert_eq!(quote2(b"j\xc3\xb6@x"), b"\"j\xc3\xb6\"@x");
    }

    #[test]
    fn submissions() {
        let smtp = |ip: &str, proto: &str| {
            let mut m = received_queue(1, QueueInvoker::Network, 0);
            let mut r = ReceivedSmtp::new("unknown", ip, "mx.example.org", "d");
            r.protocol = proto;
            m.extend(received_smtp(&r));
            m.extend(b"Subject: x\n\nbody\n");
            m
        };
        let net = |ip: &str, authenticated| Submission::Network {
            ip: Some(ip.parse().unwrap()),
            authenticated,
        };
        assert_eq!(
            submission(&smtp("192.0.2.1", "SMTP")),
            net("192.0.2.1", false)
        );
        assert_eq!(
            submission(&smtp("192.0.2.1", "ESMTPS")),
            net("192.0.2.1", false)
        );
        assert_eq!(
            submission(&smtp("2001:db8::1", "ESMTPSA")),
            net("2001:db8::1", true)
        );
        let mut local = received_queue(2, QueueInvoker::Uid(1000), 0);
        local.extend(b"Subject: x\n\nbody\n");
        assert_eq!(submission(&local), Submission::Local);
        let bounce = received_queue(3, QueueInvoker::Bounce, 0);
        assert_eq!(submission(&bounce), Submission::Bounce);
        // Forwards of forwards: the first origin decides.
        let mut fwd = smtp("198.51.100.9", "ESMTP");
        for uid in [5, 6] {
            let mut again = received_queue(9, QueueInvoker::Uid(uid), 0);
            again.extend(b"Delivered-To: a@example.org\nDelivered-To: b@example.org\n");
            again.extend(&fwd);
            fwd = again;
        }
        assert_eq!(submission(&fwd), net("198.51.100.9", false));
        assert_eq!(submission(b"Subject: no trace\n\n"), Submission::Unknown);
        // A forged line further down is never looked at.
        let mut forged = local.clone();
        forged.extend(&smtp("192.0.2.1", "ESMTPA"));
        assert_eq!(submission(&forged), Submission::Local);
    }
}
