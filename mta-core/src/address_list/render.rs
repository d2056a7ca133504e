//! Canonical RFC 5322 text for parsed address values: the renderers behind the `Display`
//! impls. Each writes the value so that parsing the output gives the same value back.

use std::fmt::{self, Write};

use super::lexer::is_atext;
use super::{AddressItem, AddressList, Group, HeaderMailbox};

/// True for an RFC 5322 §3.2.3 `atom` (without CFWS).
fn is_atom(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_atext)
}

/// True for an RFC 2047 encoded word, which must stay an atom, never inside quotes
/// (RFC 2047 §5 (3)).
fn is_encoded_word(s: &str) -> bool {
    s.len() > 4 && s.starts_with("=?") && s.ends_with("?=")
}

/// True for an RFC 5322 §3.2.3 `dot-atom-text`.
pub(super) fn is_dot_atom(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_atom)
}

/// True for a domain the renderer can write: a dot-atom or a `[literal]`.
pub(super) fn is_domain(s: &str) -> bool {
    is_dot_atom(s) || (s.len() >= 2 && s.starts_with('[') && s.ends_with(']'))
}

/// Writes `s` with the characters in `special` (plus CR, LF and NUL, which can only travel
/// as §4.1 `obs-qp`) escaped as quoted-pairs.
fn write_escaped(f: &mut impl Write, s: &str, special: &[char]) -> fmt::Result {
    for c in s.chars() {
        if special.contains(&c) || matches!(c, '\r' | '\n' | '\0') {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    Ok(())
}

/// §3.2.4 `quoted-string`.
fn write_quoted(f: &mut impl Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    write_escaped(f, s, &['"', '\\'])?;
    f.write_char('"')
}

/// §3.2.5 `phrase`: bare atoms when every space-separated word is one; otherwise one
/// quoted string, except that encoded words stay bare (so each word is written on its
/// own). Words are separated by single spaces, which is how the parser joins them.
pub(super) fn write_phrase(f: &mut impl Write, s: &str) -> fmt::Result {
    if s.split(' ').all(is_atom) {
        return f.write_str(s);
    }
    if !s.split(' ').any(is_encoded_word) {
        return write_quoted(f, s);
    }
    for (i, w) in s.split(' ').enumerate() {
        if i > 0 {
            f.write_char(' ')?;
        }
        if is_atom(w) {
            f.write_str(w)?;
        } else {
            write_quoted(f, w)?;
        }
    }
    Ok(())
}

/// §3.2.2 `comment`, all parentheses and backslashes escaped.
fn write_comment(f: &mut impl Write, s: &str) -> fmt::Result {
    f.write_char('(')?;
    write_escaped(f, s, &['(', ')', '\\'])?;
    f.write_char(')')
}

/// §3.4.1 `addr-spec = local-part "@" domain`: a dot-atom local part, else quoted.
pub(super) fn write_addr_spec(f: &mut impl Write, m: &HeaderMailbox) -> fmt::Result {
    if is_dot_atom(&m.local) {
        f.write_str(&m.local)?;
    } else {
        write_quoted(f, &m.local)?;
    }
    let Some(d) = &m.domain else {
        return Ok(());
    };
    f.write_char('@')?;
    let d = d.as_str();
    match d.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        Some(inner) => {
            // A space between two other characters is FWS; any other whitespace must be
            // a quoted-pair, since the parser reduces FWS runs to one space.
            f.write_char('[')?;
            let chars: Vec<char> = inner.chars().collect();
            for (i, &c) in chars.iter().enumerate() {
                let ws = |c: Option<&char>| c.is_none_or(|c| matches!(c, ' ' | '\t'));
                let plain_space =
                    c == ' ' && i > 0 && !ws(chars.get(i - 1)) && !ws(chars.get(i + 1));
                if matches!(c, '[' | ']' | '\\' | '\r' | '\n' | '\0')
                    || (matches!(c, ' ' | '\t') && !plain_space)
                {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
            f.write_char(']')
        }
        None => f.write_str(d),
    }
}

impl fmt::Display for HeaderMailbox {
    /// RFC 5322 §3.4 `mailbox`: `name <addr-spec>` or `addr-spec`, then the comments.
    /// A mailbox without a domain (qmail's `<>`) is written `<>` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.domain.is_none() && self.local.is_empty() {
            if let Some(name) = &self.name {
                write_phrase(f, name)?;
                f.write_char(' ')?;
            }
            f.write_str("<>")?;
        } else if let Some(name) = &self.name {
            write_phrase(f, name)?;
            f.write_str(" <")?;
            write_addr_spec(f, self)?;
            f.write_char('>')?;
        } else {
            write_addr_spec(f, self)?;
        }
        for c in &self.comments {
            f.write_char(' ')?;
            write_comment(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Display for Group {
    /// RFC 5322 §3.4 `group = display-name ":" [group-list] ";" [CFWS]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_phrase(f, &self.name)?;
        f.write_char(':')?;
        for (i, m) in self.members.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            write!(f, "{m}")?;
        }
        f.write_char(';')?;
        for c in &self.comments {
            f.write_char(' ')?;
            write_comment(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Display for AddressItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressItem::Mailbox(m) => m.fmt(f),
            AddressItem::Group(g) => g.fmt(f),
        }
    }
}

impl fmt::Display for AddressList {
    /// RFC 5322 §3.4 `address-list`: the items separated by `, `, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

impl AddressList {
    /// The list folded for a header field (RFC 5322 §2.2.3): items are separated by `,`
    /// and a new line `\n ` starts before an item that would carry the line past 78
    /// characters. `used` is how much of the first line is already taken (e.g. `To: ` = 4).
    /// Lines end in a bare `\n`, qmail's internal form; the caller adds the last one.
    /// An item longer than a line stays whole.
    pub fn to_folded(&self, used: usize) -> String {
        let mut out = String::new();
        let mut col = used;
        for (i, item) in self.items.iter().enumerate() {
            let text = item.to_string();
            if i > 0 {
                if col + 2 + text.chars().count() > 78 {
                    out.push_str(",\n ");
                    col = 1;
                } else {
                    out.push_str(", ");
                    col += 2;
                }
            }
            col += text.chars().count();
            out.push_str(&text);
        }
        out
    }
}
