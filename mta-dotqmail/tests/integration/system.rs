//! End to end through [`SystemExecutor`]: real maildir and mbox deliveries, checked byte
//! for byte and read back with Python's `mailbox` module as an independent reader.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use mta_dotqmail::{
    Account, DeliveryOptions, DeliveryRequest, DeliveryStatus, LocalUser, Mailbox, Message,
    SystemExecutor, deliver, find_mailbox,
};
use mta_maildir::{Maildir, Subdir};

const MSG: &[u8] = b"Subject: hello\nFrom: a@b\n\nFrom the start\n>From quoted\nlast line";

#[test]
fn maildir_and_mbox_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).unwrap();
    Maildir::create(home.join("Maildir")).unwrap();
    let qmail = home.join(".qmail-box");
    fs::write(&qmail, b"./Maildir/\n./Mailbox\n./Maildir/\n").unwrap();
    fs::set_permissions(&qmail, fs::Permissions::from_mode(0o600)).unwrap();
    let user = LocalUser::new(
        Account::new("joe", 1001, 100, home.as_os_str().as_bytes()),
        b"-",
        "Box",
    );
    let request = DeliveryRequest {
        user: &user,
        local: b"joe-Box",
        domain: b"example.com",
        sender: b"ann@example.org",
        default_delivery: b"./Maildir/\n",
        now: 0,
    };
    let o = deliver(
        &mut SystemExecutor::new(),
        &request,
        &DeliveryOptions::default(),
        Message::Bytes(MSG),
    );
    assert_eq!(o.status, DeliveryStatus::Delivered, "{}", o.report_text());
    assert_eq!(o.report, b"did 2+0+0\n");

    let md = Maildir::open(home.join("Maildir")).unwrap();
    let new = md.list(Subdir::New).unwrap();
    assert_eq!(new.len(), 1, "the same maildir named twice gets one copy");
    let prefix = b"Return-Path: <ann@example.org>\nDelivered-To: joe-Box@example.com\n";
    assert_eq!(md.read(&new[0]).unwrap(), [&prefix[..], MSG].concat());

    let mbox = fs::read(home.join("Mailbox")).unwrap();
    let want = [
        &b"From ann@example.org Thu Jan 01 00:00:00 1970\n"[..],
        prefix,
        b"Subject: hello\nFrom: a@b\n\n>From the start\n>>From quoted\nlast line\n\n",
    ]
    .concat();
    assert_eq!(
        String::from_utf8_lossy(&mbox),
        String::from_utf8_lossy(&want)
    );

    // Python's mailbox module reads both back (it splits mboxes at From_ lines and
    // leaves the mboxrd `>From ` quoting in the body).
    let script = r#"
import mailbox, sys
home = sys.argv[1]
for m in mailbox.mbox(home + "/Mailbox"):
    print("mbox", m.get_from(), m["Delivered-To"], m["Subject"], repr(m.get_payload()))
for m in mailbox.Maildir(home + "/Maildir", create=False):
    print("maildir", m["Return-Path"], m["Delivered-To"], repr(m.get_payload()))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "mbox ann@example.org Thu Jan 01 00:00:00 1970 joe-Box@example.com hello '>From the start\\n>>From quoted\\nlast line\\n'\n\
         maildir <ann@example.org> joe-Box@example.com 'From the start\\n>From quoted\\nlast line'\n"
    );
}

