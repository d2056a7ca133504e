//! qmail-inject's RFC 822 address grammar (`token822.c`) and its address rewriting, at the
//! token level: the form whose output (spacing, comma insertion, refolding) is qmail-inject's
//! own, byte for byte. [`super::parse_address_list`] with [`super::ParseOptions::qmail_inject`]
//! gives the same addresses as a structured value instead.
//!
//! qmail-inject does not build a syntax tree: it cuts a header field into tokens (atoms,
//! `"quoted strings"`, `[literals]`, `(comments)` and the specials `< > @ , ; : .`), walks the
//! token list **right to left** to find each address (a list is easy to parse from the right:
//! `phrase <addr>`, groups `name: a, b;`, bare `local@domain`), lets a callback rewrite each
//! address, and prints the tokens back with its own spacing and folding. The observable
//! behaviour this module keeps (qmail-reference §7.1):
//!
//! - backslash escapes work in every token kind; comments nest; an unbalanced `)` or `]`, or
//!   an unterminated quote, comment or literal, is a parse failure;
//! - an atom holding a byte outside 32–126, `)`, `]` or `\` is printed back as a quoted string;
//! - two words without a comma between them are two addresses: `djb fred` → `djb, fred`;
//! - comments and display names stay in the header but never reach the envelope
//!   ([`unquote`] drops comments and strips quotes);
//! - the field is refolded at 80 columns as `,\n  ` continuations ([`unparse`]).
//!
//! This is deliberately separate from an RFC 5322 address-list parser: qmail-inject's output
//! format (comma insertion, spacing, refolding) is defined at the token level, so the token
//! list is the natural representation to rewrite and print.
//!
//! ```
//! use mta_core::address_list::token822::{rewrite_list, tokenize, unparse, unquote, Rewriter, LINE_LEN};
//! let rw = Rewriter::new(b"mx", b"example.org", b"plus.example")?;
//! let tokens = tokenize(b"To: djb fred@host+, Joe <joe@sub>")?;
//! let mut seen = Vec::new();
//! let out = rewrite_list(&tokens, 2, &mut |addr| {
//!     rw.rewrite(addr);
//!     seen.push(String::from_utf8_lossy(&unquote(addr)).into_owned());
//! })?;
//! assert_eq!(unparse(&out, LINE_LEN), b"To: djb@mx.example.org, fred@host.plus.example, Joe <joe@sub.example.org>\n");
//! assert_eq!(seen, ["joe@sub.example.org", "fred@host.plus.example", "djb@mx.example.org"]);
//! # Ok::<(), mta_core::address_list::token822::TokenizeError>(())
//! ```

use std::fmt;

/// qmail's `LINELEN`: rewritten fields are refolded to lines of at most this many bytes
/// (where a comma allows it).
pub const LINE_LEN: usize = 80;

/// One token of a header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A run of atom characters (escapes removed).
    Atom(Vec<u8>),
    /// A quoted string's contents (quotes and escapes removed).
    Quote(Vec<u8>),
    /// A domain literal's contents, without the brackets.
    Literal(Vec<u8>),
    /// A comment's contents, without the outer parentheses.
    Comment(Vec<u8>),
    /// `,`
    Comma,
    /// `@`
    At,
    /// `.`
    Dot,
    /// `<`
    Left,
    /// `>`
    Right,
    /// `;`
    Semi,
    /// `:`
    Colon,
}

impl Token {
    fn is_word(&self) -> bool {
        matches!(
            self,
            Token::Atom(_) | Token::Quote(_) | Token::Literal(_) | Token::Comment(_)
        )
    }
}

/// A field (or address) that qmail-inject's grammar cannot tokenise or group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenizeError;

impl fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unable to parse address list")
    }
}

impl std::error::Error for TokenizeError {}

/// Bytes that end an atom (token822 `atomok`).
fn ends_atom(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b'('
            | b'['
            | b'"'
            | b'<'
            | b'>'
            | b';'
            | b':'
            | b'@'
            | b','
            | b'.'
    )
}

