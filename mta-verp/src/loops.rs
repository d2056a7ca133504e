//! Mail loop detection from trace fields (RFC 5321 §6.3, qmail RFCLOOPS).
//!
//! Two checks, both done by one streaming [`HeaderScanner`] that looks only at the header
//! and stops at the empty line that ends it:
//!
//! - **Delivered-To** (qmail-local `bouncexf`, reference §2.3): the header holds a line
//!   byte-for-byte equal to this delivery's own `Delivered-To: L@D\n` ([`delivered_to_line`]).
//!   The comparison is exact and case-sensitive, on physical lines: a continuation line of a
//!   folded field starts with white space and so never matches.
//! - **Hop count** (qmail-smtpd `blast`, reference §5): the number of header lines that
//!   start with `received` (8 bytes) or `delivered` (9 bytes), each byte compared ignoring
//!   ASCII case. Only the prefix is compared, so `Received-SPF:` and `Delivered-To:` count,
//!   as in qmail. [`MAX_HOPS`] or more means the message is looping.
//!
//! The header ends at a line that is empty: `\n` (the queue's LF form) or `\r\n` (SMTP
//! DATA). Bytes after it are never looked at, so a body quoting `Delivered-To:` lines (a
//! forwarded bounce, say) cannot trigger either check.

use std::io::{self, BufRead};

use mta_core::Address;

/// qmail-smtpd's hop limit: a message with this many `Received`/`Delivered` lines or more is
/// refused with `554 too many hops, this message is looping (#5.4.6)`.
pub const MAX_HOPS: usize = 100;

/// qmail-local's permanent-failure text when the header already holds this delivery's
/// `Delivered-To` line (`bouncexf`).
pub const DELIVERED_TO_LOOP_TEXT: &str =
    "This message is looping: it already has my Delivered-To line. (#5.4.6)";

/// qmail-smtpd's reply after DATA when the message has [`MAX_HOPS`] or more hops.
pub const TOO_MANY_HOPS_REPLY: &str = "554 too many hops, this message is looping (#5.4.6)";

/// The `Delivered-To` line qmail-local writes for a delivery to `recipient`:
/// `Delivered-To: ` + the address + `\n`, with any `\n` in the address turned into `_`
/// (the `DTLINE` variable, reference §2.5). The same function as
/// [`mta_core::header::delivered_to_line`], to which it delegates.
///
/// ```
/// use mta_core::Address;
/// use mta_verp::delivered_to_line;
/// assert_eq!(delivered_to_line(&Address::from("joe@example.com")), b"Delivered-To: joe@example.com\n");
/// ```
pub fn delivered_to_line(recipient: &Address) -> Vec<u8> {
    mta_core::header::delivered_to_line(recipient)
}

/// What a [`HeaderScanner`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderScan {
    /// Lines starting with `received`, any case.
    pub received: usize,
    /// Lines starting with `delivered`, any case.
    pub delivered: usize,
    /// A line equal to the watched `Delivered-To` line was found.
    pub delivered_to_match: bool,
    /// Bytes of header seen, including the empty line when [`HeaderScan::complete`].
    pub header_len: usize,
    /// The empty line ending the header was seen (false when the input ended first).
    pub complete: bool,
}

impl HeaderScan {
    /// The hop count: `received + delivered`, as qmail-smtpd counts.
    pub fn hops(&self) -> usize {
        self.received + self.delivered
    }

    /// True when the hop count reaches [`MAX_HOPS`].
    pub fn too_many_hops(&self) -> bool {
        self.hops() >= MAX_HOPS
    }
}

/// A push-style scanner over a message header: feed it bytes in chunks of any size; it stops
/// at the end of the header and says how many bytes of the last chunk were header.
///
/// It keeps a few flags per line; [`HeaderScanner::feed`] never allocates or buffers input,
/// so it is safe on messages of any size and on headers of any length.
///
/// ```
/// use mta_core::Address;
/// use mta_verp::HeaderScanner;
/// let mut s = HeaderScanner::new().watch_delivered_to(&Address::from("joe@example.com"));
/// assert_eq!(s.feed(b"Received: from a\nDelivered-To: joe@exa"), None);
/// let n = s.feed(b"mple.com\n\nDelivered-To: body@x\n");
/// assert_eq!(n, Some(10));
/// let scan = s.finish();
/// assert!(scan.delivered_to_match);
/// assert_eq!(scan.hops(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct HeaderScanner {
    dtline: Option<Vec<u8>>,
    pos: usize,
    first_cr: bool,
    maybe_received: bool,
    maybe_delivered: bool,
    maybe_dt: bool,
    scan: HeaderScan,
}

const RECEIVED: &[u8] = b"received";
const DELIVERED: &[u8] = b"delivered";

impl HeaderScanner {
    /// A scanner counting hops only.
    pub fn new() -> Self {
        HeaderScanner {
            maybe_received: true,
            maybe_delivered: true,
            ..HeaderScanner::default()
        }
    }

    /// Also looks for the `Delivered-To` line of a delivery to `recipient`
    /// ([`delivered_to_line`]). `recipient` is the address as local delivery sees it,
    /// qmail-local's `L@D` (for a virtual domain, after the `virtualdomains` prefix was
    /// added), since that is what the line written at delivery holds.
    #[must_use]
    pub fn watch_delivered_to(mut self, recipient: &Address) -> Self {
        self.dtline = Some(delivered_to_line(recipient));
        self.maybe_dt = self.pos == 0;
        self
    }

    /// True once the empty line ending the header has been seen.
    pub fn is_complete(&self) -> bool {
        self.scan.complete
    }

