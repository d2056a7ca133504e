//! The public API on the real file system.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use mta_core::Envelope;
use mta_queue::{Incoming, MessageId, Queue, QueueError, QueueOptions, Status};

use crate::common::{assert_message, free_files, mess_entries, message, read_body};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Queue>();
    assert_send_sync::<Incoming>();
    assert_send_sync::<QueueError>();
}

#[test]
fn enqueue_read_back_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let before = SystemTime::now() - Duration::from_secs(1);
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let mut ids = Vec::new();
    for seed in 0..12 {
        let (env, body) = message(seed);
        ids.push((q.enqueue(&env, &body[..]).unwrap(), seed));
    }
    let info = q.info(ids[0].0).unwrap();
    assert!(info.birth >= before && info.birth <= SystemTime::now());
    assert_eq!(q.birth(ids[0].0).unwrap(), info.birth);
    assert!(info.statuses.iter().all(|s| *s == Status::Pending));
    drop(q);
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let scanned = q.scan().unwrap();
    assert_eq!(
        scanned,
        ids.iter().map(|x| x.0).collect::<Vec<_>>(),
        "oldest first"
    );
    for (id, seed) in &ids {
        assert_message(&q, *id, *seed);
    }
    // New ids never collide with old ones.
    let new = q
        .enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
        .unwrap();
    assert!(ids.iter().all(|(id, _)| *id < new));
}

#[test]
fn streaming_commit_abort_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let mut inc = q.begin().unwrap();
    let chunk: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for _ in 0..300 {
        inc.write(&chunk).unwrap();
    }
    assert_eq!(inc.len(), 300_000);
    let id_hint = inc.id();
    let id = inc.commit(&Envelope::new("", ["x@y"])).unwrap();
    assert_eq!(id, id_hint);
    assert_eq!(read_body(&q, id), chunk.repeat(300));

    let mut aborted = q.begin().unwrap();
    aborted.write(b"never queued").unwrap();
    aborted.abort().unwrap();
    let mut dropped = q.begin().unwrap();
    writeln!(dropped, "via io::Write").unwrap();
    drop(dropped);
    assert_eq!(q.scan().unwrap(), vec![id]);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn marks_info_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let env = Envelope::new("s@x", ["a@x", "b@x", "c@x"]);
    let id = q.enqueue(&env, &b"hi"[..]).unwrap();
    let later = SystemTime::UNIX_EPOCH + Duration::from_hours(500_000);
    q.mark(
        id,
        1,
        Status::Deferred {
            attempts: 1,
            next_attempt: later,
            reason: b"451 4.3.0 try again\n".to_vec(),
        },
    )
    .unwrap();
    q.mark(id, 0, Status::Delivered).unwrap();
    assert!(matches!(q.remove(id), Err(QueueError::NotFinal(x)) if x == id));
    let info = q.info(id).unwrap();
    assert_eq!(
        info.unfinished().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![1, 2]
    );
    q.mark_many(
        id,
        &[
            (1, Status::Failed(b"550 5.1.1 no\r\n".to_vec())),
            (2, Status::Delivered),
        ],
    )
    .unwrap();
    assert!(matches!(
        q.mark(id, 3, Status::Delivered),
        Err(QueueError::NoSuchRecipient {
            index: 3,
            count: 3,
            ..
        })
    ));
    assert!(
        q.mark_many(id, &[(0, Status::Pending), (9, Status::Delivered)])
            .is_err()
    );
    // The valid half of a rejected batch was not applied.
    assert_eq!(q.info(id).unwrap().statuses[0], Status::Delivered);
    let info = q.info(id).unwrap();
    assert_eq!(
        info.statuses,
        vec![
            Status::Delivered,
            Status::Failed(b"550 5.1.1 no\r\n".to_vec()),
            Status::Delivered
        ]
    );
    drop(q);
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert!(q.info(id).unwrap().is_complete());
    q.remove(id).unwrap();
    assert!(matches!(q.remove(id), Err(QueueError::NotFound(_))));
    assert!(matches!(
        q.mark(id, 0, Status::Delivered),
        Err(QueueError::NotFound(_))
    ));
    assert!(matches!(q.open_message(id), Err(QueueError::NotFound(_))));
    assert!(q.scan().unwrap().is_empty());
}

#[test]
fn thousands_of_recipients_marked_one_by_one_and_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let n = 8192u32;
    let env = Envelope::new("list@x", (0..n).map(|i| format!("u{i}@example.org")));
    let id = q.enqueue(&env, &b"list mail"[..]).unwrap();
    for i in 0..64 {
        q.mark(id, i, Status::Delivered).unwrap();
    }
    let rest: Vec<(u32, Status)> = (64..n).map(|i| (i, Status::Delivered)).collect();
    q.mark_many(id, &rest).unwrap();
    let info = q.info(id).unwrap();
    assert_eq!(info.statuses.len(), n as usize);
    assert!(info.is_complete());
}

