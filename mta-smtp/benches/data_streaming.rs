//! DATA streaming throughput of the server session (and of the client's body encoder).
//!
//! A 16 MiB message of realistic lines (headers, then 76-column base64-like text with
//! some dot-leading lines) is fed in 64 KiB reads to a session already in DATA, and the
//! chunks are drained as a daemon would. Reported as bytes per second.
//!
//! `cargo bench -p mta-smtp --bench data_streaming -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs, clippy::unwrap_used, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mta_smtp::{BodyEncoder, Event, LineEnding, ServerConfig, ServerSession, Verdict};

const SIZE: usize = 16 * 1024 * 1024;

fn message() -> Vec<u8> {
    let mut m = Vec::with_capacity(SIZE + 100);
    m.extend_from_slice(b"Received: from a by b; 1 Jan 2026 00:00:00 -0000\r\n");
    m.extend_from_slice(b"Subject: benchmark\r\nContent-Type: text/plain\r\n\r\n");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0usize;
    while m.len() < SIZE {
        if i.is_multiple_of(50) {
            m.extend_from_slice(b"..a line that was dot-stuffed by the client\r\n");
        }
        for k in 0..76 {
            m.push(alphabet[(i * 7 + k * 13) % 64]);
        }
        m.extend_from_slice(b"\r\n");
        i += 1;
    }
    m.extend_from_slice(b".\r\n");
    m
}

fn stream(msg: &[u8], line_ending: LineEnding) -> usize {
    let now = Instant::now();
    let mut cfg = ServerConfig::new("bench.example");
    cfg.line_ending = line_ending;
    let mut s = ServerSession::new(cfg, now);
    s.handle_input(
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
        now,
    );
    for _ in 0..3 {
        s.poll_event().unwrap();
        s.decide(Verdict::Accept).unwrap();
    }
    let mut stored = 0usize;
    for read in msg.chunks(64 * 1024) {
        s.handle_input(read, now);
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::DataChunk(c) => stored += black_box(c).len(),
                Event::DataEnd(_) => {
                    s.decide(Verdict::Accept).unwrap();
                }
                other => panic!("{other:?}"),
            }
        }
    }
    stored
}

fn bench(c: &mut Criterion) {
    let msg = message();
    let mut g = c.benchmark_group("data_streaming");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.sample_size(20);
    g.bench_function("server_16MiB_to_lf", |b| {
        b.iter(|| stream(&msg, LineEnding::Lf));
    });
    g.bench_function("server_16MiB_crlf", |b| {
        b.iter(|| stream(&msg, LineEnding::Crlf));
    });
    // The client side: stored (LF) form to wire form with dot-stuffing.
    let stored: Vec<u8> = String::from_utf8(msg.clone())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes();
    g.throughput(Throughput::Bytes(stored.len() as u64));
    let mut wire = Vec::with_capacity(SIZE * 2);
    g.bench_function("client_encode_16MiB", |b| {
        b.iter(|| {
            wire.clear();
            let mut e = BodyEncoder::new();
            for part in stored.chunks(64 * 1024) {
                e.encode(part, &mut wire);
            }
            e.finish(&mut wire);
            black_box(wire.len())
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