/// Reads a delimited token body starting after its opening byte at `*i`; `nest` allows nested
/// openers (comments, whose inner parentheses are dropped, as token822 drops them). Leaves
/// `*i` on the closing byte.
fn delimited(
    s: &[u8],
    i: &mut usize,
    open: u8,
    close: u8,
    nest: bool,
) -> Result<Vec<u8>, TokenizeError> {
    let mut level = 1;
    let mut out = Vec::new();
    loop {
        *i += 1;
        let b = *s.get(*i).ok_or(TokenizeError)?;
        if b == close {
            level -= 1;
            if level == 0 {
                return Ok(out);
            }
        } else if nest && b == open {
            level += 1;
        } else if b == b'\\' {
            *i += 1;
            out.push(*s.get(*i).ok_or(TokenizeError)?);
        } else {
            out.push(b);
        }
    }
}

/// Cuts `s` into tokens (token822 `token822_parse`).
///
/// # Errors
/// [`TokenizeError`] for an unbalanced `)` or `]` or an unterminated quote, comment or literal.
pub fn tokenize(s: &[u8]) -> Result<Vec<Token>, TokenizeError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let tok = match s[i] {
            b'.' => Token::Dot,
            b',' => Token::Comma,
            b'@' => Token::At,
            b'<' => Token::Left,
            b'>' => Token::Right,
            b':' => Token::Colon,
            b';' => Token::Semi,
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b')' | b']' => return Err(TokenizeError),
            b'(' => Token::Comment(delimited(s, &mut i, b'(', b')', true)?),
            b'"' => Token::Quote(delimited(s, &mut i, b'"', b'"', false)?),
            b'[' => Token::Literal(delimited(s, &mut i, b'[', b']', false)?),
            _ => {
                let mut atom = Vec::new();
                loop {
                    if s[i] == b'\\' {
                        i += 1;
                        if i >= s.len() {
                            break;
                        }
                    }
                    atom.push(s[i]);
                    i += 1;
                    if i >= s.len() || ends_atom(s[i]) {
                        break;
                    }
                }
                i -= 1;
                // An atom that cannot be printed back as an atom is kept as a quoted string.
                if atom
                    .iter()
                    .any(|&b| !(32..=126).contains(&b) || matches!(b, b')' | b']' | b'\\'))
                {
                    Token::Quote(atom)
                } else {
                    Token::Atom(atom)
                }
            }
        };
        out.push(tok);
        i += 1;
    }
    Ok(out)
}

/// Walks the address list in `tokens[skip..]` right to left (token822 `token822_addrlist`),
/// calls `rewrite` on each address (its tokens in left-to-right order, which it may change)
/// and returns the whole token list with the rewritten addresses in place and commas
/// inserted between adjacent addresses. `tokens[..skip]` (the field name and colon) is kept.
///
/// `rewrite` sees the addresses from the last to the first.
///
/// # Errors
/// [`TokenizeError`] for a `;` inside a group, a `:` outside one, or a `>` without `<`.
pub fn rewrite_list(
    tokens: &[Token],
    skip: usize,
    rewrite: &mut dyn FnMut(&mut Vec<Token>),
) -> Result<Vec<Token>, TokenizeError> {
    // Both `out` and `addr` are built backwards (rightmost token first).
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len() + 8);
    let mut addr: Vec<Token> = Vec::new();
    let flush = |out: &mut Vec<Token>,
                 addr: &mut Vec<Token>,
                 rewrite: &mut dyn FnMut(&mut Vec<Token>),
                 comma: bool,
                 force: bool| {
        if addr.is_empty() && !force {
            return;
        }
        addr.reverse();
        rewrite(addr);
        out.extend(addr.drain(..).rev());
        if comma {
            out.push(Token::Comma);
        }
    };
    let mut in_group = false;
    let mut word_ok = true;
    let mut i = tokens.len();
    while i > skip {
        let t = &tokens[i - 1];
        match t {
            Token::Semi => {
                flush(&mut out, &mut addr, rewrite, true, false);
                if in_group {
                    return Err(TokenizeError);
                }
                in_group = true;
                word_ok = true;
            }
            Token::Colon => {
                flush(&mut out, &mut addr, rewrite, false, false);
                if !in_group {
                    return Err(TokenizeError);
                }
                in_group = false;
                // The group's display name (up to the previous comma) is kept as it is.
                while i > skip && tokens[i - 1] != Token::Comma {
                    out.push(tokens[i - 1].clone());
                    i -= 1;
                }
                if i > skip {
                    out.push(tokens[i - 1].clone());
                    i -= 1;
                }
                word_ok = true;
                continue;
            }
            Token::Right => {
                flush(&mut out, &mut addr, rewrite, true, false);
                out.push(Token::Right);
                i -= 1;
                while i > skip && tokens[i - 1] != Token::Left {
                    addr.push(tokens[i - 1].clone());
                    i -= 1;
                }
                // `<>` is an address too: the callback decides to leave it alone.
                flush(&mut out, &mut addr, rewrite, false, true);
                if i <= skip {
                    return Err(TokenizeError);
                }
                out.push(Token::Left);
                i -= 1;
                // The phrase in front of `<`.
                while i > skip
                    && matches!(
                        tokens[i - 1],
                        Token::Comment(_)
                            | Token::Atom(_)
                            | Token::Quote(_)
                            | Token::At
                            | Token::Dot
                    )
                {
                    out.push(tokens[i - 1].clone());
                    i -= 1;
                }
                word_ok = false;
                continue;
            }
            Token::Atom(_) | Token::Quote(_) | Token::Literal(_) => {
                if !word_ok {
                    flush(&mut out, &mut addr, rewrite, true, false);
                }
                word_ok = false;
                addr.push(t.clone());
                i -= 1;
                continue;
            }
            // A comment is lexically a space: it does not separate words.
            Token::Comment(_) => {}
            Token::Comma => {
                flush(&mut out, &mut addr, rewrite, false, false);
                word_ok = true;
            }
            Token::At | Token::Dot | Token::Left => {
                word_ok = true;
                addr.push(t.clone());
                i -= 1;
                continue;
            }
        }
        out.push(t.clone());
        i -= 1;
    }
    flush(&mut out, &mut addr, rewrite, false, false);
    out.extend(tokens[..skip].iter().rev().cloned());
    out.reverse();
    Ok(out)
}

