//! 8 threads and 4 processes deliver into the same maildir and the same mbox at once:
//! every message arrives exactly once and complete, and mbox entries never interleave.

use std::collections::BTreeSet;

use mta_maildir::{Maildir, Mbox, Subdir, mbox_from_line};

use crate::common::{
    expected_for, fast_tempdir, generated_message, message_id, spawn_child, split_mbox,
};

const PER_WORKER: u64 = 6;
/// Larger than the mbox write buffer, so one entry takes several write calls and an
/// unlocked writer would interleave.
const LEN: usize = 100 * 1024;

#[test]
fn threads_and_processes_share_a_maildir_and_an_mbox() {
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let mbox_path = dir.path().join("Mailbox");
    let children: Vec<_> = (0..4)
        .map(|p| {
            spawn_child(&[
                "burst".into(),
                md.path().to_str().unwrap().into(),
                mbox_path.to_str().unwrap().into(),
                format!("p{p}"),
                PER_WORKER.to_string(),
                LEN.to_string(),
            ])
        })
        .collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (md, mbox_path) = (&md, &mbox_path);
            s.spawn(move || {
                let mbox = Mbox::new(mbox_path);
                let tag = format!("t{t}");
                for n in 0..PER_WORKER {
                    let msg = generated_message(&tag, n, LEN);
                    md.deliver(b"", &msg[..]).unwrap();
                    mbox.deliver(&mbox_from_line(tag.as_bytes(), 0), b"", &msg[..])
                        .unwrap();
                }
            });
        }
    });
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let mut want = BTreeSet::new();
    for w in (0..4)
        .map(|p| format!("p{p}"))
        .chain((0..8).map(|t| format!("t{t}")))
    {
        for n in 0..PER_WORKER {
            want.insert(format!("{w}-{n}"));
        }
    }

    let mut seen = BTreeSet::new();
    for m in md.list(Subdir::New).unwrap() {
        let data = md.read(&m).unwrap();
        let id = message_id(&data).unwrap();
        assert!(data == expected_for(&id, LEN), "{id} damaged");
        assert!(seen.insert(id.clone()), "{id} twice in the maildir");
    }
    assert_eq!(seen, want);

    let mut seen = BTreeSet::new();
    for (from, body) in split_mbox(&std::fs::read(&mbox_path).unwrap()) {
        let id = message_id(&body).unwrap();
        let (tag, _) = id.rsplit_once('-').unwrap();
        assert_eq!(from, mbox_from_line(tag.as_bytes(), 0));
        let mut full = expected_for(&id, LEN);
        if full.last() != Some(&b'\n') {
            full.push(b'\n');
        }
        assert!(body == full, "{id} interleaved or damaged in the mbox");
        assert!(seen.insert(id.clone()), "{id} twice in the mbox");
    }
    assert_eq!(seen, want);
}