#[test]
fn a_second_process_handle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert!(matches!(
        Queue::open(dir.path(), QueueOptions::default()),
        Err(QueueError::Locked)
    ));
}

#[test]
fn ids_are_map_keys_and_print_as_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let mut seen: HashMap<MessageId, usize> = HashMap::new();
    for i in 0..20 {
        let id = q
            .enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
            .unwrap();
        assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
        assert!(seen.insert(id, i).is_none());
    }
}

#[test]
fn split_directories_are_kept_and_filled_evenly() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default().split(4).ids_per_dir(16)).unwrap();
    let ids: Vec<_> = (0..64)
        .map(|_| {
            q.enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
                .unwrap()
        })
        .collect();
    drop(q);
    // Reopening with another split keeps the recorded one, so every message is still found.
    let q = Queue::open(dir.path(), QueueOptions::default().split(99).ids_per_dir(1)).unwrap();
    assert_eq!(q.scan().unwrap(), ids);
    for n in 0..4 {
        let count = std::fs::read_dir(dir.path().join(format!("mess/{n}")))
            .unwrap()
            .count();
        assert_eq!(count, 16, "mess/{n}");
    }
    assert!(!dir.path().join("mess/4").exists());
}

/// Where each message lies in the queue at `dir`, split 4: (id, the `mess/` subdirectory
/// holding it).
fn homes(dir: &std::path::Path, ids: &[MessageId]) -> Vec<(MessageId, u32)> {
    ids.iter()
        .map(|&id| {
            let n = (0..4)
                .find(|n| dir.join(format!("mess/{n}/{id}")).exists())
                .unwrap_or_else(|| panic!("{id} is in no mess/ directory"));
            (id, n)
        })
        .collect()
}

#[test]
fn a_new_queue_files_runs_of_256_ids_per_directory_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default().split(4)).unwrap();
    let ids: Vec<_> = (0..300)
        .map(|_| {
            q.enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
                .unwrap()
        })
        .collect();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("layout")).unwrap(),
        "mta-queue 2\nsplit 4\nrun 256\n"
    );
    for (id, n) in homes(dir.path(), &ids) {
        assert_eq!(n, id.split_dir_with(4, 256), "{id}");
        assert_eq!(u64::from(n), id.as_u64() / 256 % 4, "{id}");
    }
    // 300 consecutive ids span two or three runs, so two or three directories hold them.
    let used = (0..4)
        .filter(|n| {
            std::fs::read_dir(dir.path().join(format!("mess/{n}")))
                .unwrap()
                .count()
                > 0
        })
        .count();
    assert!((2..=3).contains(&used), "{used}");
    drop(q);
    // The recorded runs win over the options, as the split count does.
    let q = Queue::open(dir.path(), QueueOptions::default().ids_per_dir(16)).unwrap();
    assert_eq!(q.scan().unwrap(), ids);
    let next = q
        .enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
        .unwrap();
    assert_eq!(homes(dir.path(), &[next])[0].1, next.split_dir_with(4, 256));
}

/// A queue of runs of 16 is written as version 1, byte for byte the layout file of every
/// queue made before version 2, and a queue with that file goes on filing by runs of 16
/// whatever the options say: an upgrade finds every message of the old layout.
#[test]
fn a_version_1_layout_keeps_runs_of_16() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default().split(4).ids_per_dir(16)).unwrap();
    let mut ids: Vec<_> = (0..40)
        .map(|_| {
            q.enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
                .unwrap()
        })
        .collect();
    drop(q);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("layout")).unwrap(),
        "mta-queue 1\nsplit 4\n"
    );
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert_eq!(q.scan().unwrap(), ids);
    ids.push(
        q.enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
            .unwrap(),
    );
    for (id, n) in homes(dir.path(), &ids) {
        assert_eq!(n, id.split_dir(4), "{id}");
    }
    for &id in &ids {
        q.mark(id, 0, Status::Delivered).unwrap();
        q.remove(id).unwrap();
    }
    assert!(q.scan().unwrap().is_empty());
}

#[test]
fn a_layout_of_an_unknown_version_is_refused() {
    for text in [
        "mta-queue 3\nsplit 4\nrun 16\n",
        "mta-queue 2\nsplit 4\n",
        "mta-queue 2\nsplit 4\nrun 0\n",
        "mta-queue 1\nsplit 0\n",
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("layout"), text).unwrap();
        let err = Queue::open(dir.path(), QueueOptions::default()).unwrap_err();
        assert!(err.to_string().contains("layout"), "{text:?}: {err}");
    }
}

