//! Pipelined transactions per second through the server session: EHLO, MAIL, three RCPTs,
//! DATA, a 1 KiB message and QUIT arrive in one buffer (RFC 2920); every verdict is
//! answered synchronously and the replies are collected, as the blocking driver does.
//!
//! `cargo bench -p mta-smtp --bench pipeline -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs, clippy::unwrap_used, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mta_smtp::{Event, ServerConfig, ServerSession, Verdict};

fn transaction() -> Vec<u8> {
    let mut t = b"EHLO client.example.org\r\nMAIL FROM:<alice@example.org> SIZE=1200\r\n\
RCPT TO:<bob@example.com>\r\nRCPT TO:<carol@example.com>\r\nRCPT TO:<dave@example.com>\r\n\
DATA\r\nSubject: pipelined\r\nFrom: alice@example.org\r\n\r\n"
        .to_vec();
    while t.len() < 1200 {
        t.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do.\r\n",
        );
    }
    t.extend_from_slice(b".\r\nQUIT\r\n");
    t
}

fn run(input: &[u8], config: &ServerConfig, out: &mut Vec<u8>) -> usize {
    let now = Instant::now();
    let mut s = ServerSession::new(config.clone(), now);
    s.handle_input(input, now);
    let mut events = 0;
    while let Some(ev) = s.poll_event() {
        events += 1;
        let decide = matches!(
            ev,
            Event::Mail { .. } | Event::Rcpt { .. } | Event::DataStart | Event::DataEnd(_)
        );
        if let Event::DataChunk(c) = ev {
            black_box(c);
        }
        if decide {
            s.decide(Verdict::Accept).unwrap();
        }
    }
    out.clear();
    let _ = s.poll_transmit(out);
    assert!(s.is_closed());
    events
}

fn bench(c: &mut Criterion) {
    let input = transaction();
    let config = ServerConfig::new("mx.example.net");
    let mut out = Vec::with_capacity(1024);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    g.bench_function("transaction_7_commands_1KiB", |b| {
        b.iter(|| run(&input, &config, &mut out));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
