//! RFC 5321 §4.1.2 envelope paths: `Reverse-path` (MAIL FROM) and `Forward-path` (RCPT TO).
//!
//! ```text
//! Reverse-path   = Path / "<>"
//! Forward-path   = Path
//! Path           = "<" [ A-d-l ":" ] Mailbox ">"
//! A-d-l          = At-domain *( "," At-domain )
//! At-domain      = "@" Domain
//! Mailbox        = Local-part "@" ( Domain / address-literal )
//! Local-part     = Dot-string / Quoted-string
//! ```
//!
//! The parsers read one path at the start of their input and return it together with the
//! number of bytes consumed, so the caller (the SMTP command parser) can go on with the ESMTP
//! parameters that follow. They are strict: no missing angle brackets, no spaces. Leniency
//! for broken clients is the SMTP crate's business; [`parse_mailbox`] is there for it.
//!
//! Source routes (`<@a,@b:user@c>`) are parsed and dropped (RFC 5321 §3.6.1, §C). Sizes are
//! checked against §4.5.3.1, each with its own [`PathErrorKind`]. UTF-8 local parts and
//! domains are accepted only with [`PathOptions::smtputf8`] (RFC 6531 §3.3).
//!
//! ```
//! use mta_core::path::{parse_forward_path, ForwardPath, PathOptions};
//! let (path, used) = parse_forward_path(b"<\"joe smith\"@Example.com> NOTIFY=NEVER", PathOptions::default())?;
//! let ForwardPath::Mailbox(m) = path else { panic!() };
//! assert_eq!(m.local_part(), "joe smith");
//! assert_eq!(m.to_string(), "\"joe smith\"@Example.com");
//! assert_eq!(used, 25);
//! # Ok::<(), mta_core::path::ParsePathError>(())
//! ```

use std::fmt;
use std::net::Ipv6Addr;

use crate::{Address, Domain};

/// RFC 5321 §4.5.3.1.1: maximum local-part length in octets.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: maximum domain length in octets.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: maximum path length in octets, angle brackets included.
pub const MAX_PATH: usize = 256;

/// Options for path parsing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathOptions {
    /// The session negotiated SMTPUTF8 (RFC 6531): UTF-8 local parts and domains are allowed.
    pub smtputf8: bool,
}

impl PathOptions {
    /// Options with SMTPUTF8 (RFC 6531 §3.3) switched on or off.
    pub fn with_smtputf8(smtputf8: bool) -> Self {
        PathOptions { smtputf8 }
    }
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )` (RFC 5321 §4.1.2).
///
/// The local part is kept unquoted; [`fmt::Display`] quotes it again when it is not a
/// `Dot-string`, so that parsing the displayed form gives back the same mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox {
    local: String,
    domain: Domain,
}

impl Mailbox {
    /// Builds a mailbox from an already-unquoted local part and a domain.
    pub fn new(local: impl Into<String>, domain: impl Into<Domain>) -> Self {
        Mailbox {
            local: local.into(),
            domain: domain.into(),
        }
    }

    /// The local part, unquoted (quoted-pairs resolved).
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain or address literal.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// qmail's internal form `local@domain` (unquoted).
    pub fn to_address(&self) -> Address {
        Address::from_parts(self.local.as_bytes(), self.domain.as_str().as_bytes())
    }

    /// True when the local part needs no quoting: it is an RFC 5321 §4.1.2 `Dot-string`
    /// (`Atom *("." Atom)`, with RFC 6531 UTF-8 counted as `atext`).
    pub fn local_is_dot_string(&self) -> bool {
        is_dot_string(&self.local)
    }
}

/// RFC 5321 §4.1.2 `Dot-string = Atom *("." Atom)`, RFC 6531 §3.3 `atext =/ UTF8-non-ascii`.
fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(|b| is_atext(b) || b >= 0x80))
}

/// RFC 5322 §3.2.3 `atext`, which RFC 5321 §4.1.2 `Atom` uses.
pub(crate) fn is_atext(b: u8) -> bool {
    ATEXT[usize::from(b)]
}

/// The ASCII `atext` bytes as a table: ALPHA / DIGIT / ``!#$%&'*+-/=?^_`{|}~``.
static ATEXT: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'/'
                    | b'='
                    | b'?'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'{'
                    | b'|'
                    | b'}'
                    | b'~'
            );
        i += 1;
    }
    t
};

impl fmt::Display for Mailbox {
    /// Writes `local@domain`, quoting the local part when it is not a `Dot-string`
    /// (RFC 5321 §4.1.2 `Quoted-string`, with `"` and `\` written as quoted-pairs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

/// `Reverse-path = Path / "<>"` (RFC 5321 §4.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`: the null reverse path, used by bounces (§4.5.5).
    Null,
    /// A mailbox.
    Mailbox(Mailbox),
}

