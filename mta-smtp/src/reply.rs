//! SMTP replies (RFC 5321 §4.2): building them for the server, parsing them for the client.
//!
//! ```text
//! Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
//!                  Reply-code [ SP textstring ] CRLF
//! Reply-code     = %x32-35 %x30-35 %x30-39
//! ```
//!
//! With ENHANCEDSTATUSCODES (RFC 2034) every line's text starts with the same
//! `class.subject.detail` code; [`Reply`] keeps it apart as [`Reply::status`].

use std::fmt;

use mta_core::{EnhancedStatus, StatusClass};

/// Longest reply line we buffer while parsing, in octets. RFC 5321 §4.5.3.1.5 allows 512;
/// longer lines are truncated (the rest is skipped), never buffered.
pub const MAX_REPLY_LINE: usize = 4096;

/// Most reply text kept for reports, in octets (qmail-remote kept 5000); later lines are
/// dropped from [`Reply::lines`] but still read.
pub const MAX_REPLY_TEXT: usize = 5000;

/// Most octets one reply may take on the wire, continuation lines included. A server that
/// sends more (an endless multi-line reply) gets [`ParseReplyError::TooLong`].
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// An SMTP reply: a three-digit code, an optional enhanced status code and one or more text
/// lines.
///
/// ```
/// use mta_smtp::Reply;
/// let r = Reply::new(550, "no such user\nreally")?.with_status("5.1.1".parse()?);
/// let mut wire = Vec::new();
/// r.write_to(&mut wire);
/// assert_eq!(wire, b"550-5.1.1 no such user\r\n550 5.1.1 really\r\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    status: Option<EnhancedStatus>,
    lines: Vec<String>,
}

/// [`Reply::new`] refused its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidReply {
    /// The code is not in 200..=599 (RFC 5321 §4.2.1 codes the server may send here).
    Code,
    /// A line contains CR or NUL (lines are separated by `\n` in the text).
    Character,
    /// A line would exceed 512 octets on the wire (RFC 5321 §4.5.3.1.5).
    LineTooLong,
    /// The enhanced status class does not match the reply code's first digit (RFC 2034).
    StatusClass,
}

impl fmt::Display for InvalidReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidReply::Code => "reply code outside 200..=599",
            InvalidReply::Character => "reply text contains CR or NUL",
            InvalidReply::LineTooLong => "reply line longer than 512 octets",
            InvalidReply::StatusClass => "enhanced status class differs from the reply code",
        })
    }
}

impl std::error::Error for InvalidReply {}

fn class_digit(c: StatusClass) -> u16 {
    match c {
        StatusClass::Success => 2,
        StatusClass::Transient => 4,
        _ => 5,
    }
}

impl Reply {
    /// Builds a reply; `text` holds one line per `\n`-separated part.
    ///
    /// # Errors
    /// [`InvalidReply`] when the code is outside 200..=599, a line holds CR or NUL, or a
    /// line is longer than RFC 5321 §4.5.3.1.5 allows.
    pub fn new(code: u16, text: &str) -> Result<Reply, InvalidReply> {
        if !(200..=599).contains(&code) {
            return Err(InvalidReply::Code);
        }
        let lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        for l in &lines {
            if l.bytes().any(|b| b == b'\r' || b == 0) {
                return Err(InvalidReply::Character);
            }
            // "250-" + "x.yyy.zzz " + text + CRLF <= 512
            if l.len() > 512 - 4 - 12 - 2 {
                return Err(InvalidReply::LineTooLong);
            }
        }
        Ok(Reply {
            code,
            status: None,
            lines,
        })
    }

    /// Adds an RFC 3463 enhanced status code, written at the start of every line.
    ///
    /// The class should match the code's first digit; [`Reply::checked_status`] enforces it.
    #[must_use]
    pub fn with_status(mut self, status: EnhancedStatus) -> Reply {
        self.status = Some(status);
        self
    }

    /// Like [`Reply::with_status`] but refuses a status whose class differs from the code.
    ///
    /// # Errors
    /// [`InvalidReply::StatusClass`].
    pub fn checked_status(self, status: EnhancedStatus) -> Result<Reply, InvalidReply> {
        if class_digit(status.class()) == self.code / 100 {
            Ok(self.with_status(status))
        } else {
            Err(InvalidReply::StatusClass)
        }
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, when present.
    pub fn status(&self) -> Option<EnhancedStatus> {
        self.status
    }

    /// The text lines, without codes.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// True for 2xx and 3xx (RFC 5321 §4.2.1 positive completion/intermediate).
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// True for 4xx: transient negative completion.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// True for 5xx: permanent negative completion.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the wire form (CRLF line ends, `-` on all lines but the last).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let n = self.lines.len();
        for (i, l) in self.lines.iter().enumerate() {
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(if i + 1 == n { b' ' } else { b'-' });
            if let Some(s) = self.status {
                out.extend_from_slice(s.to_string().as_bytes());
                if !l.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl fmt::Display for Reply {
    /// The reply as qmail-remote quoted it: every line with its code, lines joined by `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wire = Vec::new();
        self.write_to(&mut wire);
        let text = String::from_utf8_lossy(&wire);
        let text = text.replace("\r\n", "\n");
        f.write_str(text.trim_end_matches('\n'))
    }
}

/// Why a reply could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseReplyError {
    /// A line does not start with three digits followed by space, `-` or the line end.
    Malformed,
    /// The reply exceeded [`MAX_REPLY_BYTES`].
    TooLong,
}

impl fmt::Display for ParseReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseReplyError::Malformed => "malformed smtp reply line",
            ParseReplyError::TooLong => "smtp reply too long",
        })
    }
}

