//! End-to-end tests of `mta serve`: real SMTP clients (Python's smtplib, swaks, raw
//! sockets) against the daemon on a loopback port, maildirs and mboxes read back with
//! Python's mailbox module.

use std::fmt::Write as _;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// The uid/gid test users get: `nobody` when the tests run as root (so deliveries really
/// change uid), else our own.
pub fn test_ids() -> (u32, u32) {
    if rustix::process::geteuid().is_root() {
        (65534, 65534)
    } else {
        (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        )
    }
}

/// Adds a user with a home and Maildir under the test root, and a users/assign entry
/// `=name` plus the wildcard `+name-` for extensions.
pub fn add_user(root: &TestRoot, name: &str) -> PathBuf {
    let (uid, gid) = test_ids();
    let home = root.tmp.path().join("home").join(name);
    for d in ["Maildir/tmp", "Maildir/new", "Maildir/cur"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    let mut perms = std::fs::metadata(root.tmp.path()).unwrap().permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(root.tmp.path(), perms.clone()).unwrap();
    std::fs::set_permissions(root.tmp.path().join("home"), perms).unwrap();
    chown_tree(&home, uid, gid);
    let assign = root.path("users/assign");
    let mut text = std::fs::read_to_string(&assign).unwrap();
    let end = text.rfind("\n.\n").map_or(text.len(), |p| p + 1);
    text.truncate(end);
    if text.ends_with(".\n") {
        text.truncate(text.len() - 2);
    }
    let h = home.display();
    let _ = write!(
        text,
        "={name}:{name}:{uid}:{gid}:{h}:::\n+{name}-:{name}:{uid}:{gid}:{h}:-::\n.\n"
    );
    std::fs::write(&assign, text).unwrap();
    home
}

pub fn chown_tree(p: &Path, uid: u32, gid: u32) {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn write_qmail(home: &Path, name: &str, text: &str) {
    let p = home.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (uid, gid) = test_ids();
    chown_tree(&p, uid, gid);
}

pub fn send(root: &TestRoot, from: &str, to: &[&str], body: &str) -> String {
    let (code, out, err) = python(
        SMTPLIB_SEND,
        &[
            "127.0.0.1",
            &root.port.to_string(),
            from,
            &to.join(","),
            body,
        ],
    );
    assert_eq!(code, 0, "smtplib failed: {err}");
    out.trim().to_owned()
}

pub const BODY: &str =
    "From: a@example.net\r\nTo: joe@example.org\r\nSubject: hi\r\n\r\nhello there\r\n";

#[test]
fn local_maildir_delivery_with_smtplib() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let server = root.serve();
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let msgs = maildir_messages(&joe.join("Maildir"));
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(
        m.starts_with(
            "b'Return-Path: <a@example.net>\\nDelivered-To: joe@example.org\\nReceived: (qmail "
        ),
        "{m}"
    );
    assert!(m.ends_with("Subject: hi\\n\\nhello there\\n'"), "{m}");
    assert!(server.wait_log("end msg", 1, 10), "{}", server.log_text());
    let log = server.log_text();
    for needle in [
        "new msg",
        "info msg",
        "starting delivery 1: msg",
        "delivery 1: success: did_",
        "status: local",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}

#[test]
fn swaks_delivers() {
    if !Path::new("/usr/bin/swaks").exists() {
        eprintln!("swaks not installed; skipping (CI installs it)");
        return;
    }
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let server = root.serve();
    let out = std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &root.port.to_string()])
        .args(["--from", "swaks@example.net", "--to", "joe@example.org"])
        .args(["--header", "Subject: via swaks", "--body", "swaks body"])
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    assert!(transcript.contains("<-  250 2.0.0 ok "), "{transcript}");
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let msgs = maildir_messages(&joe.join("Maildir"));
    assert!(msgs[0].contains("Subject: via swaks"), "{msgs:?}");
}

