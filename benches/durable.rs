//! Durable writes across the crates, next to the raw ceiling of the same disk measured in
//! the same run:
//!
//! - `raw_ceiling`: create a file, write 2 KB, fsync it, rename it into another directory,
//!   fsync that directory: the least work any durable file hand-off needs; on 1 thread and
//!   spread over 8 threads (journalling file systems batch concurrent commits, and the
//!   block layer merges concurrent cache flushes).
//! - `queue_enqueue_2k`: [`mta::queue::Queue::enqueue`] with the default options (group
//!   commit), 1 thread and 8 threads; the `250` of SMTP waits for exactly this.
//! - `maildir_single_2k`: [`mta::maildir::Maildir::deliver`], one message into one maildir.
//! - `maildir_fanout_100`: [`mta::maildir::deliver_many`], one message into 100 maildirs,
//!   reported per delivery.
//!
//! After criterion's report a closing note re-measures each for about a second and prints
//! operations per second as a fraction (or multiple) of the raw ceiling of the same thread
//! count, so a figure reads as "how close to the disk's limit".
//!
//! Runs in `$MTA_BENCH_DIR` if set, else the system temp dir; use a real disk, not tmpfs.
//! `cargo bench -p mta --bench durable` (about a minute on a disk doing ~150 fsyncs/s).

#![allow(missing_docs, clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mta::core::Envelope;
use mta::maildir::{Maildir, deliver_many};
use mta::queue::{Queue, QueueOptions};

const FANOUT: usize = 100;

fn message() -> Vec<u8> {
    let mut m = b"From: a@example.org\nTo: list@example.org\nSubject: bench\n\n".to_vec();
    while m.len() < 2048 {
        m.extend_from_slice(b"The quick brown fox jumps over the lazy dog.\n");
    }
    m.truncate(2047);
    m.push(b'\n');
    m
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("MTA_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// The raw ceiling's directories; file names are unique across threads and rounds.
struct Raw {
    tmp: PathBuf,
    new: PathBuf,
    next: AtomicU64,
}

impl Raw {
    fn new(root: &Path, name: &str) -> Raw {
        let (tmp, new) = (
            root.join(format!("{name}-tmp")),
            root.join(format!("{name}-new")),
        );
        fs::create_dir_all(&tmp).unwrap();
        fs::create_dir_all(&new).unwrap();
        Raw {
            tmp,
            new,
            next: AtomicU64::new(0),
        }
    }

    /// create + write + fsync + rename + fsync(dir), `n` times.
    fn run(&self, msg: &[u8], n: u64) {
        let new_dir = File::open(&self.new).unwrap();
        for _ in 0..n {
            let name = self.next.fetch_add(1, Ordering::Relaxed).to_string();
            let tmp = self.tmp.join(&name);
            let mut f = File::create_new(&tmp).unwrap();
            f.write_all(msg).unwrap();
            f.sync_all().unwrap();
            fs::rename(&tmp, self.new.join(&name)).unwrap();
            new_dir.sync_all().unwrap();
        }
    }
}

/// Runs `work(count)` on `threads` threads for `total` items; the wall time.
fn parallel(threads: u64, total: u64, work: &(dyn Fn(u64) + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = total / threads + u64::from(t < total % threads);
            s.spawn(move || work(n));
        }
    });
    start.elapsed()
}

/// Everything measured, set up once so criterion and the closing note share it.
struct Setup {
    msg: Vec<u8>,
    raw: Raw,
    queue: Queue,
    envelope: Envelope,
    single: Maildir,
    fanout: Vec<Maildir>,
}

impl Setup {
    fn new(root: &Path) -> Setup {
        fs::create_dir_all(root.join("fan")).unwrap();
        Setup {
            msg: message(),
            raw: Raw::new(root, "raw"),
            queue: Queue::open(root.join("queue"), QueueOptions::default()).unwrap(),
            envelope: Envelope::new("sender@example.com", ["rcpt@example.org"]),
            single: Maildir::create(root.join("single")).unwrap(),
            fanout: (0..FANOUT)
                .map(|i| Maildir::create(root.join(format!("fan/{i}"))).unwrap())
                .collect(),
        }
    }

