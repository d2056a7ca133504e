//! Splitting a message into header fields and body the way qmail-inject does, streaming
//! (the slice-based [`super::fields`] follows RFC 5322 instead)
//! (`headerbody.c`, `hfield.c`; qmail-reference §7.1 "Header parsing").
//!
//! - Lines end at LF; a CR before the LF is dropped (the queue stores LF line ends), and a
//!   final line without LF gets one.
//! - The header ends at the first empty line (consumed; the body starts after it), or at the
//!   first line that is neither a valid field (a name of bytes 33–126, optional spaces or tabs,
//!   then `:`) nor a continuation (leading space or tab after a field): that line starts the
//!   body, and a blank line is inserted before it.
//! - A `From ` line in the header (the mbox separator) becomes the field `MBOX-Line: From …`.
//! - End of input inside the header leaves the message without a body and without a blank
//!   line, as qmail-inject does.

use std::io::{self, BufRead, Read};

/// The header fields qmail-inject knows (`hfield.c`), by the field names it matches
/// case-insensitively (spaces or tabs may precede the colon).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// `Sender:`
    Sender,
    /// `From:`
    From,
    /// `Reply-To:`
    ReplyTo,
    /// `To:`
    To,
    /// `Cc:`
    Cc,
    /// `Bcc:`
    Bcc,
    /// `Date:`
    Date,
    /// `Message-ID:`
    MessageId,
    /// `Resent-Sender:`
    ResentSender,
    /// `Resent-From:`
    ResentFrom,
    /// `Resent-Reply-To:`
    ResentReplyTo,
    /// `Resent-To:`
    ResentTo,
    /// `Resent-Cc:`
    ResentCc,
    /// `Resent-Bcc:`
    ResentBcc,
    /// `Resent-Date:`
    ResentDate,
    /// `Resent-Message-ID:`
    ResentMessageId,
    /// `Return-Receipt-To:`
    ReturnReceiptTo,
    /// `Errors-To:`
    ErrorsTo,
    /// `Apparently-To:`
    ApparentlyTo,
    /// `Return-Path:`
    ReturnPath,
    /// `Content-Length:`
    ContentLength,
    /// `Mail-Followup-To:`
    MailFollowupTo,
    /// Any other field (including Subject, Received and the ones qmail names but never
    /// treats specially).
    Other,
}

const NAMES: &[(&str, Field)] = &[
    ("sender", Field::Sender),
    ("from", Field::From),
    ("reply-to", Field::ReplyTo),
    ("to", Field::To),
    ("cc", Field::Cc),
    ("bcc", Field::Bcc),
    ("date", Field::Date),
    ("message-id", Field::MessageId),
    ("resent-sender", Field::ResentSender),
    ("resent-from", Field::ResentFrom),
    ("resent-reply-to", Field::ResentReplyTo),
    ("resent-to", Field::ResentTo),
    ("resent-cc", Field::ResentCc),
    ("resent-bcc", Field::ResentBcc),
    ("resent-date", Field::ResentDate),
    ("resent-message-id", Field::ResentMessageId),
    ("return-receipt-to", Field::ReturnReceiptTo),
    ("errors-to", Field::ErrorsTo),
    ("apparently-to", Field::ApparentlyTo),
    ("return-path", Field::ReturnPath),
    ("content-length", Field::ContentLength),
    ("mail-followup-to", Field::MailFollowupTo),
];

impl Field {
    /// Classifies a field line by its name (qmail `hfield_known`).
    pub fn of(line: &[u8]) -> Field {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Field::Other;
        };
        let name = trim_wsp_end(&line[..colon]);
        NAMES
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map_or(Field::Other, |&(_, f)| f)
    }

    /// True for the Resent- fields whose presence makes the message a resent one.
    pub fn is_resent(self) -> bool {
        matches!(
            self,
            Field::ResentSender
                | Field::ResentFrom
                | Field::ResentReplyTo
                | Field::ResentTo
                | Field::ResentCc
                | Field::ResentBcc
                | Field::ResentDate
                | Field::ResentMessageId
        )
    }
}

fn trim_wsp_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// qmail `hfield_valid`: a colon, preceded (after optional spaces and tabs) by a non-empty
/// name of bytes 33–126.
pub fn is_valid_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = trim_wsp_end(&line[..colon]);
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
}

/// A message's header, read up to where the body starts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Each field with its continuation lines, ending in `\n`.
    pub fields: Vec<Vec<u8>>,
    /// What separates the header from the rest of the body: `\n` after an empty line, `\n`
    /// plus the line that was not a field, or nothing at end of input.
    pub separator: Vec<u8>,
}

/// Reads one line, LF-terminated: a CR before the LF is dropped and a final partial line
/// gets an LF (qmail `getsa`). `false` at end of input.
fn next_line(r: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    if r.read_until(b'\n', line)? == 0 {
        return Ok(false);
    }
    if line.ends_with(b"\r\n") {
        line.truncate(line.len() - 2);
        line.push(b'\n');
    } else if !line.ends_with(b"\n") {
        line.push(b'\n');
    }
    Ok(true)
}

