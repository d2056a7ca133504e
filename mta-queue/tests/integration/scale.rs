//! 100,000 queued messages: `open` recovers them all and no directory grows past a few
//! hundred entries. Slow (it writes 100,000 files), so `#[ignore]`d; run it with
//! `cargo test -p mta-queue --test integration scale -- --ignored`. The cost per enqueue and
//! mark at that size is measured by `examples/scale.rs` and the `scale` bench group.

use mta_core::Envelope;
use mta_queue::{Queue, QueueOptions};

use crate::common::scratch_dir;

#[test]
#[ignore = "writes 100,000 files; run explicitly"]
fn hundred_thousand_messages_recover() {
    let dir = scratch_dir();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let env = Envelope::new("s@example.com", ["r@example.org"]);
    let body = vec![b'x'; 2048];
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..12_500 {
                    q.enqueue(&env, &body[..]).unwrap();
                }
            });
        }
    });
    drop(q);
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert_eq!(q.scan().unwrap().len(), 100_000);
    let biggest = (0..512)
        .map(|n| {
            std::fs::read_dir(dir.path().join(format!("mess/{n}")))
                .unwrap()
                .count()
        })
        .max()
        .unwrap();
    assert!(biggest <= 400, "a split directory holds {biggest} entries");
}