#[test]
fn corrupt_file_is_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default().split(1)).unwrap();
    let id = q
        .enqueue(&Envelope::new("a@b", ["c@d"]), &b"hello"[..])
        .unwrap();
    let path = dir.path().join(format!("mess/0/{id}"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // the envelope checksum
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(q.info(id), Err(QueueError::Corrupt { .. })));
}

#[test]
fn per_message_commit_mode_keeps_the_same_guarantees() {
    use mta_queue::CommitMode;
    use mta_queue::sim::{Restart, SimFs};
    let fs = SimFs::new();
    let opts = QueueOptions::default()
        .split(2)
        .commit(CommitMode::PerMessage);
    let q = Queue::open_with(fs.clone(), opts).unwrap();
    let (env, body) = message(5);
    let id = q.enqueue(&env, &body[..]).unwrap();
    let gone = q
        .enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
        .unwrap();
    q.mark(gone, 0, Status::Delivered).unwrap();
    q.remove(gone).unwrap();
    assert!(matches!(q.remove(gone), Err(QueueError::NotFound(_))));
    drop(q);
    // The unsynced removal may be undone by the power loss, never the synced enqueue.
    let q = Queue::open_with(fs.restart(Restart::PowerLoss), opts).unwrap();
    let left = q.scan().unwrap();
    assert!(left == vec![id] || left == vec![id, gone], "{left:?}");
    assert_message(&q, id, 5);
    if left.len() == 2 {
        assert!(q.info(gone).unwrap().is_complete());
    }
}

#[test]
fn inspect_reads_a_queue_another_handle_owns() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let env = Envelope::new("a@example.org", ["b@example.net", "c@example.net"]);
    let id = q.enqueue(&env, &b"Subject: x\n\nbody\n"[..]).unwrap();
    q.mark(id, 0, Status::Delivered).unwrap();
    // A second opener is refused, but an inspector reads without the lock.
    assert!(matches!(
        Queue::open(dir.path(), QueueOptions::default()),
        Err(QueueError::Locked)
    ));
    let view = Queue::inspect(dir.path()).unwrap();
    assert_eq!(view.scan().unwrap(), vec![id]);
    let info = view.info(id).unwrap();
    assert_eq!(info.envelope, env);
    assert_eq!(info.statuses, vec![Status::Delivered, Status::Pending]);
    assert_eq!(read_body(&view, id), b"Subject: x\n\nbody\n");
    assert!(matches!(view.begin(), Err(QueueError::ReadOnly)));
    assert!(matches!(
        view.mark(id, 1, Status::Delivered),
        Err(QueueError::ReadOnly)
    ));
    assert!(matches!(view.remove(id), Err(QueueError::ReadOnly)));
    // The owner is unaffected.
    q.mark(id, 1, Status::Delivered).unwrap();
    q.remove(id).unwrap();
    assert!(Queue::inspect(dir.path().join("missing")).is_err());
}

#[test]
fn remove_delivered_needs_no_marks() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let env = Envelope::new("a@example.org", ["b@example.net"]);
    let id = q.enqueue(&env, &b"x\n"[..]).unwrap();
    assert!(matches!(q.remove(id), Err(QueueError::NotFinal(_))));
    q.remove_delivered(id).unwrap();
    assert!(q.scan().unwrap().is_empty());
    assert!(matches!(
        q.remove_delivered(id),
        Err(QueueError::NotFound(_))
    ));
    drop(q);
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert!(
        q.scan().unwrap().is_empty(),
        "the removal outlives the process"
    );
}

/// Every queued message's file under `dir/mess`, with its inode number.
fn queue_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    mess_entries(dir)
        .into_iter()
        .filter(|(_, free)| !free)
        .map(|(path, _)| {
            let ino = std::fs::metadata(&path).unwrap().ino();
            (path, ino)
        })
        .collect()
}

/// Under commit rounds (the default) a removed file becomes reusable once a round's syncfs
/// that started after the removal succeeded: here the next enqueue's, so the one after it
/// reuses the file.
#[test]
fn removed_files_are_reused_after_the_next_commit_round() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let env = Envelope::new("a@example.org", ["b@example.net"]);
    let first = q.enqueue(&env, &b"first"[..]).unwrap();
    let ino = queue_files(dir.path())[0].1;
    q.remove_delivered(first).unwrap();
    let second = q.enqueue(&env, &b"second"[..]).unwrap();
    assert_ne!(
        queue_files(dir.path())[0].1,
        ino,
        "reused before a sync covered its removal"
    );
    let third = q.enqueue(&env, &b"third"[..]).unwrap();
    let files = queue_files(dir.path());
    assert!(
        files.iter().any(|f| f.1 == ino),
        "the removed file was not reused"
    );
    assert_eq!(read_body(&q, third), b"third");
    assert_eq!(read_body(&q, second), b"second");
}