impl std::error::Error for ParseReplyError {}

/// What [`ReplyParser::feed`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyStatus {
    /// A whole reply, and how many input bytes it used; feed the rest again.
    Complete(Reply, usize),
    /// All input was consumed and the reply is not finished yet.
    Partial,
}

/// Incremental, bounded reply parser (RFC 5321 §4.2.1 multi-line replies).
///
/// Accepts input split anywhere. Memory is bounded by [`MAX_REPLY_LINE`] and
/// [`MAX_REPLY_TEXT`]; an endless continuation is cut off at [`MAX_REPLY_BYTES`]. A line
/// that ends in a bare LF is accepted (lenient: qmail-remote read lines up to LF). As
/// qmail-remote did, continuation lines' codes are not compared with the first one; the
/// first line's code is the reply's code. After an error the parser is reset.
///
/// ```
/// use mta_smtp::{ReplyParser, ReplyStatus};
/// let mut p = ReplyParser::new();
/// assert_eq!(p.feed(b"250-mx.example\r\n250-PIPE")?, ReplyStatus::Partial);
/// match p.feed(b"LINING\r\n250 8BITMIME\r\n")? {
///     ReplyStatus::Complete(r, used) => {
///         assert_eq!((r.code(), r.lines().len(), used), (250, 3, 22));
///     }
///     ReplyStatus::Partial => unreachable!(),
/// }
/// # Ok::<(), mta_smtp::ParseReplyError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
    kept: usize,
    total: usize,
    line: Vec<u8>,
    line_len: usize,
}

impl ReplyParser {
    /// A parser waiting for the first line of a reply.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// True when part of a reply has been read.
    pub fn is_mid_reply(&self) -> bool {
        self.code.is_some() || self.line_len > 0
    }

