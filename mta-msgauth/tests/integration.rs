//! Integration tests for mta-msgauth: one binary, one module per topic. Every DNS query
//! goes to a fake DNS server on loopback (`integration/dns.rs`).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

#[path = "integration/checks.rs"]
mod checks;
#[path = "integration/dkimpy.rs"]
mod dkimpy;
#[path = "integration/dns.rs"]
mod dns;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mta_msgauth::{
    BlockingVerifier, KeyKind, KeyStore, PrivateKeyPem, Signer, VerifierConfig, dns_name,
    generate_key, write_key,
};

/// `tests/data/<rel>`.
pub(crate) fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// The test message (`tests/data/message.eml`): From alice@example.com.
pub(crate) fn message() -> Vec<u8> {
    std::fs::read(data("message.eml")).unwrap()
}

/// The message with its From: address replaced.
pub(crate) fn message_from(from: &str) -> Vec<u8> {
    String::from_utf8(message())
        .unwrap()
        .replace("alice@example.com", from)
        .into_bytes()
}

/// A key directory with the given (domain, selector, kind) keys, and the DNS records to
/// publish for them: (name, text).
pub(crate) fn key_dir(
    keys: &[(&str, &str, KeyKind)],
) -> (tempfile::TempDir, Vec<(String, String, PrivateKeyPem)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut records = Vec::new();
    for &(domain, selector, kind) in keys {
        let key = generate_key(kind).unwrap();
        write_key(dir.path(), domain, selector, &key).unwrap();
        records.push((dns_name(domain, selector), key.dns_record(), key));
    }
    (dir, records)
}

/// Signs `message` with the keys under `dir` and returns the signed message.
pub(crate) fn sign(dir: &Path, message: &[u8]) -> Vec<u8> {
    let mut out = Signer::new(KeyStore::new(dir)).sign(message).unwrap();
    out.extend_from_slice(message);
    out
}

/// A blocking verifier asking `dns` with short timeouts.
pub(crate) fn verifier(dns: &dns::FakeDns) -> BlockingVerifier {
    BlockingVerifier::new(
        VerifierConfig::new(dns.servers())
            .query_timeout(Duration::from_millis(500))
            .check_timeout(Duration::from_secs(3))
            .hostname("mx.example.org"),
    )
    .unwrap()
}
