//! Maildir operations on the real filesystem: create/open, delivery details, errors,
//! reading, flags, tmp/ cleanup, Maildir++ folders and fan-out (including across
//! filesystems).

use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

use mta_maildir::{
    DeliverStep, FanoutSync, Flags, Maildir, MaildirError, Subdir, deliver_many, deliver_many_with,
};

use crate::common::{fast_tempdir, generated_message};

#[test]
fn create_is_idempotent_and_open_checks_all_three_dirs() {
    let dir = fast_tempdir();
    let path = dir.path().join("Maildir");
    Maildir::create(&path).unwrap();
    let md = Maildir::create(&path).unwrap(); // again: existing dirs are fine
    md.deliver(b"", &b"x\n"[..]).unwrap();
    assert_eq!(
        Maildir::create(&path)
            .unwrap()
            .list(Subdir::New)
            .unwrap()
            .len(),
        1
    );
    std::fs::remove_dir(path.join("cur")).unwrap();
    match Maildir::open(&path) {
        Err(MaildirError::NotMaildir { missing: "cur", .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Maildir::open(dir.path().join("nope")),
        Err(MaildirError::Io { .. })
    ));
    assert!(Maildir::create(dir.path().join("no/parent")).is_err());
}

#[test]
fn delivery_writes_prefix_then_message_exactly_and_cleans_tmp() {
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let msg = generated_message("exact", 3, 200_000);
    let name = md.deliver(b"Return-Path: <a@b>\n", &msg[..]).unwrap();
    let on_disk = std::fs::read(md.path().join("new").join(name.as_str())).unwrap();
    assert!(on_disk == [&b"Return-Path: <a@b>\n"[..], &msg].concat());
    assert!(
        std::fs::read_dir(md.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    let meta = std::fs::metadata(md.path().join("new").join(name.as_str())).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    // The name: seconds . M usec P pid Q counter R random . escaped hostname
    let (secs, rest) = name.as_str().split_once('.').unwrap();
    assert!(secs.parse::<u64>().unwrap() > 1_700_000_000);
    assert!(
        rest.starts_with('M') && rest.contains(&format!("P{}Q", std::process::id())),
        "{name}"
    );
    assert!(!name.as_str().contains([':', '/']));
}

/// Yields `data` at most `step` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn prefix_and_message_are_copied_exactly_whatever_their_sizes() {
    // The prefix and the message's first bytes share one write buffer of 64 KiB: prefixes
    // below, at and above its size, messages that end on its boundary or past it, read a
    // little at a time or at once.
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let msg = generated_message("sizes", 7, 300_000);
    for (prefix_len, msg_len, step) in [
        (0, 0, 1),
        (19, 0, 1),
        (19, 65_536 - 19, 4096),
        (19, 65_536 - 18, 4096),
        (65_535, 10, 3),
        (65_536, 10, 3),
        (70_000, 131_072 + 5, 1000),
        (100, 300_000, 65_536),
        (100, 300_000, 7_919),
    ] {
        let prefix: Vec<u8> = (0..prefix_len).map(|i| b'A' + (i % 26) as u8).collect();
        let body = &msg[..msg_len];
        let name = md.deliver(&prefix, Trickle { data: body, step }).unwrap();
        let on_disk = std::fs::read(md.path().join("new").join(name.as_str())).unwrap();
        assert!(
            on_disk == [&prefix[..], body].concat(),
            "prefix {prefix_len}, message {msg_len}, reads of {step}"
        );
    }
}

/// A message whose first read delivers another message to `md` (on the same thread, while
/// the outer delivery is copying), then yields `data`.
struct DeliversWhileRead<'a> {
    md: &'a Maildir,
    inner: Option<mta_maildir::DeliveredName>,
    data: Trickle<'a>,
}

impl Read for DeliversWhileRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.is_none() {
            self.inner = Some(self.md.deliver(b"X-Inner: 1\n", &b"inner\n"[..]).unwrap());
        }
        self.data.read(buf)
    }
}

