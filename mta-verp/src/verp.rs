//! Variable envelope return paths (qmail RFCVERP, `qmail-send.c: senderadd`).
//!
//! A mailing list that sends each copy from a sender naming the recipient learns which
//! subscriber failed from the bounce's **envelope recipient alone**, with no need to
//! understand the bounce text. qmail spells it like this:
//!
//! - the list asks for VERP by giving the queue the sender `P@H-@[]` (`P` normally ends in
//!   `-`, e.g. `list-owner-@example.org-@[]`);
//! - for each recipient `box@domain` the queue sends from `P` + `box` + `=` + `domain` + `@H`
//!   ([`sender_for_recipient`]);
//! - a bounce of that copy goes to `list-owner-box=domain@example.org`, which reaches the
//!   owner through `.qmail-owner-default` with `DEFAULT=box=domain`; splitting at the **last**
//!   `=` gives the subscriber back ([`Verp::decode`], [`Verp::decode_extension`]);
//! - the queue's own bounces for such a message go to `P@H` ([`strip_verp_marker`]).
//!
//! qmail escapes nothing. That is safe because a domain never contains `=`, so the last `=`
//! always separates box from domain, whatever the box holds (`=`, `-`, `+`, `@`, spaces from
//! a quoted local part). [`Verp::encode`] refuses the one input that would break the round
//! trip (a domain containing the separator), so `decode(encode(r)) == r` for every recipient
//! it accepts; the property tests check exactly that.

use std::fmt;

use mta_core::Address;

/// The suffix `-@[]` that marks a sender asking the queue for per-recipient VERP.
pub const VERP_MARKER: &[u8] = b"-@[]";

/// qmail's scheduler rule (`senderadd`): the envelope sender to use when delivering a
/// message whose sender is `sender` to `recipient`.
///
/// If `sender` is `P@H-@[]` (ends in `-@[]` with an `@` before it) and `recipient` is
/// `box@domain` (split at its last `@`), the result is `P` + `box` + `=` + `domain` + `@H`.
/// Otherwise `sender` is returned unchanged. Nothing is escaped, exactly as qmail does.
///
/// ```
/// use mta_core::Address;
/// use mta_verp::sender_for_recipient;
/// let s = sender_for_recipient(
///     &Address::from("djb-sos-owner-@x.edu-@[]"),
///     &Address::from("God@heaven.af.mil"),
/// );
/// assert_eq!(s, Address::from("djb-sos-owner-God=heaven.af.mil@x.edu"));
/// ```
pub fn sender_for_recipient(sender: &Address, recipient: &Address) -> Address {
    let s = sender.as_bytes();
    let Some(head) = s.strip_suffix(VERP_MARKER) else {
        return sender.clone();
    };
    let (Some(j), Some(k)) = (
        head.iter().rposition(|&b| b == b'@'),
        recipient.as_bytes().iter().rposition(|&b| b == b'@'),
    ) else {
        return sender.clone();
    };
    let r = recipient.as_bytes();
    let mut out = Vec::with_capacity(s.len() + r.len());
    out.extend_from_slice(&head[..j]);
    out.extend_from_slice(&r[..k]);
    out.push(b'=');
    out.extend_from_slice(&r[k + 1..]);
    out.push(b'@');
    out.extend_from_slice(&head[j + 1..]);
    Address::from_bytes(out)
}

/// True when `sender` ends in the VERP marker `-@[]` (qmail RFCVERP).
pub fn is_verp_request(sender: &Address) -> bool {
    sender.as_bytes().ends_with(VERP_MARKER)
}

/// Removes a trailing `-@[]` from a sender: `P@H-@[]` becomes `P@H`. This is what
/// qmail-send does before deciding where its own bounce goes (`injectbounce`). Any other
/// sender is returned unchanged.
///
/// ```
/// use mta_core::Address;
/// use mta_verp::strip_verp_marker;
/// let s = strip_verp_marker(&Address::from("list-owner-@example.org-@[]"));
/// assert_eq!(s, Address::from("list-owner-@example.org"));
/// ```
pub fn strip_verp_marker(sender: &Address) -> Address {
    match sender.as_bytes().strip_suffix(VERP_MARKER) {
        Some(head) => Address::from_bytes(head.to_vec()),
        None => sender.clone(),
    }
}

/// Why a VERP address could not be built or read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerpError {
    /// The list address or recipient has no `@`.
    MissingAt,
    /// The recipient's domain contains the separator, so decoding could not find the box.
    SeparatorInDomain,
    /// The address is not at the list's host, or its local part does not start with the
    /// list's prefix and delimiter.
    NotForList,
    /// The extension holds no separator.
    MissingSeparator,
    /// The delimiter or separator is `@` or a byte that cannot appear in an address.
    BadDelimiter,
}

impl fmt::Display for VerpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerpError::MissingAt => "address has no @",
            VerpError::SeparatorInDomain => "recipient domain contains the verp separator",
            VerpError::NotForList => "address is not a verp address of this list",
            VerpError::MissingSeparator => "verp extension has no separator",
            VerpError::BadDelimiter => "verp delimiter or separator is not usable",
        })
    }
}

