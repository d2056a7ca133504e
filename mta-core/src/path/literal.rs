//! RFC 5321 §4.1.3 address literals: the IPv4, IPv6 and general forms, validated.

use std::net::Ipv6Addr;

/// `IPv4-address-literal = Snum 3("."  Snum)`, `Snum = 1*3DIGIT` with value 0-255.
pub(super) fn is_ipv4(s: &[u8]) -> bool {
    let mut n = 0;
    for part in s.split(|&b| b == b'.') {
        n += 1;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let v = part.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
        if v > 255 {
            return false;
        }
    }
    n == 4
}

/// `IPv6-addr = IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp` (RFC 5321 §4.1.3): at
/// most six hex groups besides a `::`, and no more than four before an embedded IPv4.
pub(super) fn is_ipv6(s: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(s) else {
        return false;
    };
    if text.parse::<Ipv6Addr>().is_err() {
        return false;
    }
    let (hex, v4) = match text.rfind(':') {
        Some(i) if text[i + 1..].contains('.') => {
            if !is_ipv4(&s[i + 1..]) {
                return false;
            }
            (&text[..=i], true)
        }
        _ => (text, false),
    };
    let groups = hex.split(':').filter(|g| !g.is_empty()).count();
    let max = if v4 { 4 } else { 6 };
    !hex.contains("::") || groups <= max
}

/// `General-address-literal = Standardized-tag ":" 1*dcontent`, `Standardized-tag = Ldh-str`,
/// `dcontent = %d33-90 / %d94-126`.
pub(super) fn is_general_literal(s: &[u8]) -> bool {
    let Some(colon) = s.iter().position(|&b| b == b':') else {
        return false;
    };
    let (tag, content) = (&s[..colon], &s[colon + 1..]);
    !tag.is_empty()
        && tag.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        && tag.last().is_some_and(u8::is_ascii_alphanumeric)
        && !content.is_empty()
        && content.iter().all(|&b| matches!(b, 33..=90 | 94..=126))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_literals() {
        assert!(is_ipv4(b"192.0.2.1"));
        assert!(!is_ipv4(b"192.0.2.256"));
        assert!(!is_ipv4(b"192.0.2"));
        assert!(!is_ipv4(b"1.2.3.4.5"));
        assert!(!is_ipv4(b"0001.2.3.4"));
        assert!(is_ipv6(b"2001:db8::1"));
        assert!(is_ipv6(b"::"));
        assert!(is_ipv6(b"1:2:3:4:5:6:7:8"));
        assert!(is_ipv6(b"::ffff:192.0.2.1"));
        assert!(is_ipv6(b"1:2:3:4:5:6:192.0.2.1"));
        assert!(!is_ipv6(b"1:2:3:4:5:6:7::"));
        assert!(!is_ipv6(b"1:2:3:4:5::192.0.2.1"));
        assert!(!is_ipv6(b"2001:db8::g"));
        assert!(!is_ipv6(b"fe80::1%eth0"));
    }
}
