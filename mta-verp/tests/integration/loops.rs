//! Loop detection: Delivered-To exact match and hop counting, header only.

use std::io::{BufReader, Cursor, Read};

use mta_core::Address;
use mta_verp::{HeaderScanner, MAX_HOPS, scan_header, scan_header_from};
use proptest::prelude::*;

fn me() -> Address {
    Address::from("joe-list@example.com")
}

#[test]
fn folded_headers() {
    // A continuation line starts with white space, so it never equals DTLINE and never
    // counts as a hop, even when its text looks like one.
    let msg = b"Subject: talk about\n Delivered-To: joe-list@example.com\n\tReceived: from x\n\
Received: from a.example\n\tby b.example with SMTP\n\tfor <joe-list@example.com>;\n\tSun, 29 Nov 2026\n\n";
    let s = scan_header(msg, Some(&me()));
    assert!(!s.delivered_to_match);
    assert_eq!((s.received, s.delivered), (1, 0));
    assert!(s.complete);

    // qmail compares physical lines: our own line followed by a continuation still matches
    // (qmail-local bouncexf), since its first line is byte-identical.
    let s = scan_header(
        b"Delivered-To: joe-list@example.com\n (folded)\n\n",
        Some(&me()),
    );
    assert!(s.delivered_to_match);
}

#[test]
fn mixed_case() {
    // Hop counting ignores case, per byte.
    let msg = b"rEcEiVeD: a\nRECEIVED: b\nreceived: c\nDeLiVeReD-tO: d\nDELIVERED-TO: e\n\n";
    let s = scan_header(msg, Some(&me()));
    assert_eq!((s.received, s.delivered), (3, 2));
    // The Delivered-To comparison does not.
    for line in [
        "delivered-to: joe-list@example.com",
        "DELIVERED-TO: joe-list@example.com",
        "Delivered-to: joe-list@example.com",
        "Delivered-To: Joe-List@example.com",
        "Delivered-To: joe-list@EXAMPLE.com",
    ] {
        let m = format!("{line}\n\n");
        assert!(
            !scan_header(m.as_bytes(), Some(&me())).delivered_to_match,
            "{line}"
        );
    }
    assert!(
        scan_header(b"X: y\nDelivered-To: joe-list@example.com\n\n", Some(&me()))
            .delivered_to_match
    );
}

fn received_lines(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        v.extend_from_slice(
            format!("Received: from h{i}.example by h{}.example\n", i + 1).as_bytes(),
        );
    }
    v
}

#[test]
fn many_received_lines() {
    for (n, looping) in [
        (0, false),
        (1, false),
        (99, false),
        (100, true),
        (250, true),
    ] {
        let mut m = received_lines(n);
        m.extend_from_slice(b"Subject: x\n\nbody\n");
        let s = scan_header(&m, None);
        assert_eq!(s.received, n);
        assert_eq!(s.too_many_hops(), looping, "{n}");
    }
    // 99 Received + 1 Delivered-To reaches the limit; Received-SPF counts as qmail counts it.
    let mut m = received_lines(98);
    m.extend_from_slice(b"Received-SPF: pass\nDelivered-To: someone@else.example\n\n");
    let s = scan_header(&m, None);
    assert_eq!(s.hops(), MAX_HOPS);
    assert!(s.too_many_hops());
}

#[test]
fn body_is_ignored() {
    let mut m = b"Subject: a forwarded bounce\n\n".to_vec();
    m.extend_from_slice(b"Delivered-To: joe-list@example.com\n");
    m.extend_from_slice(&received_lines(200));
    let s = scan_header(&m, Some(&me()));
    assert!(!s.delivered_to_match);
    assert_eq!(s.hops(), 0);
    assert_eq!(s.header_len, 29);

    // The same in SMTP's CRLF form.
    let m = b"Subject: x\r\n\r\nDelivered-To: joe-list@example.com\n\n";
    let s = scan_header(m, Some(&me()));
    assert!(!s.delivered_to_match);
    assert_eq!(s.header_len, 14);
}

#[test]
fn reader_stops_at_body() {
    let header = b"Received: a\nDelivered-To: joe-list@example.com\nSubject: s\n\n";
    let body = b"Delivered-To: joe-list@example.com\nReceived: x\n";
    let mut whole = header.to_vec();
    whole.extend_from_slice(body);
    for cap in [1, 2, 7, 64, 4096] {
        let mut r = BufReader::with_capacity(cap, Cursor::new(whole.clone()));
        let s = scan_header_from(&mut r, Some(&me())).unwrap();
        assert!(s.delivered_to_match && s.complete);
        assert_eq!(s.header_len, header.len());
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, body, "capacity {cap}");
    }
}

/// A reader that fails if anyone reads past `limit` bytes: proves the scanner never asks
/// for body bytes when the header ends exactly at a buffer boundary.
struct Fence {
    data: Vec<u8>,
    pos: usize,
    limit: usize,
}

impl Read for Fence {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.limit {
            return Err(std::io::Error::other("read past the header"));
        }
        let n = buf.len().min(self.limit - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn never_reads_past_header() {
    let header = b"Received: a\nSubject: s\n\n";
    let mut data = header.to_vec();
    data.extend_from_slice(b"body");
    let mut r = BufReader::with_capacity(
        header.len(),
        Fence {
            data,
            pos: 0,
            limit: header.len(),
        },
    );
    let s = scan_header_from(&mut r, None).unwrap();
    assert!(s.complete);
    assert_eq!(s.received, 1);
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"Delivered-To: joe-list@example.com\n".to_vec()),
        Just(b"delivered-to: joe-list@example.com\n".to_vec()),
        Just(b"Received: from x\n".to_vec()),
        Just(b"\tby y\n".to_vec()),
        Just(b"Subject: z\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        prop::collection::vec(prop::sample::select(b"DRdrel:-\r\n \t".to_vec()), 0..12),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Feeding a message in two pieces, split anywhere, gives the same result as feeding it
    /// whole, and the bytes the scanner claims are exactly the header.
    #[test]
    fn chunking_does_not_matter(lines in prop::collection::vec(line(), 0..20), cut in any::<prop::sample::Index>()) {
        let msg: Vec<u8> = lines.concat();
        let whole = scan_header(&msg, Some(&me()));
        let cut = if msg.is_empty() { 0 } else { cut.index(msg.len() + 1) };
        let mut s = HeaderScanner::new().watch_delivered_to(&me());
        let used = match s.feed(&msg[..cut]) {
            Some(n) => n,
            None => cut + s.feed(&msg[cut..]).unwrap_or(msg.len() - cut),
        };
        let split = s.finish();
        prop_assert_eq!(split, whole);
        prop_assert_eq!(used, whole.header_len);
        // Bytes after the header never change the result.
        let mut longer = msg[..whole.header_len].to_vec();
        if whole.complete {
            longer.extend_from_slice(b"Delivered-To: joe-list@example.com\nReceived: x\n");
            prop_assert_eq!(scan_header(&longer, Some(&me())), whole);
        }
    }

    /// The streaming hop count agrees with mta-core's whole-message `hop_count`, the
    /// independent implementation of the same qmail-smtpd rule (mta-smtp's DATA parser is
    /// cross-checked against it too), on LF and CRLF headers, with or without a body.
    #[test]
    fn hops_match_mta_core(lines in prop::collection::vec(line(), 0..20)) {
        let msg: Vec<u8> = lines.concat();
        prop_assert_eq!(scan_header(&msg, None).hops(), mta_core::header::hop_count(&msg));
    }
}