#[test]
fn dot_qmail_mbox_program_forward_extension_default() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let bob = add_user(&root, "bob");
    write_qmail(
        &joe,
        ".qmail",
        "# joe's delivery\n./mbox\n|printf '%s|%s|%s' \"$SENDER\" \"$RECIPIENT\" \"$EXT\" > prog.out\n&bob@example.org\n./Maildir/\n",
    );
    write_qmail(&joe, ".qmail-lists", "./Lists/\n");
    write_qmail(
        &joe,
        ".qmail-default",
        "|printf '%s' \"$DEFAULT\" > default.out\n",
    );
    for d in ["Lists/tmp", "Lists/new", "Lists/cur"] {
        std::fs::create_dir_all(joe.join(d)).unwrap();
    }
    let (uid, gid) = test_ids();
    chown_tree(&joe, uid, gid);
    let server = root.serve();
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert_eq!(
        send(&root, "a@example.net", &["joe-lists@example.org"], BODY),
        "OK []"
    );
    assert_eq!(
        send(
            &root,
            "a@example.net",
            &["joe-Other.Thing@example.org"],
            BODY
        ),
        "OK []"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    assert!(
        wait_maildir(&bob.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    assert!(
        wait_maildir(&joe.join("Lists"), 1, 20),
        "{}",
        server.log_text()
    );
    assert!(server.wait_log("end msg", 4, 20), "{}", server.log_text());
    assert_eq!(
        std::fs::read_to_string(joe.join("prog.out")).unwrap(),
        "a@example.net|joe@example.org|"
    );
    assert_eq!(
        std::fs::read_to_string(joe.join("default.out")).unwrap(),
        "Other.Thing"
    );
    // The mbox, read by Python's mailbox.mbox.
    let (code, out, err) = python(
        "import mailbox,sys\nfor m in mailbox.mbox(sys.argv[1]): print(m.get_from()); print(m['Delivered-To']); print(m.get_payload())",
        &[joe.join("mbox").to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("a@example.net "), "{out}");
    assert!(out.contains("joe@example.org\nhello there"), "{out}");
    // The forward carries joe's Delivered-To line, and bob's own.
    let fwd = maildir_messages(&bob.join("Maildir"));
    assert!(
        fwd[0].contains("Delivered-To: bob@example.org\\n"),
        "{fwd:?}"
    );
    assert!(
        fwd[0].contains("Delivered-To: joe@example.org\\n"),
        "{fwd:?}"
    );
}

#[test]
fn alias_fallback_and_unknown_users_refused_at_rcpt() {
    let root = TestRoot::new();
    add_user(&root, "joe");
    let server = root.serve();
    // postmaster has no users/assign entry: the alias user's .qmail-postmaster takes it.
    assert_eq!(
        send(&root, "a@example.net", &["postmaster@example.org"], BODY),
        "OK []"
    );
    assert!(
        wait_maildir(&root.path("alias/Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    // A fresh init has no catch-all: unknown users are refused at RCPT (no backscatter).
    let out = send(
        &root,
        "a@example.net",
        &["nosuch@example.org", "joe@example.org"],
        BODY,
    );
    assert_eq!(
        out,
        "OK [('nosuch@example.org', 550)]",
        "{}",
        server.log_text()
    );
    // qmail's behaviour is one control file away.
    drop(server);
    root.control("acceptunknown", "1\n");
    let server = root.serve();
    assert_eq!(
        send(&root, "a@example.net", &["nosuch@example.org"], BODY),
        "OK []"
    );
    drop(server);
}

#[test]
fn bounce_and_double_bounce_in_qsbmf() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let bob = add_user(&root, "bob");
    write_qmail(
        &joe,
        ".qmail-fail",
        "|echo 'no thanks, said the program'; exit 100\n",
    );
    let server = root.serve();
    // bob sends to a failing address: bob gets a QSBMF bounce.
    assert_eq!(
        send(&root, "bob@example.org", &["joe-fail@example.org"], BODY),
        "OK []"
    );
    assert!(
        wait_maildir(&bob.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let b = &maildir_messages(&bob.join("Maildir"))[0];
    for needle in [
        "Return-Path: <>",
        "From: MAILER-DAEMON@example.org",
        "Subject: failure notice",
        "Hi. This is the qmail-send program at example.org.",
        "<joe-fail@example.org>:",
        "no thanks, said the program",
        "--- Below this line is a copy of the message.",
        "hello there",
    ] {
        assert!(b.contains(needle), "bounce lacks {needle:?}: {b}");
    }
    // The failing address sends to itself: its bounce bounces, and the double bounce
    // goes to postmaster (the alias user's .qmail-postmaster).
    assert_eq!(
        send(
            &root,
            "joe-fail@example.org",
            &["joe-fail@example.org"],
            BODY
        ),
        "OK []"
    );
    assert!(
        wait_maildir(&root.path("alias/Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let d = &maildir_messages(&root.path("alias/Maildir"))[0];
    assert!(d.contains("Return-Path: <#@[]>"), "{d}");
    assert!(d.contains("but the bounce bounced!"), "{d}");
    assert!(
        server.wait_log("bounce msg", 3, 10),
        "{}",
        server.log_text()
    );
}

#[test]
fn relay_only_for_relayclients() {
    let root = TestRoot::new();
    root.control("relayclients", "127.0.0.1/32\n");
    let _server = root.serve();
    let attempt = |bind: [u8; 4]| -> String {
        let sock = std::net::SocketAddr::from((bind, 0));
        let s = socket2_connect(sock, root.addr());
        let mut s = s;
        let mut out = read_reply(&mut s);
        for cmd in [
            "EHLO t\r\n",
            "MAIL FROM:<a@example.net>\r\n",
            "RCPT TO:<x@elsewhere.example>\r\n",
            "QUIT\r\n",
        ] {
            s.write_all(cmd.as_bytes()).unwrap();
            out.push_str(&read_reply(&mut s));
        }
        out
    };
    let inside = attempt([127, 0, 0, 1]);
    // The RCPT reply itself: accepted from inside, refused from outside.
    assert!(inside.contains("\r\n250 2.1.5 "), "{inside}");
    assert!(!inside.contains("\r\n553 "), "{inside}");
    let outside = attempt([127, 0, 0, 2]);
    assert!(outside.contains("\r\n553 "), "{outside}");
}

/// Connects from a chosen local address (std has no bind-before-connect; rustix does).
fn socket2_connect(local: SocketAddr, remote: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &local).unwrap();
    connect(&fd, &remote).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn verp_sender_per_recipient() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let server = root.serve();
    // A list manager asks for VERP with the `-@[]` sender convention, through inject
    // (qmail-queue's interface; `[]` is no valid SMTP domain literal).
    let out = mta_input(
        &root.dir,
        &["inject", "-f", "list-@example.org-@[]", "joe@example.org"],
        b"Subject: list post\n\nhello list\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let m = &maildir_messages(&joe.join("Maildir"))[0];
    assert!(
        m.starts_with("b'Return-Path: <list-joe=example.org@example.org>\\n"),
        "{m}"
    );
}

#[test]
fn smuggling_attempts_never_make_a_second_message() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let server = root.serve();
    for (i, trick) in [
        "\n.\n",
        "\n.\r\n",
        "\r\n.\n",
        "\r.\r",
        "\r\n.\r",
        "\r\n\x00.\r\n",
    ]
    .iter()
    .enumerate()
    {
        let mut s = TcpStream::connect(root.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = read_reply(&mut s);
        let smuggled = format!(
            "EHLO t\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<joe@example.org>\r\nDATA\r\n\
             Subject: outer {i}\r\n\r\nbody{trick}MAIL FROM:<evil@example.net>\r\n\
             RCPT TO:<joe@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n"
        );
        s.write_all(smuggled.as_bytes()).unwrap();
        let mut all = String::new();
        loop {
            let r = read_reply(&mut s);
            if r.is_empty() {
                break;
            }
            all.push_str(&r);
        }
        // One DATA at most may be accepted per connection: never a second, smuggled one.
        assert!(all.matches("250 2.0.0 ok").count() <= 1, "{all}");
    }
    // Give the scheduler time to deliver anything that was (wrongly) accepted.
    std::thread::sleep(Duration::from_millis(500));
    for m in maildir_messages(&joe.join("Maildir")) {
        assert!(
            !m.contains("Subject: smuggled"),
            "smuggled message delivered: {m}"
        );
        assert!(!m.contains("evil"), "smuggled text delivered: {m}");
    }
    drop(server);
}

#[test]
fn program_runs_as_the_assigned_uid() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root; the privilege test needs root (CI runs as root)");
        return;
    }
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    write_qmail(&joe, ".qmail", "|id -u > uid.txt; id -G > groups.txt\n");
    let server = root.serve();
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert!(server.wait_log("end msg", 1, 20), "{}", server.log_text());
    let (uid, gid) = test_ids();
    assert_eq!(
        std::fs::read_to_string(joe.join("uid.txt")).unwrap().trim(),
        uid.to_string()
    );
    assert_eq!(
        std::fs::read_to_string(joe.join("groups.txt"))
            .unwrap()
            .trim(),
        gid.to_string()
    );
}

/// The README's first command: `mta serve` with no root creates `./mta-root` and listens on
/// 127.0.0.1:2525; SIGTERM stops it with exit 0.
#[test]
fn readme_serve_on_a_fresh_directory() {
    let tmp = tempfile::tempdir().unwrap();
    if TcpStream::connect(("127.0.0.1", 2525)).is_ok() {
        eprintln!("something already listens on 127.0.0.1:2525; skipping");
        return;
    }
    let log = std::fs::File::create(tmp.path().join("log")).unwrap();
    let mut child = std::process::Command::new(MTA)
        .arg("serve")
        .current_dir(tmp.path())
        .env_remove("MTA_ROOT")
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut up = false;
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", 2525)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let greeting = read_reply(&mut s);
            up = greeting.starts_with("220 ");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(tmp.path().join("log")).unwrap_or_default();
    assert!(up, "no 220 greeting on 127.0.0.1:2525: {text}");
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(tmp.path().join("mta-root/control/me").is_file());
    assert!(tmp.path().join("mta-root/alias/Maildir/new").is_dir());
    assert!(text.contains("status: exiting"), "{text}");
}

/// `control/listen` takes IPv4 and IPv6 addresses; the server answers on both.
#[test]
fn listens_on_ipv4_and_ipv6() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let v6 = probe.local_addr().unwrap().port();
    drop(probe);
    let root = TestRoot::new();
    root.control("listen", &format!("127.0.0.1:{}\n[::1]:{v6}\n", root.port));
    let server = root.serve();
    let mut s = TcpStream::connect(("::1", v6)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let greeting = read_reply(&mut s);
    assert!(greeting.starts_with("220 example.org ESMTP"), "{greeting}");
    s.write_all(b"QUIT\r\n").unwrap();
    assert!(read_reply(&mut s).starts_with("221 "));
    drop(server);
}
