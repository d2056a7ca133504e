//! The DATA receiver: finds the one true end of the message, removes dot-stuffing and
//! refuses every line ending that is not CRLF (RFC 5321 §4.5.2, §2.3.8).
//!
//! This is qmail-smtpd's `blast` state machine with named states, made strict: only
//! `CRLF "." CRLF` ends the message (the CRLF may be the one that ended the DATA command);
//! a bare LF, a bare CR or a NUL anywhere marks the message bad, and the receiver keeps
//! reading to that real end, passing nothing further on. So `\n.\n`, `\n.\r\n`, `\r\n.\n`,
//! `\r.\r`, `\r\n.\r` and `\r\n\0.\r\n` can neither end the message early (no
//! truncated message) nor start a second one (no smuggling).
//!
//! Runs of ordinary bytes are found eight at a time ([`crate::scan`]) and copied with one
//! `extend_from_slice`, so there is no allocation and no per-byte branch per line.

use core::net::SocketAddr;

use mta_core::Envelope;

use crate::server::{DataError, LineEnding};

/// Where the receiver is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the start of the data).
    LineStart,
    /// Inside a line.
    Text,
    /// After a CR inside a line.
    Cr,
    /// After a `.` at the start of a line.
    Dot,
    /// After `.` CR at the start of a line: LF here ends the message.
    DotCr,
}

/// What is wrong with the message; the first failure found in [`DataError`] priority wins.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    bare_lf: bool,
    bare_cr: bool,
    nul: bool,
    too_large: bool,
    long_line: bool,
}

impl Faults {
    fn any(self) -> bool {
        self.bare_lf || self.bare_cr || self.nul || self.too_large || self.long_line
    }
}

/// The summary of a well-formed message, as reported in [`crate::Event::DataEnd`]: what
/// an application needs to queue it (qmail-smtpd handed qmail-queue the same envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataSummary {
    /// Octets passed on in [`crate::Event::DataChunk`]s (after unstuffing and line-end
    /// conversion): what qmail-smtpd compared with `databytes`.
    pub size: usize,
    /// Header lines starting with `Received` or `Delivered` (case-insensitive prefix, so
    /// `Received-SPF:` counts too, as in qmail-smtpd), up to the first empty line.
    pub hops: usize,
    /// The transaction's envelope in qmail's internal form (RFC 5321 §3.3): the sender of
    /// the accepted `MAIL FROM` (empty for `<>`) and every recipient whose `RCPT TO` got a
    /// 2xx verdict, in order (`postmaster` without a domain for `<Postmaster>`).
    pub envelope: Envelope,
    /// The client's address, when the driver told the session
    /// ([`crate::ServerSession::with_peer`]; the blocking drivers do for TCP).
    pub peer: Option<SocketAddr>,
}

/// The streaming DATA decoder. `feed` may be called with input split anywhere.
#[derive(Clone, Debug)]
pub(crate) struct DataReceiver {
    state: State,
    line_ending: LineEnding,
    max_size: usize,
    max_line: usize,
    size: usize,
    line_len: usize,
    in_header: bool,
    prefix: [u8; 9],
    prefix_len: usize,
    hops: usize,
    faults: Faults,
}

impl DataReceiver {
    /// A receiver at the start of the data, just after the DATA command's CRLF.
    pub(crate) fn new(line_ending: LineEnding, max_size: usize, max_line: usize) -> Self {
        DataReceiver {
            state: State::LineStart,
            line_ending,
            max_size,
            max_line,
            size: 0,
            line_len: 0,
            in_header: true,
            prefix: [0; 9],
            prefix_len: 0,
            hops: 0,
            faults: Faults::default(),
        }
    }

