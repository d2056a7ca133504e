//! The SMTP server session ([`mta::smtp::ServerSession`], sans-IO) on its own:
//!
//! - `data_streaming`: a 4 MiB message of realistic 78-byte lines (some dot-stuffed) fed
//!   in 64 KiB reads to a session already in DATA, every chunk drained as the daemon
//!   does; bytes per second.
//! - `pipelined_transaction`: EHLO, MAIL, three RCPTs, DATA, a 1 KiB body and QUIT in one
//!   buffer (RFC 2920), each verdict answered at once, the replies collected;
//!   transactions per second.
//!
//! `cargo bench -p mta --bench smtp` (about 20 s).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mta::smtp::{Event, ServerConfig, ServerSession, Verdict};

const DATA_SIZE: usize = 4 * 1024 * 1024;

fn message() -> Vec<u8> {
    let mut m = Vec::with_capacity(DATA_SIZE + 128);
    m.extend_from_slice(b"Received: from a by b; 29 Nov 2026 04:08:00 -0000\r\n");
    m.extend_from_slice(b"Subject: benchmark\r\nContent-Type: text/plain\r\n\r\n");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0usize;
    while m.len() < DATA_SIZE {
        if i.is_multiple_of(40) {
            m.extend_from_slice(b"..a line the client dot-stuffed\r\n");
        }
        m.extend((0..76).map(|k| alphabet[(i * 7 + k * 13) % 64]));
        m.extend_from_slice(b"\r\n");
        i += 1;
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// Streams `msg` (ending in `.\r\n`) through a fresh session in DATA; bytes stored.
fn stream(msg: &[u8]) -> usize {
    let now = Instant::now();
    let mut s = ServerSession::new(ServerConfig::new("bench.example"), now);
    s.handle_input(
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
        now,
    );
    let mut stored = 0usize;
    let mut ended = false;
    let mut drain = |s: &mut ServerSession| {
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::DataChunk(c) => stored += black_box(c).len(),
                Event::Mail { .. } | Event::Rcpt { .. } | Event::DataStart => {
                    s.decide(Verdict::Accept).unwrap();
                }
                Event::DataEnd(_) => {
                    ended = true;
                    s.decide(Verdict::Accept).unwrap();
                }
                _ => {}
            }
        }
    };
    drain(&mut s);
    for read in msg.chunks(64 * 1024) {
        s.handle_input(read, now);
        drain(&mut s);
    }
    assert!(ended, "the message must end");
    stored
}

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

/// One whole pipelined session; returns the reply bytes.
fn pipelined(input: &[u8], config: &ServerConfig, out: &mut Vec<u8>) -> usize {
    let now = Instant::now();
    let mut s = ServerSession::new(config.clone(), now);
    s.handle_input(input, now);
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Mail { .. } | Event::Rcpt { .. } | Event::DataStart | Event::DataEnd(_) => {
                s.decide(Verdict::Accept).unwrap();
            }
            Event::DataChunk(c) => {
                black_box(c);
            }
            _ => {}
        }
    }
    out.clear();
    while s.poll_transmit(out) {}
    assert!(s.is_closed());
    out.len()
}

fn bench(c: &mut Criterion) {
    let msg = message();
    let stored = stream(&msg);
    assert!(stored > DATA_SIZE - 64 * 1024, "stored only {stored} bytes");
    let mut g = c.benchmark_group("smtp_server");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("data_streaming_4MiB", |b| b.iter(|| stream(&msg)));

    let input = transaction();
    let config = ServerConfig::new("mx.example.net");
    let mut out = Vec::with_capacity(1024);
    // Seven replies (EHLO is multi-line), every one 2xx/3xx.
    pipelined(&input, &config, &mut out);
    let replies = String::from_utf8_lossy(&out).into_owned();
    assert!(
        replies
            .lines()
            .all(|l| l.starts_with('2') || l.starts_with('3')),
        "{replies}"
    );
    g.throughput(Throughput::Elements(1));
    g.bench_function("pipelined_transaction_1KiB", |b| {
        b.iter(|| pipelined(&input, &config, &mut out));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
