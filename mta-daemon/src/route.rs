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

use mta_core::Address;
use mta_core::control::Control;

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

impl Router for Control {
    fn route(&self, recipient: &Address) -> Route {
        let mut addr = recipient.as_bytes().to_vec();
        if !addr.contains(&b'@') {
            addr.push(b'@');
            addr.extend_from_slice(self.envnoathost.as_bytes());
        }
        let a = mta_core::address_list::percent_hack(&Address::from_bytes(addr), &self.percenthack);
        let domain = String::from_utf8_lossy(a.domain().unwrap_or_default()).into_owned();
        if self.is_local(&domain) {
            return Route::Local(a);
        }
        match self.virtual_rewrite(&a) {
            Some(local) => Route::Local(local),
            None => Route::Remote(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str) -> Route {
        let files: [(&str, &[u8]); 4] = [
            ("locals", b"example.org\nlocalhost\n"),
            ("percenthack", b"relay.example.org\n"),
            ("envnoathost", b"example.org\n"),
            (
                "virtualdomains",
                b"virt.example:joe\nspecial@virt.example:alice\n.sub.example:wild\nexcept.sub.example:\n",
            ),
        ];
        let c = Control::from_texts(files, "").unwrap_or_else(|e| panic!("{e}"));
        c.route(&Address::from(a))
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
