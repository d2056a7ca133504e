//! Interoperability with an independent implementation: Python's `mailbox` module reads
//! what we wrote (compared byte for byte), and we read maildirs Python wrote.

use std::collections::BTreeMap;

use mta_maildir::{Flags, Maildir, Mbox, Subdir, mbox_from_line};

use crate::common::{
    fast_tempdir, generated_message, hex_decode, mboxrd_quote, python, sample_messages,
};

/// All sample messages plus a large generated one that spans several write buffers.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut v = sample_messages();
    v.push(("large".into(), generated_message("large", 1, 300 * 1024)));
    v
}

#[test]
fn python_maildir_reads_our_deliveries_byte_for_byte() {
    let dir = fast_tempdir();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let prefix = b"Return-Path: <ann@example.org>\nDelivered-To: joe@example.com\n";
    let mut want = BTreeMap::new();
    for (i, (_, msg)) in corpus().iter().enumerate() {
        let name = md.deliver(prefix, &msg[..]).unwrap();
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(msg);
        // Every third message is moved to cur/ with flags given out of order.
        let (sub, flags) = if i % 3 == 1 {
            let m = md.find(name.as_str()).unwrap().unwrap();
            md.set_flags(&m, &Flags::from_letters("SRF")).unwrap();
            ("cur", "FRS")
        } else {
            ("new", "")
        };
        want.insert(
            name.into_string(),
            (sub.to_owned(), flags.to_owned(), bytes),
        );
    }
    let folder = md.create_folder("Work.Projects").unwrap();
    let in_folder = folder
        .deliver(b"", &b"Subject: in a folder\n\nhi\n"[..])
        .unwrap();

    let lines = python("read_maildir.py", &[md.path()]);
    assert_eq!(lines.len(), want.len());
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let (sub, flags, bytes) = &want[f[0]];
        assert_eq!((f[1], f[2]), (sub.as_str(), flags.as_str()), "{}", f[0]);
        assert!(hex_decode(f[3]) == *bytes, "bytes differ for {}", f[0]);
    }
    let lines = python("read_maildir.py", &[md.path(), "Work.Projects".as_ref()]);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with(&format!("{in_folder}\tnew\t\t")));
    assert_eq!(
        hex_decode(lines[0].split('\t').nth(3).unwrap()),
        b"Subject: in a folder\n\nhi\n"
    );
}

#[test]
fn python_mbox_reads_our_deliveries_byte_for_byte() {
    let dir = fast_tempdir();
    let path = dir.path().join("Mailbox");
    let mbox = Mbox::new(&path);
    let mut want = Vec::new();
    for (i, (_, msg)) in corpus().iter().enumerate() {
        let sender: &[u8] = if i == 0 {
            b""
        } else {
            b"list-owner@example.org"
        };
        let from = mbox_from_line(sender, 1_795_406_885 + i as i64 * 86_400 * 40);
        let prefix = format!("Delivered-To: joe-{i}@example.com\n").into_bytes();
        mbox.deliver(&from, &prefix, &msg[..]).unwrap();
        let mut bytes = from.clone();
        bytes.extend_from_slice(&prefix);
        bytes.extend_from_slice(&mboxrd_quote(msg));
        want.push((from, bytes));
    }
    let lines = python("read_mbox.py", &[&path]);
    assert_eq!(lines.len(), want.len());
    for (line, (from, bytes)) in lines.iter().zip(&want) {
        let (got_from, got_bytes) = line.split_once('\t').unwrap();
        assert_eq!(hex_decode(got_from), from[5..from.len() - 1]);
        assert!(
            hex_decode(got_bytes) == *bytes,
            "entry differs: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn our_reader_reads_maildirs_python_wrote() {
    let dir = fast_tempdir();
    let root = dir.path().join("py");
    let files: Vec<_> = std::fs::read_dir(crate::common::data_dir().join("messages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut args: Vec<&std::path::Path> = vec![&root];
    args.extend(files.iter().map(std::path::PathBuf::as_path));
    let lines = python("write_maildir.py", &args);
    assert_eq!(lines.len(), files.len() + 1);

    let md = Maildir::open(&root).unwrap();
    assert_eq!(md.folders().unwrap(), ["Work.Projects"]);
    let folder = md.folder("Work.Projects").unwrap();
    let mut seen = 0;
    for line in &lines {
        let f: Vec<&str> = line.split('\t').collect();
        let md = if f[0].is_empty() { &md } else { &folder };
        let msg = md
            .find(f[1])
            .unwrap()
            .unwrap_or_else(|| panic!("{} not found", f[1]));
        let sub = match msg.subdir() {
            Subdir::New => "new",
            Subdir::Cur => "cur",
        };
        assert_eq!((sub, msg.flags().as_str()), (f[2], f[3]), "{}", f[1]);
        assert!(
            md.read(&msg).unwrap() == hex_decode(f[4]),
            "bytes differ for {}",
            f[1]
        );
        seen += 1;
    }
    assert_eq!(
        seen,
        md.messages().unwrap().len() + folder.messages().unwrap().len()
    );

    // A reader action of ours shows up in Python: mark one new message seen.
    let first = md.list(Subdir::New).unwrap().remove(0);
    let moved = md.move_to_cur(&first, &Flags::new().with('S')).unwrap();
    let py = python("read_maildir.py", &[&root]);
    let line = py
        .iter()
        .find(|l| l.starts_with(&format!("{}\t", moved.id())))
        .unwrap();
    assert!(
        line.starts_with(&format!("{}\tcur\tS\t", moved.id())),
        "{line}"
    );
}
