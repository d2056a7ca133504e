//! Removing forged `Authentication-Results:` fields (RFC 8601 §5).
//!
//! A receiver that adds results under its own authserv-id must first remove any such field
//! that arrived with the message, or a sender could claim passes the receiver never saw.

use std::borrow::Cow;

const NAME: &[u8] = b"Authentication-Results";

/// Removes from `message`'s header every `Authentication-Results:` field whose authserv-id
/// equals `authserv_id` (ASCII case-insensitive, RFC 8601 §5), and returns the message;
/// borrowed and unchanged when there was none. Fields naming other hosts, the body, and
/// every other byte are kept as they were.
///
/// The header ends at the first empty line (CRLF or bare LF); a field is a line starting
/// with a non-blank character plus its continuation lines (RFC 5322 §2.2.3). The
/// authserv-id is the first `value` of the field after comments and folding whitespace: a
/// token or a quoted-string (RFC 8601 §2.2).
pub fn remove_auth_results<'a>(message: &'a [u8], authserv_id: &str) -> Cow<'a, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut pos = 0;
    while pos < message.len() {
        let end = field_end(message, pos);
        let field = &message[pos..end];
        if is_blank_line(field) {
            break;
        }
        if names(field, authserv_id) {
            // the field is left out: start the copy if this is the first one
            if out.is_none() {
                out = Some(message[..pos].to_vec());
            }
        } else if let Some(out) = out.as_mut() {
            out.extend_from_slice(field);
        }
        pos = end;
    }
    match out {
        None => Cow::Borrowed(message),
        Some(mut out) => {
            out.extend_from_slice(&message[pos..]);
            Cow::Owned(out)
        }
    }
}

fn is_blank_line(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// The end of the field starting at `pos`: after its last line's LF (or the end of input).
/// A blank line is a "field" of its own (the end of the header).
fn field_end(m: &[u8], pos: usize) -> usize {
    let line_end = |from: usize| {
        m[from..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(m.len(), |i| from + i + 1)
    };
    let mut end = line_end(pos);
    if is_blank_line(&m[pos..end]) {
        return end;
    }
    while end < m.len() && matches!(m[end], b' ' | b'\t') {
        end = line_end(end);
    }
    end
}

/// Whether `field` is an Authentication-Results field naming `authserv_id`.
fn names(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = field.iter().position(|&c| c == b':') else {
        return false;
    };
    let name = field[..colon].trim_ascii_end();
    if !name.eq_ignore_ascii_case(NAME) {
        return false;
    }
    authserv_id_of(&field[colon + 1..])
        .is_some_and(|id| id.eq_ignore_ascii_case(authserv_id.as_bytes()))
}

/// The authserv-id at the start of a field value, after CFWS; quoted-strings are unquoted.
fn authserv_id_of(v: &[u8]) -> Option<Vec<u8>> {
    let mut i = skip_cfws(v, 0);
    if v.get(i) == Some(&b'"') {
        i += 1;
        let mut id = Vec::new();
        while let Some(&c) = v.get(i) {
            match c {
                b'"' => return Some(id),
                b'\\' => {
                    id.push(*v.get(i + 1)?);
                    i += 2;
                }
                b'\r' | b'\n' => i += 1,
                c => {
                    id.push(c);
                    i += 1;
                }
            }
        }
        return None;
    }
    let start = i;
    while let Some(&c) = v.get(i) {
        if c.is_ascii_whitespace() || c == b';' || c == b'(' {
            break;
        }
        i += 1;
    }
    (i > start).then(|| v[start..i].to_vec())
}

/// Skips whitespace, line breaks and (nested) comments with quoted-pairs (RFC 5322 §3.2.2).
fn skip_cfws(v: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(&c) = v.get(i) {
        match c {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b'\\' if depth > 0 => i += 1,
            c if c.is_ascii_whitespace() => {}
            _ if depth > 0 => {}
            _ => break,
        }
        i += 1;
    }
    i.min(v.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn strip(m: &str, me: &str) -> String {
        String::from_utf8(remove_auth_results(m.as_bytes(), me).into_owned()).unwrap()
    }

    #[test]
    fn removes_only_ours() {
        let m = "Received: x\r\n\
                 Authentication-Results: MX.Example.org; spf=pass\r\n\
                 \tsmtp.mailfrom=a@b\r\n\
                 Authentication-Results: other.example; dkim=pass\r\n\
                 authentication-results : (comment (nested)) \"mx.example.org\"; dmarc=pass\r\n\
                 Authentication-Results:\r\n mx.example.org;\r\n none\r\n\
                 Subject: hi\r\n\
                 \r\n\
                 Authentication-Results: mx.example.org; in the body\r\n";
        assert_eq!(
            strip(m, "mx.example.org"),
            "Received: x\r\n\
             Authentication-Results: other.example; dkim=pass\r\n\
             Subject: hi\r\n\
             \r\n\
             Authentication-Results: mx.example.org; in the body\r\n"
        );
    }

    #[test]
    fn untouched_is_borrowed() {
        let m = b"Authentication-Results: mx.example.orgx; none\r\n\r\nbody";
        assert!(matches!(
            remove_auth_results(m, "mx.example.org"),
            Cow::Borrowed(_)
        ));
        let m = b"Authentication-Results: (mx.example.org) other; none\n\nbody";
        assert!(matches!(
            remove_auth_results(m, "mx.example.org"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn bare_lf_and_no_body() {
        assert_eq!(
            strip("Authentication-Results: me; none\nA: b\n", "ME"),
            "A: b\n"
        );
        assert_eq!(strip("Authentication-Results: me; none", "me"), "");
        assert_eq!(
            strip("Authentication-Results: \"me", "me"),
            "Authentication-Results: \"me"
        );
    }
}