/// Reads the header (qmail `headerbody`), leaving `r` at the start of the body proper.
///
/// # Errors
/// Read errors from `r`.
pub fn read_header(r: &mut dyn BufRead) -> io::Result<Header> {
    let mut out = Header::default();
    let mut current: Option<Vec<u8>> = None;
    let mut line = Vec::new();
    while next_line(r, &mut line)? {
        if let Some(field) = current.as_mut()
            && (line[0] == b' ' || line[0] == b'\t')
        {
            field.extend_from_slice(&line);
            continue;
        }
        if let Some(field) = current.take() {
            out.fields.push(field);
        }
        if line == b"\n" {
            out.separator.push(b'\n');
            break;
        }
        if line.starts_with(b"From ") {
            let mut f = b"MBOX-Line: ".to_vec();
            f.extend_from_slice(&line);
            current = Some(f);
        } else if is_valid_field(&line) {
            current = Some(std::mem::take(&mut line));
        } else {
            out.separator.push(b'\n');
            out.separator.extend_from_slice(&line);
            break;
        }
    }
    if let Some(field) = current.take() {
        out.fields.push(field);
    }
    Ok(out)
}

/// The rest of the body, streamed line by line with the same line-end rules as the header
/// (CRLF → LF, a final LF added), so a large message is never held in memory.
pub struct Body<R> {
    inner: R,
    line: Vec<u8>,
    pos: usize,
}

impl<R: BufRead> Body<R> {
    /// Streams what is left of `inner`.
    pub fn new(inner: R) -> Body<R> {
        Body {
            inner,
            line: Vec::new(),
            pos: 0,
        }
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.line.len() {
            self.pos = 0;
            if !next_line(&mut self.inner, &mut self.line)? {
                self.line.clear();
                return Ok(0);
            }
        }
        let n = buf.len().min(self.line.len() - self.pos);
        buf[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The whole message cut into header fields and body (separator included), as
/// [`read_header`] and [`Body`] cut it.
///
/// ```
/// use mta_core::header::inject::split;
/// let (fields, body) = split(b"From joe@x Sun Nov 29 2026\r\nTo: a\r\n  b\r\nnot a field\r\n");
/// assert_eq!(fields, [&b"MBOX-Line: From joe@x Sun Nov 29 2026\n"[..], b"To: a\n  b\n"]);
/// assert_eq!(body, b"\nnot a field\n");
/// ```
pub fn split(input: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut r = input;
    let header = read_header(&mut r).unwrap_or_default();
    let mut body = header.separator;
    // Reading from a slice cannot fail.
    let _ = Body::new(r).read_to_end(&mut body);
    (header.fields, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn f(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn header_ends_at_blank_line() {
        let (fields, body) = split(b"To: a\r\nSubject: x\r\n  y\r\n\r\nbody\r\nmore");
        assert_eq!(fields, f(&["To: a\n", "Subject: x\n  y\n"]));
        assert_eq!(body, b"\nbody\nmore\n");
        // Only the CR of the line end goes: another CR before it is part of the line.
        assert_eq!(split(b"From \r\r\n").0, f(&["MBOX-Line: From \r\n"]));
    }

    #[test]
    fn header_ends_at_invalid_line_with_blank_inserted() {
        let (fields, body) = split(b"To: a\nthis is body\nline 2\n");
        assert_eq!(fields, f(&["To: a\n"]));
        assert_eq!(body, b"\nthis is body\nline 2\n");
        // A name with a space, a leading continuation, a line without a colon.
        assert_eq!(split(b"Bad Name: x\n").1, b"\nBad Name: x\n");
        assert_eq!(split(b" x: y\n").1, b"\n x: y\n");
        assert!(split(b"\xff: y\n").0.is_empty());
    }

    #[test]
    fn mbox_from_line() {
        let (fields, _) = split(b"From joe@x Sun Nov 29 04:00:00 2026\nTo: a\n\nb\n");
        assert_eq!(
            fields,
            f(&[
                "MBOX-Line: From joe@x Sun Nov 29 04:00:00 2026\n",
                "To: a\n"
            ])
        );
    }

    #[test]
    fn header_only_message_has_no_blank_line() {
        let (fields, body) = split(b"Subject: x");
        assert_eq!(fields, f(&["Subject: x\n"]));
        assert!(body.is_empty());
        assert_eq!(split(b""), (vec![], vec![]));
        assert_eq!(split(b"\nbody").1, b"\nbody\n");
    }

    #[test]
    fn body_streams_in_small_reads_with_line_ends_fixed() {
        let mut r = &b"To: a\n\nl1\r\nl2\rx\r\n\r\nlast"[..];
        read_header(&mut r).unwrap();
        let mut body = Body::new(std::io::BufReader::with_capacity(3, r));
        let mut out = Vec::new();
        let mut buf = [0u8; 2];
        loop {
            let n = body.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, b"l1\nl2\rx\n\nlast\n");
    }

    #[test]
    fn field_kinds() {
        assert_eq!(Field::of(b"TO : a"), Field::To);
        assert_eq!(Field::of(b"resent-bcc:"), Field::ResentBcc);
        assert_eq!(Field::of(b"Toto: a"), Field::Other);
        assert_eq!(Field::of(b"Subject: To: x"), Field::Other);
        assert!(Field::ResentDate.is_resent());
        assert!(!Field::Date.is_resent());
        assert!(is_valid_field(b"X-A\t: b"));
        assert!(!is_valid_field(b": b"));
    }
}