impl ReversePath {
    /// qmail's internal form: the empty address for `<>`, else `local@domain`.
    pub fn to_address(&self) -> Address {
        match self {
            ReversePath::Null => Address::null(),
            ReversePath::Mailbox(m) => m.to_address(),
        }
    }
}

impl fmt::Display for ReversePath {
    /// Writes the path with its angle brackets: `<>` or `<local@domain>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// `Forward-path = Path`, plus `<Postmaster>` without a domain (RFC 5321 §4.1.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    /// `<Postmaster>` (case-insensitive) with no domain.
    Postmaster,
    /// A mailbox.
    Mailbox(Mailbox),
}

impl ForwardPath {
    /// qmail's internal form: `postmaster` (no domain; the caller qualifies it) or
    /// `local@domain`.
    pub fn to_address(&self) -> Address {
        match self {
            ForwardPath::Postmaster => Address::from("postmaster"),
            ForwardPath::Mailbox(m) => m.to_address(),
        }
    }
}

impl fmt::Display for ForwardPath {
    /// Writes the path with its angle brackets: `<Postmaster>` or `<local@domain>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// Why a path was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsePathError {
    /// Byte offset into the input where the problem was found (for the size limits: where
    /// the over-long element starts).
    pub offset: usize,
    /// What was wrong.
    pub kind: PathErrorKind,
}

/// The kinds of [`ParsePathError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathErrorKind {
    /// The input does not match the RFC 5321 grammar; the text says which rule failed.
    Syntax(&'static str),
    /// Local part over 64 octets (RFC 5321 §4.5.3.1.1).
    LocalPartTooLong,
    /// Domain over 255 octets (RFC 5321 §4.5.3.1.2).
    DomainTooLong,
    /// Path over 256 octets including the angle brackets (RFC 5321 §4.5.3.1.3).
    PathTooLong,
    /// Non-ASCII text without SMTPUTF8 negotiated (RFC 6531 §3.3).
    Utf8NotAllowed,
}

impl fmt::Display for PathErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathErrorKind::Syntax(what) => write!(f, "syntax error: {what}"),
            PathErrorKind::LocalPartTooLong => f.write_str("local part longer than 64 octets"),
            PathErrorKind::DomainTooLong => f.write_str("domain longer than 255 octets"),
            PathErrorKind::PathTooLong => f.write_str("path longer than 256 octets"),
            PathErrorKind::Utf8NotAllowed => f.write_str("non-ASCII address without SMTPUTF8"),
        }
    }
}

impl fmt::Display for ParsePathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for ParsePathError {}

/// Parses a `Reverse-path` at the start of `input`, returning it and the bytes consumed.
///
/// RFC 5321 §4.1.2: `Reverse-path = Path / "<>"`.
///
/// # Errors
/// [`ParsePathError`] with the offset and reason: grammar, §4.5.3.1 size limits, or UTF-8
/// without SMTPUTF8.
pub fn parse_reverse_path(
    input: &[u8],
    opts: PathOptions,
) -> Result<(ReversePath, usize), ParsePathError> {
    if input.starts_with(b"<>") {
        return Ok((ReversePath::Null, 2));
    }
    let mut c = Cursor::new(input, opts);
    let m = c.path(false)?;
    match m {
        Some(m) => Ok((ReversePath::Mailbox(m), c.pos)),
        None => Err(err_at(
            1,
            PathErrorKind::Syntax("Postmaster without domain"),
        )),
    }
}

/// Parses a `Forward-path` at the start of `input`, returning it and the bytes consumed.
///
/// RFC 5321 §4.1.1.3: `"<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path`; the
/// domainless `<Postmaster>` is recognised in any case.
///
/// # Errors
/// [`ParsePathError`] with the offset and reason: grammar, §4.5.3.1 size limits, or UTF-8
/// without SMTPUTF8.
pub fn parse_forward_path(
    input: &[u8],
    opts: PathOptions,
) -> Result<(ForwardPath, usize), ParsePathError> {
    let mut c = Cursor::new(input, opts);
    let m = c.path(true)?;
    let fp = match m {
        Some(m) => ForwardPath::Mailbox(m),
        None => ForwardPath::Postmaster,
    };
    Ok((fp, c.pos))
}

/// Parses a bare RFC 5321 §4.1.2 `Mailbox` (no angle brackets, no source route) at the start
/// of `input`, returning it and the bytes consumed. For callers that implement their own
/// leniencies, such as a client that writes `MAIL FROM:user@host`.
///
/// # Errors
/// [`ParsePathError`] as for [`parse_forward_path`] (the 256-octet path limit is applied
/// to the mailbox plus two brackets).
pub fn parse_mailbox(input: &[u8], opts: PathOptions) -> Result<(Mailbox, usize), ParsePathError> {
    let mut c = Cursor::new(input, opts);
    let m = c.mailbox()?;
    if c.pos + 2 > MAX_PATH {
        return Err(err_at(0, PathErrorKind::PathTooLong));
    }
    Ok((m, c.pos))
}

