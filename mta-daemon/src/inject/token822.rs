//! qmail-inject's RFC 822 address grammar (`token822.c`), rewritten in Rust.
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

use std::fmt;

/// qmail's `LINELEN`: rewritten fields are refolded to lines of at most this many bytes
/// (where a comma allows it).
pub(crate) const LINE_LEN: usize = 80;

/// One token of a header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
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
pub(crate) struct ParseError;

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unable to parse address list")
    }
}

impl std::error::Error for ParseError {}

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
) -> Result<Vec<u8>, ParseError> {
    let mut level = 1;
    let mut out = Vec::new();
    loop {
        *i += 1;
        let b = *s.get(*i).ok_or(ParseError)?;
        if b == close {
            level -= 1;
            if level == 0 {
                return Ok(out);
            }
        } else if nest && b == open {
            level += 1;
        } else if b == b'\\' {
            *i += 1;
            out.push(*s.get(*i).ok_or(ParseError)?);
        } else {
            out.push(b);
        }
    }
}

/// Cuts `s` into tokens (token822 `token822_parse`).
///
/// # Errors
/// [`ParseError`] for an unbalanced `)` or `]` or an unterminated quote, comment or literal.
pub(crate) fn tokenize(s: &[u8]) -> Result<Vec<Token>, ParseError> {
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
            b')' | b']' => return Err(ParseError),
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
/// [`ParseError`] for a `;` inside a group, a `:` outside one, or a `>` without `<`.
pub(crate) fn rewrite_list(
    tokens: &[Token],
    skip: usize,
    rewrite: &mut dyn FnMut(&mut Vec<Token>),
) -> Result<Vec<Token>, ParseError> {
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
                    return Err(ParseError);
                }
                in_group = true;
                word_ok = true;
            }
            Token::Colon => {
                flush(&mut out, &mut addr, rewrite, false, false);
                if !in_group {
                    return Err(ParseError);
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
                    return Err(ParseError);
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
pub(crate) fn unparse(tokens: &[Token], line_len: usize) -> Vec<u8> {
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
pub(crate) fn unquote(tokens: &[Token]) -> Vec<u8> {
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
pub(crate) fn quote_needed(s: &[u8]) -> bool {
    let atom_byte = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b);
    s.is_empty()
        || !s.iter().all(|&b| atom_byte(b))
        || s.first() == Some(&b'.')
        || s.last() == Some(&b'.')
        || s.windows(2).any(|w| w == b"..")
}

/// Quotes the local part of `addr` (split at the last `@`) when it needs it (qmail
/// `quote2`, [`mta_core::header::quote2`]): `a b@x` → `"a b"@x`. The empty address stays
/// empty.
pub(crate) fn quote_address(addr: &[u8]) -> Vec<u8> {
    mta_core::header::quote2(addr)
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
        assert_eq!(tokenize(b")a").unwrap_err(), ParseError);
        // Inside an atom `)` is just a byte (the atom is then printed quoted).
        assert_eq!(tokenize(b"a)").unwrap(), vec![Token::Quote(b"a)".to_vec())]);
        assert_eq!(tokenize(b"]").unwrap_err(), ParseError);
        assert_eq!(tokenize(b"\"abc").unwrap_err(), ParseError);
        assert_eq!(tokenize(b"(a (b)").unwrap_err(), ParseError);
        assert_eq!(tokenize(b"[1.2").unwrap_err(), ParseError);
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
