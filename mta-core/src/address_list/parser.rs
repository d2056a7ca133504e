//! The grammar of RFC 5322 §3.4 and §4.4 over the tokens of [`super::lexer`].
//!
//! An address starts with a run of words and dots; the token after it decides what the run
//! was: `<` makes it a display name, `:` a group name, `@` a local part. No backtracking,
//! so parsing is linear.

use super::lexer::{Kind, Lexer, Token};
use super::qmail::QmailRewrite;
use super::{AddressErrorKind, AddressItem, Group, HeaderMailbox, ParseAddressError, ParseOptions};
use crate::Domain;

/// Which production the caller asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Context {
    AddressList,
    MailboxList,
    Mailbox,
}

fn err(offset: usize, kind: AddressErrorKind) -> ParseAddressError {
    ParseAddressError { offset, kind }
}

fn syntax(offset: usize, what: &'static str) -> ParseAddressError {
    err(offset, AddressErrorKind::Syntax(what))
}

/// Parses the whole input as a list in the given context.
pub(super) fn parse(
    input: &[u8],
    opts: &ParseOptions,
    ctx: Context,
) -> Result<Vec<AddressItem>, ParseAddressError> {
    let src = std::str::from_utf8(input)
        .map_err(|e| err(e.valid_up_to(), AddressErrorKind::InvalidUtf8))?;
    let mut p = Parser {
        lx: Lexer::new(src),
        qmail: opts.qmail.as_ref(),
        ctx,
        spare: Vec::new(),
    };
    // Outside a group, `list` only returns at the end of the input.
    let items = p.list(false)?;
    if items.is_empty() {
        return Err(err(input.len(), AddressErrorKind::Empty));
    }
    if ctx == Context::Mailbox && items.len() > 1 {
        return Err(syntax(0, "more than one mailbox"));
    }
    Ok(items)
}

/// A word or a dot, in the run that starts an address.
enum Piece<'a> {
    Word(Token<'a>),
    Dot(usize),
}

struct Parser<'a, 'o> {
    lx: Lexer<'a>,
    qmail: Option<&'o QmailRewrite>,
    ctx: Context,
    /// A buffer for [`Parser::pieces`], reused to save an allocation per address.
    spare: Vec<Piece<'a>>,
}

