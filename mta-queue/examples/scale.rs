//! Scale check: fills a queue to 100,000 messages (2 KB, 8 threads) in blocks of 10,000 and
//! prints, per block, the enqueue rate and the rate of marks on random queued messages, so
//! you can see both stay flat as the queue grows; then times `Queue::open` (recovery and its
//! linear scan) and `scan()` of all of them, and prints the largest split directory.
//!
//! ```text
//! cargo run --release -p mta-queue --example scale -- [--total 100000] [--dir DIR]
//! ```

use std::time::Instant;

use mta_core::Envelope;
use mta_queue::{MessageId, Queue, QueueOptions, Status};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut total = 100_000usize;
    let mut base = std::env::temp_dir();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--total", Some(v)) => total = v.parse()?,
            ("--dir", Some(v)) => base = v.into(),
            _ => return Err(format!("usage: scale [--total N] [--dir DIR] (got {flag})").into()),
        }
    }
    let dir = tempfile::tempdir_in(&base)?;
    let queue = Queue::open(dir.path(), QueueOptions::default())?;
    let env = Envelope::new("sender@example.com", ["a@example.org", "b@example.org"]);
    let body = vec![b'x'; 2048];
    let block = (total / 10).max(1);
    let mut ids: Vec<MessageId> = Vec::new();
    let mut pick = 0x2545_F491_4F6C_DD1Du64;
    println!("{:>9} {:>14} {:>12}", "queued", "enqueue msg/s", "mark /s");
    while ids.len() < total {
        let start = Instant::now();
        let new: Vec<MessageId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..block / 8)
                            .map(|_| queue.enqueue(&env, &body[..]))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("enqueue thread panicked"))
                .collect::<Result<Vec<_>, _>>()
        })?
        .into_iter()
        .flatten()
        .collect();
        let enqueue_rate = new.len() as f64 / start.elapsed().as_secs_f64();
        ids.extend(new);
        // 500 marks on messages picked at random from everything queued so far.
        let start = Instant::now();
        for _ in 0..500 {
            pick ^= pick << 13;
            pick ^= pick >> 7;
            pick ^= pick << 17;
            let id = ids[(pick % ids.len() as u64) as usize];
            let next_attempt = std::time::SystemTime::now();
            queue.mark(
                id,
                0,
                Status::Deferred {
                    attempts: 1,
                    next_attempt,
                    reason: b"451 later".to_vec(),
                },
            )?;
        }
        let mark_rate = 500.0 / start.elapsed().as_secs_f64();
        println!("{:>9} {enqueue_rate:>14.0} {mark_rate:>12.0}", ids.len());
    }
    drop(queue);
    let start = Instant::now();
    let queue = Queue::open(dir.path(), QueueOptions::default())?;
    let opened = start.elapsed();
    let start = Instant::now();
    let found = queue.scan()?.len();
    println!(
        "open (recovery) {opened:.2?}, scan of {found} messages {:.2?}",
        start.elapsed()
    );
    let biggest = (0..512)
        .map(|n| std::fs::read_dir(dir.path().join(format!("mess/{n}"))).map_or(0, Iterator::count))
        .max()
        .unwrap_or(0);
    println!("largest split directory: {biggest} entries");
    Ok(())
}