impl std::error::Error for VerpError {}

/// A VERP convention: the delimiter between the list's local part and the encoded
/// recipient, and the separator standing for the recipient's `@`.
///
/// qmail uses `-` and `=` ([`Verp::QMAIL`]: `list-owner-box=domain@host`); Mailman and many
/// others use `+` and `=` ([`Verp::PLUS`]: `list-bounces+box=domain@host`).
///
/// ```
/// use mta_core::Address;
/// use mta_verp::Verp;
/// let list = Address::from("list-owner@example.org");
/// let rcpt = Address::from("a=b-c+d@example.net");
/// let verp = Verp::QMAIL.encode(&list, &rcpt)?;
/// assert_eq!(verp, Address::from("list-owner-a=b-c+d=example.net@example.org"));
/// assert_eq!(Verp::QMAIL.decode(&list, &verp)?, rcpt);
/// # Ok::<(), mta_verp::VerpError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verp {
    delimiter: u8,
    separator: u8,
}

impl Default for Verp {
    fn default() -> Self {
        Verp::QMAIL
    }
}

impl Verp {
    /// qmail's convention: delimiter `-` (conf-break), separator `=`.
    pub const QMAIL: Verp = Verp {
        delimiter: b'-',
        separator: b'=',
    };

    /// The `+` convention (Mailman, Postfix `recipient_delimiter = +`): `+` and `=`.
    pub const PLUS: Verp = Verp {
        delimiter: b'+',
        separator: b'=',
    };

    /// A custom convention.
    ///
    /// # Errors
    /// [`VerpError::BadDelimiter`] when either byte is `@`, not printable ASCII, or both
    /// are the same byte.
    pub fn new(delimiter: u8, separator: u8) -> Result<Self, VerpError> {
        let ok = |b: u8| b.is_ascii_graphic() && b != b'@';
        if !ok(delimiter) || !ok(separator) || delimiter == separator {
            return Err(VerpError::BadDelimiter);
        }
        Ok(Verp {
            delimiter,
            separator,
        })
    }

    /// The delimiter between the list's local part and the encoded recipient.
    pub fn delimiter(self) -> u8 {
        self.delimiter
    }

    /// The byte standing for the recipient's `@`.
    pub fn separator(self) -> u8 {
        self.separator
    }

    /// The sender that asks a qmail-style queue for VERP on the list address `L@H`:
    /// `L` + delimiter + `@H-@[]`. With the `=` separator, [`sender_for_recipient`] on this
    /// sender gives the same address as [`Verp::encode`].
    ///
    /// # Errors
    /// [`VerpError::MissingAt`] when `list` has no `@`.
    pub fn request_sender(self, list: &Address) -> Result<Address, VerpError> {
        let (local, host) = split(list)?;
        let mut out = Vec::with_capacity(list.len() + 6);
        out.extend_from_slice(local);
        out.push(self.delimiter);
        out.push(b'@');
        out.extend_from_slice(host);
        out.extend_from_slice(VERP_MARKER);
        Ok(Address::from_bytes(out))
    }

    /// Encodes `recipient` into a return path of the list `L@H`:
    /// `L` + delimiter + `box` + separator + `domain` + `@H`.
    ///
    /// # Errors
    /// [`VerpError::MissingAt`] when either address has no `@`;
    /// [`VerpError::SeparatorInDomain`] when the recipient's domain holds the separator
    /// (then no decoder could find the box again).
    pub fn encode(self, list: &Address, recipient: &Address) -> Result<Address, VerpError> {
        let (local, host) = split(list)?;
        let (rbox, rdomain) = split(recipient)?;
        if rdomain.contains(&self.separator) {
            return Err(VerpError::SeparatorInDomain);
        }
        let mut out = Vec::with_capacity(list.len() + recipient.len() + 2);
        out.extend_from_slice(local);
        out.push(self.delimiter);
        out.extend_from_slice(rbox);
        out.push(self.separator);
        out.extend_from_slice(rdomain);
        out.push(b'@');
        out.extend_from_slice(host);
        Ok(Address::from_bytes(out))
    }

    /// Recovers the recipient from a VERP return path of the list `L@H`, such as the
    /// envelope recipient of a bounce. The host and the `L` + delimiter prefix are compared
    /// ignoring ASCII case (qmail-local lowercases the extension before its `.qmail` search);
    /// the recipient keeps its original case.
    ///
    /// # Errors
    /// [`VerpError::NotForList`] when `verp` is not at the list's host or lacks its prefix;
    /// [`VerpError::MissingSeparator`] / [`VerpError::MissingAt`] when it is malformed.
    pub fn decode(self, list: &Address, verp: &Address) -> Result<Address, VerpError> {
        let (local, host) = split(list)?;
        let (vlocal, vhost) = split(verp)?;
        if !vhost.eq_ignore_ascii_case(host) {
            return Err(VerpError::NotForList);
        }
        let n = local.len();
        if vlocal.len() <= n
            || !vlocal[..n].eq_ignore_ascii_case(local)
            || vlocal[n] != self.delimiter
        {
            return Err(VerpError::NotForList);
        }
        self.decode_extension(&vlocal[n + 1..])
    }

