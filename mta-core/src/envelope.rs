//! The envelope: who a message is from and who it is for, in qmail's internal form.
//!
//! Inside the queue and between the crates, addresses are kept the way qmail keeps them
//! (envelopes.5): `local@domain` with no angle brackets, no quoting and no source route.
//! The null reverse path `<>` is the empty address, and qmail's double-bounce sender is
//! `#@[]`. The bytes are opaque: a recipient may carry any byte an SMTP client managed to get
//! past the parser, so [`Address`] stores bytes, and every consumer that writes it somewhere
//! (queue files, logs, headers, environment variables) must escape or reject what it cannot
//! represent.

use std::fmt;

use crate::domain::Domain;
use crate::path::is_atext;

/// An envelope address in qmail's internal form: `local@domain`, the empty string for the
/// null sender `<>`, or `#@[]` for a double bounce (qmail RFCLOOPS).
///
/// The address is split at its **last** `@` (qmail-lspawn §2.1: a local part may contain `@`
/// inside quotes, a domain never does).
///
/// ```
/// use mta_core::Address;
/// let a = Address::from("Joe.User@Example.com");
/// assert_eq!(a.local_part(), b"Joe.User");
/// assert_eq!(a.domain(), Some(&b"Example.com"[..]));
/// assert!(Address::null().is_null());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(Vec<u8>);

impl Address {
    /// The null reverse path `<>` (RFC 5321 §4.5.5), used as the sender of bounces.
    pub fn null() -> Self {
        Address(Vec::new())
    }

    /// qmail's double-bounce sender `#@[]` (RFCLOOPS): mail from it is never bounced.
    pub fn double_bounce() -> Self {
        Address(b"#@[]".to_vec())
    }

    /// Wraps raw bytes without any check.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Address(bytes.into())
    }

    /// Joins a local part and a domain with `@`.
    pub fn from_parts(local: &[u8], domain: &[u8]) -> Self {
        let mut v = Vec::with_capacity(local.len() + 1 + domain.len());
        v.extend_from_slice(local);
        v.push(b'@');
        v.extend_from_slice(domain);
        Address(v)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the address, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the null sender `<>`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True for the null sender `<>`; same as [`Address::is_empty`].
    pub fn is_null(&self) -> bool {
        self.0.is_empty()
    }

    /// True for qmail's double-bounce sender `#@[]`.
    pub fn is_double_bounce(&self) -> bool {
        self.0 == b"#@[]"
    }

    /// True when mail from this sender must never be answered by a bounce or an
    /// auto-reply: the null sender and `#@[]` (RFCLOOPS; RFC 5321 §4.5.5).
    pub fn is_bounce_sender(&self) -> bool {
        self.is_null() || self.is_double_bounce()
    }

    fn at(&self) -> Option<usize> {
        self.0.iter().rposition(|&b| b == b'@')
    }

    /// The part before the last `@`, or the whole address when there is none.
    pub fn local_part(&self) -> &[u8] {
        match self.at() {
            Some(i) => &self.0[..i],
            None => &self.0,
        }
    }

    /// The part after the last `@`, if there is an `@`.
    pub fn domain(&self) -> Option<&[u8]> {
        self.at().map(|i| &self.0[i + 1..])
    }

    /// The domain as a [`Domain`] when it is valid UTF-8.
    pub fn domain_name(&self) -> Option<Domain> {
        self.domain()
            .and_then(|d| std::str::from_utf8(d).ok())
            .map(Domain::new)
    }

    /// The address as text, with invalid UTF-8 replaced (for display only).
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Display for Address {
    /// Writes the address in RFC 5321 §4.1.2 form without angle brackets: the local part
    /// as a `Dot-string` when it is one, else as a `Quoted-string` (`"joe smith"@example.com`,
    /// with `"` and `\` written as quoted pairs), then `@` and the domain; the null sender
    /// is the empty string.
    ///
    /// A control byte, DEL or a byte outside ASCII that is not part of a dot-string
    /// (RFC 6531 UTF-8 local parts are) is shown as `\xNN`, as is any such byte, a space
    /// or a backslash in the domain, so a log line built from an address can never be
    /// split or forged by an attacker's bytes. For the raw bytes use
    /// [`Address::as_bytes`] or [`Address::to_string_lossy`].
    ///
    /// ```
    /// use mta_core::Address;
    /// assert_eq!(Address::from("joe smith@example.com").to_string(), r#""joe smith"@example.com"#);
    /// assert_eq!(Address::from("joe.smith@example.com").to_string(), "joe.smith@example.com");
    /// assert_eq!(Address::from_bytes(&b"a\r\nb@c"[..]).to_string(), r#""a\x0d\x0ab"@c"#);
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (local, domain) = match self.0.iter().rposition(|&b| b == b'@') {
            Some(at) => (&self.0[..at], Some(&self.0[at + 1..])),
            None => (&self.0[..], None),
        };
        if local.is_empty() || is_dot_string(local) {
            for &b in local {
                write_escaped(f, b)?;
            }
        } else {
            f.write_str("\"")?;
            for &b in local {
                match b {
                    b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                    b' ' => f.write_str(" ")?,
                    _ => write_escaped(f, b)?,
                }
            }
            f.write_str("\"")?;
        }
        if let Some(domain) = domain {
            f.write_str("@")?;
            for &b in domain {
                write_escaped(f, b)?;
            }
        }
        Ok(())
    }
}

