//! RFC 5322 §3.4 header addresses: `address-list`, `mailbox-list`, `mailbox`, `name-addr`,
//! `group`, with the obsolete syntax of §4.4 (`obs-route`, `obs-local-part`, `obs-domain`,
//! `obs-phrase`, empty list elements) and CFWS wherever the grammar allows it.
//!
//! ```text
//! address-list = (address *("," address)) / obs-addr-list
//! address      = mailbox / group
//! mailbox      = name-addr / addr-spec
//! name-addr    = [display-name] angle-addr
//! angle-addr   = [CFWS] "<" addr-spec ">" [CFWS] / obs-angle-addr
//! group        = display-name ":" [group-list] ";" [CFWS]
//! addr-spec    = local-part "@" domain
//! ```
//!
//! The result is a structured value ([`AddressList`] of [`AddressItem`]s: [`HeaderMailbox`]
//! or [`Group`]) holding the *meaning*: display names with quoting removed and words joined
//! by single spaces (RFC 2047 encoded words left as they are), local parts unquoted,
//! domains, and the comments found in each address. Its `Display` writes canonical RFC 5322
//! text, and parsing that text gives the same value back.
//!
//! Source routes are dropped. UTF-8 is accepted as in RFC 6532. Parsing is linear in the
//! input (nested comments are counted, not recursed into) and never panics; errors carry a
//! byte offset and an [`AddressErrorKind`].
//!
//! qmail-inject's leniency (token822, qmail-reference §7.1) is available through
//! [`ParseOptions::qmail_inject`]: bare local parts get the default host, words without
//! commas become separate addresses, `<>` is kept, and addresses are rewritten as
//! qmail-inject does (plus qmail's `percenthack`). [`token822`] is the same grammar at the
//! token level, printing fields back exactly as qmail-inject does (what `mta inject` uses).
//!
//! ```
//! use mta_core::address_list::{parse_address_list, AddressItem, ParseOptions};
//! let list = parse_address_list(
//!     b"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>, A Group:Ed <ed@x.test>;",
//!     &ParseOptions::strict(),
//! )?;
//! let AddressItem::Mailbox(pete) = &list.items()[0] else { panic!() };
//! assert_eq!(pete.name(), Some("Pete"));
//! assert_eq!(pete.to_address().as_bytes(), b"pete@silly.test");
//! assert_eq!(pete.comments(), ["A nice ) chap", "his account", "his host"]);
//! assert_eq!(
//!     list.to_string(),
//!     "Pete <pete@silly.test> (A nice \\) chap) (his account) (his host), A Group: Ed <ed@x.test>;"
//! );
//! # Ok::<(), mta_core::address_list::ParseAddressError>(())
//! ```

mod lexer;
mod parser;
mod qmail;
mod render;
pub mod token822;

use std::fmt;

use crate::{Address, Domain};

pub use qmail::{QmailRewrite, percent_hack};

/// Options for the header address parsers: strict RFC 5322 §3.4/§4.4, or qmail-inject's
/// token822 leniency (qmail-reference §7.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseOptions {
    /// qmail-inject's leniency and rewriting; `None` parses strict RFC 5322.
    pub qmail: Option<QmailRewrite>,
}

impl ParseOptions {
    /// Strict RFC 5322 (including the obsolete syntax every reader must accept, §4).
    pub fn strict() -> Self {
        ParseOptions::default()
    }

    /// qmail-inject's token822 leniency with the given rewriting rules.
    pub fn qmail_inject(rewrite: QmailRewrite) -> Self {
        ParseOptions {
            qmail: Some(rewrite),
        }
    }
}

/// RFC 5322 §3.4 `mailbox`: an optional display name and an `addr-spec`, plus the comments
/// found inside it.
///
/// `domain` is `None` only for qmail-inject's `<>` (lenient parsing), never from strict
/// parsing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderMailbox {
    name: Option<String>,
    local: String,
    domain: Option<Domain>,
    comments: Vec<String>,
}

impl HeaderMailbox {
    /// A mailbox `local@domain` (RFC 5322 §3.4.1 `addr-spec`) without display name or
    /// comments. `local` is unquoted.
    pub fn new(local: impl Into<String>, domain: impl Into<Domain>) -> Self {
        HeaderMailbox {
            name: None,
            local: local.into(),
            domain: Some(domain.into()),
            comments: Vec::new(),
        }
    }

    /// qmail's `<>` (the null address in a header, kept by qmail-inject).
    pub fn null() -> Self {
        HeaderMailbox {
            name: None,
            local: String::new(),
            domain: None,
            comments: Vec::new(),
        }
    }