/// Whether token822 prints a space between two adjacent tokens.
fn needs_space(prev: Option<&Token>, next: &Token) -> bool {
    let Some(prev) = prev else { return false };
    matches!(prev, Token::Colon | Token::Comma)
        || *next == Token::Left
        || (prev.is_word() && next.is_word())
}

/// Prints a word's contents, escaping the bytes token822 escapes.
fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        if matches!(b, b'"' | b'[' | b']' | b'(' | b')' | b'\\' | b'\r' | b'\n') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// The greedy line filler of token822 `token822_unparse`: every comma is a candidate break
/// (`\n ` after it); a candidate is dropped when the line up to the next comma, counted as
/// qmail counts it (with the candidate's two bytes still in), fits in `line_len`.
///
/// The text is built without breaks and the kept break positions are recorded, so folding
/// stays linear in the field size (qmail shifted the buffer at every comma).
struct Folder {
    out: Vec<u8>,
    /// Positions in `out` (just after a comma) where a break is kept.
    kept: Vec<usize>,
    candidate: Option<usize>,
    line_len: usize,
}

impl Folder {
    fn comma_break(&mut self) {
        let pos = self.out.len();
        if let Some(c) = self.candidate {
            // The physical line so far: a continuation line starts with the break's space.
            let line = match self.kept.last() {
                Some(&k) => pos - k + 1,
                None => pos,
            };
            if line + 2 > self.line_len {
                self.kept.push(c);
            }
        }
        self.candidate = Some(pos);
    }

    /// The text with `\n ` at each kept break and a final `\n`.
    fn finish(mut self) -> Vec<u8> {
        self.comma_break();
        let mut text = Vec::with_capacity(self.out.len() + 2 * self.kept.len() + 1);
        let mut from = 0;
        for &k in &self.kept {
            text.extend_from_slice(&self.out[from..k]);
            text.extend_from_slice(b"\n ");
            from = k;
        }
        text.extend_from_slice(&self.out[from..]);
        text.push(b'\n');
        text
    }
}