    /// Scans `chunk`. Returns `Some(n)` when the header ended inside it: the first `n` bytes
    /// (up to and including the empty line) were header and the rest is body, which was not
    /// looked at. Returns `None` when more input is needed. After completion every call
    /// returns `Some(0)`.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<usize> {
        if self.scan.complete {
            return Some(0);
        }
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'\n' {
                if self.pos == 0 || (self.pos == 1 && self.first_cr) {
                    self.scan.complete = true;
                    self.scan.header_len += i + 1;
                    return Some(i + 1);
                }
                if self.maybe_dt
                    && self
                        .dtline
                        .as_ref()
                        .is_some_and(|d| d.len() == self.pos + 1)
                {
                    self.scan.delivered_to_match = true;
                }
                self.start_line();
                continue;
            }
            self.byte(b);
        }
        self.scan.header_len += chunk.len();
        None
    }

    fn start_line(&mut self) {
        self.pos = 0;
        self.first_cr = false;
        self.maybe_received = true;
        self.maybe_delivered = true;
        self.maybe_dt = self.dtline.is_some();
    }

    fn byte(&mut self, b: u8) {
        let pos = self.pos;
        if pos == 0 {
            self.first_cr = b == b'\r';
        }
        if self.maybe_dt {
            let d = self.dtline.as_deref().unwrap_or_default();
            if d.get(pos) != Some(&b) {
                self.maybe_dt = false;
            }
        }
        if self.maybe_received && pos < RECEIVED.len() {
            if b.to_ascii_lowercase() != RECEIVED[pos] {
                self.maybe_received = false;
            } else if pos + 1 == RECEIVED.len() {
                self.scan.received += 1;
            }
        }
        if self.maybe_delivered && pos < DELIVERED.len() {
            if b.to_ascii_lowercase() != DELIVERED[pos] {
                self.maybe_delivered = false;
            } else if pos + 1 == DELIVERED.len() {
                self.scan.delivered += 1;
            }
        }
        self.pos = pos.saturating_add(1);
    }

    /// What was found so far.
    pub fn summary(&self) -> HeaderScan {
        self.scan
    }

    /// Ends the scan (at the end of the header or of the input) and returns the result.
    /// A last line without `\n` is not compared with the `Delivered-To` line, as in qmail.
    pub fn finish(self) -> HeaderScan {
        self.scan
    }
}

/// Scans the header of a message held in memory.
///
/// ```
/// use mta_verp::scan_header;
/// let scan = scan_header(b"Received: x\nRECEIVED-SPF: pass\n\nReceived: body\n", None);
/// assert_eq!(scan.received, 2);
/// assert_eq!(scan.header_len, 32);
/// ```
pub fn scan_header(message: &[u8], delivered_to: Option<&Address>) -> HeaderScan {
    let mut s = HeaderScanner::new();
    if let Some(r) = delivered_to {
        s = s.watch_delivered_to(r);
    }
    s.feed(message);
    s.finish()
}

/// Scans the header of a message read from `reader`, consuming **only** the header bytes
/// (through the empty line): afterwards `reader` is positioned at the first byte of the body.
///
/// # Errors
/// Any error from `reader` other than [`io::ErrorKind::Interrupted`] (which is retried).
pub fn scan_header_from<R: BufRead + ?Sized>(
    reader: &mut R,
    delivered_to: Option<&Address>,
) -> io::Result<HeaderScan> {
    let mut s = HeaderScanner::new();
    if let Some(r) = delivered_to {
        s = s.watch_delivered_to(r);
    }
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(s.finish());
        }
        let len = buf.len();
        match s.feed(buf) {
            Some(n) => {
                reader.consume(n);
                return Ok(s.finish());
            }
            None => reader.consume(len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Address {
        Address::from(s)
    }

    #[test]
    fn finds_exact_line_only() {
        let me = dt("joe@example.com");
        let hit = scan_header(b"Subject: x\nDelivered-To: joe@example.com\n\n", Some(&me));
        assert!(hit.delivered_to_match);
        for miss in [
            &b"delivered-to: joe@example.com\n\n"[..],
            b"Delivered-To: Joe@example.com\n\n",
            b"Delivered-To: joe@example.com \n\n",
            b"Delivered-To: joe@example.com.\n\n",
            b"Delivered-To: joe@example.co\n\n",
            b"Delivered-To:  joe@example.com\n\n",
            b"X: y\n Delivered-To: joe@example.com\n\n",
            b"Delivered-To: joe@example.com\r\n\r\n",
            b"Delivered-To: joe@example.com",
        ] {
            assert!(
                !scan_header(miss, Some(&me)).delivered_to_match,
                "{:?}",
                String::from_utf8_lossy(miss)
            );
        }
    }

    #[test]
    fn newline_in_recipient_becomes_underscore() {
        let r = Address::from_bytes(b"a\nb@c".to_vec());
        assert_eq!(delivered_to_line(&r), b"Delivered-To: a_b@c\n");
        assert!(scan_header(b"Delivered-To: a_b@c\n\n", Some(&r)).delivered_to_match);
    }

    #[test]
    fn crlf_blank_line_ends_header() {
        let s = scan_header(b"Received: a\r\n\r\nReceived: b\r\n", None);
        assert!(s.complete);
        assert_eq!(s.received, 1);
        assert_eq!(s.header_len, 15);
    }

    #[test]
    fn no_body_means_incomplete() {
        let s = scan_header(b"Received: a\nDelivered-To: b", None);
        assert!(!s.complete);
        assert_eq!(s.hops(), 2);
        assert_eq!(s.header_len, 27);
    }

    #[test]
    fn short_prefixes_do_not_count() {
        let s = scan_header(b"Receive: x\nDeliver: y\nReceivedx\nDELIVERED\n\n", None);
        assert_eq!((s.received, s.delivered), (1, 1));
    }
}