#[test]
fn missing_maildir_and_rcpt_check_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).unwrap();
    let user = LocalUser::new(
        Account::new("joe", 1, 1, home.as_os_str().as_bytes()),
        b"",
        "",
    );
    let request = DeliveryRequest {
        user: &user,
        local: b"joe",
        domain: b"x",
        sender: b"",
        default_delivery: b"./Maildir/\n",
        now: 0,
    };
    let o = deliver(
        &mut SystemExecutor::new(),
        &request,
        &DeliveryOptions::default(),
        Message::Bytes(b"\n"),
    );
    assert_eq!(
        o.status,
        DeliveryStatus::Deferred("Unable to chdir to maildir. (#4.2.1)\n".into())
    );

    fs::write(home.join(".qmail"), b"./nodir/mbox\n").unwrap();
    fs::set_permissions(home.join(".qmail"), fs::Permissions::from_mode(0o644)).unwrap();
    let o = deliver(
        &mut SystemExecutor::new(),
        &request,
        &DeliveryOptions::default(),
        Message::Bytes(b"\n"),
    );
    assert_eq!(
        o.status,
        DeliveryStatus::Deferred(
            "Unable to open ./nodir/mbox: no such file or directory. (#4.2.1)\n".into()
        )
    );
    fs::remove_file(home.join(".qmail")).unwrap();

    // RCPT-time checks against the real filesystem.
    let ext_user = |ext: &str| {
        LocalUser::new(
            Account::new("joe", 1, 1, home.as_os_str().as_bytes()),
            b"-",
            ext,
        )
    };
    let mut exec = SystemExecutor::new();
    let opts = DeliveryOptions::default();
    assert_eq!(
        find_mailbox(&mut exec, &user, &opts).unwrap(),
        Mailbox::DefaultDelivery
    );
    assert_eq!(
        find_mailbox(&mut exec, &ext_user("x"), &opts).unwrap(),
        Mailbox::NotFound
    );
    fs::write(home.join(".qmail-default"), b"&a@b\n").unwrap();
    fs::set_permissions(
        home.join(".qmail-default"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let Mailbox::File(found) = find_mailbox(&mut exec, &ext_user("X.y"), &opts).unwrap() else {
        panic!()
    };
    assert_eq!(
        (found.name.as_slice(), found.default.as_deref()),
        (&b".qmail-default"[..], Some(&b"X.y"[..]))
    );
    fs::set_permissions(
        home.join(".qmail-default"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    assert!(
        find_mailbox(&mut exec, &ext_user("x"), &opts).is_err(),
        "world-writable .qmail"
    );
    // The owner-execute bit on the real file selects forward-only mode.
    fs::write(home.join(".qmail-fwd"), b"&a@b\n./Maildir/\n").unwrap();
    fs::set_permissions(home.join(".qmail-fwd"), fs::Permissions::from_mode(0o744)).unwrap();
    let fwd = ext_user("fwd");
    let request = DeliveryRequest {
        user: &fwd,
        local: b"joe-fwd",
        ..request
    };
    let o = deliver(
        &mut exec,
        &request,
        &DeliveryOptions::default(),
        Message::Bytes(b"\n"),
    );
    assert_eq!(
        o.status,
        DeliveryStatus::Deferred(
            "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n".into()
        )
    );
    // A directory named like a candidate is skipped.
    fs::remove_file(home.join(".qmail-default")).unwrap();
    fs::create_dir(home.join(".qmail-x")).unwrap();
    assert_eq!(
        find_mailbox(&mut exec, &ext_user("x"), &opts).unwrap(),
        Mailbox::NotFound
    );
}

/// The request for `local` in `home` with the given `.qmail-<ext>` text.
fn setup(home: &std::path::Path, ext: &str, dotqmail: &[u8]) -> LocalUser {
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).unwrap();
    let qmail = home.join(format!(".qmail-{ext}"));
    fs::write(&qmail, dotqmail).unwrap();
    fs::set_permissions(&qmail, fs::Permissions::from_mode(0o600)).unwrap();
    LocalUser::new(
        Account::new("joe", 1001, 100, home.as_os_str().as_bytes()),
        b"-",
        ext,
    )
}

/// `timeoutlocal`: a program (and what it started in the background) past the limit is
/// killed with its whole process group, and the delivery is deferred.
#[test]
fn program_past_its_time_limit_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let pidfile = home.join("child.pid");
    let line = format!("|sleep 300 & echo $! > {}; sleep 300\n", pidfile.display());
    let user = setup(home, "slow", line.as_bytes());
    let request = DeliveryRequest {
        user: &user,
        local: b"joe-slow",
        domain: b"example.com",
        sender: b"ann@example.org",
        default_delivery: b"./Maildir/\n",
        now: 0,
    };
    let started = std::time::Instant::now();
    let mut exec =
        SystemExecutor::new().with_program_timeout(Some(std::time::Duration::from_secs(1)));
    let o = deliver(
        &mut exec,
        &request,
        &DeliveryOptions::default(),
        Message::Bytes(MSG),
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "not killed"
    );
    assert!(
        matches!(o.status, DeliveryStatus::Deferred(_)),
        "{}",
        o.report_text()
    );
    assert!(
        o.report_text().contains("timeoutlocal"),
        "{}",
        o.report_text()
    );
    // The background child went with the group.
    let pid = fs::read_to_string(&pidfile).unwrap();
    let pid = pid.trim();
    let gone = (0..100).any(|_| {
        let alive =
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        if alive {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        !alive
    });
    assert!(gone, "background child {pid} survived");
}

/// An mbox path that is a FIFO defers at once (no reader would ever come).
#[test]
fn fifo_mbox_defers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    let fifo = home.join("Mailbox");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let user = setup(&home, "fifo", b"./Mailbox\n");
        // Bigger than a pipe's buffer: a writer that took the FIFO for a file would block.
        let big = [MSG, &vec![b'x'; 300_000][..]].concat();
        let request = DeliveryRequest {
            user: &user,
            local: b"joe-fifo",
            domain: b"example.com",
            sender: b"ann@example.org",
            default_delivery: b"./Maildir/\n",
            now: 0,
        };
        let o = deliver(
            &mut SystemExecutor::new(),
            &request,
            &DeliveryOptions::default(),
            Message::Bytes(&big),
        );
        let _ = tx.send(o);
    });
    let o = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("mbox delivery to a FIFO hung");
    assert!(
        matches!(o.status, DeliveryStatus::Deferred(_)),
        "{}",
        o.report_text()
    );
}

