//! `mta inject` and `mta sendmail` end to end: the built binary on a temporary root made by
//! `mta init --hostname example.org`, with the queued message read back through
//! mta-queue's own reading API, the pickup path taken when another process holds the
//! queue (as a running `mta serve` does), and delivery by `mta serve` read back with
//! Python's `mailbox` and `email` modules.
//!
//! Self-contained on purpose (its own small helpers), so it does not depend on the other
//! topic modules.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mta_core::{Address, Envelope};
use mta_daemon::inject::pickup;
use mta_daemon::root::Root;
use mta_queue::{Queue, QueueOptions};

const MTA: &str = env!("CARGO_BIN_EXE_mta");

/// A root made by `mta init --hostname example.org` in a temporary directory.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        // The mail system's accounts must reach the root, as in any installation.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let dir = tmp.path().join("root");
        let out = Command::new(MTA)
            .arg("--root")
            .arg(&dir)
            .args(["init", "--hostname", "example.org"])
            .output()
            .unwrap();
        assert!(out.status.success(), "init: {out:?}");
        // These tests are about inject, not RCPT policy: a catch-all takes every local
        // address into the alias maildir.
        std::fs::write(dir.join("alias/.qmail-default"), "./Maildir/\n").unwrap();
        Fixture { _tmp: tmp, dir }
    }

    /// Gives DIR/queue to this process's user, so the test can hold the queue itself as a
    /// server would (as root, `init` gave it to the queue account).
    fn own_queue(&self) {
        let me = format!(
            "{}:{}",
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw()
        );
        let st = Command::new("chown")
            .args(["-R", &me])
            .arg(self.dir.join("queue"))
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Runs `mta --root DIR ARGS` with a clean environment plus `vars`, feeding `input`.
    fn run(&self, args: &[&str], vars: &[(&str, &str)], input: &str) -> Output {
        run_mta(&self.dir, args, vars, input)
    }

    /// The only message in the queue: its envelope and bytes.
    fn only_message(&self) -> (Envelope, String) {
        let queue = Queue::open(self.dir.join("queue"), QueueOptions::default()).unwrap();
        let ids = queue.scan().unwrap();
        assert_eq!(ids.len(), 1, "expected one queued message");
        let info = queue.info(ids[0]).unwrap();
        let mut body = Vec::new();
        queue
            .open_message(ids[0])
            .unwrap()
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(info.body_len, body.len() as u64);
        (info.envelope, String::from_utf8(body).unwrap())
    }
}