/// The ready file made first is reused first, whatever order the messages left in: the
/// few files in use stay the same few neighbouring inodes (fewer inode table blocks for a
/// commit round's sync to write), where reusing the last removed file would wander over
/// every file the queue ever made.
#[test]
fn the_earliest_made_free_file_is_reused_first() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let env = Envelope::new("a@example.org", ["b@example.net"]);
    let ino_of = |id: MessageId| {
        queue_files(dir.path())
            .into_iter()
            .find(|(p, _)| p.ends_with(id.to_string()))
            .unwrap()
            .1
    };
    let ids: Vec<MessageId> = (0..4)
        .map(|i| q.enqueue(&env, format!("message {i}").as_bytes()).unwrap())
        .collect();
    let made: Vec<u64> = ids.iter().map(|id| ino_of(*id)).collect();
    for k in [2, 0, 3, 1] {
        q.remove_delivered(ids[k]).unwrap();
    }
    assert!(
        q.sync_filesystem().unwrap(),
        "a round makes the removals durable"
    );
    // In the order the files were made, not the order they were freed.
    for (k, want) in made.iter().enumerate() {
        let id = q.enqueue(&env, &b"again"[..]).unwrap();
        assert_eq!(ino_of(id), *want, "reuse {k}: not the earliest made file");
    }
    assert_eq!(free_files(dir.path()).len(), 0);
}

#[test]
fn removed_files_are_reused_cut_to_length_and_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    // recycle(1): every removal is made durable at once, so its file is reusable at once
    // (under CommitMode::Grouped; see the next test for the default's commit rounds).
    let opts = QueueOptions::default()
        .recycle(1)
        .commit(mta_queue::CommitMode::Grouped);
    let q = Queue::open(dir.path(), opts).unwrap();
    let env = Envelope::new("a@example.org", ["b@example.net"]);
    // A long streamed message, delivered and removed: its file keeps a free name for reuse.
    let mut inc = q.begin().unwrap();
    for _ in 0..20 {
        inc.write(&[b'y'; 10_000]).unwrap();
    }
    let long = inc.commit(&env).unwrap();
    let ino = queue_files(dir.path())[0].1;
    q.mark(long, 0, Status::Failed(b"550 no".to_vec())).unwrap();
    q.remove(long).unwrap();
    assert!(queue_files(dir.path()).is_empty());
    assert_eq!(free_files(dir.path()).len(), 1);
    // The next message lands in the same inode, cut to its own length, with a fresh log.
    let short = q.enqueue(&env, &b"Subject: s\n\nshort\n"[..]).unwrap();
    let files = queue_files(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1, ino, "the removed file was not reused");
    assert_eq!(read_body(&q, short), b"Subject: s\n\nshort\n");
    assert_eq!(q.info(short).unwrap().statuses, vec![Status::Pending]);
    q.mark(short, 0, Status::Delivered).unwrap();
    assert_eq!(q.info(short).unwrap().statuses, vec![Status::Delivered]);
    assert_eq!(free_files(dir.path()).len(), 0);
    // A reopen removes the free names (they are not trusted after a crash).
    let other = q.enqueue(&env, &b"x"[..]).unwrap();
    q.remove_delivered(other).unwrap();
    assert_eq!(free_files(dir.path()).len(), 1);
    drop(q);
    let q = Queue::open(dir.path(), opts).unwrap();
    assert_eq!(free_files(dir.path()).len(), 0);
    assert_eq!(q.scan().unwrap(), vec![short]);
    assert_eq!(read_body(&q, short), b"Subject: s\n\nshort\n");
}

/// A queue from before the free names lived in `mess/` may hold files in `free/`; the
/// next open removes them, leaves the queued messages alone, and never reuses them.
#[test]
fn files_an_older_build_left_in_free_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let env = Envelope::new("a@example.org", ["b@example.net"]);
    let kept = q.enqueue(&env, &b"kept"[..]).unwrap();
    drop(q);
    std::fs::write(dir.path().join("free/1234"), b"an old removed message").unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("free")).unwrap().count(),
        0
    );
    assert_eq!(q.scan().unwrap(), vec![kept]);
    assert_eq!(read_body(&q, kept), b"kept");
    assert!(free_files(dir.path()).is_empty());
}

#[test]
fn recycle_zero_unlinks_removed_files() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default().recycle(0)).unwrap();
    let id = q
        .enqueue(&Envelope::new("a@b", ["c@d"]), &b"x"[..])
        .unwrap();
    q.remove_delivered(id).unwrap();
    assert_eq!(free_files(dir.path()).len(), 0);
    assert!(queue_files(dir.path()).is_empty());
}