/// RFC 5321 §4.1.2 `Dot-string = Atom *("." Atom)`, with RFC 6531 UTF-8 bytes as `atext`.
fn is_dot_string(s: &[u8]) -> bool {
    s.split(|&b| b == b'.')
        .all(|atom| !atom.is_empty() && atom.iter().all(|&b| is_atext(b) || b >= 0x80))
}

/// Printable ASCII but the backslash as itself, anything else as `\xNN`.
fn write_escaped(f: &mut fmt::Formatter<'_>, b: u8) -> fmt::Result {
    if (0x21..0x7f).contains(&b) && b != b'\\' {
        write!(f, "{}", b as char)
    } else {
        write!(f, "\\x{b:02x}")
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address(\"{self}\")")
    }
}

impl From<&str> for Address {
    fn from(s: &str) -> Self {
        Address(s.as_bytes().to_vec())
    }
}

impl From<String> for Address {
    fn from(s: String) -> Self {
        Address(s.into_bytes())
    }
}

impl From<&[u8]> for Address {
    fn from(s: &[u8]) -> Self {
        Address(s.to_vec())
    }
}

impl From<Vec<u8>> for Address {
    fn from(v: Vec<u8>) -> Self {
        Address(v)
    }
}

/// A message envelope: the reverse path and the forward paths (RFC 5321 §2.3.1), in qmail's
/// internal [`Address`] form.
///
/// ```
/// use mta_core::{Address, Envelope};
/// let env = Envelope::new("list-@example.org-@[]", ["a@example.com", "b@example.net"]);
/// assert_eq!(env.recipients.len(), 2);
/// assert_eq!(env.sender, Address::from("list-@example.org-@[]"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Envelope {
    /// The envelope sender (`MAIL FROM`); empty for `<>`.
    pub sender: Address,
    /// The envelope recipients (`RCPT TO`), in the order given.
    pub recipients: Vec<Address>,
}

impl Envelope {
    /// Builds an envelope from a sender and recipients.
    pub fn new<S, R, I>(sender: S, recipients: I) -> Self
    where
        S: Into<Address>,
        R: Into<Address>,
        I: IntoIterator<Item = R>,
    {
        Envelope {
            sender: sender.into(),
            recipients: recipients.into_iter().map(Into::into).collect(),
        }
    }
}

impl fmt::Display for Envelope {
    /// `from <SENDER> to <RCPT>, <RCPT>`, each address as its [`Address`] `Display` (so
    /// `<>` for the null sender, and no byte that could split a log line).
    ///
    /// ```
    /// use mta_core::Envelope;
    /// let env = Envelope::new("", ["joe smith@example.com", "b@example.net"]);
    /// assert_eq!(env.to_string(), r#"from <> to <"joe smith"@example.com>, <b@example.net>"#);
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "from <{}> to ", self.sender)?;
        for (i, r) in self.recipients.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "<{r}>")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_at_last_at() {
        let a = Address::from("\"a@b\"@c.example");
        assert_eq!(a.local_part(), b"\"a@b\"");
        assert_eq!(a.domain(), Some(&b"c.example"[..]));
        let n = Address::from("postmaster");
        assert_eq!(n.local_part(), b"postmaster");
        assert_eq!(n.domain(), None);
    }

    #[test]
    fn bounce_senders() {
        assert!(Address::null().is_bounce_sender());
        assert!(Address::double_bounce().is_bounce_sender());
        assert!(!Address::from("a@b").is_bounce_sender());
    }

    #[test]
    fn display_escapes_control_bytes() {
        let a = Address::from_bytes(b"a\r\nb@c \x00".to_vec());
        assert_eq!(a.to_string(), "\"a\\x0d\\x0ab\"@c\\x20\\x00");
    }

    /// Issue 21: `"joe smith"@x` printed as `joe\x20smith@x`.
    #[test]
    fn display_quotes_local_parts_that_are_not_dot_strings() {
        let cases: [(&[u8], &str); 9] = [
            (b"joe smith@x.test", r#""joe smith"@x.test"#),
            (b"joe.smith@x.test", "joe.smith@x.test"),
            (b"a@b@x.test", r#""a@b"@x.test"#),
            (b"say \"hi\"\\@x.test", r#""say \"hi\"\\"@x.test"#),
            (b".lead@x.test", r#"".lead"@x.test"#),
            (b"", ""),
            (b"postmaster", "postmaster"),
            (b"#@[]", "#@[]"),
            ("j\u{f6}rg@x.test".as_bytes(), "j\\xc3\\xb6rg@x.test"),
        ];
        for (bytes, shown) in cases {
            assert_eq!(Address::from_bytes(bytes).to_string(), shown, "{bytes:?}");
        }
    }

    /// What Display prints for a quoted local part parses back to the same address.
    #[test]
    fn display_round_trips_through_the_path_parser() {
        use crate::path::{PathOptions, parse_forward_path};
        for a in [
            "joe smith@x.test",
            "a@b@x.test",
            "say \"hi\"@x.test",
            "o'neil@x.test",
        ] {
            let shown = format!("<{}>", Address::from(a));
            let (path, _) = parse_forward_path(shown.as_bytes(), PathOptions::default())
                .expect("the printed form parses");
            assert_eq!(path.to_address(), Address::from(a), "{shown}");
        }
    }
}
