//! Durable enqueue throughput with 2 KB messages, against the machine's raw fsync limit
//! measured in the same run.
//!
//! - `fsync_limit/1_thread`, `fsync_limit/8_threads`: a loop of create + write 2 KB + fsync +
//!   rename + fsync(dir), the least work any one-fsync-per-message queue can do.
//! - `enqueue_2k/{1,8}_threads_{grouped,per_message}`: `Queue::enqueue`, with group commit
//!   and with one fsync pair per message.
//! - `mark/*`: one recipient per call, and 8,192 recipients with one `mark_many`.
//! - `steady_state_2k/8_threads_{reuse,unlink}`: a queue in steady state, each message
//!   enqueued and then removed as delivered (`remove_delivered`), with removed files reused
//!   (the default, `QueueOptions::recycle`) and with every removed file unlinked
//!   (`recycle(0)`, qmail's way).
//!
//! Every group reports elements (messages or marks) per second. The directory is a temp
//! dir on the disk holding `$TMPDIR` (set `MTA_QUEUE_BENCH_DIR` to measure elsewhere).
//!
//! `cargo bench -p mta-queue --bench enqueue -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs, clippy::unwrap_used)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mta_core::Envelope;
use mta_queue::{CommitMode, Queue, QueueOptions, Status};

const BODY: [u8; 2048] = [b'x'; 2048];

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("MTA_QUEUE_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// create + write + fsync + rename + fsync(dir), `n` times, in `dir` (which has tmp/ and new/).
fn raw_loop(dir: &Path, tag: &str, n: u64) {
    let new = File::open(dir.join("new")).unwrap();
    for i in 0..n {
        let tmp: PathBuf = dir.join(format!("tmp/{tag}.{i}"));
        let mut f = File::create_new(&tmp).unwrap();
        f.write_all(&BODY).unwrap();
        f.sync_data().unwrap();
        std::fs::rename(&tmp, dir.join(format!("new/{tag}.{i}"))).unwrap();
        new.sync_all().unwrap();
    }
}

/// Runs `work(thread, count)` on `threads` threads for `iters` items in total; wall time.
fn parallel(threads: u64, iters: u64, work: &(dyn Fn(u64, u64) + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || work(t, n));
        }
    });
    start.elapsed()
}

fn fsync_limit(c: &mut Criterion) {
    let mut g = c.benchmark_group("fsync_limit");
    g.throughput(Throughput::Elements(1));
    for threads in [1, 8] {
        let dir = bench_dir();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        std::fs::create_dir(dir.path().join("new")).unwrap();
        let mut round = 0u64;
        g.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                round += 1;
                parallel(threads, iters, &|t, n| {
                    raw_loop(dir.path(), &format!("{round}-{t}"), n);
                })
            });
        });
    }
    g.finish();
}

fn enqueue(c: &mut Criterion) {
    let mut g = c.benchmark_group("enqueue_2k");
    g.throughput(Throughput::Elements(1));
    let env = Envelope::new("sender@example.com", ["rcpt@example.org"]);
    for (threads, mode, name) in [
        (1, CommitMode::Grouped, "1_thread_grouped"),
        (1, CommitMode::PerMessage, "1_thread_per_message"),
        (8, CommitMode::Grouped, "8_threads_grouped"),
        (8, CommitMode::PerMessage, "8_threads_per_message"),
    ] {
        let dir = bench_dir();
        let q = Queue::open(dir.path(), QueueOptions::default().commit(mode)).unwrap();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, &|_, n| {
                    for _ in 0..n {
                        q.enqueue(&env, &BODY[..]).unwrap();
                    }
                })
            });
        });
    }
    g.finish();
}

fn mark(c: &mut Criterion) {
    let mut g = c.benchmark_group("mark");
    let dir = bench_dir();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let rcpts: Vec<String> = (0..8192).map(|i| format!("user{i}@example.org")).collect();
    let env = Envelope::new("list@example.com", rcpts);
    g.throughput(Throughput::Elements(1));
    let id = q.enqueue(&env, &BODY[..]).unwrap();
    let mut next = 0u32;
    g.bench_function("one_recipient_per_call", |b| {
        b.iter(|| {
            q.mark(id, next % 8192, Status::Delivered).unwrap();
            next += 1;
        });
    });
    g.throughput(Throughput::Elements(8192));
    let all: Vec<(u32, Status)> = (0..8192).map(|i| (i, Status::Delivered)).collect();
    g.bench_function("8192_recipients_one_mark_many", |b| {
        b.iter_batched(
            || q.enqueue(&env, &BODY[..]).unwrap(),
            |id| q.mark_many(id, &all).unwrap(),
            criterion::BatchSize::PerIteration,
        );
    });
    g.finish();
}

fn steady_state(c: &mut Criterion) {
    let mut g = c.benchmark_group("steady_state_2k");
    g.throughput(Throughput::Elements(1));
    let env = Envelope::new("sender@example.com", ["rcpt@example.org"]);
    for (recycle, name) in [(1024, "8_threads_reuse"), (0, "8_threads_unlink")] {
        let dir = bench_dir();
        let q = Queue::open(dir.path(), QueueOptions::default().recycle(recycle)).unwrap();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                parallel(8, iters, &|_, n| {
                    for _ in 0..n {
                        let id = q.enqueue(&env, &BODY[..]).unwrap();
                        q.remove_delivered(id).unwrap();
                    }
                })
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = fsync_limit, enqueue, mark, steady_state
}
criterion_main!(benches);
