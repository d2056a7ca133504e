//! The daemon's way of delivering: a child process (here this test binary re-run as
//! `child_entry_point`) gets [`LocalArgs`] and the message file as stdin, delivers, and
//! hands back [`Outcome::to_record`]. Run as root, the child runs as another uid, as
//! qmail-lspawn runs qmail-local, and the maildir file it writes belongs to that user.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use mta_dotqmail::{
    Account, DeliveryOptions, DeliveryStatus, LocalArgs, LocalUser, Message, Outcome,
    SystemExecutor,
};
use mta_maildir::{Maildir, Subdir};

const ARGS_VAR: &str = "MTA_DOTQMAIL_CHILD_ARGS";
const OUT_VAR: &str = "MTA_DOTQMAIL_CHILD_OUT";

/// The child side: what a daemon's delivery helper does.
#[test]
#[ignore = "entry point of the child process started by child_process_delivery"]
fn child_entry_point() {
    let args_file = std::env::var_os(ARGS_VAR).expect("started by child_process_delivery");
    let raw = fs::read(args_file).unwrap();
    let args = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| OsString::from_vec(a.to_vec()));
    let local = LocalArgs::parse(args).unwrap();
    let stdin = File::from(io::stdin().as_fd().try_clone_to_owned().unwrap());
    let outcome = local.run(
        &mut SystemExecutor::new(),
        &DeliveryOptions::default(),
        Message::File(&stdin),
        1_795_925_285,
    );
    let mut out = File::create(std::env::var_os(OUT_VAR).unwrap()).unwrap();
    out.write_all(&outcome.to_record()).unwrap();
    std::process::exit(outcome.exit_code());
}

#[test]
fn child_process_delivery() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
    Maildir::create(home.join("Maildir")).unwrap();
    fs::write(
        home.join(".qmail-list"),
        b"./Maildir/\n&sub1@example.org\n&sub2@example.net\n",
    )
    .unwrap();
    fs::write(home.join(".qmail-list-owner"), b"&owner@example.com\n").unwrap();
    for f in [".qmail-list", ".qmail-list-owner"] {
        fs::set_permissions(home.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }

    let root = fs::metadata(&home).unwrap().uid() == 0;
    let (uid, gid) = if root {
        (4242, 4242)
    } else {
        (fs::metadata(&home).unwrap().uid(), 0)
    };
    if root {
        for p in [
            home.clone(),
            home.join("Maildir"),
            home.join("Maildir/tmp"),
            home.join("Maildir/new"),
            home.join("Maildir/cur"),
        ] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
    }

    let args = LocalArgs {
        explain: false,
        user: LocalUser::new(
            Account::new("joe", uid, gid, home.as_os_str().as_bytes()),
            b"-",
            "list",
        ),
        local: b"joe-list".to_vec(),
        domain: b"example.com".to_vec(),
        sender: b"ann@example.org".to_vec(),
        default_delivery: b"./Maildir/\n".to_vec(),
    };
    let args_file = dir.path().join("args");
    let mut joined = Vec::new();
    for a in args.to_args() {
        joined.extend_from_slice(a.as_bytes());
        joined.push(0);
    }
    fs::write(&args_file, joined).unwrap();
    let out_file = dir.path().join("out");
    File::create(&out_file).unwrap();
    fs::set_permissions(&out_file, fs::Permissions::from_mode(0o666)).unwrap();
    let message_path = dir.path().join("message");
    fs::write(&message_path, b"Subject: list post\n\nhello list\n").unwrap();
    fs::set_permissions(&message_path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&args_file, fs::Permissions::from_mode(0o644)).unwrap();

    // As root the child runs as another uid, which may not reach this binary where it was
    // built (a checkout under /root, say): run a copy from the world-readable tempdir.
    let exe = if root {
        let copy = dir.path().join("child-exe");
        fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        copy
    } else {
        std::env::current_exe().unwrap()
    };
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "child::child_entry_point",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ARGS_VAR, &args_file)
    .env(OUT_VAR, &out_file)
    .stdin(Stdio::from(File::open(&message_path).unwrap()))
    .stdout(Stdio::null());
    if root {
        // qmail-lspawn: the target uid and gid, no supplementary groups (std drops them
        // with setgroups(0) when root sets a uid).
        cmd.uid(uid).gid(gid);
    }
    // Another test thread forking while the copy was still open for writing makes exec
    // fail with ETXTBSY for a moment; retry briefly.
    let mut tries = 0;
    let status = loop {
        match cmd.status() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 1000 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    };
    let outcome = Outcome::from_record(&fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{}", outcome.report_text());
    assert_eq!(outcome.status, DeliveryStatus::Delivered);
    assert_eq!(outcome.report, b"did 1+2+0\n");
    let forward = outcome.forward.unwrap();
    assert_eq!(
        forward.recipients,
        [b"sub1@example.org".to_vec(), b"sub2@example.net".to_vec()]
    );
    assert_eq!(forward.sender, b"joe-list-owner@example.com");
    assert_eq!(forward.dtline, b"Delivered-To: joe-list@example.com\n");

    let md = Maildir::open(home.join("Maildir")).unwrap();
    let new = md.list(Subdir::New).unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(
        md.read(&new[0]).unwrap(),
        b"Return-Path: <ann@example.org>\nDelivered-To: joe-list@example.com\nSubject: list post\n\nhello list\n"
    );
    let owner = fs::metadata(home.join("Maildir/new").join(new[0].file_name()))
        .unwrap()
        .uid();
    assert_eq!(owner, uid, "written by the child as the target user");
}
