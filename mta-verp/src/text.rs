//! Small text helpers shared by bounce composition and parsing: qmail's `quote()` (on top of
//! mta-core's `quote2`), status code search, and header folding.

use mta_core::header;
use mta_core::{EnhancedStatus, StatusClass};

/// qmail `quote()` of a whole local part, for qmail-send's `From: bouncefrom@bouncehost`:
/// quoted RFC 821 style only where needed, exactly as [`header::quote2`] quotes the part
/// before an address's last `@` (so `bouncefrom` may itself hold an `@`, and an empty one
/// becomes `""`).
pub(crate) fn quote_local(out: &mut Vec<u8>, local: &[u8]) {
    let mut addr = Vec::with_capacity(local.len() + 1);
    addr.extend_from_slice(local);
    addr.push(b'@');
    let quoted = header::quote2(&addr);
    out.extend_from_slice(quoted.strip_suffix(b"@").unwrap_or(&quoted));
}

/// Finds the RFC 3463 code in a delivery report: qmail's `(#5.1.1)` (RFCHCSC) or the code
/// after an SMTP reply (`550 5.1.1 ...`, `550-5.1.1 ...`). The first permanent code wins,
/// then the first code of any class. A candidate must not follow a digit or `.`, so dotted
/// IP addresses are not mistaken for codes.
pub(crate) fn find_status(text: &[u8]) -> Option<EnhancedStatus> {
    let mut first = None;
    for i in 0..text.len() {
        if !matches!(text[i], b'2' | b'4' | b'5') {
            continue;
        }
        if i > 0 && (text[i - 1].is_ascii_digit() || text[i - 1] == b'.') {
            continue;
        }
        if let Some(s) = status_at(&text[i..]) {
            if s.class() == StatusClass::Permanent {
                return Some(s);
            }
            first = first.or(Some(s));
        }
    }
    first
}

/// Parses `d.d{1,3}.d{1,3}` at the start of `s`, allowing punctuation after it.
pub(crate) fn status_at(s: &[u8]) -> Option<EnhancedStatus> {
    let n = s
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    let mut tok = &s[..n];
    while let Some(t) = tok.strip_suffix(b".") {
        tok = t;
    }
    if n < s.len() && s[n].is_ascii_alphabetic() {
        return None;
    }
    std::str::from_utf8(tok).ok()?.parse().ok()
}

/// Appends `name: value` as a header field, with `value` made printable US-ASCII (any other
/// byte becomes `?`, runs of white space become one space) and folded before 78 columns at
/// spaces (RFC 5322 §2.2.3). Long unbreakable words are left whole (§2.1.1 allows 998).
pub(crate) fn push_folded_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b":");
    let mut col = name.len() + 1;
    let clean: Vec<u8> = value
        .iter()
        .map(|&b| match b {
            b'\t' | b'\r' | b'\n' => b' ',
            0x21..=0x7e | b' ' => b,
            _ => b'?',
        })
        .collect();
    for word in clean.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        if col + 1 + word.len() > 78 && col > name.len() + 1 {
            out.extend_from_slice(b"\n ");
            col = 1;
        } else {
            out.push(b' ');
            col += 1;
        }
        out.extend_from_slice(word);
        col += word.len();
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &[u8]) -> Vec<u8> {
        let mut v = b"x".to_vec();
        quote_local(&mut v, s);
        v.split_off(1)
    }

    #[test]
    fn quote_like_qmail() {
        assert_eq!(q(b"MAILER-DAEMON"), b"MAILER-DAEMON");
        assert_eq!(q(b"a.b+c"), b"a.b+c");
        assert_eq!(q(b"a b"), b"\"a b\"");
        assert_eq!(q(b".a"), b"\".a\"");
        assert_eq!(q(b"a..b"), b"\"a..b\"");
        assert_eq!(q(b"a\"b\\"), b"\"a\\\"b\\\\\"");
        // quote() sees the whole string: an `@` inside is quoted, not split on.
        assert_eq!(q(b"x@y"), b"\"x@y\"");
        assert_eq!(q(b""), b"\"\"");
        assert_eq!(q("é".as_bytes()), "\"é\"".as_bytes());
    }

    #[test]
    fn status_search() {
        let s = |t: &str| find_status(t.as_bytes()).map(|s| s.to_string());
        assert_eq!(
            s("Sorry, no mailbox here by that name. (#5.1.1)"),
            Some("5.1.1".into())
        );
        assert_eq!(
            s("Remote host said: 550-5.7.1 blocked"),
            Some("5.7.1".into())
        );
        assert_eq!(
            s("Connected to 192.0.2.5 but 4.4.1 then 5.2.2."),
            Some("5.2.2".into())
        );
        assert_eq!(s("Connected to 192.0.2.5 only"), None);
        assert_eq!(s("version 5.1.1a"), None);
        assert_eq!(s("deferred 4.4.7"), Some("4.4.7".into()));
    }

    #[test]
    fn folding() {
        let mut v = Vec::new();
        let long = "word ".repeat(40);
        push_folded_field(
            &mut v,
            "Diagnostic-Code",
            format!("smtp; {long}\n\u{e9}").as_bytes(),
        );
        let text = String::from_utf8(v).unwrap_or_default();
        assert!(text.lines().all(|l| l.len() <= 78));
        assert!(text.lines().skip(1).all(|l| l.starts_with(' ')));
        assert!(text.ends_with(" ??\n"));
    }
}