/// Prints tokens back as a header field ending in `\n`, refolded at `line_len` columns
/// (token822 `token822_unparse`).
pub fn unparse(tokens: &[Token], line_len: usize) -> Vec<u8> {
    let mut f = Folder {
        out: Vec::with_capacity(tokens.len() * 8),
        kept: Vec::new(),
        candidate: None,
        line_len,
    };
    let mut prev: Option<&Token> = None;
    for t in tokens {
        if needs_space(prev, t) {
            f.out.push(b' ');
        }
        prev = Some(t);
        match t {
            Token::Comma => {
                f.out.push(b',');
                f.comma_break();
            }
            Token::At => f.out.push(b'@'),
            Token::Dot => f.out.push(b'.'),
            Token::Left => f.out.push(b'<'),
            Token::Right => f.out.push(b'>'),
            Token::Semi => f.out.push(b';'),
            Token::Colon => f.out.push(b':'),
            Token::Atom(s) => push_escaped(&mut f.out, s),
            Token::Quote(s) => {
                f.out.push(b'"');
                push_escaped(&mut f.out, s);
                f.out.push(b'"');
            }
            Token::Literal(s) => {
                f.out.push(b'[');
                push_escaped(&mut f.out, s);
                f.out.push(b']');
            }
            Token::Comment(s) => {
                f.out.push(b'(');
                push_escaped(&mut f.out, s);
                f.out.push(b')');
            }
        }
    }
    f.finish()
}

/// The envelope form of an address's tokens (token822 `token822_unquote`): quotes and
/// escapes removed, literals keep their brackets, comments dropped.
pub fn unquote(tokens: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tokens {
        match t {
            Token::Comma => out.push(b','),
            Token::At => out.push(b'@'),
            Token::Dot => out.push(b'.'),
            Token::Left => out.push(b'<'),
            Token::Right => out.push(b'>'),
            Token::Semi => out.push(b';'),
            Token::Colon => out.push(b':'),
            Token::Atom(s) | Token::Quote(s) => out.extend_from_slice(s),
            Token::Literal(s) => {
                out.push(b'[');
                out.extend_from_slice(s);
                out.push(b']');
            }
            Token::Comment(_) => {}
        }
    }
    out
}

/// Whether a local part must be quoted in an address (qmail `quote_need`): empty, a byte
/// outside the RFC 822 atom set, or a leading, trailing or doubled dot.
pub fn quote_needed(s: &[u8]) -> bool {
    let atom_byte = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b);
    s.is_empty()
        || !s.iter().all(|&b| atom_byte(b))
        || s.first() == Some(&b'.')
        || s.last() == Some(&b'.')
        || s.windows(2).any(|w| w == b"..")
}

/// Quotes the local part of `addr` (split at the last `@`) when it needs it (qmail
/// `quote2`, [`crate::header::quote2`]): `a b@x` → `"a b"@x`. The empty address stays
/// empty.
pub fn quote_address(addr: &[u8]) -> Vec<u8> {
    crate::header::quote2(addr)
}

/// qmail-inject's address rewriting (qmail-reference §7.1, "Address rewriting"), applied to
/// every address in sender and recipient fields, to `-f` and to argument recipients.
///
/// In order: (1) `<>` and `<x@[]>` are left alone; (2) a source route `@a,@b:` is removed;
/// (3) one trailing `.` and then a trailing `@` are dropped; (4) an address without `@` gets
/// `@defaulthost`; (5) a domain ending in `+` loses the `+` and gets `.plusdomain`; (6) a
/// domain without a dot that is not a `[literal]` gets `.defaultdomain`. Because (4) runs
/// first, defaulthost itself goes through (5) and (6). qmail-send's percenthack is not
/// applied (qmail-inject does not apply it).
///
/// It holds the three rewriting hosts, already cut into tokens (qmail-inject `getcontrols`).
#[derive(Clone, Debug)]
pub struct Rewriter {
    /// `@defaulthost`
    at_default_host: Vec<Token>,
    /// `.defaultdomain`
    dot_default_domain: Vec<Token>,
    /// `.plusdomain`
    dot_plus_domain: Vec<Token>,
}

impl Rewriter {
    /// Builds a rewriter from the resolved control values (environment overrides applied).
    ///
    /// # Errors
    /// [`TokenizeError`] when a value does not tokenise (qmail-inject dies with "unable to
    /// parse this line").
    pub fn new(
        default_host: &[u8],
        default_domain: &[u8],
        plus_domain: &[u8],
    ) -> Result<Rewriter, TokenizeError> {
        let with = |prefix: u8, s: &[u8]| {
            let mut v = vec![prefix];
            v.extend_from_slice(s);
            tokenize(&v)
        };
        Ok(Rewriter {
            at_default_host: with(b'@', default_host)?,
            dot_default_domain: with(b'.', default_domain)?,
            dot_plus_domain: with(b'.', plus_domain)?,
        })
    }