    /// Decodes `input`, appending message bytes to `out` (only while the message is still
    /// good). Returns the bytes used and whether the end-of-data line was reached; bytes
    /// after the end are not used.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                State::Text => {
                    let rest = &input[i..];
                    let n = crate::scan::find_line_byte(rest).unwrap_or(rest.len());
                    if n > 0 {
                        self.text(&rest[..n], out);
                        i += n;
                        continue;
                    }
                    i += 1;
                    match b {
                        b'\r' => self.state = State::Cr,
                        b'\n' => self.faults.bare_lf = true,
                        _ => self.faults.nul = true,
                    }
                }
                State::LineStart => {
                    if b == b'.' {
                        i += 1;
                        self.state = State::Dot;
                    } else {
                        self.state = State::Text;
                    }
                }
                // RFC 5321 §4.5.2: the first `.` of a line is removed; the next byte is text
                // (a LF or NUL there is a fault, handled in Text).
                State::Dot => {
                    if b == b'\r' {
                        i += 1;
                        self.state = State::DotCr;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if b == b'\n' {
                        self.state = State::LineStart;
                        return (i + 1, true);
                    }
                    // `.` CR then not LF: a bare CR; re-read `b` as text.
                    self.faults.bare_cr = true;
                    self.state = State::Text;
                }
                State::Cr => {
                    if b == b'\n' {
                        i += 1;
                        self.end_line(out);
                        self.state = State::LineStart;
                    } else {
                        // CR not followed by LF; re-read `b` (another CR may pair with LF).
                        self.faults.bare_cr = true;
                        self.state = State::Text;
                    }
                }
            }
        }
        (i, false)
    }

    fn good(&self) -> bool {
        !self.faults.any()
    }

    /// Counts `bytes` against the size limit and passes on what fits (only while the
    /// message is good). Exactly the first `max_size` stored octets are ever passed on,
    /// however the input was split.
    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let good = self.good();
        let room = self.max_size.saturating_sub(self.size);
        let fits = &bytes[..bytes.len().min(room)];
        if fits.len() < bytes.len() {
            self.faults.too_large = true;
        }
        // fits.len() <= room = max_size - size: no overflow, size never passes the cap.
        self.size += fits.len();
        if good {
            out.extend_from_slice(fits);
        }
    }

    fn text(&mut self, run: &[u8], out: &mut Vec<u8>) {
        if self.in_header && self.prefix_len < self.prefix.len() {
            let k = run.len().min(self.prefix.len() - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + k].copy_from_slice(&run[..k]);
            self.prefix_len += k;
        }
        self.line_len = self.line_len.saturating_add(run.len());
        self.emit(run, out);
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        // line_len counts the text; the limit counts CRLF too (RFC 5321 §4.5.3.1.6).
        if self.line_len.saturating_add(2) > self.max_line {
            self.faults.long_line = true;
        }
        if self.in_header {
            if self.line_len == 0 {
                self.in_header = false;
            } else {
                let p = &self.prefix[..self.prefix_len];
                let hop = |word: &[u8]| {
                    p.len() >= word.len() && p[..word.len()].eq_ignore_ascii_case(word)
                };
                if hop(b"received") || hop(b"delivered") {
                    self.hops = self.hops.saturating_add(1);
                }
            }
        }
        self.line_len = 0;
        self.prefix_len = 0;
        let eol: &[u8] = match self.line_ending {
            LineEnding::Lf => b"\n",
            LineEnding::Crlf => b"\r\n",
        };
        self.emit(eol, out);
    }

    /// The verdict once the end of data was seen, in qmail's priority (a broken line
    /// ending first, since the session ends; then hops, size, NUL, line length).
    pub(crate) fn finish(&self, max_hops: Option<usize>) -> Result<DataSummary, DataError> {
        let f = self.faults;
        if f.bare_lf || f.bare_cr {
            return Err(DataError::BareLineEnding);
        }
        if max_hops.is_some_and(|m| self.hops >= m) {
            return Err(DataError::TooManyHops);
        }
        if f.too_large {
            return Err(DataError::TooLarge);
        }
        if f.nul {
            return Err(DataError::Nul);
        }
        if f.long_line {
            return Err(DataError::LineTooLong);
        }
        Ok(DataSummary {
            size: self.size,
            hops: self.hops,
            envelope: Envelope::default(),
            peer: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(input: &[u8]) -> (Vec<u8>, Option<usize>, DataReceiver) {
        let mut r = DataReceiver::new(LineEnding::Crlf, 1 << 20, 1000);
        let mut out = Vec::new();
        let (n, end) = r.feed(input, &mut out);
        (out, end.then_some(n), r)
    }

    #[test]
    fn unstuffs_and_ends() {
        let (out, end, r) = run(b"a\r\n..b\r\n.c\r\n.\r\nMAIL");
        assert_eq!(out, b"a\r\n.b\r\nc\r\n");
        assert_eq!(end, Some(15));
        assert!(r.finish(None).is_ok());
    }

    #[test]
    fn empty_message() {
        let (out, end, _) = run(b".\r\n");
        assert_eq!((out.as_slice(), end), (&b""[..], Some(3)));
    }

    #[test]
    fn lf_storage_form() {
        let mut r = DataReceiver::new(LineEnding::Lf, 100, 1000);
        let mut out = Vec::new();
        assert_eq!(r.feed(b"x\r\n\r\ny\r\n.\r\n", &mut out), (11, true));
        assert_eq!(out, b"x\n\ny\n");
        assert_eq!(r.finish(None).unwrap_or_else(|e| panic!("{e:?}")).size, 5);
    }

    #[test]
    fn smuggling_variants_do_not_end_the_message() {
        for evil in [
            &b"\n.\n"[..],
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r",
            b"\r\n.\r",
            b"\r\n\x00.\r\n",
        ] {
            let mut msg = b"Subject: x\r\n\r\nbody".to_vec();
            msg.extend_from_slice(evil);
            msg.extend_from_slice(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nevil\r\n");
            let (_, end, r) = run(&msg);
            assert_eq!(end, None, "{evil:?} ended the message early");
            let mut out = Vec::new();
            let mut r2 = r.clone();
            assert!(r2.feed(b".\r\n", &mut out).1);
            assert!(r2.finish(None).is_err(), "{evil:?} accepted");
        }
    }

    #[test]
    fn hops_in_header_only() {
        let (_, _, r) = run(
            b"Received: a\r\nreceived-spf: b\r\nDELIVERED-To: c\r\nX: d\r\n\r\nReceived: e\r\n.\r\n",
        );
        assert_eq!(r.finish(None).map(|s| s.hops), Ok(3));
        assert_eq!(r.finish(Some(3)), Err(DataError::TooManyHops));
    }

    #[test]
    fn size_and_line_limits() {
        let mut r = DataReceiver::new(LineEnding::Crlf, 5, 1000);
        let mut out = Vec::new();
        assert!(r.feed(b"123\r\n4\r\n.\r\n", &mut out).1);
        assert_eq!(r.finish(None), Err(DataError::TooLarge));
        assert_eq!(out, b"123\r\n");
        let mut r = DataReceiver::new(LineEnding::Crlf, 5000, 10);
        assert!(r.feed(b"123456789\r\n.\r\n", &mut out).1);
        assert_eq!(r.finish(None), Err(DataError::LineTooLong));
    }

    #[test]
    fn no_allocation_per_line() {
        // The receiver holds no heap data at all (only Copy fields); the one buffer it
        // writes is the caller's. With room reserved, 100 000 lines never reallocate it.
        let line = b"a normal line of text in a message body, about seventy octets long.\r\n";
        let mut input = Vec::new();
        for i in 0..100_000 {
            if i % 10 == 0 {
                input.extend_from_slice(b"..stuffed\r\n");
            }
            input.extend_from_slice(line);
        }
        input.extend_from_slice(b".\r\n");
        let mut r = DataReceiver::new(LineEnding::Lf, usize::MAX, 1000);
        let mut out = Vec::with_capacity(input.len());
        let (ptr, cap) = (out.as_ptr(), out.capacity());
        let (n, end) = r.feed(&input, &mut out);
        assert!(end && n == input.len());
        assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
        assert_eq!(out.len(), input.len() - 3 - 110_000 - 10_000);
    }

    proptest! {
        /// Any split of the input gives the same output and the same end position.
        #[test]
        fn split_anywhere(body in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(0u8), Just(b'a'), Just(b'R')], 0..64),
            cut in 0usize..80)
        {
            let mut input = body.clone();
            input.extend_from_slice(b"\r\n.\r\n");
            // A small size cap, so the limit also falls inside runs (found by fuzzing).
            let mut r = DataReceiver::new(LineEnding::Crlf, 24, 1000);
            let mut whole = Vec::new();
            let (n, e) = r.feed(&input, &mut whole);
            let end = e.then_some(n);
            let cut = cut.min(input.len());
            let mut rx = DataReceiver::new(LineEnding::Crlf, 24, 1000);
            let mut out = Vec::new();
            let (n1, e1) = rx.feed(&input[..cut], &mut out);
            let end2 = if e1 { Some(n1) } else {
                let (n2, e2) = rx.feed(&input[cut..], &mut out);
                e2.then_some(cut + n2)
            };
            prop_assert_eq!(end, end2);
            prop_assert_eq!(whole, out);
            prop_assert_eq!(r.finish(None), rx.finish(None));
        }
    }
}
