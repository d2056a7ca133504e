//! The lookup tables among the control files, with qmail's key orders (qmail-reference
//! §6, §8): `rcpthosts`/`morercpthosts`, `badmailfrom`, `virtualdomains`, `smtproutes`.
//! Keys compare without ASCII case, as qmail's `constmap` does.

use std::collections::{HashMap, HashSet};

use super::read::{ControlError, File};
use crate::Address;

/// Where `rcpthosts` and `smtproutes` look a domain up: the domain itself, then every
/// suffix that starts at a `.` (longest first), in qmail's order (`rcpthosts.c`,
/// `qmail-remote.c`).
fn dot_suffixes(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::once(domain).chain(
        domain
            .char_indices()
            .filter(|&(_, c)| c == '.')
            .map(move |(i, _)| &domain[i..]),
    )
}

/// `rcpthosts` plus `morercpthosts` (qmail-reference §8, qmail-smtpd `rcpthosts.c`): the domains this host accepts mail for. An entry is a
/// domain (`example.com`) or a wildcard for its subdomains (`.example.com`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptHosts {
    keys: HashSet<String>,
}

impl RcptHosts {
    /// A table of the given entries.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(entries: I) -> Self {
        RcptHosts {
            keys: entries
                .into_iter()
                .map(|e| e.as_ref().to_ascii_lowercase())
                .collect(),
        }
    }

    pub(super) fn add_file(&mut self, file: &File) {
        self.keys
            .extend(file.lines().map(|(_, l)| l.to_ascii_lowercase()));
    }

    /// True when `domain` is listed, or a `.suffix` entry covers it (qmail-smtpd's
    /// `rcpthosts()`).
    ///
    /// ```
    /// use mta_core::control::RcptHosts;
    /// let r = RcptHosts::new(["example.com", ".example.net"]);
    /// assert!(r.allows("Example.COM"));
    /// assert!(r.allows("mx.example.net"));
    /// assert!(!r.allows("example.net"));
    /// assert!(!r.allows("mx.example.com"));
    /// ```
    pub fn allows(&self, domain: &str) -> bool {
        let d = domain.to_ascii_lowercase();
        dot_suffixes(&d).any(|k| self.keys.contains(k))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no entries (nothing is accepted).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// `badmailfrom`: envelope senders refused by qmail-smtpd, as full addresses or
/// `@domain` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BadMailFrom {
    keys: HashSet<String>,
}

impl BadMailFrom {
    /// A table of the given entries.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(entries: I) -> Self {
        BadMailFrom {
            keys: entries
                .into_iter()
                .map(|e| e.as_ref().to_ascii_lowercase())
                .collect(),
        }
    }

    pub(super) fn from_file(file: &File) -> Self {
        BadMailFrom::new(file.lines().map(|(_, l)| l))
    }

    /// True when the sender is listed, or its `@domain` is (qmail-smtpd's `bmfcheck`).
    ///
    /// ```
    /// use mta_core::{Address, control::BadMailFrom};
    /// let b = BadMailFrom::new(["spam@example.com", "@junk.example"]);
    /// assert!(b.matches(&Address::from("SPAM@example.com")));
    /// assert!(b.matches(&Address::from("anyone@Junk.example")));
    /// assert!(!b.matches(&Address::from("ham@example.com")));
    /// ```
    pub fn matches(&self, sender: &Address) -> bool {
        if self.keys.is_empty() {
            return false;
        }
        let a = String::from_utf8_lossy(sender.as_bytes()).to_ascii_lowercase();
        if self.keys.contains(&a) {
            return true;
        }
        a.rfind('@').is_some_and(|at| self.keys.contains(&a[at..]))
    }
}

/// `virtualdomains` (qmail-reference §8, qmail-send): `user@domain:prepend`, `domain:prepend`, `.suffix:prepend` and
/// `:prepend` (catch-all) entries; an empty prepend is an exception.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtualDomains {
    map: HashMap<String, String>,
}

impl VirtualDomains {
    /// A table of `(key, prepend)` entries.
    pub fn new<I: IntoIterator<Item = (K, V)>, K: AsRef<str>, V: Into<String>>(entries: I) -> Self {
        VirtualDomains {
            map: entries
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
                .collect(),
        }
    }