    /// Sets the display name (§3.4 `display-name`), unquoted.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a comment (§3.2.2), without its parentheses.
    #[must_use]
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comments.push(comment.into());
        self
    }

    /// The display name: quoting removed, words joined by single spaces, encoded words
    /// (RFC 2047) as written.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The local part, unquoted; §4.4 `obs-local-part` words are joined with `.`.
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain (a name or a `[literal]`).
    pub fn domain(&self) -> Option<&Domain> {
        self.domain.as_ref()
    }

    /// The comments inside this mailbox, in order, without their outer parentheses
    /// (nested comments keep theirs).
    pub fn comments(&self) -> &[String] {
        &self.comments
    }

    /// The envelope form `local@domain` (unquoted, qmail's internal form); the empty
    /// address for `<>`.
    pub fn to_address(&self) -> Address {
        match &self.domain {
            Some(d) => Address::from_parts(self.local.as_bytes(), d.as_str().as_bytes()),
            None => Address::from(self.local.as_str()),
        }
    }
}

/// RFC 5322 §3.4 `group`: a display name and zero or more mailboxes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Group {
    name: String,
    members: Vec<HeaderMailbox>,
    comments: Vec<String>,
}

impl Group {
    /// A group with the given display name and members (RFC 5322 §3.4 `group`).
    pub fn new(name: impl Into<String>, members: Vec<HeaderMailbox>) -> Self {
        Group {
            name: name.into(),
            members,
            comments: Vec::new(),
        }
    }

    /// The display name, unquoted.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The members (possibly none: `undisclosed-recipients:;`).
    pub fn members(&self) -> &[HeaderMailbox] {
        &self.members
    }

    /// Comments in the group's name or after its `;`.
    pub fn comments(&self) -> &[String] {
        &self.comments
    }
}

/// RFC 5322 §3.4 `address = mailbox / group`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressItem {
    /// A single mailbox.
    Mailbox(HeaderMailbox),
    /// A group of mailboxes.
    Group(Group),
}

/// RFC 5322 §3.4 `address-list`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddressList {
    items: Vec<AddressItem>,
}

impl AddressList {
    /// A list of the given items (RFC 5322 §3.4 `address-list`).
    pub fn new(items: Vec<AddressItem>) -> Self {
        AddressList { items }
    }

    /// The items, in order.
    pub fn items(&self) -> &[AddressItem] {
        &self.items
    }

    /// Consumes the list, returning its items.
    pub fn into_items(self) -> Vec<AddressItem> {
        self.items
    }

    /// Every mailbox, with group members in place of their groups: the recipients this
    /// field names (qmail-inject's `-t`).
    pub fn mailboxes(&self) -> impl Iterator<Item = &HeaderMailbox> {
        self.items.iter().flat_map(|item| match item {
            AddressItem::Mailbox(m) => std::slice::from_ref(m),
            AddressItem::Group(g) => g.members.as_slice(),
        })
    }
}

/// Why a header address was refused by the RFC 5322 §3.4 grammar, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseAddressError {
    /// Byte offset into the input.
    pub offset: usize,
    /// What was wrong.
    pub kind: AddressErrorKind,
}

/// The kinds of [`ParseAddressError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressErrorKind {
    /// The tokens do not match the RFC 5322 §3.4 grammar; the text names what was expected.
    Syntax(&'static str),
    /// No address at all where at least one is required.
    Empty,
    /// A `"` without its closing quote (§3.2.4).
    UnterminatedQuotedString,
    /// A `(` without its closing `)` (§3.2.2).
    UnterminatedComment,
    /// A `[` without its closing `]` (§3.4.1).
    UnterminatedDomainLiteral,
    /// A `)` with no open comment.
    UnbalancedParen,
    /// A `]` with no open domain literal.
    UnbalancedBracket,
    /// A character no rule allows here (e.g. NUL, or a control character outside quotes).
    InvalidCharacter,
    /// A CR or LF that is not part of a fold (§2.2.3: a fold is CRLF followed by WSP).
    BareLineBreak,
    /// The input is not UTF-8 (RFC 6532 allows UTF-8, nothing else).
    InvalidUtf8,
    /// The input starts with an address header's name (`To:`, `Cc:`, `From:`, ...) and
    /// does not parse: the whole header line was passed where the field body (RFC 5322
    /// §2.2, after the colon) belongs. Without this hint, `To: a@b` reads as a group
    /// named `To` and fails for want of its `;`. The offset is that of the colon.
    HeaderName,
}

