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

use mta_core::header::received_smtp;

/// The values a `Received:` line is built from, supplied by the embedder: mta-core's
/// [`mta_core::header::ReceivedSmtp`], one struct for both crates.
pub use mta_core::header::ReceivedSmtp as ReceivedInfo;

/// Builds the `Received:` line, two physical lines ending in `\n` (qmail's stored form;
/// convert to CRLF for the wire).
///
/// The line is [`mta_core::header::received_smtp`]'s, as a `String`.
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
    let line = received_smtp(info);
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
