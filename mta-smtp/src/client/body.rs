//! SMTP transparency for outgoing messages (RFC 5321 §4.5.2), with notqmail's line-ending
//! rules for a message stored with LF line ends.

use crate::scan::find_line_byte;

/// Turns a stored message into DATA wire form, chunk by chunk.
///
/// - A stored LF becomes CRLF; a stored CRLF stays one CRLF; a bare CR becomes CRLF
///   (notqmail PR #18: qmail 1.03 sent a bare CR as is, the one way a qmail host could be
///   the sending side of a smuggling attack). So no CR or LF ever leaves without its pair.
/// - A `.` at the start of a line is doubled.
/// - [`BodyEncoder::finish`] ends an unterminated last line with CRLF (qmail-remote
///   refused such a message with `#5.6.2`; completing the line is the modern choice) and
///   writes `.` CRLF.
///
/// Long lines and 8-bit bytes are sent as they are, as qmail did.
///
/// ```
/// use mta_smtp::BodyEncoder;
/// let mut e = BodyEncoder::new();
/// let mut wire = Vec::new();
/// e.encode(b"a\n.b\r\nc\rd", &mut wire);
/// e.finish(&mut wire);
/// assert_eq!(wire, b"a\r\n..b\r\nc\r\nd\r\n.\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct BodyEncoder {
    line_start: bool,
    after_cr: bool,
}

impl Default for BodyEncoder {
    fn default() -> Self {
        BodyEncoder::new()
    }
}

impl BodyEncoder {
    /// An encoder at the start of a message.
    pub fn new() -> BodyEncoder {
        BodyEncoder {
            line_start: true,
            after_cr: false,
        }
    }

    /// Appends the wire form of `input` (the next part of the stored message) to `out`.
    pub fn encode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 32 + 2);
        while let Some(&b) = input.first() {
            match b {
                b'\r' => {
                    out.extend_from_slice(b"\r\n");
                    self.after_cr = true;
                    self.line_start = true;
                    input = &input[1..];
                }
                b'\n' => {
                    if !self.after_cr {
                        out.extend_from_slice(b"\r\n");
                    }
                    self.after_cr = false;
                    self.line_start = true;
                    input = &input[1..];
                }
                _ => {
                    self.after_cr = false;
                    if self.line_start && b == b'.' {
                        out.push(b'.');
                    }
                    self.line_start = false;
                    // The run ends at the next CR or LF; a NUL is ordinary data here.
                    let mut n = 1;
                    loop {
                        match find_line_byte(&input[n..]) {
                            None => {
                                n = input.len();
                                break;
                            }
                            Some(k) if input[n + k] == 0 => n += k + 1,
                            Some(k) => {
                                n += k;
                                break;
                            }
                        }
                    }
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                }
            }
        }
    }

    /// Completes the last line if needed and appends the end-of-data line `.` CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = BodyEncoder::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::LineEnding;
    use proptest::prelude::*;

    fn enc(parts: &[&[u8]]) -> Vec<u8> {
        let mut e = BodyEncoder::new();
        let mut out = Vec::new();
        for p in parts {
            e.encode(p, &mut out);
        }
        e.finish(&mut out);
        out
    }

    #[test]
    fn notqmail_line_ends() {
        assert_eq!(enc(&[b"a\r\nb\n"]), b"a\r\nb\r\n.\r\n");
        assert_eq!(enc(&[b"a\r", b"\nb"]), b"a\r\nb\r\n.\r\n");
        assert_eq!(enc(&[b"a\r\rb"]), b"a\r\n\r\nb\r\n.\r\n");
        assert_eq!(enc(&[b""]), b".\r\n");
        assert_eq!(enc(&[b".", b".x\n.\n"]), b"...x\r\n..\r\n.\r\n");
        assert_eq!(enc(&[b"a\x00b\n\x00\r\n"]), b"a\x00b\r\n\x00\r\n.\r\n");
    }

    #[test]
    fn smuggling_sequences_are_neutralised() {
        for evil in [
            &b"x\n.\ny"[..],
            b"x\n.\r\ny",
            b"x\r\n.\ny",
            b"x\r.\ry",
            b"x\r\n.\ry",
        ] {
            let wire = enc(&[evil]);
            // The only CRLF.CRLF is the real end.
            let ends = wire.windows(5).filter(|w| w == b"\r\n.\r\n").count();
            assert_eq!(ends, 1, "{evil:?} -> {wire:?}");
            assert!(wire.ends_with(b"\r\n.\r\n"));
        }
    }

    proptest! {
        /// Whatever the stored bytes, our own server receives exactly one message, and it
        /// is the input with every line end normalised.
        #[test]
        fn server_reads_back(body in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'x')], 0..60),
            cut in 0usize..60)
        {
            let cut = cut.min(body.len());
            let wire = enc(&[&body[..cut], &body[cut..]]);
            let mut rx = crate::server::data::DataReceiver::new(LineEnding::Lf, 1 << 20, 1000);
            let mut got = Vec::new();
            let (n, end) = rx.feed(&wire, &mut got);
            prop_assert!(end);
            prop_assert_eq!(n, wire.len());
            prop_assert!(rx.finish(None).is_ok());
            let mut want = body.clone();
            // stored CRLF -> LF, bare CR -> LF, final newline added
            let s = String::from_utf8(want.clone()).unwrap_or_default()
                .replace("\r\n", "\n").replace('\r', "\n");
            want = s.into_bytes();
            if !want.is_empty() && !want.ends_with(b"\n") { want.push(b'\n'); }
            prop_assert_eq!(got, want);
        }
    }
}