    /// Rewrites one address given on its own, such as a command-line sender (`-f`) or
    /// recipient: its local part is quoted if needed ([`quote_address`]), then it is
    /// tokenised and rewritten. Returns the envelope form ([`unquote`]).
    ///
    /// ```
    /// use mta_core::address_list::token822::Rewriter;
    /// let rw = Rewriter::new(b"mx", b"example.org", b"plus.example")?;
    /// assert_eq!(rw.rewrite_address(b"joe")?, b"joe@mx.example.org");
    /// assert_eq!(rw.rewrite_address(b"a b@host+")?, b"a b@host.plus.example");
    /// # Ok::<(), mta_core::address_list::token822::TokenizeError>(())
    /// ```
    ///
    /// # Errors
    /// [`TokenizeError`] when the quoted address does not tokenise.
    pub fn rewrite_address(&self, raw: &[u8]) -> Result<Vec<u8>, TokenizeError> {
        let mut t = tokenize(&quote_address(raw))?;
        self.rewrite(&mut t);
        Ok(unquote(&t))
    }

    /// Rewrites every address in a whole header field (`Name: list`, name and colon kept
    /// as they are), as qmail-inject does: returns the field printed back and refolded at
    /// [`LINE_LEN`] columns, ending in `\n`, and the envelope form of each address, left
    /// to right.
    ///
    /// ```
    /// use mta_core::address_list::token822::Rewriter;
    /// let rw = Rewriter::new(b"mx", b"example.org", b"plus.example")?;
    /// let (field, addrs) = rw.rewrite_field(b"Cc: djb fred@host, Joe <joe@x.org>")?;
    /// assert_eq!(field, b"Cc: djb@mx.example.org, fred@host.example.org, Joe <joe@x.org>\n");
    /// assert_eq!(addrs, [&b"djb@mx.example.org"[..], b"fred@host.example.org", b"joe@x.org"]);
    /// # Ok::<(), mta_core::address_list::token822::TokenizeError>(())
    /// ```
    ///
    /// # Errors
    /// [`TokenizeError`] when the field does not tokenise or its list does not group.
    pub fn rewrite_field(&self, field: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), TokenizeError> {
        let tokens = tokenize(field)?;
        let mut addrs = Vec::new();
        let rewritten = rewrite_list(&tokens, tokens.len().min(2), &mut |a| {
            self.rewrite(a);
            addrs.push(unquote(a));
        })?;
        addrs.reverse();
        Ok((unparse(&rewritten, LINE_LEN), addrs))
    }