    /// Feeds received bytes.
    ///
    /// # Errors
    /// [`ParseReplyError`] for a malformed line or an over-long reply; the parser is reset
    /// and the connection should be treated as failed.
    pub fn feed(&mut self, input: &[u8]) -> Result<ReplyStatus, ParseReplyError> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            let (part, eol) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            used += part.len() + usize::from(eol);
            self.total = self.total.saturating_add(part.len() + usize::from(eol));
            if self.total > MAX_REPLY_BYTES {
                *self = ReplyParser::new();
                return Err(ParseReplyError::TooLong);
            }
            let room = MAX_REPLY_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            self.line_len = self.line_len.saturating_add(part.len());
            if !eol {
                return Ok(ReplyStatus::Partial);
            }
            match self.end_line() {
                Ok(Some(reply)) => return Ok(ReplyStatus::Complete(reply, used)),
                Ok(None) => {}
                Err(e) => {
                    *self = ReplyParser::new();
                    return Err(e);
                }
            }
        }
        Ok(ReplyStatus::Partial)
    }

    fn end_line(&mut self) -> Result<Option<Reply>, ParseReplyError> {
        let mut line = std::mem::take(&mut self.line);
        let full = self.line_len <= MAX_REPLY_LINE;
        self.line_len = 0;
        if full && line.last() == Some(&b'\r') {
            line.pop();
        }
        let digits = line.get(..3).ok_or(ParseReplyError::Malformed)?;
        if !digits.iter().all(u8::is_ascii_digit) || !(b'1'..=b'5').contains(&digits[0]) {
            return Err(ParseReplyError::Malformed);
        }
        let code = digits
            .iter()
            .fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
        let (last, text) = match line.get(3) {
            None => (true, &line[3..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(ParseReplyError::Malformed),
        };
        let first = *self.code.get_or_insert(code);
        if self.kept < MAX_REPLY_TEXT {
            let keep = text.len().min(MAX_REPLY_TEXT - self.kept);
            self.kept += keep;
            let clean: Vec<u8> = text[..keep]
                .iter()
                .map(|&b| if b == 0 || b == b'\r' { b'?' } else { b })
                .collect();
            self.lines
                .push(String::from_utf8_lossy(&clean).into_owned());
        }
        self.line = line;
        self.line.clear();
        if !last {
            return Ok(None);
        }
        let mut lines = std::mem::take(&mut self.lines);
        *self = ReplyParser {
            line: std::mem::take(&mut self.line),
            ..ReplyParser::new()
        };
        let status = lines
            .first()
            .and_then(|l| EnhancedStatus::parse_prefix(l.as_bytes()))
            .filter(|(s, _)| class_digit(s.class()) == first / 100)
            .map(|(s, _)| s);
        if let Some(s) = status {
            let prefix = s.to_string();
            for l in &mut lines {
                if let Some(rest) = l.strip_prefix(prefix.as_str()) {
                    *l = rest.strip_prefix(' ').unwrap_or(rest).to_owned();
                }
            }
        }
        Ok(Some(Reply {
            code: first,
            status,
            lines,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(wire: &[u8]) -> Result<Vec<Reply>, ParseReplyError> {
        let mut p = ReplyParser::new();
        let mut out = Vec::new();
        let mut rest = wire;
        while !rest.is_empty() {
            match p.feed(rest)? {
                ReplyStatus::Complete(r, n) => {
                    out.push(r);
                    rest = &rest[n..];
                }
                ReplyStatus::Partial => break,
            }
        }
        Ok(out)
    }

    #[test]
    fn multi_line_with_status() {
        let r = parse_all(b"550-5.1.1 no\r\n550 5.1.1 such user\r\n").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code(), 550);
        assert_eq!(r[0].status().unwrap().to_string(), "5.1.1");
        assert_eq!(r[0].lines(), ["no", "such user"]);
        assert_eq!(r[0].to_string(), "550-5.1.1 no\n550 5.1.1 such user");
    }

    #[test]
    fn status_of_other_class_is_text() {
        let r = parse_all(b"250 5.1.1 odd\r\n").unwrap();
        assert_eq!(r[0].status(), None);
        assert_eq!(r[0].lines(), ["5.1.1 odd"]);
    }

    #[test]
    fn bare_code_and_bare_lf() {
        let r = parse_all(b"220\n250 ok\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].lines(), [""]);
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            &b"25\r\n"[..],
            b"abc ok\r\n",
            b"2500 x\r\n",
            b"650 x\r\n",
            b"\r\n",
        ] {
            assert_eq!(parse_all(bad), Err(ParseReplyError::Malformed), "{bad:?}");
        }
        // After an error the parser starts afresh.
        let mut p = ReplyParser::new();
        assert!(p.feed(b"xx\r\n").is_err());
        assert!(matches!(
            p.feed(b"250 ok\r\n"),
            Ok(ReplyStatus::Complete(..))
        ));
    }

    #[test]
    fn endless_continuation_is_cut_off() {
        let mut p = ReplyParser::new();
        let line = b"250-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut err = None;
        for _ in 0..2000 {
            if let Err(e) = p.feed(line) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ParseReplyError::TooLong));
    }

    #[test]
    fn overlong_line_and_nul_are_bounded() {
        let mut wire = b"554-".to_vec();
        wire.extend(std::iter::repeat_n(b'x', 20_000));
        wire.extend_from_slice(b"\r\n554 a\x00b\r\n");
        let r = parse_all(&wire).unwrap();
        assert_eq!(r[0].lines()[0].len(), MAX_REPLY_LINE - 4);
        assert!(r[0].lines().iter().map(String::len).sum::<usize>() <= MAX_REPLY_TEXT);
        assert_eq!(r[0].code(), 554);
    }

    #[test]
    fn new_validates() {
        assert_eq!(Reply::new(199, "x"), Err(InvalidReply::Code));
        assert_eq!(Reply::new(250, "a\rb"), Err(InvalidReply::Character));
        assert_eq!(
            Reply::new(250, &"x".repeat(600)),
            Err(InvalidReply::LineTooLong)
        );
        let s = "4.2.2".parse().unwrap();
        assert_eq!(
            Reply::new(550, "x").unwrap().checked_status(s),
            Err(InvalidReply::StatusClass)
        );
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        (
            200u16..600,
            proptest::collection::vec("[a-zA-Z][ -~]{0,40}", 1..5),
            any::<bool>(),
        )
            .prop_map(|(code, lines, st)| {
                let mut r = Reply::new(code, &lines.join("\n")).unwrap();
                if st {
                    let class = match code / 100 {
                        2 => StatusClass::Success,
                        4 => StatusClass::Transient,
                        _ => StatusClass::Permanent,
                    };
                    if code / 100 != 3 {
                        r = r.with_status(EnhancedStatus::new(class, 1, 7).unwrap());
                    }
                }
                r
            })
    }

    proptest! {
        #[test]
        fn parse_format_round_trip(r in arb_reply(), split in 0usize..200) {
            let mut wire = Vec::new();
            r.write_to(&mut wire);
            let split = split.min(wire.len());
            let mut p = ReplyParser::new();
            let first = p.feed(&wire[..split]).unwrap();
            let got = match first {
                ReplyStatus::Complete(got, n) => { prop_assert_eq!(n, wire.len()); got }
                ReplyStatus::Partial => match p.feed(&wire[split..]).unwrap() {
                    ReplyStatus::Complete(got, n) => { prop_assert_eq!(split + n, wire.len()); got }
                    ReplyStatus::Partial => panic!("incomplete"),
                },
            };
            prop_assert_eq!(got, r);
        }
    }
}
