//! The CPU-bound pieces of a delivery, across the crates: address-list parsing against
//! mail-parser on the same header values, `.qmail` interpretation (parse, and the whole
//! delivery decision for a trash `.qmail` on the real filesystem), VERP encode/decode and
//! bounce parsing (real DSN and QSBMF samples plus bounces composed by mta-verp).
//!
//! `cargo bench -p mta --bench parsing` (about a minute).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mail_parser::parsers::MessageStream;
use mta::core::Address;
use mta::core::address_list::{ParseOptions, parse_address_list};
use mta::dotqmail::{
    Account, DeliveryOptions, DeliveryRequest, DeliveryStatus, LocalUser, Message, SystemExecutor,
    deliver, parse,
};
use mta::verp::{Bounce, BounceConfig, BounceFormat, Failure, Verp, compose_bounce, parse_bounce};

/// `To:`/`Cc:` field values as mail carries them (CRLF-terminated): display names, quoted
/// strings, comments, groups, encoded words, folding. Both parsers must accept each one.
const ADDRESS_LISTS: &[&str] = &[
    "Mary Smith <mary@example.net>\r\n",
    "\"Joe Q. Public\" <john.q.public@example.com>, Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n",
    "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\r\n",
    "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n",
    "=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>, =?UTF-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@example.ru>\r\n",
    "\"Dev Team\" <dev@lists.example.org>, alice.wonderland+mail@example.com, \"Bob (work)\" <bob@corp.example.com>,\r\n \"Carol O'Brien\" <carol@example.ie>, dave@example.net (Dave), Eve <eve@example.org>\r\n",
];

fn address_lists(c: &mut Criterion) {
    let total: usize = ADDRESS_LISTS.iter().map(|s| s.len()).sum();
    let strict = ParseOptions::strict();
    for s in ADDRESS_LISTS {
        parse_address_list(s.as_bytes(), &strict).unwrap();
        assert!(
            MessageStream::new(s.as_bytes())
                .parse_address()
                .as_address()
                .is_some()
        );
    }
    let mut g = c.benchmark_group("address_list");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("mta_core", |b| {
        b.iter(|| {
            for s in ADDRESS_LISTS {
                black_box(parse_address_list(black_box(s.as_bytes()), &strict).unwrap());
            }
        });
    });
    g.bench_function("mail_parser", |b| {
        b.iter(|| {
            for s in ADDRESS_LISTS {
                black_box(MessageStream::new(black_box(s.as_bytes())).parse_address());
            }
        });
    });
    g.finish();
}

fn dotqmail(c: &mut Criterion) {
    const TYPICAL: &[u8] = b"# joe's list\n./Maildir/\n|preline /usr/bin/procmail -t\n&joe@example.org\nann@example.net\n./Mailbox\n+list\n";
    const MESSAGE: &[u8] = b"From: a@example.org\nTo: c@example.com\nSubject: bench\n\nbody\n";
    let mut g = c.benchmark_group("dotqmail");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_7_lines", |b| b.iter(|| parse(black_box(TYPICAL))));

    // The W3 case: an extension address whose .qmail-default holds only a comment.
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let qmail = home.path().join(".qmail-default");
    std::fs::write(&qmail, b"# discard\n").unwrap();
    std::fs::set_permissions(&qmail, std::fs::Permissions::from_mode(0o644)).unwrap();
    let user = LocalUser::new(
        Account::new("trash", 65534, 65534, home.path().as_os_str().as_bytes()),
        b"-",
        "4711",
    );
    let request = DeliveryRequest {
        user: &user,
        local: b"trash-4711",
        domain: b"example.org",
        sender: b"bench@example.com",
        default_delivery: b"./Maildir/\n",
        now: 1_795_925_285,
    };
    let options = DeliveryOptions::default();
    let mut system = SystemExecutor::new();
    g.bench_function("deliver_trash_filesystem", |b| {
        b.iter(|| {
            let o = deliver(&mut system, &request, &options, Message::Bytes(MESSAGE));
            assert_eq!(o.status, DeliveryStatus::Delivered);
            o
        });
    });
    g.finish();
}

fn verp(c: &mut Criterion) {
    let list = Address::from("list-owner@lists.example.org");
    let rcpt = Address::from("some.subscriber+tag@mail.example.net");
    let encoded = Verp::QMAIL.encode(&list, &rcpt).unwrap();
    assert_eq!(Verp::QMAIL.decode(&list, &encoded).unwrap(), rcpt);
    let mut g = c.benchmark_group("verp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        b.iter(|| Verp::QMAIL.encode(black_box(&list), black_box(&rcpt)));
    });
    g.bench_function("decode", |b| {
        b.iter(|| Verp::QMAIL.decode(black_box(&list), black_box(&encoded)));
    });
    g.finish();
}

/// A bounce composed by mta-verp for `format`: what our own daemon sends back.
fn composed(format: BounceFormat) -> Vec<u8> {
    let mut original =
        b"Received: from a by b; 29 Nov 2026 04:08:00 -0000\nSubject: s\n\n".to_vec();
    while original.len() < 2048 {
        original.extend_from_slice(b"a line of body text, about sixty bytes long, give or take.\n");
    }
    let failures = [Failure::new(
        "bob@example.net",
        "Sorry, no mailbox here by that name. (#5.1.1)\n",
    )];
    let cfg = BounceConfig::new("mx.example.org").format(format);
    let sender = Address::from("list-owner-bob=example.net@lists.example.org");
    match compose_bounce(
        &cfg,
        &sender,
        &failures,
        "29 Nov 2026 04:08:05 -0000",
        &original[..],
    )
    .unwrap()
    {
        Bounce::Send(m) => m.message,
        other => panic!("unexpected {other:?}"),
    }
}

fn bounces(c: &mut Criterion) {
    let samples: Vec<(&str, Vec<u8>)> = vec![
        (
            "postfix_dsn",
            include_bytes!("data/bounce-postfix-dsn.eml").to_vec(),
        ),
        (
            "gmail_dsn",
            include_bytes!("data/bounce-gmail-dsn.eml").to_vec(),
        ),
        (
            "qmail_qsbmf",
            include_bytes!("data/bounce-qmail-qsbmf.eml").to_vec(),
        ),
        ("composed_dsn", composed(BounceFormat::Dsn)),
        ("composed_qsbmf", composed(BounceFormat::Qsbmf)),
    ];
    let mut g = c.benchmark_group("parse_bounce");
    for (name, msg) in &samples {
        let parsed = parse_bounce(msg).unwrap();
        black_box(parsed);
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(*name, |b| b.iter(|| parse_bounce(black_box(msg)).unwrap()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = address_lists, dotqmail, verp, bounces
}
criterion_main!(benches);