fn run_mta(root: &Path, args: &[&str], vars: &[(&str, &str)], input: &str) -> Output {
    let mut child = Command::new(MTA)
        .arg("--root")
        .arg(root)
        .args(args)
        .env_clear()
        .env("TZ", "UTC0")
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before reading its input closes the pipe early: not an error here.
    if let Err(e) = child.stdin.take().unwrap().write_all(input.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn envelope(sender: &str, rcpts: &[&str]) -> Envelope {
    Envelope::new(Address::from(sender), rcpts.iter().copied())
}

/// Checks the fields qmail-inject adds and qmail-queue's Received line, which carry the
/// time and pid, by shape.
fn assert_added_fields(msg: &str, from: &str) {
    let mut lines = msg.lines();
    let received = lines.next().unwrap();
    assert!(
        received.starts_with("Received: (qmail ") && received.contains(" invoked by uid "),
        "{msg}"
    );
    assert!(received.ends_with(" -0000"), "{received}");
    let date = lines.next().unwrap();
    assert!(
        date.starts_with("Date: ") && date.ends_with(" +0000"),
        "{date}"
    );
    let id = lines.next().unwrap();
    assert!(
        id.starts_with("Message-ID: <") && id.ends_with(".qmail@example.org>"),
        "{id}"
    );
    assert_eq!(lines.next().unwrap(), format!("From: {from}"));
}

#[test]
fn inject_queues_message_with_envelope_and_bytes() {
    let f = Fixture::new();
    let out = f.run(
        &[
            "inject",
            "-f",
            "sender@example.com",
            "rcpt@example.net",
            "local",
        ],
        &[("QMAILUSER", "joe"), ("QMAILNAME", "Joe User")],
        "Subject: hello\r\nTo: rcpt@example.net\r\n\r\nline 1\r\nline 2\r\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let (env, msg) = f.only_message();
    assert_eq!(
        env,
        envelope(
            "sender@example.com",
            &["rcpt@example.net", "local@example.org"]
        )
    );
    assert_added_fields(&msg, "\"Joe User\" <joe@example.org>");
    assert!(
        msg.ends_with("\nSubject: hello\nTo: rcpt@example.net\n\nline 1\nline 2\n"),
        "{msg}"
    );
    assert!(!msg.contains('\r'));
    assert!(!msg.contains("Cc: recipient list not shown"));
}

#[test]
fn sendmail_t_takes_header_recipients_and_removes_bcc() {
    let f = Fixture::new();
    let out = f.run(
        &[
            "sendmail",
            "-t",
            "-oi",
            "-f",
            "list-owner@example.com",
            "extra@example.net",
        ],
        &[("USER", "ann")],
        "To: a@example.net, b\nCc: Group: c@example.net;\nBcc: hidden@example.net\n\
         Subject: s\n\nbody\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (env, msg) = f.only_message();
    assert_eq!(
        env,
        envelope(
            "list-owner@example.com",
            &[
                "extra@example.net",
                "a@example.net",
                "b@example.org",
                "c@example.net",
                "hidden@example.net"
            ]
        )
    );
    // -f also names the From address (netqmail's sendmail: QMAILUSER/QMAILHOST from -f).
    assert_added_fields(&msg, "list-owner@example.com");
    assert!(!msg.contains("hidden"), "{msg}");
    assert!(
        msg.contains("\nTo: a@example.net, b@example.org\n"),
        "{msg}"
    );
    assert!(msg.contains("\nCc: Group: c@example.net;\n"), "{msg}");
}

#[test]
fn sendmail_without_t_uses_arguments_only() {
    let f = Fixture::new();
    let out = f.run(
        &["sendmail", "-i", "-F", "Full Name", "only@example.net"],
        &[("LOGNAME", "lg")],
        "To: header@example.net\n\nx\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (env, msg) = f.only_message();
    assert_eq!(env, envelope("lg@example.org", &["only@example.net"]));
    assert_added_fields(&msg, "\"Full Name\" <lg@example.org>");
}

#[test]
fn print_mode_shows_return_path_and_env_precedence() {
    let f = Fixture::new();
    let vars = [
        ("USER", "user"),
        ("MAILUSER", "mailuser"),
        ("MAILHOST", "mailhost.example"),
        ("NAME", "Name"),
        ("MAILNAME", "Mail Name"),
        ("QMAILSHOST", "bounces.example"),
    ];
    let out = f.run(&["inject", "-n", "x@y.example"], &vars, "Subject: s\n\nb\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with("Return-Path: <mailuser@bounces.example>\nDate: "),
        "{printed}"
    );
    assert!(printed.contains("\nFrom: \"Mail Name\" <mailuser@mailhost.example>\n"));
    assert!(printed.ends_with("\nCc: recipient list not shown: ;\nSubject: s\n\nb\n"));
    // Nothing was queued.
    let queue = Queue::open(f.dir.join("queue"), QueueOptions::default()).unwrap();
    assert!(queue.scan().unwrap().is_empty());
}

#[test]
fn exit_codes() {
    let f = Fixture::new();
    let code = |args: &[&str], input: &str| f.run(args, &[], input).status.code();
    assert_eq!(code(&["inject", "-z"], ""), Some(100));
    assert_eq!(code(&["inject", "-f"], ""), Some(100));
    assert_eq!(
        code(&["inject", "a@b.example"], "To: (open comment\n\n"),
        Some(100)
    );
    assert_eq!(code(&["inject", "x@)y"], ""), Some(100));
    assert_eq!(code(&["sendmail", "-q"], ""), Some(100));
    assert_eq!(code(&["sendmail", "-q15m"], ""), Some(100));
    assert_eq!(code(&["sendmail", "-bd"], ""), Some(100));
    assert_eq!(code(&["sendmail", "-Z"], ""), Some(100));
    // An address qmail-queue refuses (over 1002 bytes): permanent.
    let long = format!("{}@example.net", "a".repeat(1100));
    assert_eq!(code(&["inject", &long], "\n"), Some(100));
    let missing = f.dir.join("nonexistent");
    let out = run_mta(&missing, &["inject", "a@b.example"], &[], "\n");
    assert_eq!(out.status.code(), Some(111));
    assert!(
        text(&out.stderr).contains("no mta root"),
        "{}",
        text(&out.stderr)
    );
    let out = run_mta(&missing, &["sendmail", "a@b.example"], &[], "\n");
    assert_eq!(out.status.code(), Some(111));
    // Nothing was queued by any of the failures.
    let queue = Queue::open(f.dir.join("queue"), QueueOptions::default()).unwrap();
    assert!(queue.scan().unwrap().is_empty());
}

#[test]
fn locked_queue_goes_through_pickup_and_drains_into_the_queue() {
    let f = Fixture::new();
    f.own_queue();
    // Holding the queue open is what a running `mta serve` does.
    let queue = Queue::open(f.dir.join("queue"), QueueOptions::default()).unwrap();
    let out = f.run(
        &["sendmail", "-t", "-f", "s@example.com"],
        &[("USER", "u")],
        "To: r1@example.net, r2@example.net\nBcc: r3@example.net\n\nbody\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(queue.scan().unwrap().is_empty());
    let root = Root::new(&f.dir);
    let new = pickup::dir(&root).join("new");
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 1);
    let waiting = std::fs::read_dir(&new)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let raw = std::fs::read(&waiting).unwrap();
    assert!(
        raw.starts_with(b"Fs@example.com\0Tr1@example.net\0"),
        "{}",
        text(&raw)
    );
    assert!(
        !text(&raw).contains("Received:"),
        "the writer does not write it"
    );

    let drained = pickup::drain(&root, &queue).unwrap();
    assert_eq!(drained.imported.len(), 1);
    assert!(drained.unreadable.is_empty());
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0);
    let info = queue.info(drained.imported[0]).unwrap();
    assert_eq!(
        info.envelope,
        envelope(
            "s@example.com",
            &["r1@example.net", "r2@example.net", "r3@example.net"]
        )
    );
    let mut body = Vec::new();
    queue
        .open_message(drained.imported[0])
        .unwrap()
        .read_to_end(&mut body)
        .unwrap();
    let msg = String::from_utf8(body).unwrap();
    assert_added_fields(&msg, "s@example.com");
    // The importer wrote the Received line from the file's owner, not from the file.
    let uid = rustix::process::getuid().as_raw();
    assert!(msg.starts_with("Received: (qmail "), "{msg}");
    assert!(
        msg.lines()
            .next()
            .unwrap()
            .contains(&format!(" invoked by uid {uid}); "))
    );
    assert!(
        msg.ends_with("\nTo: r1@example.net, r2@example.net\n\nbody\n"),
        "{msg}"
    );
    // A second drain finds nothing.
    assert_eq!(pickup::drain(&root, &queue).unwrap().imported.len(), 0);
    drop(queue);

    // With the queue free again, inject enqueues directly.
    let out = f.run(&["inject", "z@example.net"], &[], "\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let queue = Queue::open(f.dir.join("queue"), QueueOptions::default()).unwrap();
    assert_eq!(queue.scan().unwrap().len(), 2);
}

#[test]
fn direct_inject_imports_waiting_pickup_files() {
    let f = Fixture::new();
    f.own_queue();
    let queue = Queue::open(f.dir.join("queue"), QueueOptions::default()).unwrap();
    let out = f.run(&["inject", "first@example.net"], &[], "Subject: 1\n\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    drop(queue);
    let out = f.run(&["inject", "second@example.net"], &[], "Subject: 2\n\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let queue = Queue::open(f.dir.join("queue"), QueueOptions::default()).unwrap();
    let mut rcpts: Vec<String> = queue
        .scan()
        .unwrap()
        .into_iter()
        .map(|id| queue.info(id).unwrap().envelope.recipients[0].to_string())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["first@example.net", "second@example.net"]);
}

/// A running `mta serve` on a free loopback port, stopped (SIGTERM, then SIGKILL) on drop.
struct Serve {
    child: std::process::Child,
}

impl Serve {
    fn start(f: &Fixture) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(f.dir.join("control/listen"), format!("127.0.0.1:{port}\n")).unwrap();
        let child = Command::new(MTA)
            .arg("--root")
            .arg(&f.dir)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let serve = Serve { child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mta serve did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..500 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the maildir `dir` holds `n` messages in new/.
fn wait_new(dir: &Path, n: usize) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if std::fs::read_dir(dir.join("new")).map_or(0, Iterator::count) >= n {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Reads every message of a maildir with Python's `mailbox` and `email` modules (an
/// independent RFC 5322 reader) and prints, per message: Subject, the parsed Date as a
/// timestamp, the Message-ID, the From address, To addresses, whether Bcc is present, and
/// the body.
const PY_READ: &str = r#"
import mailbox, sys, email.utils, email.policy
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
rows = []
for key in md.keys():
    msg = email.message_from_bytes(md.get_bytes(key), policy=email.policy.default)
    date = email.utils.parsedate_to_datetime(msg["Date"]).timestamp()
    rows.append("|".join([
        msg["Subject"], str(int(date > 1.7e9)), str(msg["Message-ID"]).endswith(".qmail@example.org>") and "mid-ok" or "mid-bad",
        msg["From"].addresses[0].addr_spec,
        ",".join(a.addr_spec for a in msg["To"].addresses),
        str("Bcc" in msg), msg.get_content().strip(),
    ]))
for r in sorted(rows): print(r)
"#;

fn python_read(maildir: &Path) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY_READ)
        .arg(maildir)
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn injected_before_serve_is_delivered_and_reads_as_rfc5322() {
    let f = Fixture::new();
    let out = f.run(
        &["sendmail", "-t"],
        &[("USER", "joe"), ("TZ", "EST5EDT,M3.2.0,M11.1.0")],
        "To: someone@example.org, other\nBcc: third@example.org\nSubject: before\n\nhello\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let _serve = Serve::start(&f);
    let maildir = f.dir.join("alias/Maildir");
    assert!(wait_new(&maildir, 3), "three local deliveries (To x2, Bcc)");
    let rows = python_read(&maildir);
    let expected =
        "before|1|mid-ok|joe@example.org|someone@example.org,other@example.org|False|hello";
    assert_eq!(rows, [expected, expected, expected]);
}

#[test]
fn sendmail_t_while_serve_runs_is_delivered() {
    let f = Fixture::new();
    let _serve = Serve::start(&f);
    let out = f.run(
        &["sendmail", "-t"],
        &[("USER", "joe")],
        "To: someone@example.org\nSubject: during\n\nhi\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let maildir = f.dir.join("alias/Maildir");
    assert!(wait_new(&maildir, 1), "delivered while serve runs");
    assert_eq!(
        python_read(&maildir),
        ["during|1|mid-ok|joe@example.org|someone@example.org|False|hi"]
    );
}

#[test]
fn large_crlf_message_is_streamed_into_the_queue_with_lf_line_ends() {
    let f = Fixture::new();
    // 8 MB of body in 100,000 CRLF lines, the last one without a line end.
    let line = format!("{}\r\n", "x".repeat(78));
    let mut input = String::from("Subject: big\r\nTo: r@example.net\r\n\r\n");
    for _ in 0..99_999 {
        input.push_str(&line);
    }
    input.push_str("tail");
    let out = f.run(&["inject", "-a", "r@example.net"], &[], &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (_, msg) = f.only_message();
    let body = msg.split_once("\n\n").unwrap().1;
    assert_eq!(body.len(), 99_999 * 79 + 5);
    assert!(body.ends_with(&format!("{}\ntail\n", "x".repeat(78))));
    assert!(!msg.contains('\r'));
}

#[test]
fn sendmail_bp_lists_the_queue_and_bs_speaks_smtp() {
    let f = Fixture::new();
    let out = f.run(
        &["sendmail", "r@example.net"],
        &[("USER", "joe")],
        "Subject: x\n\nb\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let session = "HELO me\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n\
                   Subject: bs\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    let out = f.run(&["sendmail", "-bs"], &[], session);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let replies = text(&out.stdout);
    let codes: Vec<&str> = replies.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "354", "250", "221"],
        "{replies}"
    );
    let out = f.run(&["sendmail", "-bp"], &[], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("  <joe@example.org> \n\tremote\tr@example.net\n"),
        "{listing}"
    );
    assert!(
        listing.contains("  <a@example.net> \n\tremote\tb@example.net\n"),
        "{listing}"
    );
}