impl<'a> Parser<'a, '_> {
    /// `address-list` / `mailbox-list` / `group-list`, with the empty elements of
    /// `obs-addr-list`, `obs-mbox-list` and `obs-group-list` (§4.4). Stops at the end, or
    /// at `;` inside a group.
    fn list(&mut self, in_group: bool) -> Result<Vec<AddressItem>, ParseAddressError> {
        let mut items = Vec::new();
        loop {
            let t = self.lx.peek()?;
            match t.kind {
                Kind::End => return Ok(items),
                Kind::Special(b',') => {
                    self.lx.next_token()?;
                    continue;
                }
                Kind::Special(b';') if in_group => return Ok(items),
                _ => {}
            }
            self.address(in_group, &mut items)?;
            let t = self.lx.peek()?;
            match t.kind {
                Kind::Special(b',') => {
                    self.lx.next_token()?;
                }
                Kind::End => return Ok(items),
                Kind::Special(b';') if in_group => return Ok(items),
                // lenient: qmail-inject (token822) separates words without commas:
                // `djb fred` is `djb, fred`.
                _ if self.qmail.is_some() && (t.is_word() || t.kind == Kind::Special(b'<')) => {}
                _ => return Err(syntax(t.start, "expected ',' between addresses")),
            }
        }
    }

    /// The run of `word`s and `.`s that starts an address.
    fn pieces(&mut self) -> Result<Vec<Piece<'a>>, ParseAddressError> {
        let mut run = std::mem::take(&mut self.spare);
        run.clear();
        loop {
            let t = self.lx.peek()?;
            if t.is_word() {
                run.push(Piece::Word(self.lx.next_token()?));
            } else if t.kind == Kind::Special(b'.') {
                run.push(Piece::Dot(t.start));
                self.lx.next_token()?;
            } else {
                return Ok(run);
            }
        }
    }

    /// `address = mailbox / group`; may push several mailboxes in lenient mode.
    fn address(
        &mut self,
        in_group: bool,
        items: &mut Vec<AddressItem>,
    ) -> Result<(), ParseAddressError> {
        let run = self.pieces()?;
        let result = self.address_from(&run, in_group, items);
        self.spare = run;
        result
    }

    fn address_from(
        &mut self,
        run: &[Piece<'a>],
        in_group: bool,
        items: &mut Vec<AddressItem>,
    ) -> Result<(), ParseAddressError> {
        let t = self.lx.peek()?;
        let (kind, at) = (t.kind, t.start);
        match kind {
            Kind::Special(b'<') => {
                let name = if run.is_empty() {
                    None
                } else {
                    Some(self.phrase(run)?)
                };
                self.lx.next_token()?;
                let mut m = self.angle_addr()?;
                m.name = name;
                self.finish(m, items)
            }
            Kind::Special(b':') if in_group => Err(syntax(at, "group inside a group")),
            Kind::Special(b':') if self.ctx != Context::AddressList => {
                Err(syntax(at, "group not allowed here"))
            }
            Kind::Special(b':') => self.group(run, at, items),
            Kind::Special(b'@') => {
                let (bare, local) = self.local_part(run, at, true)?;
                self.push_bare(bare, at, items)?;
                self.lx.next_token()?;
                let domain = self.domain()?;
                let m = HeaderMailbox {
                    name: None,
                    local,
                    domain,
                    comments: Vec::new(),
                };
                self.finish(m, items)
            }
            // lenient: bare local parts (qmail-inject gives them the default host).
            _ if self.qmail.is_some() && !run.is_empty() => {
                let mut words = split_words(run);
                let last = words.pop().unwrap_or_default();
                self.push_bare(words, at, items)?;
                let m = HeaderMailbox {
                    name: None,
                    local: last,
                    domain: None,
                    comments: Vec::new(),
                };
                self.finish(m, items)
            }
            _ if run.is_empty() => Err(syntax(at, "expected an address")),
            _ => Err(syntax(at, "expected '@', '<' or ':' after the words")),
        }
    }

    /// Collects the comments up to the next token into `m`, rewrites it (lenient mode) and
    /// stores it.
    fn finish(
        &mut self,
        mut m: HeaderMailbox,
        items: &mut Vec<AddressItem>,
    ) -> Result<(), ParseAddressError> {
        let at = self.lx.peek()?.start;
        m.comments = self.lx.take_comments();
        if let Some(q) = self.qmail {
            m = rewritten(q, m, at)?;
        }
        items.push(AddressItem::Mailbox(m));
        Ok(())
    }

    /// Lenient only: local parts of words that had no `@` of their own.
    fn push_bare(
        &mut self,
        words: Vec<String>,
        at: usize,
        items: &mut Vec<AddressItem>,
    ) -> Result<(), ParseAddressError> {
        let Some(q) = self.qmail else { return Ok(()) };
        for local in words {
            let m = HeaderMailbox {
                name: None,
                local,
                domain: None,
                comments: Vec::new(),
            };
            items.push(AddressItem::Mailbox(rewritten(q, m, at)?));
        }
        Ok(())
    }

    /// `group = display-name ":" [group-list] ";" [CFWS]` (§3.4).
    fn group(
        &mut self,
        run: &[Piece<'a>],
        at: usize,
        items: &mut Vec<AddressItem>,
    ) -> Result<(), ParseAddressError> {
        if run.is_empty() {
            return Err(syntax(at, "group without a display name"));
        }
        let name = self.phrase(run)?;
        self.lx.next_token()?;
        let mut comments = self.lx.take_comments();
        let mut members = Vec::new();
        for item in self.list(true)? {
            if let AddressItem::Mailbox(m) = item {
                members.push(m);
            }
        }
        let t = self.lx.peek()?;
        match t.kind {
            Kind::Special(b';') => {
                self.lx.next_token()?;
            }
            // lenient: `undisclosed-recipients:` without its `;` at the end of the field.
            Kind::End if self.qmail.is_some() => {}
            _ => return Err(syntax(t.start, "expected ';' to end the group")),
        }
        self.lx.peek()?;
        comments.extend(self.lx.take_comments());
        items.push(AddressItem::Group(Group {
            name,
            members,
            comments,
        }));
        Ok(())
    }

    /// `display-name = phrase`, `phrase = 1*word / obs-phrase`, `obs-phrase = word *(word /
    /// "." / CFWS)` (§3.2.5, §4.1). Words are joined by one space; a `.` sticks to the word
    /// before it.
    fn phrase(&self, run: &[Piece<'a>]) -> Result<String, ParseAddressError> {
        if let Some(Piece::Dot(at)) = run.first()
            && self.qmail.is_none()
        {
            return Err(syntax(*at, "display name starts with '.'"));
        }
        let mut out = String::with_capacity(span(run));
        for (i, piece) in run.iter().enumerate() {
            match piece {
                Piece::Word(t) => {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(&t.text);
                }
                Piece::Dot(_) => out.push('.'),
            }
        }
        Ok(out)
    }

    /// `local-part = dot-atom / quoted-string / obs-local-part`, `obs-local-part = word
    /// *("." word)` (§3.4.1, §4.4): the words joined by `.`. In lenient mode words without
    /// a dot between them end earlier addresses, returned first (when `split`).
    fn local_part(
        &self,
        run: &[Piece<'a>],
        at: usize,
        split: bool,
    ) -> Result<(Vec<String>, String), ParseAddressError> {
        if self.qmail.is_some() {
            let mut words = split_words(run);
            if !split {
                return Ok((Vec::new(), words.concat()));
            }
            let last = words.pop().unwrap_or_default();
            return Ok((words, last));
        }
        if run.is_empty() {
            return Err(syntax(at, "expected a local part before '@'"));
        }
        let mut out = String::with_capacity(span(run));
        let mut want_word = true;
        for piece in run {
            match (piece, want_word) {
                (Piece::Word(t), true) => out.push_str(&t.text),
                (Piece::Dot(_), false) => out.push('.'),
                (Piece::Word(t), false) => return Err(syntax(t.start, "expected '.' or '@'")),
                (Piece::Dot(d), true) => return Err(syntax(*d, "misplaced '.' in local part")),
            }
            want_word = !want_word;
        }
        if want_word {
            return Err(syntax(at, "local part ends with '.'"));
        }
        Ok((Vec::new(), out))
    }

    /// `domain = dot-atom / domain-literal / obs-domain`, `obs-domain = atom *("." atom)`
    /// (§3.4.1, §4.4). `None` only in lenient mode, for a trailing `@`.
    fn domain(&mut self) -> Result<Option<Domain>, ParseAddressError> {
        let t = self.lx.peek()?;
        match t.kind {
            Kind::Atom => {}
            Kind::Literal => {
                let t = self.lx.next_token()?;
                return Ok(Some(Domain::new(t.text.into_owned())));
            }
            _ if self.qmail.is_some() => return Ok(None),
            _ => return Err(syntax(t.start, "expected a domain after '@'")),
        }
        let first = self.lx.next_token()?;
        // Most domains fit in the first label plus 32 bytes: reserving that up front
        // saves regrowing the string label by label.
        let mut d = String::with_capacity(first.text.len() + 32);
        d.push_str(&first.text);
        while self.lx.peek()?.kind == Kind::Special(b'.') {
            self.lx.next_token()?;
            let t = self.lx.peek()?;
            if t.kind == Kind::Atom {
                d.push('.');
                d.push_str(&t.text);
                self.lx.next_token()?;
            } else if self.qmail.is_some() {
                // lenient: qmail-inject drops one trailing dot (Domain::new does).
                d.push('.');
                break;
            } else {
                return Err(syntax(t.start, "expected a domain label after '.'"));
            }
        }
        Ok(Some(Domain::new(d)))
    }

    /// `angle-addr = [CFWS] "<" addr-spec ">" [CFWS] / obs-angle-addr`, after the `<`;
    /// `obs-angle-addr = [CFWS] "<" obs-route addr-spec ">" [CFWS]` (§4.4), route dropped.
    fn angle_addr(&mut self) -> Result<HeaderMailbox, ParseAddressError> {
        if matches!(self.lx.peek()?.kind, Kind::Special(b'@' | b',')) {
            self.route()?;
        }
        let t = self.lx.peek()?;
        if t.kind == Kind::Special(b'>') && self.qmail.is_some() {
            // lenient: qmail-inject keeps `<>`.
            self.lx.next_token()?;
            return Ok(HeaderMailbox::null());
        }
        let run = self.pieces()?;
        let t = self.lx.peek()?;
        let at = t.start;
        let (local, domain) = match t.kind {
            Kind::Special(b'@') => {
                let (_, local) = self.local_part(&run, at, false)?;
                self.lx.next_token()?;
                (local, self.domain()?)
            }
            // lenient: `<user>` gets the default host.
            Kind::Special(b'>') if self.qmail.is_some() => {
                (self.local_part(&run, at, false)?.1, None)
            }
            _ if run.is_empty() => return Err(syntax(at, "expected an address after '<'")),
            _ => return Err(syntax(at, "expected '@'")),
        };
        let t = self.lx.next_token()?;
        if t.kind != Kind::Special(b'>') {
            return Err(syntax(t.start, "expected '>'"));
        }
        Ok(HeaderMailbox {
            name: None,
            local,
            domain,
            comments: Vec::new(),
        })
    }

    /// `obs-route = obs-domain-list ":"`, `obs-domain-list = *(CFWS / ",") "@" domain
    /// *("," [CFWS] ["@" domain])` (§4.4). Checked, then discarded.
    fn route(&mut self) -> Result<(), ParseAddressError> {
        let mut domains = 0;
        loop {
            let t = self.lx.next_token()?;
            match t.kind {
                Kind::Special(b',') => {}
                Kind::Special(b'@') => {
                    if self.domain()?.is_none() {
                        return Err(syntax(t.start + 1, "expected a domain in the route"));
                    }
                    domains += 1;
                }
                Kind::Special(b':') if domains > 0 => return Ok(()),
                _ => return Err(syntax(t.start, "expected '@domain' or ':' in the route")),
            }
        }
    }
}

/// Lenient: qmail-inject's rewriting of `m`, refused when it leaves no valid domain (as
/// `x@+` with an empty host does), so that every parsed value renders as RFC 5322 text.
fn rewritten(
    q: &QmailRewrite,
    m: HeaderMailbox,
    at: usize,
) -> Result<HeaderMailbox, ParseAddressError> {
    let m = q.rewrite_mailbox(m);
    match &m.domain {
        Some(d) if !super::render::is_domain(d.as_str()) => {
            Err(syntax(at, "no valid domain after qmail-inject's rewriting"))
        }
        _ => Ok(m),
    }
}

/// The number of source bytes a run covers: a good first capacity for its value.
fn span(run: &[Piece<'_>]) -> usize {
    let start = match run.first() {
        Some(Piece::Word(t)) => t.start,
        Some(Piece::Dot(d)) => *d,
        None => return 0,
    };
    let end = match run.last() {
        Some(Piece::Word(t)) => t.end,
        Some(Piece::Dot(d)) => d + 1,
        None => return 0,
    };
    end.saturating_sub(start)
}

/// Lenient: splits a run into local parts where two words meet without a dot.
fn split_words(run: &[Piece<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut after_word = false;
    for piece in run {
        match piece {
            Piece::Word(t) => {
                if after_word {
                    out.push(std::mem::take(&mut cur));
                }
                cur.push_str(&t.text);
                after_word = true;
            }
            Piece::Dot(_) => {
                cur.push('.');
                after_word = false;
            }
        }
    }
    out.push(cur);
    out
}
