//! Durable enqueue throughput: how many messages per second `Queue::enqueue` makes durable,
//! next to the raw fsync loop (create + write + fsync + rename + fsync dir) on the same disk.
//!
//! ```text
//! cargo run --release -p mta-queue --example enqueue -- [--threads 8] [--count 4000]
//!     [--size 2048] [--dir DIR] [--per-message]
//! ```
//!
//! `--per-message` turns group commit off (one fsync pair per message) for comparison. The
//! queue goes in a fresh temporary directory under DIR (default: the system temp dir).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use mta_core::Envelope;
use mta_queue::{CommitMode, Queue, QueueOptions};

struct Args {
    threads: usize,
    count: usize,
    size: usize,
    dir: Option<String>,
    mode: CommitMode,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 8,
        count: 4000,
        size: 2048,
        dir: None,
        mode: CommitMode::Grouped,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?;
            }
            "--count" => args.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--size" => args.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--dir" => args.dir = Some(value()?),
            "--per-message" => args.mode = CommitMode::PerMessage,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    args.threads = args.threads.max(1);
    Ok(args)
}

/// The least work a one-fsync-per-message queue can do, single-threaded.
fn raw_fsync_loop(dir: &Path, n: usize, body: &[u8]) -> std::io::Result<f64> {
    std::fs::create_dir(dir.join("tmp"))?;
    std::fs::create_dir(dir.join("new"))?;
    let new = File::open(dir.join("new"))?;
    let start = Instant::now();
    for i in 0..n {
        let tmp = dir.join(format!("tmp/{i}"));
        let mut f = File::create_new(&tmp)?;
        f.write_all(body)?;
        f.sync_data()?;
        std::fs::rename(&tmp, dir.join(format!("new/{i}")))?;
        new.sync_all()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let base = args.dir.clone().map_or_else(std::env::temp_dir, Into::into);
    let body = vec![b'x'; args.size];

    let raw_dir = tempfile::tempdir_in(&base)?;
    let raw = raw_fsync_loop(raw_dir.path(), args.count.min(2000), &body)?;
    println!("raw fsync loop, 1 thread:         {raw:>9.0} msgs/s");

    let dir = tempfile::tempdir_in(&base)?;
    let queue = Queue::open(dir.path(), QueueOptions::default().commit(args.mode))?;
    let env = Envelope::new("sender@example.com", ["rcpt@example.org"]);
    let per_thread = args.count / args.threads;
    let start = Instant::now();
    std::thread::scope(|s| -> Result<(), mta_queue::QueueError> {
        let handles: Vec<_> = (0..args.threads)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..per_thread {
                        queue.enqueue(&env, &body[..])?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| mta_queue::QueueError::Locked)??;
        }
        Ok(())
    })?;
    let rate = (per_thread * args.threads) as f64 / start.elapsed().as_secs_f64();
    let mode = match args.mode {
        CommitMode::PerMessage => "per-message",
        _ => "grouped",
    };
    println!(
        "queue, {} threads, {mode:<11}  {rate:>9.0} msgs/s  ({:.1}x the raw loop, {} bytes each)",
        args.threads,
        rate / raw,
        args.size
    );
    Ok(())
}
