//! qmail-inject's address rewriting (qmail-reference §7.1, "Address rewriting"), applied to
//! every address in sender and recipient fields, to `-f` and to argument recipients.
//!
//! In order: (1) `<>` and `<x@[]>` are left alone; (2) a source route `@a,@b:` is removed;
//! (3) one trailing `.` and then a trailing `@` are dropped; (4) an address without `@` gets
//! `@defaulthost`; (5) a domain ending in `+` loses the `+` and gets `.plusdomain`; (6) a
//! domain without a dot that is not a `[literal]` gets `.defaultdomain`. Because (4) runs
//! first, defaulthost itself goes through (5) and (6).

use super::token822::{ParseError, Token, tokenize};

/// The three rewriting hosts, already cut into tokens (qmail-inject `getcontrols`).
#[derive(Clone, Debug)]
pub(crate) struct Rewriter {
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
    /// [`ParseError`] when a value does not tokenise (qmail-inject dies with "unable to
    /// parse this line").
    pub(crate) fn new(
        default_host: &[u8],
        default_domain: &[u8],
        plus_domain: &[u8],
    ) -> Result<Rewriter, ParseError> {
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

    /// Rewrites one address, given as its tokens in left-to-right order (qmail-inject
    /// `rwgeneric`).
    pub(crate) fn rewrite(&self, addr: &mut Vec<Token>) {
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
    use super::super::token822::unquote;
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
