//! The RFC 5321 §4.1.2 path grammar, one method per ABNF rule, over a byte cursor.

use super::{
    MAX_DOMAIN, MAX_LOCAL_PART, MAX_PATH, Mailbox, ParsePathError, PathErrorKind, PathOptions,
    is_atext, literal,
};
use crate::Domain;

/// A position in the input being parsed.
pub(super) struct Cursor<'a> {
    s: &'a [u8],
    pub(super) pos: usize,
    opts: PathOptions,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(s: &'a [u8], opts: PathOptions) -> Self {
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
    pub(super) fn path(&mut self, postmaster: bool) -> Result<Option<Mailbox>, ParsePathError> {
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
    pub(super) fn mailbox(&mut self) -> Result<Mailbox, ParsePathError> {
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
            literal::is_ipv4(body)
        } else if body.len() > 5 && body[..5].eq_ignore_ascii_case(b"IPv6:") {
            literal::is_ipv6(&body[5..])
        } else {
            literal::is_general_literal(body)
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

pub(super) fn err_at(offset: usize, kind: PathErrorKind) -> ParsePathError {
    ParsePathError { offset, kind }
}