    pub(super) fn from_file(file: &File) -> Result<Self, ControlError> {
        let mut map = HashMap::new();
        for (n, line) in file.lines() {
            // qmail's constmap splits at the first colon.
            let Some((key, prepend)) = line.split_once(':') else {
                return Err(file.invalid(n, "KEY:PREPEND", line));
            };
            // A later line for the same key replaces an earlier one: qmail's constmap
            // chains entries newest first.
            map.insert(key.to_ascii_lowercase(), prepend.to_owned());
        }
        Ok(VirtualDomains { map })
    }

    /// The prepend for `address` (qmail-send, qmail-reference §8), trying keys in qmail's
    /// order: the whole address, its domain, every `.suffix` of the domain (longest
    /// first), then the catch-all. `None` when nothing matches or the first match is an
    /// exception (empty prepend). The caller checks `locals` first: virtualdomains does
    /// not apply to local domains.
    ///
    /// ```
    /// use mta_core::{Address, control::VirtualDomains};
    /// let v = VirtualDomains::new([("example.com", "joe"), (".example.com", "sub"), ("x.example.com", "")]);
    /// assert_eq!(v.lookup(&Address::from("a@example.com")), Some("joe"));
    /// assert_eq!(v.lookup(&Address::from("a@y.example.com")), Some("sub"));
    /// assert_eq!(v.lookup(&Address::from("a@x.example.com")), None);
    /// ```
    pub fn lookup(&self, address: &Address) -> Option<&str> {
        let a = String::from_utf8_lossy(address.as_bytes()).to_ascii_lowercase();
        let at = a.rfind('@')?;
        let domain = &a[at + 1..];
        let keys = std::iter::once(a.as_str())
            .chain(dot_suffixes(domain))
            .chain(std::iter::once(""));
        for key in keys {
            if let Some(p) = self.map.get(key) {
                return (!p.is_empty()).then_some(p.as_str());
            }
        }
        None
    }

