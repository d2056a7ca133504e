//! qmail-inject's address rewriting (qmail-reference §7.1) and qmail-send's `percenthack`
//! (§8).

use super::render::is_dot_atom;
use super::{HeaderMailbox, token822};
use crate::{Address, Domain};

/// The rewriting qmail-inject applies to every header and envelope address, with the
/// values of the controls it reads (`defaulthost`, `defaultdomain`, `plusdomain`) and
/// the `percenthack` domains.
///
/// Steps, in qmail's order: `<>` and `<x@[]>` are left alone; a source route is removed
/// (the parser already drops it); one trailing `.` and a trailing `@` are dropped; no `@`
/// → `@defaulthost` is appended; a domain ending in `+` loses it and gets
/// `.plusdomain`; a domain without a dot that is not a `[literal]` gets
/// `.defaultdomain`. Finally qmail-send's percenthack runs on the parts (as [`percent_hack`]
/// does on an envelope address), stopping where no domain follows the `%`.
///
/// ```
/// use mta_core::address_list::{parse_address_list, ParseOptions, QmailRewrite};
/// let q = QmailRewrite::new("mx.example.org", "example.org", "example.org");
/// let list = parse_address_list(b"djb fred@host+, <joe@sub>", &ParseOptions::qmail_inject(q))?;
/// let got: Vec<String> = list.mailboxes().map(|m| m.to_address().to_string()).collect();
/// assert_eq!(got, ["djb@mx.example.org", "fred@host.example.org", "joe@sub.example.org"]);
/// # Ok::<(), mta_core::address_list::ParseAddressError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QmailRewrite {
    /// `defaulthost`: appended to addresses without `@`.
    pub default_host: String,
    /// `defaultdomain`: appended to host names without a dot.
    pub default_domain: String,
    /// `plusdomain`: replaces a trailing `+` of a host name.
    pub plus_domain: String,
    /// `percenthack`: domains where `u%h@dom` becomes `u@h`.
    pub percent_hack: Vec<String>,
}

impl QmailRewrite {
    /// Rewriting with the three host controls and no percenthack domains.
    pub fn new(
        default_host: impl Into<String>,
        default_domain: impl Into<String>,
        plus_domain: impl Into<String>,
    ) -> Self {
        QmailRewrite {
            default_host: default_host.into(),
            default_domain: default_domain.into(),
            plus_domain: plus_domain.into(),
            percent_hack: Vec::new(),
        }
    }

    /// The same rewriting with `percenthack` domains.
    #[must_use]
    pub fn with_percent_hack(mut self, domains: Vec<String>) -> Self {
        self.percent_hack = domains;
        self
    }

    /// The same rewriting (without percenthack, as qmail-inject) at the token level, for
    /// printing fields back exactly as qmail-inject does ([`token822::Rewriter`]).
    ///
    /// # Errors
    /// [`token822::TokenizeError`] when a host value does not tokenise.
    pub fn token_rewriter(&self) -> Result<token822::Rewriter, token822::TokenizeError> {
        token822::Rewriter::new(
            self.default_host.as_bytes(),
            self.default_domain.as_bytes(),
            self.plus_domain.as_bytes(),
        )
    }

    /// Applies the rewriting steps to one mailbox (display name and comments kept).
    #[must_use]
    pub fn rewrite_mailbox(&self, mut m: HeaderMailbox) -> HeaderMailbox {
        if m.domain.is_none() && m.local.is_empty() {
            return m; // `<>`
        }
        if m.domain.as_ref().is_some_and(|d| d.as_str() == "[]") {
            return m; // `<x@[]>`
        }
        let mut host = match m.domain.take() {
            Some(d) if !d.as_str().is_empty() => d.into_string(),
            _ => self.default_host.clone(),
        };
        if let Some(h) = host.strip_suffix('+') {
            host = format!("{h}.{}", self.plus_domain);
        }
        if !host.contains('.') && !host.starts_with('[') {
            host = format!("{host}.{}", self.default_domain);
        }
        // qmail-send's percenthack, on the parts (a domain literal may hold an `@`, so
        // the address is not joined and split again). Unlike qmail, it stops where the
        // text after the `%` is not a domain, so the header stays valid RFC 5322.
        while self
            .percent_hack
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&host))
        {
            let Some(pct) = m.local.rfind('%') else {
                break;
            };
            if !is_dot_atom(&m.local[pct + 1..]) {
                break;
            }
            m.local[pct + 1..].clone_into(&mut host);
            m.local.truncate(pct);
        }
        m.domain = Some(Domain::new(host));
        m
    }
}

/// qmail-send's `percenthack`: while the domain (after the last `@`) is one of `domains`
/// (ignoring case) and the local part holds a `%`, the last `%` becomes the `@` and the old
/// domain is dropped: `u%h@dom` → `u@h`, repeatedly.
///
/// ```
/// use mta_core::{Address, address_list::percent_hack};
/// let hack = ["relay.example".to_string(), "h".to_string()];
/// assert_eq!(percent_hack(&Address::from("u%x%h@Relay.example"), &hack), Address::from("u@x"));
/// assert_eq!(percent_hack(&Address::from("u%h@other"), &hack), Address::from("u%h@other"));
/// ```
pub fn percent_hack(address: &Address, domains: &[String]) -> Address {
    let mut a = address.as_bytes().to_vec();
    let Some(mut at) = a.iter().rposition(|&b| b == b'@') else {
        return address.clone();
    };
    while domains
        .iter()
        .any(|d| d.as_bytes().eq_ignore_ascii_case(&a[at + 1..]))
    {
        let Some(pct) = a[..at].iter().rposition(|&b| b == b'%') else {
            break;
        };
        a.truncate(at);
        a[pct] = b'@';
        at = pct;
    }
    Address::from_bytes(a)
}