#[test]
fn a_message_whose_reads_deliver_is_still_copied_exactly() {
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let msg = generated_message("outer", 1, 100_000);
    let mut reader = DeliversWhileRead {
        md: &md,
        inner: None,
        data: Trickle {
            data: &msg,
            step: usize::MAX,
        },
    };
    let outer = md.deliver(b"X-Outer: 1\n", &mut reader).unwrap();
    let inner = reader.inner.unwrap();
    let read = |n: &mta_maildir::DeliveredName| {
        std::fs::read(md.path().join("new").join(n.as_str())).unwrap()
    };
    assert_eq!(read(&inner), b"X-Inner: 1\ninner\n");
    assert!(read(&outer) == [&b"X-Outer: 1\n"[..], &msg].concat());
}

struct FailingReader(usize);

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("queue file unreadable"));
        }
        let n = self.0.min(buf.len());
        buf[..n].fill(b'a');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn errors_name_the_step_and_leave_nothing_behind() {
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let err = md.deliver(b"X: y\n", FailingReader(10_000)).unwrap_err();
    assert_eq!(err.step(), DeliverStep::ReadMessage);
    assert_eq!(err.to_string(), "maildir delivery failed: read message");
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(source.to_string(), "queue file unreadable");
    assert!(
        std::fs::read_dir(md.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(md.list(Subdir::New).unwrap().is_empty());

    std::fs::remove_dir(md.path().join("new")).unwrap();
    let err = md.deliver(b"", &b"x"[..]).unwrap_err();
    assert_eq!(err.step(), DeliverStep::OpenDir);
    assert_eq!(err.io_error().kind(), io::ErrorKind::NotFound);
}

#[test]
fn reading_flags_moving_and_removing() {
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let a = md.deliver(b"", &b"A\n"[..]).unwrap();
    let b = md.deliver(b"", &b"B\n"[..]).unwrap();
    std::fs::write(md.path().join("new/.hidden"), b"skip me").unwrap();
    let new = md.list(Subdir::New).unwrap();
    assert_eq!(new.len(), 2, "dot files are skipped");

    let msg_a = md.find(a.as_str()).unwrap().unwrap();
    let seen = md.move_to_cur(&msg_a, &Flags::from_letters("S")).unwrap();
    assert_eq!(seen.file_name(), format!("{a}:2,S"));
    assert!(md.path().join("cur").join(seen.file_name()).exists());
    let flagged = md
        .set_flags(&seen, &seen.flags().with('F').with('R'))
        .unwrap();
    assert_eq!(
        (flagged.id(), flagged.flags().as_str()),
        (a.as_str(), "FRS")
    );
    assert_eq!(md.read(&flagged).unwrap(), b"A\n");
    assert_eq!(
        md.list(Subdir::Cur).unwrap(),
        std::slice::from_ref(&flagged)
    );
    // Setting the same flags again is a no-op.
    assert_eq!(
        md.set_flags(&flagged, &Flags::from_letters("RSF")).unwrap(),
        flagged
    );

    let all = md.messages().unwrap();
    assert_eq!(
        all.iter().map(|m| m.id().to_owned()).collect::<Vec<_>>(),
        [b.as_str(), a.as_str()]
    );
    md.remove(&flagged).unwrap();
    assert!(md.find(a.as_str()).unwrap().is_none());
    assert!(md.read(&flagged).is_err());
}

#[test]
fn tmp_cleanup_removes_only_files_older_than_36_hours() {
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let now = SystemTime::now();
    for (name, age_hours) in [("old", 37), ("young", 35), ("fresh", 0)] {
        let f = std::fs::File::create(md.path().join("tmp").join(name)).unwrap();
        let t = now - Duration::from_secs(age_hours * 3600);
        f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
            .unwrap();
    }
    assert_eq!(md.clean_tmp(now).unwrap(), 1);
    let mut left: Vec<_> = std::fs::read_dir(md.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["fresh", "young"]);
}

#[test]
fn maildir_plus_plus_folders() {
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let sub = md.create_folder("Work.Projects").unwrap();
    md.create_folder("Sent").unwrap();
    md.create_folder("Sent").unwrap(); // idempotent
    assert_eq!(sub.path(), md.path().join(".Work.Projects"));
    assert!(sub.path().join("maildirfolder").is_file());
    assert_eq!(md.folders().unwrap(), ["Sent", "Work.Projects"]);
    // Delivery by path, as a .qmail line `./Maildir/.Work.Projects/` does.
    let by_path = Maildir::open(dir.path().join("Maildir/.Work.Projects/")).unwrap();
    let name = by_path.deliver(b"", &b"filed\n"[..]).unwrap();
    assert_eq!(
        md.folder("Work.Projects")
            .unwrap()
            .list(Subdir::New)
            .unwrap()[0]
            .file_name(),
        name.as_str()
    );
    assert!(md.list(Subdir::New).unwrap().is_empty());
    for bad in ["", "../x", "a/b", ".x", "x."] {
        assert!(
            matches!(md.folder(bad), Err(MaildirError::InvalidFolderName(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(md.folder("Missing"), Err(MaildirError::Io { .. })));
}

#[test]
fn fanout_links_identical_bytes_and_never_overwrites() {
    let dir = fast_tempdir();
    let mds: Vec<Maildir> = (0..5)
        .map(|i| Maildir::create(dir.path().join(format!("u{i}"))).unwrap())
        .collect();
    let mut refs: Vec<&Maildir> = mds.iter().collect();
    refs.push(&mds[0]); // the same maildir twice: the second link finds the name taken
    let msg = generated_message("fan", 0, 10_000);
    let results = deliver_many(&refs, b"Delivered-To: list@example.org\n", &msg[..]);
    let names: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_ne!(names[0], names[5]);
    let want = [&b"Delivered-To: list@example.org\n"[..], &msg].concat();
    for (i, md) in mds.iter().enumerate() {
        let new = md.list(Subdir::New).unwrap();
        assert_eq!(new.len(), if i == 0 { 2 } else { 1 });
        for m in new {
            assert!(md.read(&m).unwrap() == want);
        }
        assert!(
            std::fs::read_dir(md.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }
    // Hard links: one inode, six names.
    let meta = std::fs::metadata(mds[1].path().join("new").join(names[1].as_str())).unwrap();
    assert_eq!(meta.nlink(), 6);
    assert!(deliver_many::<mta_maildir::OsFs>(&[], b"", &b""[..]).is_empty());
}

#[test]
fn fanout_failure_before_linking_is_reported_for_every_target() {
    let dir = fast_tempdir();
    let a = Maildir::create(dir.path().join("a")).unwrap();
    let b = Maildir::create(dir.path().join("b")).unwrap();
    let results = deliver_many(&[&a, &b], b"", FailingReader(100));
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap_err().step() == DeliverStep::ReadMessage)
    );
    std::fs::remove_dir(b.path().join("new")).unwrap();
    let results = deliver_many(&[&a, &b], b"", &b"ok\n"[..]);
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().step(),
        DeliverStep::OpenDir
    );
    assert!(
        std::fs::read_dir(a.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn fanout_across_filesystems_copies() {
    let disk = tempfile::tempdir().unwrap();
    let shm = fast_tempdir();
    let dev = |p: &std::path::Path| std::fs::metadata(p).unwrap().dev();
    if dev(disk.path()) == dev(shm.path()) {
        eprintln!("skipped: no second filesystem (tmpfs) next to the temp dir");
        return;
    }
    let a = Maildir::create(disk.path().join("a")).unwrap();
    let b = Maildir::create(shm.path().join("b")).unwrap();
    for mode in [FanoutSync::EachDirectory, FanoutSync::WholeFilesystem] {
        let results = deliver_many_with(&[&a, &b, &a], b"", &b"across\n"[..], mode);
        for (md, r) in [(&a, &results[0]), (&b, &results[1]), (&a, &results[2])] {
            let path = md.path().join("new").join(r.as_ref().unwrap().as_str());
            assert_eq!(std::fs::read(path).unwrap(), b"across\n");
            let mut tmp = std::fs::read_dir(md.path().join("tmp")).unwrap();
            assert!(tmp.next().is_none());
        }
    }
}
