//! The power-loss model (`sim::PowerLossFs`): file data and directory entries survive only
//! when synced. For every operation a delivery makes, the power is cut right after it and
//! every state the disk may come back in is checked; separately, each operation is made to
//! fail once and the error path is checked. This proves the order of the fsyncs for maildir
//! delivery, batched fan-out and mbox.

use std::path::Path;

use mta_maildir::sim::PowerLossFs;
use mta_maildir::{
    DeliverStep, FanoutSync, Fs, Maildir, Mbox, MboxStep, Subdir, deliver_many, deliver_many_with,
    mbox_from_line,
};

use crate::common::{generated_message, mboxrd_quote};

const MD: &str = "/home/u/Maildir";

fn setup() -> (PowerLossFs, Maildir<PowerLossFs>) {
    let fs = PowerLossFs::new();
    fs.create_dir_all(Path::new("/home/u")).unwrap();
    let md = Maildir::create_in(fs.clone(), MD).unwrap();
    (fs, md)
}

fn message() -> Vec<u8> {
    generated_message("power", 1, 3000)
}

const PREFIX: &[u8] = b"Delivered-To: u@example.com\n";

fn full() -> Vec<u8> {
    [PREFIX, &message()].concat()
}

/// Operations one delivery makes, counted on a run without faults.
fn ops_of(run: impl Fn(&PowerLossFs)) -> (u64, u64) {
    let (fs, _) = setup();
    let base = fs.op_count();
    run(&fs);
    (base, fs.op_count() - base)
}

#[test]
fn maildir_delivery_order_is_write_sync_link_sync_new_unlink() {
    let (fs, md) = setup();
    let base = fs.trace().len();
    let name = md.deliver(PREFIX, &message()[..]).unwrap();
    let kinds: Vec<String> = fs.trace()[base..]
        .iter()
        .map(|t| t.split(' ').next().unwrap().to_owned())
        .collect();
    let writes = kinds.iter().filter(|k| *k == "write").count();
    let mut want = vec!["create".to_owned()];
    want.extend(std::iter::repeat_n("write".to_owned(), writes));
    want.extend(["sync_all", "link", "sync_dir", "unlink"].map(String::from));
    assert_eq!(kinds, want);
    let trace = fs.trace();
    assert!(trace[trace.len() - 3].ends_with(&format!("{MD}/new/{name}")));
    assert_eq!(trace[trace.len() - 2], format!("sync_dir {MD}/new"));
}

#[test]
fn maildir_delivery_survives_power_loss_after_every_operation() {
    let (base, n) = ops_of(|fs| {
        Maildir::open_in(fs.clone(), MD)
            .unwrap()
            .deliver(PREFIX, &message()[..])
            .unwrap();
    });
    let mut images_checked = 0;
    for k in 0..=n {
        let (fs, md) = setup();
        fs.crash_after(base + k);
        let result = md.deliver(PREFIX, &message()[..]);
        assert_eq!(result.is_ok(), k >= n - 1, "op {k}: {result:?}"); // the tmp unlink may fail
        for img in fs.crash_images() {
            let md = Maildir::open_in(img, MD).expect("maildir itself was durable");
            let new = md.list(Subdir::New).unwrap();
            for m in &new {
                assert!(
                    md.read(m).unwrap() == full(),
                    "op {k}: incomplete message in new/"
                );
            }
            if let Ok(name) = &result {
                assert!(
                    new.iter().any(|m| m.file_name() == name.as_str()),
                    "op {k}: lost"
                );
            }
            images_checked += 1;
        }
    }
    assert!(images_checked > 2 * n as usize);
}

