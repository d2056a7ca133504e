//! Splitting a message into header fields and body the way qmail-inject does
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

/// The header fields qmail-inject knows (`hfield.c`), by the field names it matches
/// case-insensitively (spaces or tabs may precede the colon).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Sender,
    From,
    ReplyTo,
    To,
    Cc,
    Bcc,
    Date,
    MessageId,
    ResentSender,
    ResentFrom,
    ResentReplyTo,
    ResentTo,
    ResentCc,
    ResentBcc,
    ResentDate,
    ResentMessageId,
    ReturnReceiptTo,
    ErrorsTo,
    ApparentlyTo,
    ReturnPath,
    ContentLength,
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
    pub(crate) fn of(line: &[u8]) -> Field {
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
    pub(crate) fn is_resent(self) -> bool {
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
pub(crate) fn is_valid_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = trim_wsp_end(&line[..colon]);
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
}

/// A message cut into header fields and body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Split {
    /// Each field with its continuation lines, ending in `\n`.
    pub(crate) fields: Vec<Vec<u8>>,
    /// Everything after the header, including the separating blank line when there is one
    /// (qmail-inject writes the body exactly as this).
    pub(crate) body: Vec<u8>,
}

/// Splits `input` into LF-terminated lines, dropping a CR before each LF and adding an LF to
/// a final partial line.
fn lines(input: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    input.split_inclusive(|&b| b == b'\n').map(|l| {
        let content = l.strip_suffix(b"\n").unwrap_or(l);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let mut v = Vec::with_capacity(content.len() + 1);
        v.extend_from_slice(content);
        v.push(b'\n');
        v
    })
}

/// Cuts a message into header fields and body (qmail `headerbody`).
pub(crate) fn split(input: &[u8]) -> Split {
    let mut out = Split::default();
    let mut current: Option<Vec<u8>> = None;
    let mut it = lines(input);
    for line in it.by_ref() {
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
            out.body.push(b'\n');
            break;
        }
        if line.starts_with(b"From ") {
            let mut f = b"MBOX-Line: ".to_vec();
            f.extend_from_slice(&line);
            current = Some(f);
        } else if is_valid_field(&line) {
            current = Some(line);
        } else {
            out.body.push(b'\n');
            out.body.extend_from_slice(&line);
            break;
        }
    }
    if let Some(field) = current.take() {
        out.fields.push(field);
    }
    for line in it {
        out.body.extend_from_slice(&line);
    }
    out
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
        let s = split(b"To: a\r\nSubject: x\r\n  y\r\n\r\nbody\r\nmore");
        assert_eq!(s.fields, f(&["To: a\n", "Subject: x\n  y\n"]));
        assert_eq!(s.body, b"\nbody\nmore\n");
    }

    #[test]
    fn header_ends_at_invalid_line_with_blank_inserted() {
        let s = split(b"To: a\nthis is body\nline 2\n");
        assert_eq!(s.fields, f(&["To: a\n"]));
        assert_eq!(s.body, b"\nthis is body\nline 2\n");
        // A name with a space, a leading continuation, a line without a colon.
        assert_eq!(split(b"Bad Name: x\n").body, b"\nBad Name: x\n");
        assert_eq!(split(b" x: y\n").body, b"\n x: y\n");
        assert!(split(b"\xff: y\n").fields.is_empty());
    }

    #[test]
    fn mbox_from_line() {
        let s = split(b"From joe@x Sun Nov 29 04:00:00 2026\nTo: a\n\nb\n");
        assert_eq!(
            s.fields,
            f(&[
                "MBOX-Line: From joe@x Sun Nov 29 04:00:00 2026\n",
                "To: a\n"
            ])
        );
    }

    #[test]
    fn header_only_message_has_no_blank_line() {
        let s = split(b"Subject: x");
        assert_eq!(s.fields, f(&["Subject: x\n"]));
        assert!(s.body.is_empty());
        assert_eq!(split(b""), Split::default());
        assert_eq!(split(b"\nbody").body, b"\nbody\n");
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