    /// Rewrites one address, given as its tokens in left-to-right order (qmail-inject
    /// `rwgeneric`).
    pub fn rewrite(&self, addr: &mut Vec<Token>) {
        // (1) `<>` stays `<>`; `x@[]` (the double-bounce form and its VERP cousins) stays.
        if addr.is_empty() {
            return;
        }
        if let [.., Token::At, Token::Literal(l)] = addr.as_slice()
            && l.is_empty()
        {
            return;
        }
        // (2) Source route: `@a,@b:user@host` → `user@host`; `<@a:>` → `<>`.
        if addr.first() == Some(&Token::At) {
            match addr.iter().position(|t| *t == Token::Colon) {
                Some(colon) => {
                    addr.drain(..=colon);
                }
                None => addr.clear(),
            }
            if addr.is_empty() {
                return;
            }
        }
        // (3) One trailing dot, then one trailing `@`.
        if addr.last() == Some(&Token::Dot) {
            addr.pop();
            if addr.is_empty() {
                return;
            }
        }
        if addr.last() == Some(&Token::At) {
            addr.pop();
            if addr.is_empty() {
                return;
            }
        }
        // (4) No `@` at all: append `@defaulthost`.
        if !addr.contains(&Token::At) {
            addr.extend_from_slice(&self.at_default_host);
        }
        // (5) The last atom ends in `+`: drop it and append `.plusdomain`.
        if let Some(Token::Atom(last)) = addr.last_mut()
            && last.last() == Some(&b'+')
        {
            last.pop();
            addr.extend_from_slice(&self.dot_plus_domain);
        }
        // (6) No dot and no literal after the last `@`: append `.defaultdomain`.
        let domain_start = addr
            .iter()
            .rposition(|t| *t == Token::At)
            .map_or(0, |i| i + 1);
        let domain = &addr[domain_start..];
        if !domain
            .iter()
            .any(|t| matches!(t, Token::Dot | Token::Literal(_)))
        {
            addr.extend_from_slice(&self.dot_default_domain);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field(text: &str, rw: &mut dyn FnMut(&mut Vec<Token>)) -> String {
        let toks = tokenize(text.as_bytes()).unwrap();
        String::from_utf8(unparse(&rewrite_list(&toks, 2, rw).unwrap(), LINE_LEN)).unwrap()
    }

    fn keep(text: &str) -> String {
        field(text, &mut |_| {})
    }

    #[test]
    fn tokens() {
        assert_eq!(
            tokenize(br#"a.b@[1.2] "x\"y" (c (d)) <>"#).unwrap(),
            vec![
                Token::Atom(b"a".to_vec()),
                Token::Dot,
                Token::Atom(b"b".to_vec()),
                Token::At,
                Token::Literal(b"1.2".to_vec()),
                Token::Quote(b"x\"y".to_vec()),
                Token::Comment(b"c d".to_vec()),
                Token::Left,
                Token::Right,
            ]
        );
        assert_eq!(tokenize(b")a").unwrap_err(), TokenizeError);
        // Inside an atom `)` is just a byte (the atom is then printed quoted).
        assert_eq!(tokenize(b"a)").unwrap(), vec![Token::Quote(b"a)".to_vec())]);
        assert_eq!(tokenize(b"]").unwrap_err(), TokenizeError);
        assert_eq!(tokenize(b"\"abc").unwrap_err(), TokenizeError);
        assert_eq!(tokenize(b"(a (b)").unwrap_err(), TokenizeError);
        assert_eq!(tokenize(b"[1.2").unwrap_err(), TokenizeError);
        // An atom with a byte that cannot be printed as an atom becomes a quoted string.
        assert_eq!(
            tokenize(b"a\\\\b").unwrap(),
            vec![Token::Quote(b"a\\b".to_vec())]
        );
        assert_eq!(
            tokenize("é".as_bytes()).unwrap(),
            vec![Token::Quote("é".as_bytes().to_vec())]
        );
    }

    #[test]
    fn words_without_comma_get_one() {
        assert_eq!(keep("To: djb fred"), "To: djb, fred\n");
        assert_eq!(keep("To:a@b,c@d"), "To: a@b, c@d\n");
    }

    #[test]
    fn phrases_groups_and_comments_are_kept() {
        assert_eq!(
            keep("To: \"Joe  Q\" <joe@x.org>, ann@y.org (Ann)"),
            "To: \"Joe  Q\" <joe@x.org>, ann@y.org (Ann)\n"
        );
        // As in qmail, a comment in front of a bare address ends up behind it.
        assert_eq!(keep("To: (c) ann@y.org (Ann)"), "To: ann@y.org (c) (Ann)\n");
        assert_eq!(keep("Cc: list: a@b, c@d;"), "Cc: list: a@b, c@d;\n");
        assert_eq!(
            keep("Cc: recipient list not shown: ;"),
            "Cc: recipient list not shown: ;\n"
        );
        assert_eq!(keep("From: <>"), "From: <>\n");
    }

    #[test]
    fn malformed_lists_fail() {
        // token822 does not insist on a group's closing `;` being matched by a `:`.
        assert_eq!(keep("To: a;"), "To: a;\n");
        for bad in ["To: a: b", "To: a>", "To: a; b;;", "To: a>b"] {
            let toks = tokenize(bad.as_bytes()).unwrap();
            assert!(rewrite_list(&toks, 2, &mut |_| {}).is_err(), "{bad}");
        }
    }

    #[test]
    fn callback_sees_each_address_last_first() {
        let mut seen = Vec::new();
        let out = field("To: Joe <joe>, fred, list: a, b;", &mut |a| {
            seen.push(String::from_utf8(unquote(a)).unwrap());
            a.push(Token::At);
            a.push(Token::Atom(b"h".to_vec()));
        });
        assert_eq!(seen, ["b", "a", "fred", "joe"]);
        assert_eq!(out, "To: Joe <joe@h>, fred@h, list: a@h, b@h;\n");
    }

    #[test]
    fn folding_at_80_columns() {
        let addrs: Vec<String> = (0..12).map(|i| format!("user{i:02}@example.org")).collect();
        let out = keep(&format!("To: {}", addrs.join(", ")));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 2, "{out}");
        for l in &lines {
            assert!(l.len() <= LINE_LEN, "{l}");
        }
        for l in &lines[1..] {
            assert!(l.starts_with("  user"), "{l}");
        }
        assert!(lines[..lines.len() - 1].iter().all(|l| l.ends_with(',')));
        assert_eq!(
            out.replace(",\n  ", ", "),
            format!("To: {}\n", addrs.join(", "))
        );
    }

    #[test]
    fn folding_matches_qmail_boundaries() {
        // qmail counts the pending break's two bytes: a joined line may be 78 bytes long.
        let a = format!("To: {}@x, ", "a".repeat(64)); // 72 bytes up to the space
        let joined = format!("{a}b@x"); // 76 bytes: "b@x" fits (76 + 2 <= 80)
        assert_eq!(keep(&joined), format!("{joined}\n"));
        let longer = format!("{a}bbbbb@x"); // 80 bytes: does not fit (80 + 2 > 80)
        assert_eq!(keep(&longer), format!("{}\n  bbbbb@x\n", a.trim_end()));
        let edge = format!("{a}bbb@x"); // 78 bytes: fits exactly
        assert_eq!(keep(&edge), format!("{edge}\n"));
    }

    #[test]
    fn folding_is_linear_in_field_size() {
        // 100,000 addresses (about 1.4 MB): quadratic buffer shifting would take minutes.
        let field = format!("To: {}", vec!["u@example.org"; 100_000].join(", "));
        let start = std::time::Instant::now();
        let out = keep(&field);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        assert!(out.lines().all(|l| l.len() <= LINE_LEN));
        assert_eq!(out.replace(",\n  ", ", "), format!("{field}\n"));
    }

    #[test]
    fn unquote_and_quote() {
        let t = tokenize(b"\"a b\"@[1.2.3.4] (x)").unwrap();
        assert_eq!(unquote(&t), b"a b@[1.2.3.4]");
        assert_eq!(quote_address(b"a b@x"), b"\"a b\"@x");
        assert_eq!(quote_address(b"joe@x"), b"joe@x");
        assert_eq!(quote_address(b".joe"), b"\".joe\"");
        assert_eq!(quote_address(b"a\"b@x@y"), b"\"a\\\"b@x\"@y");
        assert_eq!(quote_address(b""), b"");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod rewrite_tests {
    use super::*;

    fn rw(addr: &str) -> String {
        let r = Rewriter::new(b"host", b"example.org", b"plus.example").unwrap();
        let mut t = tokenize(addr.as_bytes()).unwrap();
        r.rewrite(&mut t);
        String::from_utf8(unquote(&t)).unwrap()
    }

    #[test]
    fn steps_in_order() {
        assert_eq!(rw(""), "");
        assert_eq!(rw("list-@x.org-@[]"), "list-@x.org-@[]");
        assert_eq!(rw("@a.org,@b.org:joe@c.org"), "joe@c.org");
        assert_eq!(rw("@a.org"), "");
        assert_eq!(rw("joe@c.org."), "joe@c.org");
        assert_eq!(rw("joe@"), "joe@host.example.org");
        assert_eq!(rw("joe"), "joe@host.example.org");
        assert_eq!(rw("joe@mx"), "joe@mx.example.org");
        assert_eq!(rw("joe@mx+"), "joe@mx.plus.example");
        assert_eq!(rw("joe@mx.+"), "joe@mx..plus.example");
        assert_eq!(rw("joe@[1.2.3.4]"), "joe@[1.2.3.4]");
        assert_eq!(rw("joe@x.org"), "joe@x.org");
        assert_eq!(rw("\"a b\"@x.org"), "a b@x.org");
    }

    #[test]
    fn defaulthost_gets_plus_and_domain_steps() {
        let r = Rewriter::new(b"box+", b"example.org", b"plus.example").unwrap();
        let mut t = tokenize(b"joe").unwrap();
        r.rewrite(&mut t);
        assert_eq!(unquote(&t), b"joe@box.plus.example");
        let r = Rewriter::new(b"box", b"example.org", b"p").unwrap();
        let mut t = tokenize(b"joe").unwrap();
        r.rewrite(&mut t);
        assert_eq!(unquote(&t), b"joe@box.example.org");
    }
}