    /// The local address qmail-send delivers to: `prepend-user@domain` (the prepend, a
    /// dash, and the whole original address), or `None` as for [`VirtualDomains::lookup`].
    pub fn rewrite(&self, address: &Address) -> Option<Address> {
        let prepend = self.lookup(address)?;
        let mut v = Vec::with_capacity(prepend.len() + 1 + address.len());
        v.extend_from_slice(prepend.as_bytes());
        v.push(b'-');
        v.extend_from_slice(address.as_bytes());
        Some(Address::from_bytes(v))
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Where `smtproutes` sends mail for a domain (qmail-reference §6 "Routing").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SmtpRoute {
    /// An empty relay (`domain:`): look up MX records as usual.
    Mx,
    /// A fixed relay host (a name, `1.2.3.4`, `[1.2.3.4]` or `[IPv6]`), and a port if given.
    Relay {
        /// The relay host: a name, or an IP address (written without brackets; the caller
        /// tries `host.parse::<IpAddr>()` before resolving).
        host: String,
        /// The port; `None` means 25.
        port: Option<u16>,
    },
}

/// `smtproutes` (qmail-reference §6, §8): `domain:relay[:port]`, `.suffix:...` and `:relay` (default route) lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmtpRoutes {
    map: HashMap<String, SmtpRoute>,
}

/// Parses the value of an `smtproutes` line: `relay[:port]`, with `[v6]:port` allowed.
fn parse_route(value: &str) -> Option<SmtpRoute> {
    if value.is_empty() {
        return Some(SmtpRoute::Mx);
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = rest[..close].to_owned();
        let after = &rest[close + 1..];
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (value.to_owned(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => None,
    };
    Some(SmtpRoute::Relay { host, port })
}

impl SmtpRoutes {
    pub(super) fn from_file(file: &File) -> Result<Self, ControlError> {
        let mut map = HashMap::new();
        for (n, line) in file.lines() {
            let Some((key, value)) = line.split_once(':') else {
                return Err(file.invalid(n, "DOMAIN:RELAY[:PORT]", line));
            };
            let route = parse_route(value).ok_or_else(|| file.invalid(n, "RELAY[:PORT]", value))?;
            map.insert(key.to_ascii_lowercase(), route);
        }
        Ok(SmtpRoutes { map })
    }

    /// A table from `smtproutes` lines (`domain:relay[:port]`).
    ///
    /// # Errors
    /// [`ControlError`] naming the bad line (file name `smtproutes`).
    pub fn parse(text: &str) -> Result<Self, ControlError> {
        SmtpRoutes::from_file(&File {
            path: "smtproutes".into(),
            text: text.to_owned(),
        })
    }

    /// The route for `domain`, trying keys in qmail-remote's order: the domain, each
    /// suffix starting at a `.` (longest first), then the empty key. `None`: no entry, use
    /// MX records.
    ///
    /// ```
    /// use mta_core::control::{SmtpRoute, SmtpRoutes};
    /// let r = SmtpRoutes::parse(".example.com:relay.example.net:2525\nin.example.com:\n:smarthost")?;
    /// assert_eq!(r.lookup("a.example.com"), Some(&SmtpRoute::Relay { host: "relay.example.net".into(), port: Some(2525) }));
    /// assert_eq!(r.lookup("in.example.com"), Some(&SmtpRoute::Mx));
    /// assert_eq!(r.lookup("other.org"), Some(&SmtpRoute::Relay { host: "smarthost".into(), port: None }));
    /// # Ok::<(), mta_core::control::ControlError>(())
    /// ```
    pub fn lookup(&self, domain: &str) -> Option<&SmtpRoute> {
        let d = domain.to_ascii_lowercase();
        dot_suffixes(&d)
            .chain(std::iter::once(""))
            .find_map(|k| self.map.get(k))
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What outbound TLS a destination gets (`control/tlsdestinations`, design.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TlsDestination {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered; after a failed handshake, the same host again in plain text
    /// (opportunistic TLS, RFC 7435). The default.
    #[default]
    May,
    /// TLS required, any certificate: without it, the message is deferred.
    Encrypt,
    /// TLS required with a certificate valid for the host name (webpki roots plus
    /// `control/tlsca.pem`).
    Verify,
}

impl TlsDestination {
    /// The word used in `tlsdestinations`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsDestination::None => "none",
            TlsDestination::May => "may",
            TlsDestination::Encrypt => "encrypt",
            TlsDestination::Verify => "verify",
        }
    }
}

/// `tlsdestinations`: `DOMAIN:POLICY` lines, `.suffix:POLICY` for subdomains and
/// `:POLICY` as the default, looked up in smtproutes' order (the domain, each suffix
/// starting at a `.`, longest first, then the empty key). Policies: `none`, `may`
/// (default), `encrypt`, `verify`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsDestinations {
    map: HashMap<String, TlsDestination>,
}

impl TlsDestinations {
    pub(super) fn from_file(file: &File) -> Result<Self, ControlError> {
        let mut map = HashMap::new();
        for (n, line) in file.lines() {
            let expected = "DOMAIN:none, DOMAIN:may, DOMAIN:encrypt or DOMAIN:verify";
            let Some((key, value)) = line.rsplit_once(':') else {
                return Err(file.invalid(n, expected, line));
            };
            let policy = match value.trim() {
                "none" => TlsDestination::None,
                "may" => TlsDestination::May,
                "encrypt" => TlsDestination::Encrypt,
                "verify" => TlsDestination::Verify,
                _ => return Err(file.invalid(n, expected, line)),
            };
            map.insert(key.trim().to_ascii_lowercase(), policy);
        }
        Ok(TlsDestinations { map })
    }

    /// A table from `tlsdestinations` lines.
    ///
    /// # Errors
    /// [`ControlError`] naming the bad line (file name `tlsdestinations`).
    pub fn parse(text: &str) -> Result<Self, ControlError> {
        TlsDestinations::from_file(&File {
            path: "tlsdestinations".into(),
            text: text.to_owned(),
        })
    }

    /// The policy for `domain` (the default, [`TlsDestination::May`], without an entry).
    ///
    /// ```
    /// use mta_core::control::{TlsDestination, TlsDestinations};
    /// let t = TlsDestinations::parse("bank.example:verify\n.corp.example:encrypt\nold.example:none")?;
    /// assert_eq!(t.lookup("BANK.example"), TlsDestination::Verify);
    /// assert_eq!(t.lookup("mx.corp.example"), TlsDestination::Encrypt);
    /// assert_eq!(t.lookup("other.example"), TlsDestination::May);
    /// # Ok::<(), mta_core::control::ControlError>(())
    /// ```
    pub fn lookup(&self, domain: &str) -> TlsDestination {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        dot_suffixes(&d)
            .chain(std::iter::once(""))
            .find_map(|k| self.map.get(k).copied())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_destinations() {
        let t = TlsDestinations::parse(":encrypt\nplain.example:none\n").unwrap_or_default();
        assert_eq!(t.lookup("x.example"), TlsDestination::Encrypt);
        assert_eq!(t.lookup("plain.example."), TlsDestination::None);
        assert!(TlsDestinations::parse("x.example:sometimes").is_err());
        assert!(TlsDestinations::parse("x.example").is_err());
    }

    #[test]
    fn suffix_order() {
        let v: Vec<&str> = dot_suffixes("a.b.c").collect();
        assert_eq!(v, ["a.b.c", ".b.c", ".c"]);
    }

    #[test]
    fn routes() {
        assert_eq!(parse_route(""), Some(SmtpRoute::Mx));
        assert_eq!(
            parse_route("[2001:db8::1]:2525"),
            Some(SmtpRoute::Relay {
                host: "2001:db8::1".into(),
                port: Some(2525)
            })
        );
        assert_eq!(
            parse_route("[192.0.2.1]"),
            Some(SmtpRoute::Relay {
                host: "192.0.2.1".into(),
                port: None
            })
        );
        assert_eq!(parse_route("relay:0"), None);
        assert_eq!(parse_route("relay:x"), None);
        assert_eq!(parse_route("[::1]x"), None);
        assert_eq!(parse_route(":25"), None);
    }
}

/// `control/accounts` (ours, design.md "Processes and accounts"): the system accounts the
/// processes of `mta serve` run as, one `ROLE:NAME` line each (roles `smtpd`, `queue`,
/// `remote`, `alias`); a role not named keeps its default (`mtad`, `mtaq`, `mtar`,
/// `mtaa`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountNames {
    /// The SMTP process's account.
    pub smtpd: String,
    /// The queue process's account.
    pub queue: String,
    /// The remote delivery process's account.
    pub remote: String,
    /// The alias user (`DIR/alias`).
    pub alias: String,
}

impl Default for AccountNames {
    fn default() -> Self {
        AccountNames {
            smtpd: "mtad".into(),
            queue: "mtaq".into(),
            remote: "mtar".into(),
            alias: "mtaa".into(),
        }
    }
}

impl AccountNames {
    /// Parses the file's text (`path` names it in errors): what [`Control::load`](super::Control::load)
    /// does for `control/accounts`, for a caller that needs only this file.
    ///
    /// # Errors
    /// [`ControlError`] with the line of a line that is not `ROLE:NAME` with a known role
    /// and a plausible login name (letters, digits, `_`, `-`, `.`; not starting with `-`; at
    /// most 32 bytes).
    pub fn parse(path: impl Into<std::path::PathBuf>, text: &[u8]) -> Result<Self, ControlError> {
        let file = File::from_bytes(path.into(), text.to_vec())?;
        Self::from_file(&file)
    }

    pub(super) fn from_file(file: &File) -> Result<Self, ControlError> {
        let mut names = AccountNames::default();
        for (n, line) in file.lines() {
            let (role, name) = line
                .split_once(':')
                .ok_or_else(|| file.invalid(n, "ROLE:NAME", line))?;
            let plausible = !name.is_empty()
                && name.len() <= 32
                && !name.starts_with('-')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !plausible {
                return Err(file.invalid(n, "a login name", line));
            }
            let slot = match role {
                "smtpd" => &mut names.smtpd,
                "queue" => &mut names.queue,
                "remote" => &mut names.remote,
                "alias" => &mut names.alias,
                _ => return Err(file.invalid(n, "a role: smtpd, queue, remote or alias", line)),
            };
            name.clone_into(slot);
        }
        Ok(names)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod account_tests {
    use super::AccountNames;

    #[test]
    fn defaults_renames_and_bad_lines_with_their_line() {
        let parse = |t: &str| AccountNames::parse("accounts", t.as_bytes());
        assert_eq!(parse("").unwrap(), AccountNames::default());
        let n = parse("# ours\nsmtpd:qmaild\n\nalias:alias\n").unwrap();
        assert_eq!(
            (
                n.smtpd.as_str(),
                n.queue.as_str(),
                n.remote.as_str(),
                n.alias.as_str()
            ),
            ("qmaild", "mtaq", "mtar", "alias")
        );
        for (text, want) in [
            ("smtpd\n", "accounts:1"),
            ("\nlocal:x\n", "accounts:2"),
            ("queue:-rf\n", "accounts:1"),
            ("queue:a b\n", "accounts:1"),
            ("queue:\n", "accounts:1"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
