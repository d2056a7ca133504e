//! DKIM signing (RFC 6376 §5, RFC 8463): one `DKIM-Signature` per selector of the From:
//! domain (or its closest parent domain with keys).

use std::sync::Arc;

use mail_auth::common::crypto::{Algorithm, DkimKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter as _, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use mail_parser::{Message, MessageParser};

use crate::error::SignError;
use crate::store::KeyStore;

/// The header fields signed when present, in this order (RFC 6376 §5.4.1's list of fields
/// that SHOULD be signed, less the ones qmail-style relays commonly rewrite). `From` is
/// listed once more than it occurs ("over-signed", §8.15), so that a second From: added in
/// transit breaks the signature.
pub const SIGNED_HEADERS: [&str; 12] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "References",
];

/// Signs outgoing messages with the keys of a [`KeyStore`].
///
/// For each message: the domain of the first From: address, lower-cased, is looked up in
/// the key store, then each parent domain (`a.b.example.com`, `b.example.com`,
/// `example.com`); the first that has keys signs, once per selector, `c=relaxed/relaxed`,
/// `a=rsa-sha256` or `a=ed25519-sha256` as the key file says. Safe to share between
/// threads; keys changed on disk are used from the next message on.
#[derive(Debug)]
pub struct Signer {
    keys: KeyStore,
}

impl Signer {
    /// A signer using `keys`.
    pub fn new(keys: KeyStore) -> Signer {
        Signer { keys }
    }

    /// The key store.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Signs `message` (header and body, CRLF or LF line ends) and returns the
    /// `DKIM-Signature:` header fields to put in front of it, each ending in CRLF; empty when
    /// the message has no From: domain with keys.
    ///
    /// # Errors
    ///
    /// [`SignError::Key`] when a key file of the signing domain cannot be read or parsed
    /// (the caller should defer rather than send the message unsigned);
    /// [`SignError::Dkim`] when signing itself fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let Some(parsed) = MessageParser::new().parse_headers(message) else {
            return Ok(Vec::new());
        };
        let Some(from_domain) = from_domain(&parsed) else {
            return Ok(Vec::new());
        };
        let Some((domain, keys)) = self.keys.keys_for(&from_domain)? else {
            return Ok(Vec::new());
        };
        let mut headers = headers_to_sign(&parsed);
        // mail-auth folds long tag values, `bh=` too (RFC 6376 §3.5 allows FWS in it), but
        // some verifiers (dkimpy among them) do not remove FWS from `bh=` before comparing.
        // The layout of `h=`, `t=` and `bh=` does not depend on the key (`a=`, `s=` and `d=`
        // end the first line), so it is found once with a cheap Ed25519 probe key: From is
        // over-signed once more (harmless: one more From may not be added either) until
        // `bh=` stays on one line; then each real key signs once.
        headers.extend(std::iter::repeat_n(
            "From",
            layout_padding(&headers, &domain, message),
        ));
        let mut out = Vec::new();
        for k in keys {
            let signature = DkimSigner::from_key(SharedKey(Arc::clone(&k.key.key)))
                .domain(domain.as_str())
                .selector(k.selector.as_str())
                .headers(headers.iter().copied())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed)
                .sign(message)
                .map_err(|e| SignError::Dkim {
                    selector: k.selector.clone(),
                    reason: e.to_string(),
                })?;
            out.extend_from_slice(signature.to_header().as_bytes());
        }
        Ok(out)
    }
}

/// How many more `From` entries `h=` needs so that `bh=` is not folded (0 when no probe key
/// can be made: the signature is then valid, only some verifiers may misread a folded `bh=`).
fn layout_padding(headers: &[&'static str], domain: &str, message: &[u8]) -> usize {
    static PROBE: std::sync::OnceLock<Option<Arc<DkimKey>>> = std::sync::OnceLock::new();
    let Some(probe) = PROBE.get_or_init(|| {
        let pem = crate::generate_key(crate::KeyKind::Ed25519).ok()?;
        crate::keys::ParsedKey::parse(pem.pem().as_bytes())
            .ok()
            .map(|p| p.key)
    }) else {
        return 0;
    };
    for extra in 0..MAX_LAYOUTS {
        let names = headers
            .iter()
            .copied()
            .chain(std::iter::repeat_n("From", extra));
        let Ok(signature) = DkimSigner::from_key(SharedKey(Arc::clone(probe)))
            .domain(domain)
            .selector("probe")
            .headers(names)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            .sign(message)
        else {
            return 0;
        };
        if !bh_is_folded(&signature.to_header()) {
            return extra;
        }
    }
    0
}

/// Most layouts [`Signer::sign`] tries for an unfolded `bh=` (each adds 5 columns to `h=`,
/// so a dozen always get past the fold).
const MAX_LAYOUTS: usize = 16;

/// Whether the `bh=` value of a DKIM-Signature header field spans a line break.
fn bh_is_folded(header: &str) -> bool {
    let Some(start) = header.find("bh=") else {
        return false;
    };
    let value = &header[start + 3..];
    let end = value.find(';').unwrap_or(value.len());
    value[..end].contains('\n')
}

/// The names from [`SIGNED_HEADERS`] that occur in the message's header, plus `From` once
/// more; the signer lists each occurrence and then the extra `From` in `h=`.
fn headers_to_sign(parsed: &Message<'_>) -> Vec<&'static str> {
    let mut present = [false; SIGNED_HEADERS.len()];
    for header in parsed.headers() {
        let name = header.name.as_str();
        if let Some(i) = SIGNED_HEADERS
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
        {
            present[i] = true;
        }
    }
    let mut list: Vec<&'static str> = SIGNED_HEADERS
        .iter()
        .zip(present)
        .filter_map(|(h, p)| p.then_some(*h))
        .collect();
    list.push("From");
    list
}

/// The lower-cased domain of the first address in the first From: field.
fn from_domain(parsed: &Message<'_>) -> Option<String> {
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// A key shared between the key store and any number of signers.
struct SharedKey(Arc<DkimKey>);

impl SigningKey for SharedKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn header_list() {
        let m =
            b"from: a@example.com\r\nSubject: x\r\nX-Other: y\r\nTo: b@example.net\r\n\r\nbody\r\n";
        let p = MessageParser::new().parse_headers(&m[..]).unwrap();
        assert_eq!(headers_to_sign(&p), ["From", "To", "Subject", "From"]);
    }

    fn from_domain(m: &[u8]) -> Option<String> {
        super::from_domain(&MessageParser::new().parse_headers(m)?)
    }

    #[test]
    fn from_domains() {
        assert_eq!(
            from_domain(b"From: \"A\" <a@Mail.Example.COM>\r\n\r\n").as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(
            from_domain(b"From: a@x.example, b@y.example\r\n\r\n").as_deref(),
            Some("x.example")
        );
        assert_eq!(from_domain(b"Subject: none\r\n\r\n"), None);
        assert_eq!(from_domain(b"From: undisclosed\r\n\r\n"), None);
    }
}
