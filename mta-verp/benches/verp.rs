//! Criterion benchmarks: VERP encode/decode, bounce parsing and composition, header scan.
//!
//! `cargo bench -p mta-verp --bench verp -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mta_core::Address;
use mta_verp::{
    BounceConfig, BounceFormat, Failure, Verp, compose_bounce, parse_bounce, scan_header,
    sender_for_recipient,
};

fn verp(c: &mut Criterion) {
    let list = Address::from("list-owner@lists.example.org");
    let rcpt = Address::from("some.subscriber+tag@mail.example.net");
    let encoded = Verp::QMAIL.encode(&list, &rcpt).unwrap();
    let request = Verp::QMAIL.request_sender(&list).unwrap();
    let mut g = c.benchmark_group("verp");
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| Verp::QMAIL.encode(black_box(&list), black_box(&rcpt)));
    });
    g.bench_function("decode", |b| {
        b.iter(|| Verp::QMAIL.decode(black_box(&list), black_box(&encoded)));
    });
    g.bench_function("sender_for_recipient", |b| {
        b.iter(|| sender_for_recipient(black_box(&request), black_box(&rcpt)));
    });
    g.finish();
}

fn parse(c: &mut Criterion) {
    let samples: [(&str, &[u8]); 4] = [
        (
            "qsbmf_qmail",
            include_bytes!("../tests/data/qsbmf/qmail.eml"),
        ),
        (
            "dsn_postfix",
            include_bytes!("../tests/data/dsn/postfix.eml"),
        ),
        ("dsn_gmail", include_bytes!("../tests/data/dsn/gmail.eml")),
        (
            "dsn_exchange",
            include_bytes!("../tests/data/dsn/exchange.eml"),
        ),
    ];
    let mut g = c.benchmark_group("parse_bounce");
    for (name, msg) in samples {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse_bounce(black_box(msg)).unwrap()));
    }
    g.finish();
}

fn compose(c: &mut Criterion) {
    let mut original =
        b"Received: (qmail 1 invoked by uid 89); 29 Nov 2026 04:08:00 -0000\nSubject: s\n\n"
            .to_vec();
    while original.len() < 10_000 {
        original.extend_from_slice(
            b"a line of body text that is about seventy bytes long, give or take.\n",
        );
    }
    let failures = [
        Failure::new(
            "bob@example.net",
            "Sorry, no mailbox here by that name. (#5.1.1)\n",
        ),
        Failure::new(
            "carol@example.net",
            "Remote host said: 552 5.2.2 mailbox full\n",
        ),
    ];
    let sender = Address::from("alice@example.com");
    let mut g = c.benchmark_group("compose_bounce_10k");
    g.throughput(Throughput::Bytes(original.len() as u64));
    for (name, format) in [("qsbmf", BounceFormat::Qsbmf), ("dsn", BounceFormat::Dsn)] {
        let cfg = BounceConfig::new("mx.example.org").format(format);
        g.bench_function(name, |b| {
            b.iter(|| {
                compose_bounce(
                    &cfg,
                    &sender,
                    &failures,
                    "29 Nov 2026 04:08:05 -0000",
                    &original[..],
                )
                .unwrap()
            });
        });
    }
    g.finish();
}

fn scan(c: &mut Criterion) {
    let mut msg = Vec::new();
    for i in 0..20 {
        msg.extend_from_slice(
            format!("Received: from relay{i}.example.net (relay{i}.example.net [192.0.2.{i}])\n\tby mx.example.org with ESMTP; 29 Nov 2026 04:08:00 -0000\n").as_bytes(),
        );
    }
    msg.extend_from_slice(b"Delivered-To: someone@example.org\nSubject: s\n\n");
    let header_len = msg.len();
    msg.extend(std::iter::repeat_n(b'x', 1 << 20));
    let me = Address::from("joe@example.com");
    let mut g = c.benchmark_group("scan_header");
    g.throughput(Throughput::Bytes(header_len as u64));
    g.bench_function("20_received_1MiB_body", |b| {
        b.iter(|| scan_header(black_box(&msg), Some(&me)));
    });
    g.finish();
}

criterion_group!(benches, verp, parse, compose, scan);
criterion_main!(benches);
