//! Format stability: a message file written by each format version (tests/data/message_v1.bin,
//! message_v2.bin) must stay readable by every later version, since a queue outlives
//! upgrades.

use std::time::{Duration, UNIX_EPOCH};

use mta_core::{Address, Envelope};
use mta_queue::{MessageId, Queue, QueueOptions, Status};

use crate::common::free_files;

const GOLDEN: &[u8] = include_bytes!("../data/message_v1.bin");
const GOLDEN2: &[u8] = include_bytes!("../data/message_v2.bin");

fn golden_envelope() -> Envelope {
    Envelope {
        sender: Address::from_bytes(&b"bounce\r\n\0@example.com"[..]),
        recipients: vec![
            Address::from("a@example.org"),
            Address::from_bytes(&b"\xff\xfeb@example.net"[..]),
            Address::null(),
        ],
    }
}

fn golden_statuses() -> Vec<Status> {
    vec![
        Status::Delivered,
        Status::Deferred {
            attempts: 2,
            next_attempt: UNIX_EPOCH + Duration::new(1_800_000_000, 5),
            reason: Vec::new(),
        },
        Status::Failed(b"550 5.1.1 <>\r\n\0unknown".to_vec()),
    ]
}

const BODY: &[u8] = b"Subject: golden\r\n\r\nThis file pins format version 1.\r\n";
const BODY2: &[u8] = b"Subject: golden\r\n\r\nThis file pins format version 2.\r\n";

#[test]
#[ignore = "regenerates tests/data/message_v2.bin; run only when the format version changes"]
fn write_golden() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default().split(1)).unwrap();
    let id = q.enqueue(&golden_envelope(), BODY2).unwrap();
    for (i, s) in golden_statuses().into_iter().enumerate() {
        q.mark(id, i as u32, Status::Pending).unwrap();
        q.mark(id, i as u32, s).unwrap();
    }
    let birth = q.birth(id).unwrap().duration_since(UNIX_EPOCH).unwrap();
    println!("id {id} birth {} {}", birth.as_secs(), birth.subsec_nanos());
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/message_v2.bin");
    std::fs::copy(dir.path().join(format!("mess/0/{id}")), out).unwrap();
}

#[test]
fn reads_the_v1_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    drop(Queue::open(dir.path(), QueueOptions::default().split(1)).unwrap());
    std::fs::write(dir.path().join("mess/0/424242"), GOLDEN).unwrap();
    // As after a reboot: the check reads format 1 files' headers only and keeps them.
    std::fs::remove_file(dir.path().join("boot")).unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert!(q.torn_at_open().is_empty());
    let id = MessageId::from_u64(424_242);
    assert_eq!(q.scan().unwrap(), vec![id]);
    let info = q.info(id).unwrap();
    assert_eq!(info.envelope, golden_envelope());
    assert_eq!(info.statuses, golden_statuses());
    assert_eq!(info.birth, UNIX_EPOCH + Duration::new(BIRTH.0, BIRTH.1));
    assert_eq!(crate::common::read_body(&q, id), BODY);
    // And it can still be marked and removed.
    q.mark(id, 1, Status::Delivered).unwrap();
    q.remove(id).unwrap();
}
/// The birth time recorded in the golden file when it was written.
const BIRTH: (u64, u32) = (1_795_927_271, 147_349_549);

#[test]
fn reads_the_v2_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    drop(Queue::open(dir.path(), QueueOptions::default().split(1)).unwrap());
    let id = MessageId::from_u64(ID2);
    std::fs::write(dir.path().join(format!("mess/0/{id}")), GOLDEN2).unwrap();
    // As after a reboot: the open checks every message whole (body checksum, own id).
    std::fs::remove_file(dir.path().join("boot")).unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert!(q.torn_at_open().is_empty());
    assert_eq!(q.scan().unwrap(), vec![id]);
    let info = q.info(id).unwrap();
    assert_eq!(info.envelope, golden_envelope());
    assert_eq!(info.statuses, golden_statuses());
    assert_eq!(info.birth, UNIX_EPOCH + Duration::new(BIRTH2.0, BIRTH2.1));
    assert_eq!(crate::common::read_body(&q, id), BODY2);
    q.mark(id, 1, Status::Delivered).unwrap();
    q.remove(id).unwrap();
    drop(q);
    // Under another id it names a message that is not its own: removed at the check.
    let dir = tempfile::tempdir().unwrap();
    drop(Queue::open(dir.path(), QueueOptions::default().split(1)).unwrap());
    std::fs::write(dir.path().join("mess/0/424242"), GOLDEN2).unwrap();
    std::fs::remove_file(dir.path().join("boot")).unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let other = MessageId::from_u64(424_242);
    assert_eq!(q.torn_at_open(), vec![(other, "holds another message")]);
    assert!(q.scan().unwrap().is_empty());
}

/// The id and birth time of the message in message_v2.bin (`write_golden` prints them).
const ID2: u64 = 1_796_227_236_658_674;
const BIRTH2: (u64, u32) = (1_796_227_236, 658_811_433);

/// A removed format 1 message's file is never reused for a new message: after a power
/// loss a reused file's old contents must be told apart by the id they name, and format 1
/// names none. (Format 2 files are reused: see power_loss.rs.)
#[test]
fn a_format_1_file_is_never_reused() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    drop(Queue::open(dir.path(), QueueOptions::default().split(1)).unwrap());
    let old_path = dir.path().join("mess/0/424242");
    std::fs::write(&old_path, GOLDEN).unwrap();
    // Held open, the old file keeps its inode (its number cannot go to a new file) and
    // shows whether anything rewrote it.
    let old_file = std::fs::File::open(&old_path).unwrap();
    let old_ino = old_file.metadata().unwrap().ino();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let id = MessageId::from_u64(424_242);
    q.mark(id, 1, Status::Delivered).unwrap();
    q.remove(id).unwrap();
    assert_eq!(free_files(dir.path()).len(), 1);
    let env = Envelope::new("s@example.com", ["r@example.org"]);
    // The first commit round's sync makes the removal durable; the next enqueue would
    // take the file kept for reuse, and must not.
    q.enqueue(&env, &b"first"[..]).unwrap();
    let second = q.enqueue(&env, &b"second"[..]).unwrap();
    assert_eq!(free_files(dir.path()).len(), 0);
    let new_ino = std::fs::metadata(dir.path().join(format!("mess/0/{second}")))
        .unwrap()
        .ino();
    assert_ne!(new_ino, old_ino, "the format 1 file was reused");
    let mut magic = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&old_file, &mut magic, 0).unwrap();
    assert_eq!(&magic, b"MTAQMSG1", "the format 1 file was rewritten");
    assert_eq!(crate::common::read_body(&q, second), b"second");
}
