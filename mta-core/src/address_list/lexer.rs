//! The lexical layer of RFC 5322 §3.2 for structured header fields: atoms, quoted strings,
//! domain literals and specials, with CFWS (§3.2.2) skipped and comments collected.
//!
//! Every loop advances by at least one byte and nesting is a counter, not recursion, so
//! the lexer is linear in its input whatever the nesting depth.

use std::borrow::Cow;

use super::{AddressErrorKind, ParseAddressError};

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// RFC 5322 §3.2.3 `atom` (its text, without CFWS).
    Atom,
    /// §3.2.4 `quoted-string`, unquoted: quoted-pairs resolved, folds removed.
    Quoted,
    /// §3.4.1 `domain-literal`, as `[content]` with quoted-pairs resolved and each run of
    /// FWS inside reduced to one space.
    Literal,
    /// One of the specials `< > @ , ; : .`.
    Special(u8),
    /// End of input.
    End,
}

/// A token, with the byte offset where it starts.
#[derive(Clone, Debug)]
pub(super) struct Token<'a> {
    pub(super) kind: Kind,
    pub(super) start: usize,
    /// Offset just after the token.
    pub(super) end: usize,
    pub(super) text: Cow<'a, str>,
}

impl Token<'_> {
    /// True for `word = atom / quoted-string` (§3.2.5).
    pub(super) fn is_word(&self) -> bool {
        matches!(self.kind, Kind::Atom | Kind::Quoted)
    }
}

/// `atext` (§3.2.3), with RFC 6532 §3.2 `UTF8-non-ascii`.
pub(super) fn is_atext(c: char) -> bool {
    !c.is_ascii() || (c.is_ascii() && crate::path::is_atext(c as u8))
}

/// `obs-NO-WS-CTL` (§4.1): control characters other than CR, LF, TAB and NUL.
fn is_obs_ctl(c: char) -> bool {
    matches!(c, '\x01'..='\x08' | '\x0b' | '\x0c' | '\x0e'..='\x1f' | '\x7f')
}

