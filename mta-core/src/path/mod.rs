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

mod cursor;
mod literal;

use std::fmt;

use crate::{Address, Domain};

use cursor::{Cursor, err_at};

/// RFC 5321 §4.5.3.1.1: maximum local-part length in octets.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: maximum domain length in octets.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: maximum path length in octets, angle brackets included.
pub const MAX_PATH: usize = 256;

/// Options for RFC 5321 §4.1.2 path parsing.
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
    /// Control characters have no RFC 5321 spelling at all; a local part holding one
    /// (only possible through [`Mailbox::new`]) is written as is and will not parse.
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

/// Why a path was refused by RFC 5321 §4.1.2 / §4.5.3.1 / RFC 6531, and where.
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

/// qmail's double-bounce sender as a path (reference §4: `#@[]`).
const DOUBLE_BOUNCE: &[u8] = b"<#@[]>";

/// Parses a `Reverse-path` at the start of `input`, returning it and the bytes consumed.
///
/// RFC 5321 §4.1.2: `Reverse-path = Path / "<>"`. Also qmail's double-bounce sender
/// `<#@[]>` (`// lenient:`), which qmail-smtpd accepts.
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
    // lenient: `<#@[]>` is qmail's double-bounce sender (qmail-send writes it; qmail-smtpd
    // takes it). `[]` is no RFC 5321 address literal, but qmail hosts relay double bounces
    // to each other with it, so it is accepted as a reverse path, and only as a whole.
    if input.starts_with(DOUBLE_BOUNCE) {
        return Ok((
            ReversePath::Mailbox(Mailbox::new("#", "[]")),
            DOUBLE_BOUNCE.len(),
        ));
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
/// leniencies, such as a client that writes `MAIL FROM:user@host`. (The RFC 5322 header
/// `mailbox`, with a display name, is [`crate::address_list::parse_header_mailbox`].)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fwd(s: &str) -> Result<(ForwardPath, usize), ParsePathError> {
        parse_forward_path(s.as_bytes(), PathOptions::default())
    }

    #[test]
    fn qmail_double_bounce_sender_is_a_reverse_path_only() {
        let (rp, n) = parse_reverse_path(b"<#@[]> SIZE=10", PathOptions::default()).unwrap();
        assert_eq!(n, 6);
        assert_eq!(rp.to_address().as_bytes(), b"#@[]");
        assert!(fwd("<#@[]>").is_err());
        assert!(parse_reverse_path(b"<a#@[]>", PathOptions::default()).is_err());
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
