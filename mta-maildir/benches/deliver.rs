//! Durable delivery throughput (2 KB messages) on a real disk, against the raw fsync limit
//! measured in the same run.
//!
//! - `raw_fsync_limit`: create a file, write 2 KB, fsync it, rename it into another
//!   directory, fsync that directory: the least work any durable file delivery needs.
//! - `maildir_deliver`: [`Maildir::deliver`] (two fsyncs, like the raw limit).
//! - `mbox_deliver`: [`Mbox::deliver`] (one fsync, plus locking).
//! - `fanout_1024/deliver_many`: one message into 1,024 maildirs with [`deliver_many`]
//!   (1,025 fsyncs for 1,024 deliveries), reported per delivery; `deliver_many_syncfs` the
//!   same with [`FanoutSync::WholeFilesystem`] (one file fsync and four `syncfs`).
//!
//! Runs in `$MTA_BENCH_DIR` if set, else the system temp dir (use a disk, not tmpfs, for
//! meaningful fsync figures). After criterion's report a closing note re-measures each for
//! about a second and prints deliveries/s next to the raw limit.
//!
//! `cargo bench -p mta-maildir --bench deliver -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mta_maildir::{FanoutSync, Maildir, Mbox, deliver_many, deliver_many_with, mbox_from_line};

const FANOUT: usize = 1024;

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

/// The raw limit: create + write 2 KB + fsync + rename + fsync dir.
struct Raw {
    tmp: PathBuf,
    new: PathBuf,
    new_dir: File,
    n: u64,
}

impl Raw {
    fn new(root: &Path) -> Self {
        let (tmp, new) = (root.join("raw-tmp"), root.join("raw-new"));
        fs::create_dir_all(&tmp).unwrap();
        fs::create_dir_all(&new).unwrap();
        let new_dir = File::open(&new).unwrap();
        Self {
            tmp,
            new,
            new_dir,
            n: 0,
        }
    }

    fn once(&mut self, msg: &[u8]) {
        self.n += 1;
        let name = format!("{}", self.n);
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .open(self.tmp.join(&name))
            .unwrap();
        f.write_all(msg).unwrap();
        f.sync_all().unwrap();
        fs::rename(self.tmp.join(&name), self.new.join(&name)).unwrap();
        self.new_dir.sync_all().unwrap();
    }
}

fn maildirs(root: &Path, n: usize) -> Vec<Maildir> {
    (0..n)
        .map(|i| Maildir::create(root.join(format!("fan/{i}"))).unwrap())
        .collect()
}

fn benches(c: &mut Criterion, root: &Path) {
    let msg = message();
    let mut g = c.benchmark_group("durable_2k");
    g.throughput(Throughput::Elements(1));
    let mut raw = Raw::new(root);
    g.bench_function("raw_fsync_limit", |b| b.iter(|| raw.once(&msg)));
    let md = Maildir::create(root.join("single")).unwrap();
    g.bench_function("maildir_deliver", |b| {
        b.iter(|| md.deliver(b"", &msg[..]).unwrap());
    });
    let mbox = Mbox::new(root.join("mbox"));
    let from = mbox_from_line(b"a@example.org", 1_800_000_000);
    g.bench_function("mbox_deliver", |b| {
        b.iter(|| mbox.deliver(&from, b"", &msg[..]).unwrap());
    });
    g.finish();

    fs::create_dir_all(root.join("fan")).unwrap();
    let mds = maildirs(root, FANOUT);
    let refs: Vec<&Maildir> = mds.iter().collect();
    let mut g = c.benchmark_group("fanout_1024");
    g.throughput(Throughput::Elements(FANOUT as u64));
    g.sample_size(10);
    g.bench_function("deliver_many", |b| {
        b.iter(|| {
            for r in deliver_many(&refs, b"", &msg[..]) {
                r.unwrap();
            }
        });
    });
    g.bench_function("deliver_many_syncfs", |b| {
        b.iter(|| {
            for r in deliver_many_with(&refs, b"", &msg[..], FanoutSync::WholeFilesystem) {
                r.unwrap();
            }
        });
    });
    g.finish();
}

/// Runs `f` (which performs `per_call` deliveries) for about `budget`; deliveries/s.
fn rate(budget: Duration, per_call: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while n == 0 || start.elapsed() < budget {
        f();
        n += per_call;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Median of interleaved rounds, so every figure sees the same background load.
fn closing_note(root: &Path) {
    const ROUNDS: usize = 7;
    let msg = message();
    let slice = Duration::from_millis(300);
    let mut raw = Raw::new(root);
    let md = Maildir::create(root.join("note-single")).unwrap();
    let mbox = Mbox::new(root.join("note-mbox"));
    let from = mbox_from_line(b"a@example.org", 1_800_000_000);
    fs::create_dir_all(root.join("fan")).unwrap();
    let mds = maildirs(root, FANOUT);
    let refs: Vec<&Maildir> = mds.iter().collect();
    let mut samples = vec![Vec::new(); 5];
    for _ in 0..ROUNDS {
        samples[0].push(rate(slice, 1, || raw.once(&msg)));
        samples[1].push(rate(slice, 1, || {
            md.deliver(b"", &msg[..]).unwrap();
        }));
        samples[2].push(rate(slice, 1, || {
            mbox.deliver(&from, b"", &msg[..]).unwrap();
        }));
        samples[3].push(rate(Duration::ZERO, FANOUT as u64, || {
            for r in deliver_many(&refs, b"", &msg[..]) {
                r.unwrap();
            }
        }));
        samples[4].push(rate(Duration::ZERO, FANOUT as u64, || {
            for r in deliver_many_with(&refs, b"", &msg[..], FanoutSync::WholeFilesystem) {
                r.unwrap();
            }
        }));
    }
    let m: Vec<f64> = samples
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    let raw_rate = m[0];
    println!(
        "\nclosing note (2 KB messages, {}, median of {ROUNDS} interleaved rounds):",
        root.display()
    );
    println!("  raw fsync limit (create+write+fsync+rename+fsync dir): {raw_rate:>7.0} /s");
    let names = [
        "Maildir::deliver",
        "Mbox::deliver",
        "deliver_many to 1,024",
        "deliver_many_with(syncfs)",
    ];
    for (name, r) in names.iter().zip(&m[1..]) {
        println!(
            "  {name:<27} {r:>7.0} deliveries/s = {:.2}x the raw limit",
            r / raw_rate
        );
    }
}

fn main() {
    let dir = bench_dir();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, dir.path());
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        closing_note(dir.path());
    }
}
