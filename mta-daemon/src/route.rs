//! Local or remote: qmail-send's recipient rewriting (reference §1.4), as a pure function.
//!
//! In order:
//! 1. no `@` → append `@` + envnoathost;
//! 2. percenthack: while the domain is listed, the last `%` of the local part becomes `@`;
//! 3. the domain is in `locals` → local, unchanged;
//! 4. `virtualdomains`, keys tried as `user@dom`, `dom`, each `.suffix`, then the empty
//!    key: a non-empty prepend P makes the recipient local as `P-addr`; an empty prepend
//!    (an exception) makes it remote;
//! 5. otherwise remote.

use std::collections::HashSet;

use mta_core::Address;

/// Where a recipient goes, with its rewritten address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Local delivery to this address (`P-user@dom` for a virtual domain).
    Local(Address),
    /// Remote delivery to this address.
    Remote(Address),
}

/// Decides routes; shared by the scheduler and the SMTP sessions (RCPT-time validation).
pub trait Router: Send + Sync {
    /// The route for `recipient`.
    fn route(&self, recipient: &Address) -> Route;
}

/// The tables qmail-send routes with.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    /// `locals`, lowercased.
    pub locals: HashSet<String>,
    /// `percenthack`, lowercased.
    pub percenthack: HashSet<String>,
    /// `envnoathost`.
    pub envnoathost: String,
    /// `virtualdomains` as (lowercased key, prepend) pairs; keys are `user@dom`, `dom`,
    /// `.suffix` or empty.
    pub virtualdomains: Vec<(String, String)>,
}

impl Tables {
    fn virtual_prepend(&self, addr: &str, domain: &str) -> Option<&str> {
        let find = |key: &str| {
            self.virtualdomains
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, p)| p.as_str())
        };
        if let Some(p) = find(addr) {
            return Some(p);
        }
        if let Some(p) = find(domain) {
            return Some(p);
        }
        for (i, c) in domain.char_indices() {
            if c == '.'
                && let Some(p) = find(&domain[i..])
            {
                return Some(p);
            }
        }
        find("")
    }
}

impl Router for Tables {
    fn route(&self, recipient: &Address) -> Route {
        let mut addr = recipient.as_bytes().to_vec();
        if !addr.contains(&b'@') {
            addr.push(b'@');
            addr.extend_from_slice(self.envnoathost.as_bytes());
        }
        loop {
            let a = Address::from_bytes(addr.clone());
            let domain =
                String::from_utf8_lossy(a.domain().unwrap_or_default()).to_ascii_lowercase();
            if !self.percenthack.contains(&domain) {
                break;
            }
            let local = a.local_part();
            let Some(p) = local.iter().rposition(|&b| b == b'%') else {
                break;
            };
            let mut next = local.to_vec();
            next[p] = b'@';
            addr = next;
        }
        let a = Address::from_bytes(addr);
        let domain = String::from_utf8_lossy(a.domain().unwrap_or_default()).to_ascii_lowercase();
        if self.locals.contains(&domain) {
            return Route::Local(a);
        }
        let lower = String::from_utf8_lossy(a.as_bytes()).to_ascii_lowercase();
        match self.virtual_prepend(&lower, &domain) {
            Some(p) if !p.is_empty() => {
                let mut v = p.as_bytes().to_vec();
                v.push(b'-');
                v.extend_from_slice(a.as_bytes());
                Route::Local(Address::from_bytes(v))
            }
            _ => Route::Remote(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Tables {
        Tables {
            locals: ["example.org".to_owned(), "localhost".to_owned()].into(),
            percenthack: ["relay.example.org".to_owned()].into(),
            envnoathost: "example.org".into(),
            virtualdomains: vec![
                ("virt.example".into(), "joe".into()),
                ("special@virt.example".into(), "alice".into()),
                (".sub.example".into(), "wild".into()),
                ("except.sub.example".into(), String::new()),
            ],
        }
    }

    fn r(a: &str) -> Route {
        tables().route(&Address::from(a))
    }

    #[test]
    fn qmail_send_rewriting() {
        assert_eq!(r("u@Example.ORG"), Route::Local("u@Example.ORG".into()));
        assert_eq!(
            r("postmaster"),
            Route::Local("postmaster@example.org".into())
        );
        assert_eq!(
            r("u@virt.example"),
            Route::Local("joe-u@virt.example".into())
        );
        assert_eq!(
            r("Special@virt.example"),
            Route::Local("alice-Special@virt.example".into())
        );
        assert_eq!(
            r("x@a.sub.example"),
            Route::Local("wild-x@a.sub.example".into())
        );
        assert_eq!(
            r("x@except.sub.example"),
            Route::Remote("x@except.sub.example".into())
        );
        assert_eq!(
            r("x@elsewhere.net"),
            Route::Remote("x@elsewhere.net".into())
        );
        assert_eq!(
            r("u%h1%example.org@relay.example.org"),
            Route::Local("u%h1@example.org".into())
        );
    }
}
