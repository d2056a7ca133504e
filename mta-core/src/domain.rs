//! Domain names with the comparison rules mail needs.
//!
//! RFC 5321 §2.4: "domain names are case-insensitive". A trailing dot (the DNS root,
//! `example.com.`) names the same domain as the dotless form, so it is dropped when a
//! [`Domain`] is built. UTF-8 (RFC 6531 U-labels) is preserved as given; IDNA conversion is
//! left to the caller. Case folding is ASCII-only, as DNS does.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A domain name, or an address literal such as `[192.0.2.1]`, as it appeared in mail.
///
/// Comparison, ordering and hashing ignore ASCII case (RFC 5321 §2.4), and a single trailing
/// dot is removed on construction. The original spelling is kept for display.
///
/// ```
/// use mta_core::Domain;
/// let a = Domain::new("Example.COM.");
/// assert_eq!(a, Domain::new("example.com"));
/// assert_eq!(a.as_str(), "Example.COM");
/// ```
#[derive(Clone)]
pub struct Domain(String);

impl Domain {
    /// Builds a domain from text, dropping one trailing `.` (but never turning `.` alone
    /// into the empty string). No validation is done here; parsers validate.
    pub fn new(name: impl Into<String>) -> Self {
        let mut s = name.into();
        if s.len() > 1 && s.ends_with('.') && !s.ends_with("..") {
            s.pop();
        }
        Domain(s)
    }

    /// The domain as written (trailing dot removed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain with ASCII letters lowercased: the form used for table lookups
    /// (`locals`, `rcpthosts`, `virtualdomains`; qmail lowercases before every lookup).
    pub fn to_lowercase(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// True for an address literal (`[...]`, RFC 5321 §4.1.3).
    pub fn is_literal(&self) -> bool {
        self.0.starts_with('[') && self.0.ends_with(']')
    }

    /// True when `self` equals `suffix` or ends with `.` + `suffix`, ignoring case.
    /// This is the `.domain` wildcard rule of `rcpthosts` and `smtproutes`.
    ///
    /// ```
    /// use mta_core::Domain;
    /// assert!(Domain::new("a.Example.com").is_subdomain_of("example.com"));
    /// assert!(!Domain::new("badexample.com").is_subdomain_of("example.com"));
    /// ```
    pub fn is_subdomain_of(&self, suffix: &str) -> bool {
        let s = self.0.as_bytes();
        let t = suffix.trim_end_matches('.').as_bytes();
        if s.len() == t.len() {
            return s.eq_ignore_ascii_case(t);
        }
        s.len() > t.len()
            && s[s.len() - t.len()..].eq_ignore_ascii_case(t)
            && s[s.len() - t.len() - 1] == b'.'
    }

    /// Consumes the domain, returning its text.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl PartialEq for Domain {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for Domain {}

impl PartialEq<str> for Domain {
    fn eq(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.trim_end_matches('.'))
    }
}

impl PartialEq<&str> for Domain {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl Hash for Domain {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

impl Ord for Domain {
    fn cmp(&self, other: &Self) -> Ordering {
        let a = self.0.bytes().map(|b| b.to_ascii_lowercase());
        let b = other.0.bytes().map(|b| b.to_ascii_lowercase());
        a.cmp(b)
    }
}

impl PartialOrd for Domain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({:?})", self.0)
    }
}

impl From<&str> for Domain {
    fn from(s: &str) -> Self {
        Domain::new(s)
    }
}

impl From<String> for Domain {
    fn from(s: String) -> Self {
        Domain::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn case_and_trailing_dot() {
        let mut set = HashSet::new();
        set.insert(Domain::new("EXAMPLE.org."));
        assert!(set.contains(&Domain::new("example.ORG")));
        assert_eq!(Domain::new("."), Domain::new("."));
        assert_eq!(Domain::new("a..").as_str(), "a..");
    }

    #[test]
    fn subdomains() {
        let d = Domain::new("mx.Mail.Example.com");
        assert!(d.is_subdomain_of("example.com"));
        assert!(d.is_subdomain_of("mail.example.com."));
        assert!(!d.is_subdomain_of("ample.com"));
        assert!(!Domain::new("com").is_subdomain_of("example.com"));
    }

    #[test]
    fn literal() {
        assert!(Domain::new("[192.0.2.1]").is_literal());
        assert!(!Domain::new("192.0.2.1").is_literal());
    }
}
