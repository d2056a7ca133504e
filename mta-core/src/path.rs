//! RFC 5321 §4.1.2 envelope paths: `Reverse-path` (MAIL FROM) and `Forward-path` (RCPT TO).
//!
//! API skeleton; the parser is being filled in (see issue 2).

use std::fmt;

use crate::{Address, Domain};

/// Options for path parsing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathOptions {
    /// The session negotiated SMTPUTF8 (RFC 6531): UTF-8 local parts and domains are allowed.
    pub smtputf8: bool,
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )` (RFC 5321 §4.1.2).
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
}

impl fmt::Display for Mailbox {
    /// Writes `local@domain`, quoting the local part when it is not a dot-string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
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

/// `Forward-path = Path`, plus `<Postmaster>` without a domain (RFC 5321 §4.1.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    /// `<Postmaster>` (case-insensitive) with no domain.
    Postmaster,
    /// A mailbox.
    Mailbox(Mailbox),
}

/// Why a path was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsePathError {
    /// Byte offset into the input where the problem was found.
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

impl fmt::Display for ParsePathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for ParsePathError {}

/// Parses a `Reverse-path` at the start of `input`, returning it and the bytes consumed.
///
/// # Errors
/// [`ParsePathError`] with the offset and reason.
pub fn parse_reverse_path(
    input: &[u8],
    opts: PathOptions,
) -> Result<(ReversePath, usize), ParsePathError> {
    let _ = (input, opts);
    Err(ParsePathError {
        offset: 0,
        kind: PathErrorKind::Syntax("not implemented yet"),
    })
}

/// Parses a `Forward-path` at the start of `input`, returning it and the bytes consumed.
///
/// # Errors
/// [`ParsePathError`] with the offset and reason.
pub fn parse_forward_path(
    input: &[u8],
    opts: PathOptions,
) -> Result<(ForwardPath, usize), ParsePathError> {
    let _ = (input, opts);
    Err(ParsePathError {
        offset: 0,
        kind: PathErrorKind::Syntax("not implemented yet"),
    })
}
