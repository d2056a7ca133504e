//! Many threads on one queue: group commit must hand every caller its own result and lose
//! nothing.

use std::sync::{Arc, Mutex};

use mta_core::Envelope;
use mta_queue::{Queue, QueueOptions, Status};

use crate::common::{assert_message, message};

#[test]
fn eight_threads_enqueue_and_mark_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let shared = q
        .enqueue(
            &Envelope::new("s@x", (0..64).map(|i| format!("r{i}@x"))),
            &b"m"[..],
        )
        .unwrap();
    let done = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..8 {
                    let seed = 100 * t + i;
                    let (env, body) = message(seed);
                    let id = q.enqueue(&env, &body[..]).unwrap();
                    q.mark(id, 0, Status::Delivered).unwrap();
                    // Marks of one message from many threads share its log.
                    q.mark(shared, (t * 8 + i) as u32, Status::Delivered)
                        .unwrap();
                    if i % 2 == 1 {
                        // Finished messages are removed while others are being committed.
                        let n = env.recipients.len() as u32;
                        let all: Vec<_> = (0..n).map(|r| (r, Status::Delivered)).collect();
                        q.mark_many(id, &all).unwrap();
                        q.remove(id).unwrap();
                        continue;
                    }
                    done.lock().unwrap().push((id, seed));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(q);
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let done = done.lock().unwrap();
    assert_eq!(q.scan().unwrap().len(), done.len() + 1);
    for (id, seed) in done.iter() {
        assert_message(&q, *id, *seed);
        assert_eq!(q.info(*id).unwrap().statuses[0], Status::Delivered);
    }
    assert!(q.info(shared).unwrap().is_complete());
}