#[test]
fn maildir_delivery_failing_at_each_operation_cleans_up_and_names_the_step() {
    let (base, n) = ops_of(|fs| {
        Maildir::open_in(fs.clone(), MD)
            .unwrap()
            .deliver(PREFIX, &message()[..])
            .unwrap();
    });
    for k in 1..=n {
        let (fs, md) = setup();
        fs.fail_op(base + k);
        let result = md.deliver(PREFIX, &message()[..]);
        let failed = fs
            .trace()
            .into_iter()
            .find(|t| t.ends_with("(failed)"))
            .unwrap();
        let want = match failed.split(' ').next().unwrap() {
            "create" => Some(DeliverStep::CreateTmp),
            "write" => Some(DeliverStep::Write),
            "sync_all" => Some(DeliverStep::SyncFile),
            "link" => Some(DeliverStep::Link),
            "sync_dir" => Some(DeliverStep::SyncNew),
            "unlink" => None, // after the delivery is durable: ignored, as qmail does
            other => panic!("unexpected operation {other}"),
        };
        assert_eq!(
            result.as_ref().err().map(mta_maildir::DeliverError::step),
            want,
            "{failed}"
        );
        let new = fs.list_dir(Path::new(&format!("{MD}/new"))).unwrap();
        match result {
            Ok(name) => {
                assert_eq!(new, [name.as_str()]);
                // The tmp/ name stays only when its unlink was the failing operation.
                assert_eq!(
                    fs.list_dir(Path::new(&format!("{MD}/tmp"))).unwrap().len(),
                    1
                );
            }
            Err(e) => {
                assert!(new.is_empty(), "{failed}: {new:?}");
                assert!(
                    fs.list_dir(Path::new(&format!("{MD}/tmp")))
                        .unwrap()
                        .is_empty()
                );
                assert!(std::error::Error::source(&e).is_some());
            }
        }
    }
}

/// The model has teeth: deliveries that skip an fsync are caught.
#[test]
fn model_catches_a_missing_file_fsync_or_directory_fsync() {
    for skip in ["sync_all", "sync_dir"] {
        let (fs, _) = setup();
        let tmp = fs.open_dir(Path::new(&format!("{MD}/tmp"))).unwrap();
        let new = fs.open_dir(Path::new(&format!("{MD}/new"))).unwrap();
        let mut f = fs.create_new(&tmp, "x").unwrap();
        fs.write_all(&mut f, &full()).unwrap();
        if skip != "sync_all" {
            fs.sync_all(&f).unwrap();
        }
        fs.link(&tmp, "x", &new, "x").unwrap();
        if skip != "sync_dir" {
            fs.sync_dir(&new).unwrap();
        }
        let caught = fs.crash_images().into_iter().any(|img| {
            match img.read_file(Path::new(&format!("{MD}/new/x"))) {
                Some(data) => data != full(), // incomplete message visible
                None => true,                 // "delivered" message lost
            }
        });
        assert!(caught, "skipping {skip} went unnoticed");
    }
}

fn fanout_setup() -> (PowerLossFs, Vec<Maildir<PowerLossFs>>) {
    let fs = PowerLossFs::new();
    for d in ["/home/a", "/home/b", "/other/c"] {
        fs.create_dir_all(Path::new(d)).unwrap();
    }
    fs.mount(Path::new("/other")).unwrap(); // c is on another filesystem: copy, not link
    let mds = ["/home/a/Maildir", "/home/b/Maildir", "/other/c/Maildir"]
        .iter()
        .map(|p| Maildir::create_in(fs.clone(), p).unwrap())
        .collect();
    (fs, mds)
}

