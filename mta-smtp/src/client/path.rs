//! Writing envelope addresses as RFC 5321 paths for MAIL and RCPT, safely.

use mta_core::Address;

/// Why an address cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnsendableAddress {
    /// A control byte (CR, LF, NUL, ...) anywhere: never written to the wire
    /// (the CVE-2025-7962 class of command injection).
    ControlByte,
    /// A domain with bytes no domain or address literal may hold.
    BadDomain,
}

/// RFC 5321 §4.1.2 `atext` (plus UTF-8 octets, RFC 6531 §3.3).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// `Dot-string = Atom *("." Atom)`
fn is_dot_string(s: &[u8]) -> bool {
    !s.is_empty()
        && s.split(|&b| b == b'.')
            .all(|a| !a.is_empty() && a.iter().all(|&b| is_atext(b)))
}

/// The text between the angle brackets for `addr`: `local@domain` with the local part
/// quoted (`Quoted-string`, `\` before `"` and `\`) when it is not a dot-string, as
/// qmail-remote's `quote()` did; empty for the null path. Also reports whether any byte
/// is non-ASCII (then SMTPUTF8 is needed).
pub(crate) fn path_text(addr: &Address) -> Result<(Vec<u8>, bool), UnsendableAddress> {
    let bytes = addr.as_bytes();
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(UnsendableAddress::ControlByte);
    }
    let utf8 = !bytes.is_ascii();
    if bytes.is_empty() {
        return Ok((Vec::new(), false));
    }
    let local = addr.local_part();
    let mut out = Vec::with_capacity(bytes.len() + 4);
    if is_dot_string(local) {
        out.extend_from_slice(local);
    } else {
        out.push(b'"');
        for &b in local {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    }
    if let Some(domain) = addr.domain() {
        let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b) || b >= 0x80;
        if domain.is_empty() || !domain.iter().all(|&b| ok(b)) {
            return Err(UnsendableAddress::BadDomain);
        }
        out.push(b'@');
        out.extend_from_slice(domain);
    }
    Ok((out, utf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: &[u8]) -> Result<Vec<u8>, UnsendableAddress> {
        path_text(&Address::from_bytes(a.to_vec())).map(|(v, _)| v)
    }

    #[test]
    fn quoting() {
        assert_eq!(
            t(b"joe.user@example.com").as_deref(),
            Ok(&b"joe.user@example.com"[..])
        );
        assert_eq!(t(b"").as_deref(), Ok(&b""[..]));
        assert_eq!(t(b"#@[]").as_deref(), Ok(&b"#@[]"[..]));
        assert_eq!(t(b"a b@x").as_deref(), Ok(&b"\"a b\"@x"[..]));
        assert_eq!(t(b"a\"\\.@x").as_deref(), Ok(&b"\"a\\\"\\\\.\"@x"[..]));
        assert_eq!(t(b"a..b@x").as_deref(), Ok(&b"\"a..b\"@x"[..]));
    }

    #[test]
    fn refuses_injection() {
        assert_eq!(
            t(b"a@x\r\nRCPT TO:<b@y>"),
            Err(UnsendableAddress::ControlByte)
        );
        assert_eq!(t(b"a\x00@x"), Err(UnsendableAddress::ControlByte));
        assert_eq!(t(b"a@x> SIZE=1"), Err(UnsendableAddress::BadDomain));
        assert_eq!(t(b"a@"), Err(UnsendableAddress::BadDomain));
    }
}
