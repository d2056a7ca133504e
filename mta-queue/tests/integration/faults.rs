//! Fault injection: a write or sync failing with ENOSPC or EIO in the middle of an enqueue
//! or a mark returns an error, leaves nothing visible, and harms nothing committed.

use mta_core::Envelope;
use mta_queue::sim::{Restart, SimFs};
use mta_queue::{Queue, QueueOptions, Status};

use crate::common::{assert_message, message};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn committed(q: &Queue<SimFs>) -> Vec<(mta_queue::MessageId, u64)> {
    (0..3)
        .map(|seed| {
            let (env, body) = message(seed);
            (q.enqueue(&env, &body[..]).unwrap(), seed)
        })
        .collect()
}

fn stream(
    q: &Queue<SimFs>,
    env: &Envelope,
    body: &[u8],
) -> Result<mta_queue::MessageId, mta_queue::QueueError> {
    let mut inc = q.begin()?;
    for part in body.chunks(10_000) {
        inc.write(part)?;
    }
    inc.commit(env)
}

#[test]
fn write_failures_mid_enqueue_leave_nothing() {
    let body: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let env = Envelope::new("s@x", ["r@x"]);
    for errno in [ENOSPC, EIO] {
        for budget in [0, 1, 31, 100, 65_536, 70_000, 200_000, 299_999] {
            let fs = SimFs::new();
            let q = Queue::open_with(fs.clone(), QueueOptions::default().split(2)).unwrap();
            let old = committed(&q);
            fs.fail_writes_after(budget, errno);
            let err = stream(&q, &env, &body).unwrap_err();
            assert_eq!(err.is_storage_full(), errno == ENOSPC, "{err}");
            let err = q.enqueue(&env, &body[..1000]).unwrap_err();
            assert_eq!(err.is_storage_full(), errno == ENOSPC, "{err}");
            assert_eq!(
                q.scan().unwrap(),
                old.iter().map(|o| o.0).collect::<Vec<_>>()
            );
            assert!(
                fs.list_dir("tmp").unwrap().is_empty(),
                "failed enqueue left its tmp file"
            );
            for (id, seed) in &old {
                assert_message(&q, *id, *seed);
            }
            // Space comes back: the queue works, and a restart sees the same.
            fs.clear_faults();
            let id = stream(&q, &env, &body).unwrap();
            drop(q);
            let q =
                Queue::open_with(fs.restart(Restart::PowerLoss), QueueOptions::default()).unwrap();
            assert_eq!(q.scan().unwrap().len(), old.len() + 1);
            assert_eq!(q.info(id).unwrap().body_len, body.len() as u64);
        }
    }
}

#[test]
fn sync_failures_mid_enqueue_leave_nothing() {
    let env = Envelope::new("s@x", ["r@x"]);
    // The default commit round has one sync (syncfs after the rename); the grouped
    // commit's file fdatasync (0) or its directory fsync after the rename (1) fails.
    let grouped = QueueOptions::default()
        .split(2)
        .commit(mta_queue::CommitMode::Grouped);
    for (options, ok_syncs) in [
        (QueueOptions::default().split(2), 0),
        (grouped, 0),
        (grouped, 1),
    ] {
        let fs = SimFs::new();
        let q = Queue::open_with(fs.clone(), options).unwrap();
        let old = committed(&q);
        fs.fail_syncs_after(ok_syncs, EIO);
        assert!(q.enqueue(&env, &b"data"[..]).is_err());
        assert_eq!(
            q.scan().unwrap().len(),
            old.len(),
            "a message whose sync failed is visible"
        );
        assert!(fs.list_dir("tmp").unwrap().is_empty());
        fs.clear_faults();
        for (id, seed) in &old {
            assert_message(&q, *id, *seed);
        }
    }
}

#[test]
fn failed_mark_keeps_the_previous_status_and_the_next_mark_works() {
    let fs = SimFs::new();
    let q = Queue::open_with(fs.clone(), QueueOptions::default().split(2)).unwrap();
    let id = q
        .enqueue(&Envelope::new("s@x", ["a@x", "b@x"]), &b"m"[..])
        .unwrap();
    q.mark(id, 0, Status::Delivered).unwrap();
    for budget in [0, 3, 9] {
        fs.fail_writes_after(budget, ENOSPC);
        assert!(q.mark(id, 1, Status::Failed(vec![b'x'; 40])).is_err());
        fs.clear_faults();
        assert_eq!(
            q.info(id).unwrap().statuses,
            vec![Status::Delivered, Status::Pending]
        );
    }
    fs.fail_syncs_after(0, EIO);
    assert!(q.mark(id, 1, Status::Delivered).is_err());
    fs.clear_faults();
    q.mark(id, 1, Status::Failed(b"550".to_vec())).unwrap();
    drop(q);
    let q = Queue::open_with(fs.restart(Restart::PowerLoss), QueueOptions::default()).unwrap();
    assert_eq!(
        q.info(id).unwrap().statuses,
        vec![Status::Delivered, Status::Failed(b"550".to_vec())]
    );
}

/// Unmounts the test file system even if the test panics.
struct Mounted<'a>(&'a std::path::Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0).status();
    }
}

/// A real full disk: a 768 KiB tmpfs. Needs permission to mount (root); elsewhere the test
/// says so and checks nothing (the simulated faults above still run everywhere).
#[test]
fn real_full_tmpfs() {
    let mnt = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=768k,nr_inodes=4096",
            "mta-queue-test",
        ])
        .arg(mnt.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("real_full_tmpfs: cannot mount a tmpfs here (not root?); skipped");
        return;
    }
    let _guard = Mounted(mnt.path());
    let q = Queue::open(mnt.path(), QueueOptions::default().split(4)).unwrap();
    let env = Envelope::new("s@x", ["r@x"]);
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let mut ok = Vec::new();
    let err = loop {
        match q.enqueue(&env, &body[..]) {
            Ok(id) => ok.push(id),
            Err(e) => break e,
        }
        assert!(ok.len() < 100, "tmpfs never filled up");
    };
    assert!(err.is_storage_full(), "{err}");
    assert!(!ok.is_empty());
    assert_eq!(q.scan().unwrap(), ok, "a failed enqueue is visible");
    assert_eq!(
        std::fs::read_dir(mnt.path().join("tmp")).unwrap().count(),
        0
    );
    // A mark's few bytes fit in the file's last page even now; removing finished messages
    // frees room for new ones.
    q.mark(ok[0], 0, Status::Delivered).unwrap();
    q.remove(ok[0]).unwrap();
    q.mark(ok[1], 0, Status::Delivered).unwrap();
    q.remove(ok[1]).unwrap();
    let again = q.enqueue(&env, &body[..]).unwrap();
    drop(q);
    let q = Queue::open(mnt.path(), QueueOptions::default()).unwrap();
    for id in ok[2..].iter().chain([&again]) {
        assert_eq!(crate::common::read_body(&q, *id), body);
    }
}
