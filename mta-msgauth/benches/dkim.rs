//! DKIM signing and checking rates, RSA-2048 and Ed25519, 2 KB and 100 KB messages.
//!
//! `sign`: [`Signer::sign`] with one key (including the key store's per-message check for
//! changed key files). `check`: [`BlockingVerifier::check_message`] (DKIM and DMARC; SPF
//! is not part of it) against the fake DNS server of the integration tests, after one
//! warm-up check, so the records come from the resolver's cache: the figure is the
//! verification cost, not DNS latency. Throughput is in messages (elements) per second.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/integration/dns.rs"]
mod dns;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mta_msgauth::{
    BlockingVerifier, KeyKind, KeyStore, Signer, VerifierConfig, dns_name, generate_key, write_key,
};

/// A message of about `size` bytes from alice@example.com.
fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.net>\r\n\
                  Subject: benchmark\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\
                  Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n\
                  Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        .to_vec();
    let line = b"The quick brown fox jumps over the lazy dog, again and again.  \r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

fn bench(c: &mut Criterion) {
    for (name, kind) in [
        ("rsa2048", KeyKind::Rsa { bits: 2048 }),
        ("ed25519", KeyKind::Ed25519),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_key(kind).unwrap();
        write_key(dir.path(), "example.com", "s1", &key).unwrap();
        let signer = Signer::new(KeyStore::new(dir.path()));

        let mut zone = dns::Zone::new();
        zone.txt(&dns_name("example.com", "s1"), &key.dns_record())
            .txt("example.com", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.example.com", "v=DMARC1; p=reject");
        let server = dns::FakeDns::start(zone);
        let verifier = BlockingVerifier::new(VerifierConfig::new(server.servers())).unwrap();
        let spf = verifier.check_spf(dns::localhost(), "client.example", "alice@example.com");

        let mut sign = c.benchmark_group(format!("sign/{name}"));
        for size in [2 * 1024, 100 * 1024] {
            let m = message(size);
            sign.throughput(Throughput::Elements(1));
            sign.bench_with_input(
                BenchmarkId::from_parameter(format!("{}KB", size / 1024)),
                &m,
                |b, m| {
                    b.iter(|| black_box(signer.sign(m).unwrap()));
                },
            );
        }
        sign.finish();

        let mut check = c.benchmark_group(format!("check/{name}"));
        for size in [2 * 1024, 100 * 1024] {
            let m = message(size);
            let mut signed = signer.sign(&m).unwrap();
            signed.extend_from_slice(&m);
            let warm = verifier.check_message(&spf, &signed);
            assert!(
                warm.dkim()
                    .iter()
                    .all(|d| d.result() == mta_msgauth::DkimResult::Pass),
                "{warm:?}"
            );
            check.throughput(Throughput::Elements(1));
            check.bench_with_input(
                BenchmarkId::from_parameter(format!("{}KB", size / 1024)),
                &signed,
                |b, s| b.iter(|| black_box(verifier.check_message(&spf, s))),
            );
        }
        check.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