    fn enqueue(&self, n: u64) {
        for _ in 0..n {
            self.queue.enqueue(&self.envelope, &self.msg[..]).unwrap();
        }
    }

    fn fan_out(&self) {
        let refs: Vec<&Maildir> = self.fanout.iter().collect();
        for r in deliver_many(&refs, b"", &self.msg[..]) {
            r.unwrap();
        }
    }
}

fn criterion_benches(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("durable");
    g.throughput(Throughput::Elements(1));
    for threads in [1, 8] {
        g.bench_function(format!("raw_ceiling_{threads}_thread"), |b| {
            b.iter_custom(|iters| parallel(threads, iters, &|n| s.raw.run(&s.msg, n)));
        });
        g.bench_function(format!("queue_enqueue_2k_{threads}_thread"), |b| {
            b.iter_custom(|iters| parallel(threads, iters, &|n| s.enqueue(n)));
        });
    }
    g.bench_function("maildir_single_2k", |b| {
        b.iter(|| s.single.deliver(b"", &s.msg[..]).unwrap());
    });
    g.throughput(Throughput::Elements(FANOUT as u64));
    g.bench_function(format!("maildir_fanout_{FANOUT}"), |b| {
        b.iter(|| s.fan_out());
    });
    g.finish();
}

/// Calls `f(batch)` (which does `batch` operations) for about `budget`; operations/s.
fn rate(budget: Duration, batch: u64, f: impl Fn(u64)) -> f64 {
    let start = Instant::now();
    let mut done = 0;
    while done == 0 || start.elapsed() < budget {
        f(batch);
        done += batch;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn closing_note(root: &Path, s: &Setup) {
    let budget = Duration::from_secs(1);
    let raw = |threads: u64| {
        rate(budget, 8 * threads, |n| {
            parallel(threads, n, &|k| s.raw.run(&s.msg, k));
        })
    };
    // The ceiling is measured before and after the others (a virtual disk's fsync latency
    // drifts within seconds) and each figure is read against the mean of the two.
    let (raw1_before, raw8_before) = (raw(1), raw(8));
    let enq1 = rate(budget, 8, |n| s.enqueue(n));
    let enq8 = rate(budget, 64, |n| {
        parallel(8, n, &|k| s.enqueue(k));
    });
    let single = rate(budget, 8, |n| {
        for _ in 0..n {
            s.single.deliver(b"", &s.msg[..]).unwrap();
        }
    });
    let fan = rate(budget, FANOUT as u64, |_| s.fan_out());
    let (raw1_after, raw8_after) = (raw(1), raw(8));
    let raw1 = f64::midpoint(raw1_before, raw1_after);
    let raw8 = f64::midpoint(raw8_before, raw8_after);
    println!(
        "\nclosing note: durable 2 KB writes in {} (same run)",
        root.display()
    );
    println!(
        "  raw ceiling (create+write+fsync+rename+fsync dir), 1 thread: {raw1:>6.0} /s \
         ({raw1_before:.0} before, {raw1_after:.0} after)"
    );
    println!(
        "  raw ceiling, 8 threads:                                      {raw8:>6.0} /s \
         ({raw8_before:.0} before, {raw8_after:.0} after)"
    );
    let row = |name: &str, x: f64, ceiling: f64| {
        println!(
            "  {name:<44} {x:>6.0} /s = {:>5.2} x the raw ceiling",
            x / ceiling
        );
    };
    row("queue enqueue, 1 thread (fdatasync)", enq1, raw1);
    row("queue enqueue, 8 threads (group commit)", enq8, raw8);
    row("maildir deliver, 1 message", single, raw1);
    row(
        &format!("maildir fan-out to {FANOUT} (per delivery)"),
        fan,
        raw1,
    );
}

fn main() {
    let dir = bench_dir();
    let setup = Setup::new(dir.path());
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    criterion_benches(&mut c, &setup);
    c.final_summary();
    // `cargo test --benches` runs this binary without --bench: skip the timed note there,
    // and when a name filter (`cargo bench -p mta -- smtp`) leaves out this file's benches.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected = filters.is_empty()
        || filters
            .iter()
            .any(|f| "durable".contains(f.as_str()) || f.contains("durable"));
    if args.iter().any(|a| a == "--bench") && selected {
        closing_note(dir.path(), &setup);
    }
}
