//! Issue 14, "Pickup for every user": `mta inject` and `mta sendmail` run by a user who may
//! not open the queue hand their mail over through `DIR/pickup`, and whatever else is found
//! there neither blocks `serve` nor the import of good messages, but ends in `pickup/bad/`.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use mta_daemon::inject::pickup::WriterName;

use crate::support::*;

/// A uid with no passwd entry: neither root, nor the account `serve` gives the queue to.
const USER: u32 = 4242;

/// Runs `mta --root DIR args...` as `uid` (gid the same, no supplementary groups).
fn mta_as(uid: u32, root: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(MTA)
        .arg("--root")
        .arg(root)
        .args(args)
        .env("USER", "someone")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn alias_maildir(root: &TestRoot) -> std::path::PathBuf {
    root.path("alias/Maildir")
}

#[test]
fn inject_and_sendmail_by_a_user_are_delivered_invoked_by_their_uid() {
    if !rustix::process::geteuid().is_root() {
        return; // needs a second account
    }
    let root = TestRoot::new();
    let server = root.serve();
    let out = mta_as(
        USER,
        &root.dir,
        &["inject", "postmaster@example.org"],
        "Subject: by inject\n\nhi\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = mta_as(
        USER,
        &root.dir,
        &["sendmail", "-t"],
        "To: postmaster@example.org\nSubject: by sendmail\n\nhi\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        wait_maildir(&alias_maildir(&root), 2, 20),
        "{}",
        server.log_text()
    );
    let msgs = maildir_messages(&alias_maildir(&root));
    for subject in ["by inject", "by sendmail"] {
        let m = msgs
            .iter()
            .find(|m| m.contains(&format!("Subject: {subject}")))
            .unwrap_or_else(|| panic!("{subject} missing: {msgs:?}"));
        // (maildir_messages shows each message as Python's repr: line ends as `\n`.)
        assert_eq!(m.matches("Received: (qmail ").count(), 1, "{m}");
        assert!(m.contains(&format!(" invoked by uid {USER}); ")), "{m}");
    }
    // The user's files were imported and removed; nothing was refused.
    assert_eq!(
        std::fs::read_dir(root.path("pickup/new")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(root.path("pickup/bad")).unwrap().count(),
        0
    );
}

#[test]
fn fifos_links_and_other_users_files_in_pickup_go_to_bad_without_blocking_serve() {
    if !rustix::process::geteuid().is_root() {
        return; // needs a second account and chown
    }
    let root = TestRoot::new();
    // A good message, dropped off by a user before the server runs.
    let out = mta_as(
        USER,
        &root.dir,
        &["inject", "postmaster@example.org"],
        "Subject: good\n\nhi\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let new = root.path("pickup/new");
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 1);
    // Around it, what a user might plant, under names a writer would use.
    let name = |uid: u32, n: u8| WriterName::new(uid, 1, SystemTime::now(), [n; 16]).to_string();
    let fifo = name(0, 1);
    let st = Command::new("mkfifo")
        .arg(new.join(&fifo))
        .status()
        .unwrap();
    assert!(st.success());
    let dangling = name(0, 2);
    std::os::unix::fs::symlink(root.tmp.path().join("nowhere"), new.join(&dangling)).unwrap();
    let secret = root.tmp.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = name(0, 3);
    std::os::unix::fs::symlink(&secret, new.join(&link)).unwrap();
    // A file named for USER but owned by another account (as a chown or a link would).
    let others = name(USER, 4);
    std::fs::write(
        new.join(&others),
        "Fx@example.org\0Tpostmaster@example.org\0\0Subject: forged\n\nx\n",
    )
    .unwrap();
    std::fs::set_permissions(new.join(&others), std::fs::Permissions::from_mode(0o644)).unwrap();
    rustix::fs::chown(
        new.join(&others),
        Some(rustix::process::Uid::from_raw(65534)),
        Some(rustix::process::Gid::from_raw(65534)),
    )
    .unwrap();

    let started = Instant::now();
    let server = root.serve();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "serve took {:?} to answer",
        started.elapsed()
    );
    assert!(
        wait_maildir(&alias_maildir(&root), 1, 20),
        "{}",
        server.log_text()
    );
    let msgs = maildir_messages(&alias_maildir(&root));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("Subject: good"), "{msgs:?}");
    assert!(
        msgs[0].contains(&format!(" invoked by uid {USER}); ")),
        "{msgs:?}"
    );
    for planted in [&fifo, &dangling, &link, &others] {
        assert!(
            std::fs::symlink_metadata(root.path("pickup/bad").join(planted)).is_ok(),
            "{planted} not in pickup/bad; log: {}",
            server.log_text()
        );
        assert!(
            server.log_text().contains(planted.as_str()),
            "{planted} not logged"
        );
    }
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
    let meta = std::fs::metadata(&secret).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, 0));
    // Mail keeps flowing through pickup.
    let out = mta_as(
        USER,
        &root.dir,
        &["inject", "postmaster@example.org"],
        "Subject: after\n\nhi\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        wait_maildir(&alias_maildir(&root), 2, 20),
        "{}",
        server.log_text()
    );
}