/// A maildir whose `tmp/` is a FIFO defers at once instead of hanging the delivery.
#[test]
fn maildir_with_a_fifo_for_tmp_defers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    for d in ["Maildir/new", "Maildir/cur"] {
        fs::create_dir_all(home.join(d)).unwrap();
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        home.join("Maildir/tmp"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let user = setup(&home, "md", b"./Maildir/\n");
        let request = DeliveryRequest {
            user: &user,
            local: b"joe-md",
            domain: b"example.com",
            sender: b"ann@example.org",
            default_delivery: b"./Maildir/\n",
            now: 0,
        };
        let o = deliver(
            &mut SystemExecutor::new(),
            &request,
            &DeliveryOptions::default(),
            Message::Bytes(MSG),
        );
        let _ = tx.send(o);
    });
    let o = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("maildir delivery into a FIFO hung");
    assert!(
        matches!(o.status, DeliveryStatus::Deferred(_)),
        "{}",
        o.report_text()
    );
}

/// `MaildirCommit::Batched`: maildir lines of several deliveries are staged, nothing is in
/// `new/` before `commit_maildirs`, and all are there after it, each with its own prefix.
#[test]
fn batched_maildir_lines_appear_only_at_commit() {
    use mta_dotqmail::MaildirCommit;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).unwrap();
    Maildir::create(home.join("Maildir")).unwrap();
    let user = LocalUser::new(
        Account::new("joe", 1001, 100, home.as_os_str().as_bytes()),
        b"",
        "",
    );
    let mut exec = SystemExecutor::new().with_maildir_commit(MaildirCommit::Batched);
    for (i, sender) in [&b"ann@example.org"[..], b"bob@example.org"]
        .iter()
        .enumerate()
    {
        let request = DeliveryRequest {
            user: &user,
            local: b"joe",
            domain: b"example.com",
            sender,
            default_delivery: b"./Maildir/\n",
            now: 0,
        };
        exec.begin_delivery(i);
        let o = deliver(
            &mut exec,
            &request,
            &DeliveryOptions::default(),
            Message::Bytes(MSG),
        );
        assert_eq!(o.status, DeliveryStatus::Delivered, "{}", o.report_text());
    }
    let md = Maildir::open(home.join("Maildir")).unwrap();
    assert!(md.list(Subdir::New).unwrap().is_empty());
    assert!(exec.commit_maildirs().is_empty());
    let mut got: Vec<Vec<u8>> = md
        .list(Subdir::New)
        .unwrap()
        .iter()
        .map(|e| md.read(e).unwrap())
        .collect();
    got.sort();
    let want: Vec<Vec<u8>> = ["ann", "bob"]
        .iter()
        .map(|s| {
            let p = format!("Return-Path: <{s}@example.org>\nDelivered-To: joe@example.com\n");
            [p.as_bytes(), MSG].concat()
        })
        .collect();
    assert_eq!(got, want);
    assert!(
        fs::read_dir(home.join("Maildir/tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(exec.commit_maildirs().is_empty(), "nothing left to commit");
}

/// `with_lookup_memo`: a batch of deliveries to many extensions of one user (each
/// `.qmail-N` looked up and, but for two, not there) ends exactly as the same deliveries
/// through fresh executors do: the `-default` file for most, `.qmail-7` and `.qmail-40`'s
/// own lines for theirs, `-owner` files honoured. A file made during the batch is seen by
/// the next batch, not by this one (the documented price).
#[test]
fn a_lookup_memo_changes_no_outcome_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).unwrap();
    Maildir::create(home.join("Maildir")).unwrap();
    // `setup` writes `.qmail-<ext>` (mode 0600); the user it returns is not needed.
    let write = |ext: &str, text: &[u8]| drop(setup(home, ext, text));
    write("list-default", b"# discarded\n");
    write("list-7", b"./Maildir/\n");
    write("list-40", b"|exit 100\n");
    write("list-9-owner", b"# exists\n");
    let outcome = |exec: &mut SystemExecutor, ext: &str| {
        let user = LocalUser::new(
            Account::new("joe", 1001, 100, home.as_os_str().as_bytes()),
            b"-",
            ext,
        );
        let local = format!("joe-{ext}");
        let request = DeliveryRequest {
            user: &user,
            local: local.as_bytes(),
            domain: b"example.com",
            sender: b"ann@example.org",
            default_delivery: b"./Maildir/\n",
            now: 0,
        };
        let o = deliver(
            exec,
            &request,
            &DeliveryOptions::default(),
            Message::Bytes(MSG),
        );
        (o.status.clone(), o.report_text())
    };
    let exts: Vec<String> = (0..60)
        .map(|i| format!("list-{i}"))
        .chain(["other".to_owned(), "list-7".to_owned()])
        .collect();
    let want: Vec<_> = exts
        .iter()
        .map(|e| outcome(&mut SystemExecutor::new(), e))
        .collect();
    let mut memo = SystemExecutor::new().with_lookup_memo();
    let got: Vec<_> = exts.iter().map(|e| outcome(&mut memo, e)).collect();
    assert_eq!(got, want);
    assert_eq!(got[7].0, DeliveryStatus::Delivered);
    assert!(
        matches!(got[40].0, DeliveryStatus::Bounced(_)),
        "{}",
        got[40].1
    );
    assert!(
        matches!(got[60].0, DeliveryStatus::Bounced(_)),
        "no .qmail-other: {}",
        got[60].1
    );

    // Made during the batch: unseen by it, seen by the next one.
    write("list-61", b"|exit 100\n");
    assert_eq!(
        outcome(&mut memo, "list-61").0,
        DeliveryStatus::Delivered,
        "the batch's listing rules it out"
    );
    let mut next = SystemExecutor::new().with_lookup_memo();
    assert!(matches!(
        outcome(&mut next, "list-61").0,
        DeliveryStatus::Bounced(_)
    ));
}