/// A position in the input being parsed.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    opts: PathOptions,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8], opts: PathOptions) -> Self {
        Cursor { s, pos: 0, opts }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn err(&self, kind: PathErrorKind) -> ParsePathError {
        ParsePathError {
            offset: self.pos,
            kind,
        }
    }

    fn syntax(&self, what: &'static str) -> ParsePathError {
        self.err(PathErrorKind::Syntax(what))
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), ParsePathError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(what))
        }
    }

    /// One UTF-8 encoded non-ASCII character at the cursor (RFC 6531 §3.3
    /// `UTF8-non-ascii`), allowed only with SMTPUTF8. Advances past it.
    fn utf8_char(&mut self) -> Result<(), ParsePathError> {
        if !self.opts.smtputf8 {
            return Err(self.err(PathErrorKind::Utf8NotAllowed));
        }
        let len = match self.peek() {
            Some(0xc2..=0xdf) => 2,
            Some(0xe0..=0xef) => 3,
            Some(0xf0..=0xf4) => 4,
            _ => return Err(self.syntax("invalid UTF-8")),
        };
        let end = self.pos + len;
        match self.s.get(self.pos..end).map(std::str::from_utf8) {
            Some(Ok(_)) => {
                self.pos = end;
                Ok(())
            }
            _ => Err(self.syntax("invalid UTF-8")),
        }
    }

    /// The text of `self.s[start..self.pos]`, which the caller has validated as ASCII or
    /// UTF-8 character by character.
    fn text(&self, start: usize) -> Result<&'a str, ParsePathError> {
        std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| self.syntax("invalid UTF-8"))
    }

    /// `Path = "<" [ A-d-l ":" ] Mailbox ">"`; `Ok(None)` is `<Postmaster>`, returned only
    /// when `postmaster` is set.
    fn path(&mut self, postmaster: bool) -> Result<Option<Mailbox>, ParsePathError> {
        self.expect(b'<', "expected '<'")?;
        if postmaster
            && self
                .s
                .get(1..11)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"postmaster"))
            && self.s.get(11) == Some(&b'>')
        {
            self.pos = 12;
            return Ok(None);
        }
        match self.peek() {
            Some(b'@') => self.source_route()?,
            Some(b'>') => return Err(self.syntax("empty path")),
            _ => {}
        }
        let m = self.mailbox()?;
        self.expect(b'>', "expected '>' after mailbox")?;
        if self.pos > MAX_PATH {
            return Err(err_at(0, PathErrorKind::PathTooLong));
        }
        Ok(Some(m))
    }

    /// `A-d-l ":"` with `A-d-l = At-domain *( "," At-domain )`, `At-domain = "@" Domain`.
    /// The route is checked and discarded (RFC 5321 §3.6.1: "MUST BE accepted ... MAY
    /// ignore the routes").
    fn source_route(&mut self) -> Result<(), ParsePathError> {
        loop {
            self.expect(b'@', "expected '@' in source route")?;
            self.domain()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b':') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.syntax("expected ',' or ':' in source route")),
            }
        }
    }

    /// `Mailbox = Local-part "@" ( Domain / address-literal )`.
    fn mailbox(&mut self) -> Result<Mailbox, ParsePathError> {
        let local = self.local_part()?;
        self.expect(b'@', "expected '@' after local part")?;
        let domain = self.domain()?;
        Ok(Mailbox::new(local, domain))
    }

    /// `Local-part = Dot-string / Quoted-string`, unquoted, at most 64 octets as written.
    fn local_part(&mut self) -> Result<String, ParsePathError> {
        let start = self.pos;
        let local = if self.peek() == Some(b'"') {
            self.quoted_string()?
        } else {
            self.dot_string()?
        };
        if self.pos - start > MAX_LOCAL_PART {
            return Err(err_at(start, PathErrorKind::LocalPartTooLong));
        }
        Ok(local)
    }

    /// `Dot-string = Atom *("." Atom)`, `Atom = 1*atext`.
    fn dot_string(&mut self) -> Result<String, ParsePathError> {
        let start = self.pos;
        loop {
            let atom = self.pos;
            while let Some(b) = self.peek() {
                if is_atext(b) {
                    self.pos += 1;
                } else if b >= 0x80 {
                    self.utf8_char()?;
                } else {
                    break;
                }
            }
            if self.pos == atom {
                return Err(self.syntax("empty atom in local part"));
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                return Ok(self.text(start)?.to_owned());
            }
        }
    }

    /// `Quoted-string = DQUOTE *QcontentSMTP DQUOTE`, returned without quotes and with
    /// `quoted-pairSMTP = %d92 %d32-126` resolved.
    fn quoted_string(&mut self) -> Result<String, ParsePathError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.syntax("unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(&b @ 32..=126) = self.s.get(self.pos) else {
                        return Err(self.syntax("invalid quoted-pair"));
                    };
                    out.push(char::from(b));
                    self.pos += 1;
                }
                Some(b @ 32..=126) => {
                    out.push(char::from(b));
                    self.pos += 1;
                }
                Some(0x80..) => {
                    let start = self.pos;
                    self.utf8_char()?;
                    out.push_str(self.text(start)?);
                }
                Some(_) => return Err(self.syntax("control character in quoted string")),
            }
        }
    }

    /// `Domain / address-literal`, at most 255 octets as written.
    fn domain(&mut self) -> Result<Domain, ParsePathError> {
        let start = self.pos;
        if self.peek() == Some(b'[') {
            self.address_literal()?;
        } else {
            self.domain_name()?;
        }
        if self.pos - start > MAX_DOMAIN {
            return Err(err_at(start, PathErrorKind::DomainTooLong));
        }
        Ok(Domain::new(self.text(start)?))
    }

    /// `Domain = sub-domain *("." sub-domain)`, `sub-domain = Let-dig [Ldh-str]`
    /// (RFC 6531: `sub-domain =/ U-label`, taken as UTF-8 letters).
    fn domain_name(&mut self) -> Result<(), ParsePathError> {
        loop {
            let label = self.pos;
            let mut last = 0u8;
            while let Some(b) = self.peek() {
                if b.is_ascii_alphanumeric() || (b == b'-' && self.pos > label) {
                    last = b;
                    self.pos += 1;
                } else if b >= 0x80 {
                    self.utf8_char()?;
                    last = b'a';
                } else {
                    break;
                }
            }
            if self.pos == label {
                return Err(self.syntax("expected a domain label"));
            }
            if last == b'-' {
                return Err(self.syntax("domain label ends with '-'"));
            }
            if self.peek() != Some(b'.') {
                return Ok(());
            }
            self.pos += 1;
            // lenient: a trailing dot (`user@example.com.`) names the DNS root; some MUAs and
            // scripts send it. Domain::new drops it.
            if !self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b >= 0x80)
            {
                return Ok(());
            }
        }
    }

    /// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
    /// General-address-literal ) "]"` (RFC 5321 §4.1.3), validated.
    fn address_literal(&mut self) -> Result<(), ParsePathError> {
        let open = self.pos;
        self.pos += 1;
        let body_len = self.s[self.pos..]
            .iter()
            .position(|&b| b == b']' || !(33..=126).contains(&b))
            .filter(|&n| self.s[self.pos + n] == b']')
            .ok_or_else(|| self.syntax("unterminated address literal"))?;
        let body = &self.s[self.pos..self.pos + body_len];
        let ok = if body.first().is_some_and(u8::is_ascii_digit) {
            is_ipv4(body)
        } else if body.len() > 5 && body[..5].eq_ignore_ascii_case(b"IPv6:") {
            is_ipv6(&body[5..])
        } else {
            is_general_literal(body)
        };
        if !ok {
            return Err(err_at(
                open,
                PathErrorKind::Syntax("invalid address literal"),
            ));
        }
        self.pos += body_len + 1;
        Ok(())
    }
}