impl fmt::Display for AddressErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressErrorKind::Syntax(what) => what,
            AddressErrorKind::Empty => "no address",
            AddressErrorKind::UnterminatedQuotedString => "unterminated quoted string",
            AddressErrorKind::UnterminatedComment => "unterminated comment",
            AddressErrorKind::UnterminatedDomainLiteral => "unterminated domain literal",
            AddressErrorKind::UnbalancedParen => "')' without '('",
            AddressErrorKind::UnbalancedBracket => "']' without '['",
            AddressErrorKind::InvalidCharacter => "invalid character",
            AddressErrorKind::BareLineBreak => "line break not followed by whitespace",
            AddressErrorKind::InvalidUtf8 => "invalid UTF-8",
            AddressErrorKind::HeaderName => {
                "input starts with a header name; pass the field body (after the colon)"
            }
        })
    }
}

impl fmt::Display for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for ParseAddressError {}

/// Parses an RFC 5322 §3.4 `address-list` (the body of `To:`, `Cc:`, `Bcc:`, `Reply-To:`),
/// which must hold at least one address. The whole input must be used; folds (CRLF or
/// bare LF followed by whitespace) are allowed anywhere CFWS is.
///
/// # Errors
/// [`ParseAddressError`] with the byte offset and the reason.
pub fn parse_address_list(
    input: &[u8],
    opts: &ParseOptions,
) -> Result<AddressList, ParseAddressError> {
    parser::parse(input, opts, parser::Context::AddressList)
        .map(AddressList::new)
        .map_err(|e| header_name_hint(input, e))
}

/// Replaces `e` by [`AddressErrorKind::HeaderName`] when `input` starts with the name of
/// a header that holds addresses and a colon (`To: a@b`): the caller passed the whole
/// line, not the field body.
fn header_name_hint(input: &[u8], e: ParseAddressError) -> ParseAddressError {
    const NAMES: [&[u8]; 12] = [
        b"to",
        b"cc",
        b"bcc",
        b"from",
        b"sender",
        b"reply-to",
        b"resent-to",
        b"resent-cc",
        b"resent-bcc",
        b"resent-from",
        b"resent-sender",
        b"return-path",
    ];
    let Some(colon) = input.iter().position(|&b| b == b':') else {
        return e;
    };
    let name = input[..colon].trim_ascii_end();
    if NAMES.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        ParseAddressError {
            offset: colon,
            kind: AddressErrorKind::HeaderName,
        }
    } else {
        e
    }
}

/// Parses an RFC 5322 §3.4 `mailbox-list` (the body of `From:`, `Resent-From:`): like an
/// address list, but groups are refused.
///
/// # Errors
/// [`ParseAddressError`] with the byte offset and the reason.
pub fn parse_mailbox_list(
    input: &[u8],
    opts: &ParseOptions,
) -> Result<Vec<HeaderMailbox>, ParseAddressError> {
    let items = parser::parse(input, opts, parser::Context::MailboxList)
        .map_err(|e| header_name_hint(input, e))?;
    Ok(items
        .into_iter()
        .filter_map(|item| match item {
            AddressItem::Mailbox(m) => Some(m),
            AddressItem::Group(_) => None,
        })
        .collect())
}

/// Parses exactly one RFC 5322 §3.4 `mailbox` (the body of `Sender:`), display name and
/// comments included. Not to be confused with [`crate::path::parse_mailbox`], RFC 5321's
/// envelope `Mailbox` (no display name, no comments).
///
/// # Errors
/// [`ParseAddressError`] with the byte offset and the reason, including a list of more
/// than one mailbox.
pub fn parse_header_mailbox(
    input: &[u8],
    opts: &ParseOptions,
) -> Result<HeaderMailbox, ParseAddressError> {
    let items = parser::parse(input, opts, parser::Context::Mailbox)
        .map_err(|e| header_name_hint(input, e))?;
    match items.into_iter().next() {
        Some(AddressItem::Mailbox(m)) => Ok(m),
        _ => Err(ParseAddressError {
            offset: 0,
            kind: AddressErrorKind::Empty,
        }),
    }
}

/// The old name of [`parse_header_mailbox`], which clashed with
/// [`crate::path::parse_mailbox`] (a different grammar).
///
/// # Errors
/// As [`parse_header_mailbox`].
#[deprecated(since = "0.1.1", note = "renamed to `parse_header_mailbox`")]
pub fn parse_mailbox(
    input: &[u8],
    opts: &ParseOptions,
) -> Result<HeaderMailbox, ParseAddressError> {
    parse_header_mailbox(input, opts)
}
