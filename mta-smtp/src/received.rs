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

use mta_core::header::{ReceivedSmtp, received_smtp};

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
    /// The protocol word: qmail wrote `SMTP`; RFC 3848 names `ESMTP`, `ESMTPS` (TLS),
    /// `ESMTPA` (AUTH) and `ESMTPSA` (both).
    pub protocol: &'a str,
    /// The TLS version and cipher suite when the session was encrypted (e.g.
    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384`), written as a comment after the protocol:
    /// `with ESMTPS (TLSv1.3 TLS13_AES_256_GCM_SHA384)`.
    pub tls: Option<&'a str>,
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
            tls: None,
            date,
        }
    }
}

/// The date as written after `; `: notqmail's safe set (`A-Za-z0-9.@%+/=:-[]`, the same
/// filter [`received_smtp`] applies to the other values) plus space, comma and parentheses.
fn push_safe_date(out: &mut Vec<u8>, date: &str) {
    out.extend(date.bytes().map(|b| {
        let ok = b.is_ascii_alphanumeric() || b".@%+/=:-[] ,()".contains(&b);
        if ok { b } else { b'?' }
    }));
}

/// Builds the `Received:` line, two physical lines ending in `\n` (qmail's stored form;
/// convert to CRLF for the wire).
///
/// The line is [`mta_core::header::received_smtp`]'s, with its date replaced by
/// [`ReceivedInfo::date`], so the shape and the character filter are written once.
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
    let mut line = received_smtp(&ReceivedSmtp {
        remote_host: info.remote_host,
        remote_ip: info.remote_ip,
        helo: info.helo,
        remote_info: info.remote_info,
        local_host: info.local_host,
        protocol: info.protocol,
        unix_time: 0,
    });
    // received_smtp ends in `; <date>\n` and its filter turns every `;` in the values into
    // `?`, so the last `;` starts the date: keep up to `; `, then write ours.
    if let Some(semi) = line.iter().rposition(|&b| b == b';') {
        line.truncate(semi);
        if let Some(tls) = info.tls {
            line.extend_from_slice(b" (");
            // Cipher suite names use `_`; nothing else beyond letters, digits, `.-/:`
            // and space may pass.
            line.extend(tls.bytes().map(|b| {
                let ok = b.is_ascii_alphanumeric() || b"._-/: ".contains(&b);
                if ok { b } else { b'?' }
            }));
            line.push(b')');
        }
        line.extend_from_slice(b"; ");
    }
    push_safe_date(&mut line, info.date);
    line.push(b'\n');
    // Every byte is ASCII after the filters, so this never takes the lossy path.
    String::from_utf8(line).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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

    #[test]
    fn tls_comment_follows_the_protocol() {
        let mut i = ReceivedInfo::new("unknown", "127.0.0.1", "mx", "1 Jan 2026 00:00:00 -0000");
        i.protocol = "ESMTPS";
        i.tls = Some("TLSv1.3 TLS13_AES_256_GCM_SHA384\n(x)");
        assert_eq!(
            received_line(&i),
            "Received: from unknown (127.0.0.1)\n  by mx with ESMTPS (TLSv1.3 \
             TLS13_AES_256_GCM_SHA384??x?); 1 Jan 2026 00:00:00 -0000\n"
        );
    }

    #[test]
    fn date_is_swapped_and_filtered() {
        // A `;` from the peer is filtered before the date is located, and the embedder's
        // date keeps space, comma and parentheses but nothing that could end the line.
        let mut i = ReceivedInfo::new("a;b", "192.0.2.1", "mx", "Sun, 1 Jan (x);\nY: z");
        i.helo = Some("c; d");
        assert_eq!(
            received_line(&i),
            "Received: from a?b (HELO c??d) (192.0.2.1)\n  by mx with SMTP; Sun, 1 Jan (x)??Y: z\n"
        );
    }
}