fn err_at(offset: usize, kind: PathErrorKind) -> ParsePathError {
    ParsePathError { offset, kind }
}

/// `IPv4-address-literal = Snum 3("."  Snum)`, `Snum = 1*3DIGIT` with value 0-255.
fn is_ipv4(s: &[u8]) -> bool {
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
fn is_ipv6(s: &[u8]) -> bool {
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
fn is_general_literal(s: &[u8]) -> bool {
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fwd(s: &str) -> Result<(ForwardPath, usize), ParsePathError> {
        parse_forward_path(s.as_bytes(), PathOptions::default())
    }

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

    #[test]
    fn consumed_stops_after_bracket() {
        let (_, n) = fwd("<a@b> SIZE=10").unwrap();
        assert_eq!(n, 5);
    }

    #[test]
    fn display_quotes_when_needed() {
        assert_eq!(Mailbox::new("a.b", "c").to_string(), "a.b@c");
        assert_eq!(Mailbox::new("a..b", "c").to_string(), "\"a..b\"@c");
        assert_eq!(Mailbox::new("", "c").to_string(), "\"\"@c");
        assert_eq!(Mailbox::new("a\"b\\", "c").to_string(), "\"a\\\"b\\\\\"@c");
        assert_eq!(ForwardPath::Postmaster.to_string(), "<Postmaster>");
        assert_eq!(ReversePath::Null.to_string(), "<>");
    }
}
