//! Issue 23: what a qmail site's hands and scripts expect. Signals (`svc -h`, `svc -a`),
//! `control/defaultdelivery`, qmail's helper commands in `DIR/bin`, `sendmail -f '<>'`,
//! qmail-send's log fields, qmail-queue's Received lines, the `<#@[]>` sender, and a qmail
//! configuration taken over unchanged.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// `nobody` when the tests run as root (deliveries really change uid), else our own ids.
fn test_ids() -> (u32, u32) {
    if rustix::process::geteuid().is_root() {
        (65534, 65534)
    } else {
        (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        )
    }
}

fn chown(p: &Path) {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let (uid, gid) = test_ids();
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Adds `=name` and `+name-` to users/assign (qmail-pw2u's form), with a home under the
/// test directory; with `maildir`, a `Maildir/` in it.
fn add_user(root: &TestRoot, name: &str, maildir: bool) -> PathBuf {
    let (uid, gid) = test_ids();
    let home = root.tmp.path().join("home").join(name);
    std::fs::create_dir_all(&home).unwrap();
    if maildir {
        for d in ["Maildir/tmp", "Maildir/new", "Maildir/cur"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
    }
    for d in [root.tmp.path().to_path_buf(), root.tmp.path().join("home")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    chown(&home);
    let assign = root.path("users/assign");
    let text = std::fs::read_to_string(&assign).unwrap();
    let mut text = text.trim_end_matches(".\n").to_owned();
    let h = home.display();
    let _ = write!(
        text,
        "={name}:{name}:{uid}:{gid}:{h}:::\n+{name}-:{name}:{uid}:{gid}:{h}:-::\n.\n"
    );
    std::fs::write(&assign, text).unwrap();
    home
}

fn write_owned(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    chown(path);
}

fn send(root: &TestRoot, from: &str, to: &[&str], body: &str) -> String {
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

const BODY: &str = "From: a@example.net\r\nSubject: hi\r\n\r\nhello there\r\n";

fn signal(server: &Server, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

fn alive(server: &mut Server) -> bool {
    server
        .child
        .as_mut()
        .is_some_and(|c| c.try_wait().unwrap().is_none())
}

/// Runs `DIR/bin/NAME args` as a `.qmail` program would be run: `PATH` with `DIR/bin`
/// first, `MTA_ROOT`, and `env`; `input` on stdin.
fn helper(root: &TestRoot, name: &str, args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
    let bin = root.path("bin");
    let mut child = Command::new(bin.join(name))
        .args(args)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .env("MTA_ROOT", &root.dir)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A helper that bounces at once never reads its input: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The queue listing (`mta queue list`, qmail-qread's format).
fn queue_list(root: &TestRoot) -> String {
    text(&mta(&root.dir, &["queue", "list"]).stdout)
}

/// `svc -h`: a changed rcpthosts, databytes, virtualdomains, smtproutes and
/// defaultdelivery apply to the next session or delivery; a broken file keeps the old
/// settings; the daemon lives on.
#[test]
fn hup_rereads_control_files_and_the_daemon_lives_on() {
    rereads_control_files(true);
}

/// The same changes, plus locals and users/assign, with no signal: the server notices
/// the changed files by itself within a few seconds.
#[test]
fn changed_control_files_apply_without_a_signal() {
    rereads_control_files(false);
}

/// Sends SIGHUP, or waits for the server's own poll (2 s) to see the changes; then waits
/// for the reload's log line (`needle`, the `count`th time).
fn reread(server: &Server, hup: bool, needle: &str, count: usize) {
    if hup {
        signal(server, "HUP");
    } else {
        // Two poll periods and a margin: every file written before now has been seen.
        std::thread::sleep(Duration::from_millis(4500));
    }
    // Both the SMTP process and the queue process reread.
    for who in ["smtpd", "queue"] {
        let needle = needle.replacen(": ", &format!(": {who} "), 1);
        assert!(server.wait_log(&needle, count, 10), "{}", server.log_text());
    }
}

fn rereads_control_files(hup: bool) {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    write_owned(&joe.join(".qmail-default"), "./Maildir/\n");
    // Nobody may relay: rcpthosts decides.
    root.control("relayclients", "");
    root.control("databytes", "100000\n");
    // A second server, the smtproutes target for b.example.
    let other = TestRoot::new();
    other.control("me", "b.example\n");
    other.control("locals", "b.example\n");
    other.control("rcpthosts", "b.example\n");
    let bob = add_user(&other, "bob", true);
    let _other_server = other.serve();

    let mut server = root.serve();
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(5000));
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], &big),
        "OK []"
    );
    let refused = send(&root, "a@example.net", &["joe@virt.example"], BODY);
    assert!(
        refused.starts_with("REFUSED [('joe@virt.example', 553)"),
        "{refused}"
    );

    root.control("databytes", "1000\n");
    root.control("rcpthosts", "example.org\nvirt.example\nb.example\n");
    root.control("virtualdomains", "virt.example:joe\n");
    root.control(
        "smtproutes",
        &format!("b.example:127.0.0.1:{}\n", other.port),
    );
    root.control("defaultdelivery", "./Mailbox\n");
    reread(&server, hup, "status: reloaded configuration", 1);
    assert!(
        send(&root, "a@example.net", &["joe@example.org"], &big).starts_with("ERR 552"),
        "databytes 1000 applies"
    );
    assert_eq!(
        send(&root, "a@example.net", &["sales@virt.example"], BODY),
        "OK []"
    );
    assert_eq!(
        send(&root, "a@example.net", &["bob@b.example"], BODY),
        "OK []"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    assert!(
        wait_maildir(&bob.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let joes = maildir_messages(&joe.join("Maildir"));
    assert!(
        joes.iter()
            .any(|m| m.contains("Delivered-To: joe-sales@virt.example")),
        "{joes:?}"
    );
    // joe has no .qmail: the new defaultdelivery takes his mail to an mbox.
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    let mbox = joe.join("Mailbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mbox.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        std::fs::read_to_string(&mbox)
            .unwrap_or_default()
            .starts_with("From a@example.net "),
        "{}",
        server.log_text()
    );

    // A file that does not parse: the old settings stay, the error names the file.
    root.control("databytes", "lots\n");
    reread(&server, hup, "alert: unable to reread controls", 1);
    assert!(
        server.log_text().contains("databytes"),
        "{}",
        server.log_text()
    );
    assert!(send(&root, "a@example.net", &["joe@example.org"], &big).starts_with("ERR 552"));
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert!(alive(&mut server), "serve died: {}", server.log_text());

    // A new local domain and a new user (users/assign) apply too, once the broken file is
    // mended.
    root.control("databytes", "100000\n");
    root.control("locals", "example.org\nlocals.example\n");
    root.control(
        "rcpthosts",
        "example.org\nvirt.example\nb.example\nlocals.example\n",
    );
    let carol = add_user(&root, "carol", true);
    write_owned(&carol.join(".qmail"), "./Maildir/\n");
    reread(&server, hup, "status: reloaded configuration", 2);
    assert_eq!(
        send(&root, "a@example.net", &["carol@locals.example"], BODY),
        "OK []"
    );
    assert!(
        wait_maildir(&carol.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    assert_eq!(server.stop(), Some(0));
}

/// `svc -a`: a deferred delivery is retried at once, not at its scheduled time.
#[test]
fn alrm_retries_a_deferred_message_at_once() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    let flag = joe.join("ready");
    write_owned(
        &joe.join(".qmail"),
        &format!("|test -f {} || exit 111\n./Maildir/\n", flag.display()),
    );
    let server = root.serve();
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert!(
        server.wait_log("delivery 1: deferral", 1, 20),
        "{}",
        server.log_text()
    );
    write_owned(&flag, "");
    let before = Instant::now();
    signal(&server, "ALRM");
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    // qmail's first local retry would come 100 s after the first attempt.
    assert!(before.elapsed() < Duration::from_secs(30));
    assert!(
        server.wait_log("delivery 2: success", 1, 10),
        "{}",
        server.log_text()
    );
}

/// qmail-start's `./Mailbox`, kept in control/defaultdelivery: a user without a `.qmail`
/// (and without a Maildir) gets an mbox.
#[test]
fn defaultdelivery_mailbox_delivers_to_an_mbox() {
    let root = TestRoot::new();
    // A blank first line, which qmail-local would refuse on every delivery: check names it.
    root.control("defaultdelivery", "\n./Mailbox\n");
    let check = mta(&root.dir, &["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stderr).contains("defaultdelivery: line 1: "),
        "{check:?}"
    );
    root.control("defaultdelivery", "./Mailbox\n");
    assert_eq!(mta(&root.dir, &["check"]).status.code(), Some(0));
    let jim = add_user(&root, "jim", false);
    let server = root.serve();
    assert_eq!(
        send(&root, "a@example.net", &["jim@example.org"], BODY),
        "OK []"
    );
    assert!(server.wait_log("end msg", 1, 20), "{}", server.log_text());
    let (code, out, err) = python(
        "import mailbox,sys\nfor m in mailbox.mbox(sys.argv[1]): print(m.get_from()); print(m['Delivered-To']); print(m.get_payload())",
        &[jim.join("Mailbox").to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}\n{}", server.log_text());
    assert!(out.starts_with("a@example.net "), "{out}");
    assert!(out.contains("jim@example.org\nhello there"), "{out}");
}

const PROGRAM_ENV: &[(&str, &str)] = &[
    ("SENDER", "a@example.net"),
    ("NEWSENDER", "list-owner@example.org"),
    ("RECIPIENT", "joe@example.org"),
    ("UFLINE", "From a@example.net Thu Nov 29 04:08:05 2026\n"),
    ("RPLINE", "Return-Path: <a@example.net>\n"),
    ("DTLINE", "Delivered-To: joe@example.org\n"),
];

const MESSAGE: &str = "Subject: hi\n\nhello\n";

/// preline(1): From_, Return-Path and Delivered-To in front; the program's exit code.
#[test]
fn preline_adds_three_lines_and_passes_the_exit_code() {
    let root = TestRoot::new();
    let out = helper(
        &root,
        "preline",
        &["sh", "-c", "cat; exit 37"],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(37), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "From a@example.net Thu Nov 29 04:08:05 2026\nReturn-Path: <a@example.net>\n\
         Delivered-To: joe@example.org\nSubject: hi\n\nhello\n"
    );
    let out = helper(&root, "preline", &["-d", "-f", "cat"], PROGRAM_ENV, MESSAGE);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "Return-Path: <a@example.net>\nSubject: hi\n\nhello\n"
    );
    let out = helper(&root, "preline", &["-r", "cat"], PROGRAM_ENV, MESSAGE);
    assert!(
        text(&out.stdout).starts_with("From a@example.net Thu Nov 29 04:08:05 2026\nDelivered-To:")
    );
    // Usage, and a program that does not exist (not temporary: 100).
    assert_eq!(
        helper(&root, "preline", &[], PROGRAM_ENV, "").status.code(),
        Some(100)
    );
    assert_eq!(
        helper(&root, "preline", &["no-such-program-here"], PROGRAM_ENV, "")
            .status
            .code(),
        Some(100)
    );
}

/// condredirect(1): forwards and exits 99 when the program exits 0; 111 stays 111;
/// anything else exits 0 without forwarding.
#[test]
fn condredirect_forwards_and_exits_99_when_its_program_exits_0() {
    let root = TestRoot::new();
    let out = helper(
        &root,
        "condredirect",
        &["boss@example.com", "false"],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(0));
    let out = helper(
        &root,
        "condredirect",
        &["boss@example.com", "sh", "-c", "exit 111"],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(111));
    assert!(!queue_list(&root).contains("boss@example.com"));
    let out = helper(
        &root,
        "condredirect",
        &["boss@example.com", "true"],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(99), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("condredirect: qp "),
        "{}",
        text(&out.stderr)
    );
    let list = queue_list(&root);
    assert!(list.contains("<a@example.net>"), "{list}");
    assert!(list.contains("boss@example.com"), "{list}");
    assert_eq!(
        helper(&root, "condredirect", &["x@y"], PROGRAM_ENV, "")
            .status
            .code(),
        Some(100)
    );
}

/// bouncesaying(1): bounces with its text; with a program, only if the program exits 0.
#[test]
fn bouncesaying_bounces_with_its_text() {
    let root = TestRoot::new();
    let out = helper(
        &root,
        "bouncesaying",
        &["This address no longer accepts mail."],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(100));
    assert_eq!(text(&out.stderr), "This address no longer accepts mail.\n");
    let out = helper(
        &root,
        "bouncesaying",
        &["go away", "true"],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(100));
    let out = helper(
        &root,
        "bouncesaying",
        &["go away", "false"],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(0));
    let out = helper(
        &root,
        "bouncesaying",
        &["go away", "sh", "-c", "exit 111"],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(111));
}

/// except(1): 0 becomes 100, 111 stays, anything else becomes 0.
#[test]
fn except_inverts_the_exit_code() {
    let root = TestRoot::new();
    for (code, expected) in [(0, 100), (100, 0), (1, 0), (111, 111)] {
        let out = helper(
            &root,
            "except",
            &["sh", "-c", &format!("exit {code}")],
            PROGRAM_ENV,
            MESSAGE,
        );
        assert_eq!(out.status.code(), Some(expected), "except of {code}");
    }
}

/// forward(1): the message (with DTLINE) goes to the addresses from $NEWSENDER.
#[test]
fn forward_reinjects_to_the_given_addresses() {
    let root = TestRoot::new();
    let out = helper(
        &root,
        "forward",
        &["one@example.com", "two@example.net"],
        PROGRAM_ENV,
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("forward: qp "));
    let list = queue_list(&root);
    assert!(list.contains("<list-owner@example.org>"), "{list}");
    assert!(
        list.contains("one@example.com") && list.contains("two@example.net"),
        "{list}"
    );
    let out = helper(
        &root,
        "forward",
        &["x@y"],
        &[("DTLINE", "Delivered-To: x\n")],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(100), "NEWSENDER not set");
}

/// An ezmlm-style list: `|preline PROGRAM` found on PATH, forwards through `forward` and
/// `&`, and `bouncesaying`, all through a running server.
#[test]
fn dot_qmail_programs_find_the_helpers_on_path() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    let (uid, _) = test_ids();
    // A stand-in for ezmlm-send on PATH (an admin's /usr/local/bin).
    let fake = root.path("bin/fake-ezmlm-send");
    std::fs::write(&fake, "#!/bin/sh\ncat > \"$1/archived\"\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_owned(
        &joe.join(".qmail-list"),
        &format!("|preline fake-ezmlm-send '{}'\n", joe.display()),
    );
    write_owned(&joe.join(".qmail-copy"), "./Maildir/\n");
    write_owned(&joe.join(".qmail-fw"), "|forward joe-copy@example.org\n");
    write_owned(&joe.join(".qmail-amp"), "&joe-copy@example.org\n");
    write_owned(
        &joe.join(".qmail-closed"),
        "|bouncesaying 'This list is closed.'\n",
    );
    let server = root.serve();
    for to in ["joe-list", "joe-fw", "joe-amp", "joe-closed"] {
        assert_eq!(
            send(
                &root,
                "a@example.net",
                &[&format!("{to}@example.org")],
                BODY
            ),
            "OK []"
        );
    }
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    assert!(
        server.wait_log("failure: This_list_is_closed./", 1, 20),
        "{}",
        server.log_text()
    );
    let archived = std::fs::read_to_string(joe.join("archived")).unwrap();
    assert!(
        archived.starts_with("From a@example.net ")
            && archived
                .contains("\nReturn-Path: <a@example.net>\nDelivered-To: joe-list@example.org\n"),
        "{archived}"
    );
    let copies = maildir_messages(&joe.join("Maildir"));
    // The `&` forward is queued by joe, not by alias.
    assert!(
        copies.iter().any(
            |m| m.contains("Delivered-To: joe-copy@example.org\\nReceived: (qmail ")
                && m.contains(&format!(" invoked by uid {uid}); "))
                && m.contains("Delivered-To: joe-amp@example.org")
        ),
        "{copies:?}"
    );
    assert!(
        copies
            .iter()
            .any(|m| m.contains("Delivered-To: joe-fw@example.org")),
        "{copies:?}"
    );
    assert!(
        !copies.iter().any(|m| m.contains("invoked by alias")),
        "{copies:?}"
    );
}

/// `sendmail -f '<>'` (and `-f ''`) queues with the null sender.
#[test]
fn sendmail_f_null_keeps_the_null_sender() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    let server = root.serve();
    for f in ["<>", ""] {
        let out = helper(
            &root,
            "sendmail",
            &["-f", f, "joe@example.org"],
            &[],
            "Subject: null\n\nbody\n",
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    for m in maildir_messages(&joe.join("Maildir")) {
        assert!(m.starts_with("b'Return-Path: <>\\n"), "{m}");
    }
}

/// One message's log lines: in qmail's order, `qp` and `uid` real; a restart does not log
/// `new msg` again for a message still queued; SMTP mail carries both Received lines.
#[test]
fn log_lines_in_order_with_real_qp_and_uid_and_the_two_received_lines() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    let mut server = root.serve();
    // By hand, to read the `250 ok TIME qp N` reply: an admin greps the log for that N.
    let mut s = std::net::TcpStream::connect(root.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert!(read_reply(&mut s).starts_with("220 "));
    for cmd in [
        "HELO me",
        "MAIL FROM:<a@example.net>",
        "RCPT TO:<joe@example.org>",
        "DATA",
    ] {
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let r = read_reply(&mut s);
        assert!(r.starts_with('2') || r.starts_with("354"), "{cmd}: {r}");
    }
    s.write_all(BODY.as_bytes()).unwrap();
    s.write_all(b".\r\n").unwrap();
    let ok = read_reply(&mut s);
    let qp = ok.trim_end().rsplit(" qp ").next().unwrap().to_owned();
    assert!(ok.starts_with("250 ") && qp.parse::<u64>().is_ok(), "{ok}");
    s.write_all(b"QUIT\r\n").unwrap();
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    assert!(server.wait_log("end msg", 1, 10), "{}", server.log_text());
    let log = server.log_text();
    // The uid that queued a message from the network: the SMTP process's account.
    let smtpd_uid = if rustix::process::geteuid().is_root() {
        account("mtad").unwrap().0
    } else {
        rustix::process::getuid().as_raw()
    };
    let info = format!(" from <a@example.net> qp {qp} uid {smtpd_uid}\n");
    assert!(log.contains(&info), "wanted {info:?} in:\n{log}");
    let mut at = 0;
    for needle in [
        "new msg ",
        "info msg ",
        "starting delivery 1: msg ",
        "delivery 1: success: did_1+0+0/\n",
        "end msg ",
    ] {
        let found = log[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} out of order:\n{log}"));
        at += found + needle.len();
    }
    assert_eq!(log.matches("new msg ").count(), 1, "{log}");
    // The two Received lines: qmail-queue's on top, then qmail-smtpd's.
    let m = &maildir_messages(&joe.join("Maildir"))[0];
    let q =
        format!("Delivered-To: joe@example.org\\nReceived: (qmail {qp} invoked from network); ");
    assert!(m.contains(&q), "{m}");
    let after = &m[m.find(&q).unwrap() + q.len()..];
    assert!(after.contains("\\nReceived: from "), "{m}");

    // Injected mail: qp and uid of the injecting process, as its trace line says.
    let flag = joe.join("ready");
    write_owned(
        &joe.join(".qmail-later"),
        &format!("|test -f {} || exit 111\n./Maildir/\n", flag.display()),
    );
    let out = helper(
        &root,
        "qmail-inject",
        &["joe-later@example.org"],
        &[],
        "Subject: later\n\nx\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(server.wait_log("deferral", 1, 20), "{}", server.log_text());
    let log = server.log_text();
    let uid = rustix::process::getuid().as_raw();
    let line = log
        .lines()
        .filter(|l| l.contains("info msg "))
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(line.ends_with(&format!(" uid {uid}")), "{line}\n{log}");
    let id = line
        .split("info msg ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    assert!(!line.contains(" qp 0 "), "{line}");
    assert_eq!(server.stop(), Some(0));

    // Restarted: the queued message is retried, not announced again.
    let server = root.serve();
    write_owned(&flag, "");
    signal(&server, "ALRM");
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    assert!(
        server.wait_log(&format!("end msg {id}"), 1, 10),
        "{}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(!log.contains("new msg "), "{log}");
    assert!(!log.contains("info msg "), "{log}");
}

/// qmail-smtpd takes qmail's double-bounce sender.
#[test]
fn mail_from_double_bounce_sender_is_accepted() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    let server = root.serve();
    assert_eq!(send(&root, "#@[]", &["joe@example.org"], BODY), "OK []");
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let m = &maildir_messages(&joe.join("Maildir"))[0];
    assert!(m.starts_with("b'Return-Path: <#@[]>\\n"), "{m}");
}

/// A qmail site moved over unchanged: five virtual domains, a default smtproutes line,
/// users/assign as qmail-pw2u writes it, Life-with-qmail alias files (two of them symbolic
/// links) and ezmlm-style list files. `mta check` passes and every kind of address is
/// delivered.
#[test]
fn migration_of_a_qmail_configuration() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    let one = add_user(&root, "one", true);
    let two = add_user(&root, "two", false);
    // qmail has no catch-all: unknown local addresses bounce (here: refused at RCPT).
    // (Older inits wrote one.)
    let _ = std::fs::remove_file(root.path("alias/.qmail-default"));
    for name in [".qmail-postmaster", ".qmail-root", ".qmail-mailer-daemon"] {
        let _ = std::fs::remove_file(root.path("alias").join(name));
    }
    root.control("me", "mail.example.org\n");
    root.control("locals", "mail.example.org\nlocalhost\n");
    root.control(
        "rcpthosts",
        "mail.example.org\none.example\ntwo.example\nthree.example\nfour.example\nlists.example\n",
    );
    root.control(
        "virtualdomains",
        "one.example:one\ntwo.example:two\nthree.example:one\nfour.example:joe-four\nlists.example:lists\n",
    );
    root.control(
        "smtproutes",
        ":relay.isp.example\nbig.example:[192.0.2.7]:2525\n",
    );
    root.control("defaultdelivery", "./Maildir/\n");
    write_owned(&joe.join(".qmail"), "./Maildir/\n");
    write_owned(&joe.join(".qmail-default"), "./Maildir/\n");
    write_owned(&one.join(".qmail-default"), "./Maildir/\n");
    write_owned(&two.join(".qmail-default"), "&joe@mail.example.org\n");
    // Life with qmail's aliases: postmaster, and root and mailer-daemon linked to it.
    let alias = root.path("alias");
    write_owned(&alias.join(".qmail-postmaster"), "&joe\n");
    std::os::unix::fs::symlink(".qmail-postmaster", alias.join(".qmail-root")).unwrap();
    std::os::unix::fs::symlink(".qmail-postmaster", alias.join(".qmail-mailer-daemon")).unwrap();
    // An ezmlm list under the alias user, as ezmlm-make writes its dot-qmail files.
    let list = root.tmp.path().join("announce");
    std::fs::create_dir_all(&list).unwrap();
    // The list belongs to the alias user, whose account owns DIR/alias.
    let alias_owner = std::fs::metadata(root.path("alias")).unwrap();
    crate::serve::chown_tree(&list, alias_owner.uid(), alias_owner.gid());
    for (name, script) in [
        ("fake-ezmlm-send", "cat > \"$1/sent.$$\"\n"),
        (
            "fake-ezmlm-manage",
            "printf '%s\\n' \"$DEFAULT\" > \"$1/manage.$$\"\n",
        ),
    ] {
        let p = root.path("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let l = list.display();
    write_owned(
        &alias.join(".qmail-lists-announce"),
        &format!("|preline fake-ezmlm-send '{l}'\n"),
    );
    write_owned(
        &alias.join(".qmail-lists-announce-default"),
        &format!("|preline fake-ezmlm-manage '{l}'\n"),
    );
    write_owned(&alias.join(".qmail-lists-announce-owner"), "&joe\n");
    chown(&alias);

    let check = mta(&root.dir, &["check"]);
    assert_eq!(check.status.code(), Some(0), "{check:?}");

    let server = root.serve();
    let unknown = send(
        &root,
        "a@example.net",
        &["nobody-here@mail.example.org"],
        BODY,
    );
    assert!(
        unknown.starts_with("REFUSED [('nobody-here@mail.example.org', 550)"),
        "{unknown}"
    );
    let to_joe = [
        "joe@mail.example.org",
        "joe-ext@mail.example.org",
        "postmaster@mail.example.org",
        "root@mail.example.org",
        "mailer-daemon@mail.example.org",
        "anyone@two.example",
        "sales@four.example",
        "announce-owner@lists.example",
    ];
    for to in to_joe {
        assert_eq!(send(&root, "a@example.net", &[to], BODY), "OK []", "{to}");
    }
    for to in [
        "info@one.example",
        "info@three.example",
        "announce@lists.example",
        "announce-subscribe-bob=example.net@lists.example",
    ] {
        assert_eq!(send(&root, "a@example.net", &[to], BODY), "OK []", "{to}");
    }
    assert!(
        wait_maildir(&joe.join("Maildir"), to_joe.len(), 30),
        "{}",
        server.log_text()
    );
    assert!(
        wait_maildir(&one.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    assert!(server.wait_log("end msg", 14, 20), "{}", server.log_text());
    let joes = maildir_messages(&joe.join("Maildir"));
    for to in [
        "joe-ext@mail.example.org",
        "postmaster@mail.example.org",
        "root@mail.example.org",
        "mailer-daemon@mail.example.org",
        "two-anyone@two.example",
        "joe-four-sales@four.example",
        "lists-announce-owner@lists.example",
    ] {
        assert!(
            joes.iter()
                .any(|m| m.contains(&format!("Delivered-To: {to}\\n"))),
            "no Delivered-To: {to} in {joes:#?}"
        );
    }
    let files: Vec<String> = std::fs::read_dir(&list)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let sent = files
        .iter()
        .find(|f| f.starts_with("sent."))
        .expect("ezmlm-send ran");
    let text = std::fs::read_to_string(list.join(sent)).unwrap();
    assert!(text.starts_with("From a@example.net "), "{text}");
    assert!(
        text.contains("Delivered-To: lists-announce@lists.example\n"),
        "{text}"
    );
    let manage = files
        .iter()
        .find(|f| f.starts_with("manage."))
        .expect("ezmlm-manage ran");
    assert_eq!(
        std::fs::read_to_string(list.join(manage)).unwrap(),
        "subscribe-bob=example.net\n"
    );
    assert!(
        !server.log_text().contains("deferral"),
        "{}",
        server.log_text()
    );
}

/// A message with no recipients (`qmail-inject -a` with none) is announced before it ends.
#[test]
fn message_without_recipients_logs_new_msg_before_end_msg() {
    let root = TestRoot::new();
    let server = root.serve();
    let out = helper(
        &root,
        "qmail-inject",
        &["-a"],
        &[],
        "Subject: nobody\n\nx\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(server.wait_log("end msg ", 1, 20), "{}", server.log_text());
    let log = server.log_text();
    let new = log.find("new msg ").unwrap();
    let info = log.find("info msg ").unwrap();
    let end = log.find("end msg ").unwrap();
    assert!(new < info && info < end, "{log}");
}

/// `sendmail -bs` is qmail-smtpd run by a user: its mail is queued `invoked by uid U`, once,
/// whether it goes straight into the queue or through pickup to a running server.
#[test]
fn sendmail_bs_mail_is_queued_by_the_invoking_uid() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    let session = "HELO me\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<joe@example.org>\r\nDATA\r\n\
                   Subject: bs\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    let out = helper(&root, "sendmail", &["-bs"], &[], session);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let server = root.serve();
    let out = helper(&root, "sendmail", &["-bs"], &[], session);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    let uid = rustix::process::getuid().as_raw();
    for m in maildir_messages(&joe.join("Maildir")) {
        assert_eq!(m.matches("Received: (qmail ").count(), 1, "{m}");
        assert!(m.contains(&format!(" invoked by uid {uid}); ")), "{m}");
        assert!(m.contains("\\nReceived: from "), "{m}");
    }
}

/// Issue 14's attack: a `.qmail` program running as a users/assign account, and one running
/// as the alias user (who owns `DIR/alias`), replace every file they can reach under `DIR`
/// (queue, pickup, run, alias) with a symbolic link to a root-only file, plant links and
/// FIFOs under pickup's names, then exit 100 to force bounces. (Before the process split
/// the users/assign account was the queue's owner and a root thread wrote the bounce into
/// a planted link; now neither account can reach the queue, and lspawn refuses the queue's
/// account: see `processes.rs`.) The root-only file stays as it was, and mail keeps
/// flowing.
#[test]
fn planted_links_under_the_root_never_redirect_a_privileged_write() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe", true);
    write_owned(&joe.join(".qmail"), "./Maildir/\n");
    let secret = root.tmp.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = root.dir.display().to_string();
    let s = secret.display();
    let plant = format!(
        "|for f in {dir}/queue/free/* {dir}/queue/mess/*/* {dir}/pickup/* {dir}/pickup/new/* {dir}/run/*/* \
         {dir}/alias/Maildir/new/* {dir}/alias/.qmail-*; \
         do [ -f \"$f\" ] && rm -f \"$f\" && ln -s {s} \"$f\"; done; \
         ln -s {s} {dir}/pickup/planted 2>/dev/null; mkfifo {dir}/pickup/fifo 2>/dev/null; \
         ln -s {s} {dir}/pickup/new/1.M1P1U0R00 2>/dev/null; \
         mkfifo {dir}/pickup/new/2.M2P2U0R00 2>/dev/null; \
         ln -s {s} {dir}/queue/free/99 2>/dev/null; \
         echo planted; exit 100\n"
    );
    write_owned(&joe.join(".qmail-bomb"), &plant);
    // The same from the alias user, who owns DIR/alias.
    let alias = root.path("alias");
    std::fs::write(alias.join(".qmail-aliasbomb"), &plant).unwrap();
    let alias_owner = std::fs::metadata(&alias).unwrap();
    crate::serve::chown_tree(
        &alias.join(".qmail-aliasbomb"),
        alias_owner.uid(),
        alias_owner.gid(),
    );
    let server = root.serve();
    // Deliveries first (more than mta-queue's batch of 32 removals), so queue/mess/ holds
    // files ready for reuse (`free.<id>`).
    let many = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
for i in range(40):
    s.sendmail("joe@example.org", ["joe@example.org"], "Subject: %d\r\n\r\nx\r\n" % i)
s.quit()
"#;
    let (code, _, err) = python(many, &[&root.port.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_maildir(&joe.join("Maildir"), 40, 30),
        "{}",
        server.log_text()
    );
    // The bomb: its failure bounces to joe, written by the finishing threads.
    assert_eq!(
        send(&root, "joe@example.org", &["joe-bomb@example.org"], BODY),
        "OK []"
    );
    assert_eq!(
        send(&root, "joe@example.org", &["aliasbomb@example.org"], BODY),
        "OK []"
    );
    assert!(
        server.wait_log("bounce msg", 2, 20),
        "{}",
        server.log_text()
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 42, 20),
        "{}",
        server.log_text()
    );
    // Mail keeps flowing, through the planted queue.
    for _ in 0..3 {
        assert_eq!(
            send(&root, "joe@example.org", &["joe@example.org"], BODY),
            "OK []"
        );
    }
    assert!(
        wait_maildir(&joe.join("Maildir"), 45, 20),
        "{}",
        server.log_text()
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
    let meta = std::fs::metadata(&secret).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid()),
        (0o600, rustix::process::geteuid().as_raw())
    );
    let joes = maildir_messages(&joe.join("Maildir"));
    assert!(
        joes.iter().any(|m| m.contains("planted")),
        "the bounce carries the report"
    );
}

/// qmail-lspawn's rule, and ours on top: no delivery runs with uid 0 or gid 0 (a
/// users/assign line naming either gets a deferral, and nothing is written).
#[test]
fn deliveries_as_uid_0_or_gid_0_are_deferred() {
    if !rustix::process::geteuid().is_root() {
        return; // only a root server starts per-user workers
    }
    let root = TestRoot::new();
    let home = root.tmp.path().join("home").join("zero");
    for d in ["Maildir/tmp", "Maildir/new", "Maildir/cur"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    for d in [root.tmp.path().to_path_buf(), root.tmp.path().join("home")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let h = home.display();
    let assign = root.path("users/assign");
    let text = std::fs::read_to_string(&assign).unwrap();
    let mut text = text.trim_end_matches(".\n").to_owned();
    let _ = write!(
        text,
        "=uidzero:root:0:65534:{h}:::\n=gidzero:nobody:65534:0:{h}:::\n.\n"
    );
    std::fs::write(&assign, text).unwrap();
    let server = root.serve();
    // At RCPT: a temporary refusal, as for any user whose delivery cannot run now.
    for rcpt in ["uidzero@example.org", "gidzero@example.org"] {
        assert_eq!(
            send(&root, "a@example.net", &[rcpt], BODY),
            format!("REFUSED [('{rcpt}', 451)]")
        );
    }
    // Queued anyway (inject does not check): the delivery is deferred.
    for rcpt in ["uidzero@example.org", "gidzero@example.org"] {
        let mut child = Command::new(MTA)
            .arg("--root")
            .arg(&root.dir)
            .args(["inject", rcpt])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"Subject: zero\n\nx\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    assert!(server.wait_log("deferral", 2, 20), "{}", server.log_text());
    let log = server.log_text();
    assert!(
        log.contains("deferral: Not_allowed_to_perform_deliveries_as_root."),
        "{log}"
    );
    assert!(
        log.contains("deferral: Not_allowed_to_perform_deliveries_with_group_0."),
        "{log}"
    );
    assert!(maildir_messages(&home.join("Maildir")).is_empty());
}