#[test]
fn fanout_uses_one_data_fsync_per_filesystem_and_one_per_new_dir() {
    let (fs, mds) = fanout_setup();
    let base = fs.trace().len();
    let refs: Vec<_> = mds.iter().collect();
    let results = deliver_many(&refs, PREFIX, &message()[..]);
    assert!(results.iter().all(Result::is_ok));
    let trace = &fs.trace()[base..];
    let count = |p: &str| trace.iter().filter(|t| t.starts_with(p)).count();
    assert_eq!(count("sync_all "), 2, "{trace:#?}"); // the shared file, and c's copy
    assert_eq!(count("sync_dir"), 3);
    // Every link precedes every directory sync (one journal commit covers the chunk) and
    // the shared data is synced before the first link.
    let first_link = trace.iter().position(|t| t.starts_with("link")).unwrap();
    let last_link = trace.iter().rposition(|t| t.starts_with("link")).unwrap();
    let first_sync_dir = trace
        .iter()
        .position(|t| t.starts_with("sync_dir"))
        .unwrap();
    assert!(
        trace
            .iter()
            .position(|t| t.starts_with("sync_all "))
            .unwrap()
            < first_link
    );
    assert!(last_link < first_sync_dir);
    for md in &mds {
        assert!(md.read(&md.list(Subdir::New).unwrap()[0]).unwrap() == full());
        assert!(md.list(Subdir::Cur).unwrap().is_empty());
    }
    assert!(
        fs.list_dir(Path::new("/home/a/Maildir/tmp"))
            .unwrap()
            .is_empty()
    );
    assert!(
        fs.list_dir(Path::new("/other/c/Maildir/tmp"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn fanout_with_syncfs_uses_one_filesystem_sync_for_linked_targets() {
    let (fs, mds) = fanout_setup();
    let base = fs.trace().len();
    let refs: Vec<_> = mds.iter().collect();
    let results = deliver_many_with(&refs, PREFIX, &message()[..], FanoutSync::WholeFilesystem);
    assert!(results.iter().all(Result::is_ok));
    let trace = &fs.trace()[base..];
    let count = |p: &str| trace.iter().filter(|t| t.starts_with(p)).count();
    assert_eq!(count("sync_all "), 2, "{trace:#?}");
    assert_eq!(count("sync_filesystem"), 1);
    assert_eq!(count("sync_dir"), 1); // only c, reached by copy on its own filesystem
    let links_done = trace.iter().rposition(|t| t.starts_with("link")).unwrap();
    assert!(
        links_done
            < trace
                .iter()
                .position(|t| t.starts_with("sync_filesystem"))
                .unwrap()
    );
}

#[test]
fn fanout_survives_power_loss_after_every_operation() {
    for mode in [FanoutSync::EachDirectory, FanoutSync::WholeFilesystem] {
        let (fs0, mds0) = fanout_setup();
        let base = fs0.op_count();
        deliver_many_with(
            &mds0.iter().collect::<Vec<_>>(),
            PREFIX,
            &message()[..],
            mode,
        );
        let n = fs0.op_count() - base;
        for k in 0..=n {
            let (fs, mds) = fanout_setup();
            fs.crash_after(base + k);
            let refs: Vec<_> = mds.iter().collect();
            let results = deliver_many_with(&refs, PREFIX, &message()[..], mode);
            for img in fs.crash_images() {
                for (md, result) in mds.iter().zip(&results) {
                    let md = Maildir::open_in(img.clone(), md.path()).unwrap();
                    let new = md.list(Subdir::New).unwrap();
                    assert!(new.len() <= 1);
                    for m in &new {
                        let data = md.read(m).unwrap();
                        assert!(
                            data == full(),
                            "{mode:?} op {k}: incomplete in {:?}",
                            md.path()
                        );
                    }
                    if let Ok(name) = result {
                        assert_eq!(new[0].file_name(), name.as_str(), "{mode:?} op {k}: lost");
                    }
                }
            }
        }
    }
}

const MBOX: &str = "/home/u/Mailbox";

fn entry(sender: &[u8], msg: &[u8]) -> Vec<u8> {
    [
        mbox_from_line(sender, 0).as_slice(),
        PREFIX,
        &mboxrd_quote(msg),
        b"\n",
    ]
    .concat()
}

/// An mbox that already holds one synced message.
fn mbox_setup() -> (PowerLossFs, Mbox<PowerLossFs>, Vec<u8>) {
    let (fs, _) = setup();
    let mbox = Mbox::new_in(fs.clone(), MBOX);
    let old = generated_message("old", 0, 500);
    mbox.deliver(&mbox_from_line(b"old@example.org", 0), PREFIX, &old[..])
        .unwrap();
    (fs, mbox, entry(b"old@example.org", &old))
}

#[test]
fn mbox_delivery_survives_power_loss_after_every_operation() {
    let (fs0, mbox0, _) = mbox_setup();
    let base = fs0.op_count();
    mbox0
        .deliver(&mbox_from_line(b"a@b", 0), PREFIX, &message()[..])
        .unwrap();
    let n = fs0.op_count() - base;
    for k in 0..=n {
        let (fs, mbox, old) = mbox_setup();
        fs.crash_after(base + k);
        let result = mbox.deliver(&mbox_from_line(b"a@b", 0), PREFIX, &message()[..]);
        let whole = [old.as_slice(), &entry(b"a@b", &message())].concat();
        for img in fs.crash_images() {
            let data = img.read_file(Path::new(MBOX)).unwrap();
            assert!(data.starts_with(&old), "op {k}: old content damaged");
            assert!(whole.starts_with(&data), "op {k}: foreign bytes");
            if result.is_ok() {
                assert_eq!(data, whole, "op {k}: returned delivery not durable");
            }
            // The next delivery after the crash closes off any cut-short entry and lands
            // as a complete entry of its own.
            let next = generated_message("next", 2, 700);
            Mbox::new_in(img.clone(), MBOX)
                .deliver(&mbox_from_line(b"n@x", 0), PREFIX, &next[..])
                .unwrap();
            let after = img.read_file(Path::new(MBOX)).unwrap();
            let tail = entry(b"n@x", &next);
            assert!(after.ends_with(&tail));
            let before = &after[..after.len() - tail.len()];
            assert!(
                before.ends_with(b"\n\n"),
                "op {k}: next From_ line not at an entry start"
            );
        }
    }
}

#[test]
fn mbox_delivery_failing_at_each_operation_rolls_back() {
    let (fs0, mbox0, _) = mbox_setup();
    let base = fs0.op_count();
    mbox0
        .deliver(&mbox_from_line(b"a@b", 0), PREFIX, &message()[..])
        .unwrap();
    let n = fs0.op_count() - base;
    for k in 1..=n {
        let (fs, mbox, old) = mbox_setup();
        fs.fail_op(base + k);
        let err = mbox
            .deliver(&mbox_from_line(b"a@b", 0), PREFIX, &message()[..])
            .unwrap_err();
        assert!(err.rolled_back(), "op {k}: {err}");
        assert_eq!(fs.read_file(Path::new(MBOX)).unwrap(), old, "op {k}");
        for img in fs.crash_images() {
            assert_eq!(
                img.read_file(Path::new(MBOX)).unwrap(),
                old,
                "op {k}: rollback not durable"
            );
        }
    }
    // A new mbox: the directory entry is synced too, and a failure of that sync rolls back.
    let (fs, _) = setup();
    let mbox = Mbox::new_in(fs.clone(), "/home/u/New");
    mbox.deliver(b"From x\n", b"", &b"hi\n"[..]).unwrap();
    assert_eq!(fs.trace().last().unwrap(), "sync_dir /home/u");
    let (fs, _) = setup();
    let mbox = Mbox::new_in(fs.clone(), "/home/u/New");
    fs.fail_op(fs.op_count() + 4); // open, write, sync_all, sync_dir
    let err = mbox.deliver(b"From x\n", b"", &b"hi\n"[..]).unwrap_err();
    assert_eq!(err.step(), MboxStep::Sync);
    assert_eq!(fs.read_file(Path::new("/home/u/New")).unwrap(), b"");
}

/// qmail-local truncates only a file it locked: without a lock another writer may have
/// appended after us, and a short tail may be that writer's entry in progress.
#[test]
fn unlocked_mbox_is_neither_repaired_nor_truncated() {
    let (fs, _) = setup();
    fs.set_locks_unavailable(true);
    let mbox = Mbox::new_in(fs.clone(), MBOX);
    mbox.deliver(b"From a\n", b"", &b"one\n"[..]).unwrap();
    let fd = fs.open_dir(Path::new("/home/u")).unwrap();
    let (mut f, _) = fs.open_append(&fd, "Mailbox").unwrap();
    fs.write_all(&mut f, b"From other\nin prog").unwrap();
    mbox.deliver(b"From b\n", b"", &b"two\n"[..]).unwrap();
    let want = b"From a\none\n\nFrom other\nin progFrom b\ntwo\n\n";
    assert_eq!(fs.read_file(Path::new(MBOX)).unwrap(), want);
    fs.fail_op(fs.op_count() + 2); // open, then the write fails
    let err = mbox.deliver(b"From c\n", b"", &b"three\n"[..]).unwrap_err();
    assert_eq!(err.step(), MboxStep::Write);
    assert!(!err.rolled_back());
}

#[test]
fn maildir_creation_is_durable_when_it_returns() {
    let fs0 = PowerLossFs::new();
    fs0.create_dir_all(Path::new("/home/u")).unwrap();
    Maildir::create_in(fs0.clone(), MD).unwrap();
    for k in 0..=fs0.op_count() {
        let fs = PowerLossFs::new();
        fs.create_dir_all(Path::new("/home/u")).unwrap();
        fs.crash_after(k);
        let created = Maildir::create_in(fs.clone(), MD).is_ok();
        for img in fs.crash_images() {
            let opened = Maildir::open_in(img, MD);
            assert!(
                !created || opened.is_ok(),
                "op {k}: created maildir lost: {opened:?}"
            );
        }
    }
}
