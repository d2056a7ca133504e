//! The `Received:` trace line in qmail-smtpd's shape (`received.c`; RFC 5321 §4.4).
//!
//! ```text
//! Received: from <remote host> (HELO <helo>) (<remote info>@<remote ip>)
//!   by <local host> with <protocol>; <date>
//! ```
//!
//! `(HELO ...)` appears only when the client's name differs (ignoring case) from the
//! remote host name; `<remote info>@` only when an ident/auth name is known. Every byte
//! of the embedder's values outside `A-Za-z0-9.@%+/=:-[]` becomes `?` (notqmail's safe
//! set), so nothing a client says can add a header line or break the trace syntax.

/// The values a `Received:` line is built from, supplied by the embedder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedInfo<'a> {
    /// The client's host name from reverse DNS (`TCPREMOTEHOST`), or `unknown`.
    pub remote_host: &'a str,
    /// The client's IP address (`TCPREMOTEIP`).
    pub remote_ip: &'a str,
    /// An ident or authenticated name (`TCPREMOTEINFO`), if any.
    pub remote_info: Option<&'a str>,
    /// The HELO/EHLO argument ([`crate::ServerSession::client_name`]), if any.
    pub helo: Option<&'a str>,
    /// This host's name (`TCPLOCALHOST`).
    pub local_host: &'a str,
    /// The protocol word: qmail wrote `SMTP`; RFC 3848 names `ESMTP`, `ESMTPS`.
    pub protocol: &'a str,
    /// The date, e.g. from `mta_core::date::qmail_date822` (written as given, after the
    /// same character filter with space, comma and parentheses also allowed).
    pub date: &'a str,
}

impl<'a> ReceivedInfo<'a> {
    /// Values with `protocol` = `SMTP` and no HELO or remote info.
    pub fn new(
        remote_host: &'a str,
        remote_ip: &'a str,
        local_host: &'a str,
        date: &'a str,
    ) -> ReceivedInfo<'a> {
        ReceivedInfo {
            remote_host,
            remote_ip,
            remote_info: None,
            helo: None,
            local_host,
            protocol: "SMTP",
            date,
        }
    }
}

fn safe(out: &mut String, s: &str, extra: &[u8]) {
    for b in s.bytes() {
        let ok = b.is_ascii_alphanumeric() || b".@%+/=:-[]".contains(&b) || extra.contains(&b);
        out.push(if ok { b as char } else { '?' });
    }
}

/// Builds the `Received:` line, two physical lines ending in `\n` (qmail's stored form;
/// convert to CRLF for the wire).
///
/// ```
/// use mta_smtp::{received_line, ReceivedInfo};
/// let mut info = ReceivedInfo::new("client.example", "192.0.2.7", "mx.example",
///     "29 Nov 2026 04:08:05 -0000");
/// info.helo = Some("evil\r\nX-Injected: 1");
/// assert_eq!(received_line(&info),
///     "Received: from client.example (HELO evil??X-Injected:?1) (192.0.2.7)\n  \
///      by mx.example with SMTP; 29 Nov 2026 04:08:05 -0000\n");
/// ```
pub fn received_line(info: &ReceivedInfo<'_>) -> String {
    let mut s = String::with_capacity(160);
    s.push_str("Received: from ");
    safe(&mut s, info.remote_host, b"");
    if let Some(h) = info.helo
        && !h.eq_ignore_ascii_case(info.remote_host)
    {
        s.push_str(" (HELO ");
        safe(&mut s, h, b"");
        s.push(')');
    }
    s.push_str(" (");
    if let Some(i) = info.remote_info {
        safe(&mut s, i, b"");
        s.push('@');
    }
    safe(&mut s, info.remote_ip, b"");
    s.push_str(")\n  by ");
    safe(&mut s, info.local_host, b"");
    s.push_str(" with ");
    safe(&mut s, info.protocol, b"");
    s.push_str("; ");
    safe(&mut s, info.date, b" ,()");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmail_shape() {
        let mut i = ReceivedInfo::new("unknown", "127.0.0.1", "mx", "1 Jan 2026 00:00:00 -0000");
        assert_eq!(
            received_line(&i),
            "Received: from unknown (127.0.0.1)\n  by mx with SMTP; 1 Jan 2026 00:00:00 -0000\n"
        );
        i.helo = Some("UNKNOWN");
        i.remote_info = Some("joe");
        assert!(received_line(&i).starts_with("Received: from unknown (joe@127.0.0.1)\n"));
        i.helo = Some("[IPv6:::1]");
        assert!(received_line(&i).contains("(HELO [IPv6:::1])"));
    }
}