    /// Recovers the recipient from the extension alone, `box` + separator + `domain`: the
    /// `DEFAULT` variable a `.qmail-owner-default` program sees. Splits at the **last**
    /// separator, since a domain never contains it but a box may.
    ///
    /// # Errors
    /// [`VerpError::MissingSeparator`] when there is no separator.
    ///
    /// ```
    /// use mta_verp::Verp;
    /// let r = Verp::QMAIL.decode_extension(b"x=y@z=example.com")?;
    /// assert_eq!(r.as_bytes(), b"x=y@z@example.com");
    /// # Ok::<(), mta_verp::VerpError>(())
    /// ```
    pub fn decode_extension(self, ext: &[u8]) -> Result<Address, VerpError> {
        let i = ext
            .iter()
            .rposition(|&b| b == self.separator)
            .ok_or(VerpError::MissingSeparator)?;
        Ok(Address::from_parts(&ext[..i], &ext[i + 1..]))
    }
}

fn split(a: &Address) -> Result<(&[u8], &[u8]), VerpError> {
    let b = a.as_bytes();
    let i = b
        .iter()
        .rposition(|&c| c == b'@')
        .ok_or(VerpError::MissingAt)?;
    Ok((&b[..i], &b[i + 1..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn a(s: &str) -> Address {
        Address::from(s)
    }

    #[test]
    fn senderadd_matches_qmail_example() {
        let s = sender_for_recipient(&a("djb-sos-owner-@x.edu-@[]"), &a("God@heaven.af.mil"));
        assert_eq!(s, a("djb-sos-owner-God=heaven.af.mil@x.edu"));
    }

    #[test]
    fn senderadd_leaves_other_senders_alone() {
        for s in ["", "#@[]", "user@example.com", "-@[]", "x-@[]", "a@b-@[]x"] {
            assert_eq!(sender_for_recipient(&a(s), &a("r@d")), a(s), "{s}");
        }
        // A recipient without @ is not rewritten.
        let s = a("l-@h-@[]");
        assert_eq!(sender_for_recipient(&s, &a("postmaster")), s);
    }

    #[test]
    fn senderadd_uses_last_at_of_both() {
        let s = sender_for_recipient(&a("\"a@b\"-@h-@[]"), &a("x@y@d.example"));
        assert_eq!(s, a("\"a@b\"-x@y=d.example@h"));
    }

    #[test]
    fn marker_strip() {
        assert_eq!(strip_verp_marker(&a("p@h-@[]")), a("p@h"));
        assert_eq!(strip_verp_marker(&a("p@h")), a("p@h"));
        assert_eq!(strip_verp_marker(&a("-@[]")), a(""));
        assert!(is_verp_request(&a("l-@h-@[]")));
        assert!(!is_verp_request(&a("#@[]")));
    }

    #[test]
    fn request_sender_then_senderadd_equals_encode() {
        let list = a("list-owner@example.org");
        let r = a("a-b=c@example.net");
        let req = Verp::QMAIL.request_sender(&list).unwrap();
        assert_eq!(req, a("list-owner-@example.org-@[]"));
        assert_eq!(
            sender_for_recipient(&req, &r),
            Verp::QMAIL.encode(&list, &r).unwrap()
        );
    }

    #[test]
    fn decode_rejects_foreign_addresses() {
        let list = a("list@example.org");
        let v = Verp::QMAIL;
        assert_eq!(
            v.decode(&list, &a("list-x=y@other.org")),
            Err(VerpError::NotForList)
        );
        assert_eq!(
            v.decode(&list, &a("lists-x=y@example.org")),
            Err(VerpError::NotForList)
        );
        assert_eq!(
            v.decode(&list, &a("list-@example.org")),
            Err(VerpError::MissingSeparator)
        );
        assert_eq!(
            v.decode(&list, &a("list@example.org")),
            Err(VerpError::NotForList)
        );
        assert_eq!(
            v.decode(&list, &a("LIST-u=d.example@EXAMPLE.org")).unwrap(),
            a("u@d.example")
        );
    }

    #[test]
    fn encode_refuses_separator_in_domain() {
        assert_eq!(
            Verp::QMAIL.encode(&a("l@h"), &a("u@a=b")),
            Err(VerpError::SeparatorInDomain)
        );
        assert_eq!(
            Verp::QMAIL.encode(&a("l"), &a("u@d")),
            Err(VerpError::MissingAt)
        );
    }

    #[test]
    fn custom_delimiters() {
        assert!(Verp::new(b'@', b'=').is_err());
        assert!(Verp::new(b'+', b'+').is_err());
        assert!(Verp::new(b' ', b'=').is_err());
        let v = Verp::new(b'+', b'%').unwrap();
        let e = v.encode(&a("bounces@h"), &a("u@d")).unwrap();
        assert_eq!(e, a("bounces+u%d@h"));
        assert_eq!(v.decode(&a("bounces@h"), &e).unwrap(), a("u@d"));
    }
}