pub(super) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    peeked: Option<Token<'a>>,
    /// Comments met since the last [`Lexer::take_comments`], in order.
    comments: Vec<String>,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            peeked: None,
            comments: Vec::new(),
        }
    }

    fn err(offset: usize, kind: AddressErrorKind) -> ParseAddressError {
        ParseAddressError { offset, kind }
    }

    fn char_at(&self, pos: usize) -> Option<char> {
        self.src.get(pos..).and_then(|s| s.chars().next())
    }

    /// The comments collected so far; clears the collection.
    pub(super) fn take_comments(&mut self) -> Vec<String> {
        std::mem::take(&mut self.comments)
    }

    /// The next token, without consuming it.
    pub(super) fn peek(&mut self) -> Result<&Token<'a>, ParseAddressError> {
        if self.peeked.is_none() {
            let t = self.lex()?;
            self.peeked = Some(t);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            None => Err(Self::err(self.pos, AddressErrorKind::Syntax("internal"))),
        }
    }

    /// The next token, consumed.
    pub(super) fn next_token(&mut self) -> Result<Token<'a>, ParseAddressError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    /// If a line break (CRLF, or a bare LF as in a file) starts at `pos`, its length.
    fn line_break(&self, pos: usize) -> Option<usize> {
        let b = self.src.as_bytes();
        match b.get(pos) {
            Some(b'\r') if b.get(pos + 1) == Some(&b'\n') => Some(2),
            Some(b'\n') => Some(1),
            _ => None,
        }
    }

    /// At a line break: returns its length if it is part of FWS (followed by WSP) or ends
    /// the input; any other line break is an error (§3.2.2: a fold must be followed by WSP).
    fn fold(&self, pos: usize) -> Result<Option<usize>, ParseAddressError> {
        let Some(n) = self.line_break(pos) else {
            return Ok(None);
        };
        match self.src.as_bytes().get(pos + n) {
            Some(b' ' | b'\t') | None => Ok(Some(n)),
            Some(_) => Err(Self::err(pos, AddressErrorKind::BareLineBreak)),
        }
    }

    /// Skips `CFWS` (§3.2.2), collecting comments.
    fn skip_cfws(&mut self) -> Result<(), ParseAddressError> {
        loop {
            match self.src.as_bytes().get(self.pos) {
                Some(b' ' | b'\t') => self.pos += 1,
                Some(b'\r' | b'\n') => match self.fold(self.pos)? {
                    Some(n) => self.pos += n,
                    None => return Err(Self::err(self.pos, AddressErrorKind::BareLineBreak)),
                },
                Some(b'(') => {
                    let c = self.comment()?;
                    self.comments.push(c);
                }
                _ => return Ok(()),
            }
        }
    }

    fn lex(&mut self) -> Result<Token<'a>, ParseAddressError> {
        self.skip_cfws()?;
        let start = self.pos;
        let Some(&b) = self.src.as_bytes().get(start) else {
            return Ok(Token {
                kind: Kind::End,
                start,
                end: start,
                text: Cow::Borrowed(""),
            });
        };
        let (kind, text) = match b {
            b'"' => (Kind::Quoted, Cow::Owned(self.quoted_string()?)),
            b'[' => (Kind::Literal, Cow::Owned(self.domain_literal()?)),
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'.' => {
                self.pos += 1;
                (Kind::Special(b), Cow::Borrowed(""))
            }
            b')' => return Err(Self::err(start, AddressErrorKind::UnbalancedParen)),
            b']' => return Err(Self::err(start, AddressErrorKind::UnbalancedBracket)),
            b if b >= 0x80 || crate::path::is_atext(b) => {
                // Byte-wise: every byte of a UTF-8 sequence is >= 0x80, so the run ends on
                // an ASCII byte, at a character boundary.
                let len = self.src.as_bytes()[start..]
                    .iter()
                    .position(|&b| b < 0x80 && !crate::path::is_atext(b))
                    .unwrap_or(self.src.len() - start);
                self.pos += len;
                (Kind::Atom, Cow::Borrowed(&self.src[start..start + len]))
            }
            _ => return Err(Self::err(start, AddressErrorKind::InvalidCharacter)),
        };
        Ok(Token {
            kind,
            start,
            end: self.pos,
            text,
        })
    }

    /// The character after a backslash at `self.pos`: `quoted-pair = ("\" (VCHAR / WSP)) /
    /// obs-qp` with `obs-qp = "\" (%d0 / obs-NO-WS-CTL / LF / CR)` (§3.2.1, §4.1).
    fn quoted_pair(
        &mut self,
        open: usize,
        unterminated: AddressErrorKind,
    ) -> Result<char, ParseAddressError> {
        match self.char_at(self.pos + 1) {
            Some(c) => {
                self.pos += 1 + c.len_utf8();
                Ok(c)
            }
            None => Err(Self::err(open, unterminated)),
        }
    }

    /// `comment = "(" *([FWS] ccontent) [FWS] ")"`, `ccontent = ctext / quoted-pair /
    /// comment` (§3.2.2). Nested comments are kept as text with their parentheses; folds
    /// are removed. Iterative: a depth counter, so deep nesting costs nothing extra.
    fn comment(&mut self) -> Result<String, ParseAddressError> {
        let open = self.pos;
        self.pos += 1;
        let mut depth = 1usize;
        let mut out = String::new();
        loop {
            let Some(c) = self.char_at(self.pos) else {
                return Err(Self::err(open, AddressErrorKind::UnterminatedComment));
            };
            match c {
                '(' => {
                    depth += 1;
                    out.push(c);
                    self.pos += 1;
                }
                ')' => {
                    depth -= 1;
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                    out.push(c);
                }
                '\\' => out.push(self.quoted_pair(open, AddressErrorKind::UnterminatedComment)?),
                '\r' | '\n' => match self.fold(self.pos)? {
                    Some(n) => self.pos += n,
                    None => return Err(Self::err(self.pos, AddressErrorKind::BareLineBreak)),
                },
                '\0' => return Err(Self::err(self.pos, AddressErrorKind::InvalidCharacter)),
                _ => self.copy_run(&mut out, b"()\\\r\n\0"),
            }
        }
    }

    /// `quoted-string = [CFWS] DQUOTE *([FWS] qcontent) [FWS] DQUOTE [CFWS]` (§3.2.4),
    /// with `obs-qtext` (§4.1). Returns the content: quoted-pairs resolved, folds removed
    /// (the whitespace after a fold stays, as §3.2.4 says).
    fn quoted_string(&mut self) -> Result<String, ParseAddressError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.char_at(self.pos) else {
                return Err(Self::err(open, AddressErrorKind::UnterminatedQuotedString));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    out.push(self.quoted_pair(open, AddressErrorKind::UnterminatedQuotedString)?);
                }
                '\r' | '\n' => match self.fold(self.pos)? {
                    Some(n) => self.pos += n,
                    None => return Err(Self::err(self.pos, AddressErrorKind::BareLineBreak)),
                },
                '\0' => return Err(Self::err(self.pos, AddressErrorKind::InvalidCharacter)),
                _ => self.copy_run(&mut out, b"\"\\\r\n\0"),
            }
        }
    }

    /// Copies the text from the cursor up to the next byte in `stops` (or the end) into
    /// `out`. The stops are ASCII, so the run ends at a character boundary.
    fn copy_run(&mut self, out: &mut String, stops: &[u8]) {
        let rest = &self.src[self.pos..];
        let len = rest
            .bytes()
            .position(|b| stops.contains(&b))
            .unwrap_or(rest.len());
        out.push_str(&rest[..len]);
        self.pos += len;
    }

    /// `domain-literal = [CFWS] "[" *([FWS] dtext) [FWS] "]" [CFWS]` (§3.4.1), with
    /// `obs-dtext = obs-NO-WS-CTL / quoted-pair` (§4.4). Returns `[content]`.
    fn domain_literal(&mut self) -> Result<String, ParseAddressError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::from("[");
        let mut space = false;
        loop {
            let Some(c) = self.char_at(self.pos) else {
                return Err(Self::err(open, AddressErrorKind::UnterminatedDomainLiteral));
            };
            let text = match c {
                ']' => {
                    self.pos += 1;
                    out.push(']');
                    return Ok(out);
                }
                '[' => return Err(Self::err(self.pos, AddressErrorKind::InvalidCharacter)),
                ' ' | '\t' => {
                    self.pos += 1;
                    space = true;
                    continue;
                }
                '\r' | '\n' => {
                    match self.fold(self.pos)? {
                        Some(n) => self.pos += n,
                        None => return Err(Self::err(self.pos, AddressErrorKind::BareLineBreak)),
                    }
                    space = true;
                    continue;
                }
                '\\' => self.quoted_pair(open, AddressErrorKind::UnterminatedDomainLiteral)?,
                c if c > ' ' || is_obs_ctl(c) => {
                    self.pos += c.len_utf8();
                    c
                }
                _ => return Err(Self::err(self.pos, AddressErrorKind::InvalidCharacter)),
            };
            if space && out.len() > 1 {
                out.push(' ');
            }
            space = false;
            out.push(text);
        }
    }
}
