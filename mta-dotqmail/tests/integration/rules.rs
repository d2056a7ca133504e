//! qmail-local's rules through the in-memory executor: loop refusal, permission refusals,
//! duplicate suppression, every line type, forward-only mode, the owner/NEWSENDER rule,
//! exit codes and the report.

use mta_dotqmail::{
    Account, DeliveryOptions, DeliveryRequest, DeliveryStatus, LocalUser, Message, Outcome,
    deliver, explain,
};

use crate::mock::{Call, Mock, Node};

const MSG: &[u8] = b"Received: from x\nSubject: hi\n\nbody\nFrom me\n";

fn joe(ext: &str) -> LocalUser {
    let dash: &[u8] = if ext.is_empty() { b"" } else { b"-" };
    LocalUser::new(Account::new("joe", 1001, 100, "/home/joe"), dash, ext)
}

fn run_with(mock: &mut Mock, user: &LocalUser, local: &str, sender: &str, msg: &[u8]) -> Outcome {
    let request = DeliveryRequest {
        user,
        local: local.as_bytes(),
        domain: b"example.com",
        sender: sender.as_bytes(),
        default_delivery: b"./Maildir/\n",
        now: 1_795_925_285,
    };
    deliver(
        mock,
        &request,
        &DeliveryOptions::default(),
        Message::Bytes(msg),
    )
}

fn run(mock: &mut Mock, ext: &str, sender: &str) -> Outcome {
    let local = if ext.is_empty() {
        "joe".to_owned()
    } else {
        format!("joe-{ext}")
    };
    run_with(mock, &joe(ext), &local, sender, MSG)
}

fn deferred(o: &Outcome) -> &str {
    match &o.status {
        DeliveryStatus::Deferred(t) => t,
        other => panic!("expected deferred, got {other:?}"),
    }
}

fn bounced(o: &Outcome) -> &str {
    match &o.status {
        DeliveryStatus::Bounced(t) => t,
        other => panic!("expected bounced, got {other:?}"),
    }
}

#[test]
fn loop_refusal() {
    let mut m = Mock::new();
    m.file("/home/joe/.qmail", 0o644, b"./Maildir/\n|echo hi\n");
    let looped = b"Received: x\nDelivered-To: joe@example.com\nSubject: s\n\nbody\n";
    let o = run_with(&mut m, &joe(""), "joe", "a@b", looped);
    assert_eq!(
        bounced(&o),
        "This message is looping: it already has my Delivered-To line. (#5.4.6)\n"
    );
    assert!(m.calls.is_empty(), "nothing runs for a looping message");
    assert_eq!(o.exit_code(), 100);

    // Not a loop: another recipient, another case, or the line in the body.
    for msg in [
        &b"Delivered-To: other@example.com\n\nx\n"[..],
        b"Delivered-To: JOE@example.com\n\nx\n",
        b"Subject: s\n\nDelivered-To: joe@example.com\n",
        b"Delivered-To: joe@example.com", // last line without newline is not compared
    ] {
        let mut m = Mock::new();
        let o = run_with(&mut m, &joe(""), "joe", "a@b", msg);
        assert_eq!(o.status, DeliveryStatus::Delivered);
    }
    // Explain mode skips the loop check.
    let mut m = Mock::new();
    maildir_dirs(&mut m, "/home/joe/Maildir");
    let request = DeliveryRequest {
        user: &joe(""),
        local: b"joe",
        domain: b"example.com",
        sender: b"",
        default_delivery: b"./Maildir/\n",
        now: 0,
    };
    let o = explain(&mut m, &request, &DeliveryOptions::default());
    assert_eq!(o.report, b"maildir ./Maildir/\ndid 1+0+0\n");
    assert!(m.calls.is_empty());
}

#[test]
fn permission_refusals() {
    let cases: &[(u32, u32, &str)] = &[
        (
            0o775,
            0o644,
            "Uh-oh: home directory is writable. (#4.7.0)\n",
        ),
        (
            0o757,
            0o644,
            "Uh-oh: home directory is writable. (#4.7.0)\n",
        ),
        (
            0o1755,
            0o644,
            "Home directory is sticky: user is editing his .qmail file. (#4.2.1)\n",
        ),
        (0o755, 0o664, "Uh-oh: .qmail file is writable. (#4.7.0)\n"),
        (0o755, 0o646, "Uh-oh: .qmail file is writable. (#4.7.0)\n"),
    ];
    for &(home, file, want) in cases {
        let mut m = Mock::new();
        m.dir("/home/joe", home)
            .file("/home/joe/.qmail", file, b"./Maildir/\n");
        let o = run(&mut m, "", "a@b");
        assert_eq!(deferred(&o), want, "home {home:o} file {file:o}");
        assert!(m.calls.is_empty());
        assert!(o.forward.is_none());
    }
    // With qmail 1.03's conf-patrn (002) group-writable is accepted, world-writable not.
    let patrn_002 = DeliveryOptions {
        writable_mask: 0o002,
        ..DeliveryOptions::default()
    };
    let mut m = Mock::new();
    m.dir("/home/joe", 0o775)
        .file("/home/joe/.qmail", 0o664, b"./Maildir/\n");
    let request = DeliveryRequest {
        user: &joe(""),
        local: b"joe",
        domain: b"example.com",
        sender: b"",
        default_delivery: b"",
        now: 0,
    };
    let o = deliver(&mut m, &request, &patrn_002, Message::Bytes(MSG));
    assert_eq!(o.status, DeliveryStatus::Delivered);
    // Sticky home in explain mode: a warning only.
    let mut m = Mock::new();
    m.dir("/home/joe", 0o1755);
    let o = explain(&mut m, &request, &DeliveryOptions::default());
    assert_eq!(o.report, b"Warning: home directory is sticky.\ndid 0+0+0\n");
    // Home missing, not a directory, unreadable.
    for (node, want) in [
        (
            None,
            "Unable to switch to /home/joe: file does not exist. (#4.3.0)\n",
        ),
        (
            Some(Node::File {
                mode: 0o644,
                content: vec![],
            }),
            "Unable to switch to /home/joe: not a directory. (#4.3.0)\n",
        ),
        (
            Some(Node::Error(13)),
            "Unable to switch to /home/joe: permission denied. (#4.3.0)\n",
        ),
    ] {
        let mut m = Mock::new();
        m.nodes.remove(std::path::Path::new("/home/joe"));
        if let Some(n) = node {
            m.node("/home/joe", n);
        }
        assert_eq!(deferred(&run(&mut m, "", "a@b")), want);
    }
    // A relative home is a usage error: permanent, as qmail-local exits 100.
    let rel = LocalUser::new(Account::new("joe", 1, 1, "home/joe"), b"", "");
    let o = run_with(&mut Mock::new(), &rel, "joe", "a@b", MSG);
    assert!(bounced(&o).contains("not an absolute path"));
}

#[test]
fn duplicate_targets_delivered_once() {
    let mut m = Mock::new();
    m.file(
        "/home/joe/.qmail",
        0o644,
        b"./Maildir/\n/home/joe/Maildir/\n.//Maildir/\n./mbox\n/home/joe/./mbox\n&a@x\na@x\n&b@x\n|echo p\n|echo p\n",
    );
    let o = run(&mut m, "", "s@x");
    assert_eq!(o.status, DeliveryStatus::Delivered);
    assert_eq!(
        m.trace(),
        [
            "maildir /home/joe/Maildir",
            "mbox /home/joe/mbox",
            "program echo p",
            "program echo p"
        ],
        "each mailbox once; programs are not mailboxes and run every time"
    );
    let f = o.forward.unwrap();
    assert_eq!(f.recipients, [b"a@x".to_vec(), b"b@x".to_vec()]);
    assert!(o.report.ends_with(b"did 2+2+2\n"));
}

#[test]
fn every_line_type_in_order() {
    let mut m = Mock::new();
    m.file(
        "/home/joe/.qmail-all",
        0o644,
        b"# comment\n./Maildir/\n\n&first@example.org\n|echo one\n./Mailbox \t\nsecond@example.net\n+ignored\n/var/mail/joe\n|echo two\n",
    );
    let o = run(&mut m, "all", "sue@example.org");
    assert_eq!(o.status, DeliveryStatus::Delivered);
    assert_eq!(
        m.trace(),
        [
            "maildir /home/joe/Maildir",
            "program echo one",
            "mbox /home/joe/Mailbox",
            "mbox /var/mail/joe",
            "program echo two",
        ]
    );
    assert_eq!(o.report, b"one\ntwo\ndid 3+2+2\n");
    let f = o.forward.unwrap();
    assert_eq!(
        f.recipients,
        [
            b"first@example.org".to_vec(),
            b"second@example.net".to_vec()
        ]
    );
    assert_eq!(f.sender, b"sue@example.org");
    assert_eq!(f.dtline, b"Delivered-To: joe-all@example.com\n");

    // What each delivery got: Return-Path + Delivered-To before the message; the mbox
    // also gets the From_ line; programs get the bare message.
    let rp_dt = b"Return-Path: <sue@example.org>\nDelivered-To: joe-all@example.com\n".to_vec();
    for call in &m.calls {
        match call {
            Call::Maildir {
                prefix, message, ..
            } => {
                assert_eq!((prefix, &message[..]), (&rp_dt, MSG));
            }
            Call::Mbox {
                from,
                prefix,
                message,
                ..
            } => {
                assert_eq!(from, b"From sue@example.org Sun Nov 29 04:08:05 2026\n");
                assert_eq!((prefix, &message[..]), (&rp_dt, MSG));
            }
            Call::Program { stdin, home, .. } => {
                assert_eq!(&stdin[..], MSG);
                assert_eq!(home, std::path::Path::new("/home/joe"));
            }
        }
    }

    // And the same file explained (qmail-local -n).
    let mut m2 = Mock::new();
    maildir_dirs(&mut m2, "/home/joe/Maildir");
    m2.dir("/home/joe", 0o755).dir("/var/mail", 0o1777);
    m2.file(
        "/home/joe/.qmail-all",
        0o644,
        &read(&m, "/home/joe/.qmail-all"),
    );
    let user = joe("all");
    let request = DeliveryRequest {
        user: &user,
        local: b"joe-all",
        domain: b"example.com",
        sender: b"sue@example.org",
        default_delivery: b"./Maildir/\n",
        now: 0,
    };
    let o = explain(&mut m2, &request, &DeliveryOptions::default());
    assert_eq!(
        String::from_utf8(o.report).unwrap(),
        "maildir ./Maildir/\nforward first@example.org\nprogram echo one\nmbox ./Mailbox\n\
         forward second@example.net\nmbox /var/mail/joe\nprogram echo two\ndid 3+2+2\n"
    );
    assert!(m2.calls.is_empty() && o.forward.is_none());
}

fn read(m: &Mock, p: &str) -> Vec<u8> {
    match m.nodes.get(std::path::Path::new(p)) {
        Some(Node::File { content, .. }) => content.clone(),
        _ => panic!("no {p}"),
    }
}

#[test]
fn forward_only_mode() {
    // +list, then a forward: fine.
    let mut m = Mock::new();
    m.file("/home/joe/.qmail-l", 0o644, b"+list\n&a@x\n");
    let o = run(&mut m, "l", "s@x");
    assert_eq!(o.status, DeliveryStatus::Delivered);
    assert_eq!(o.forward.unwrap().recipients, [b"a@x".to_vec()]);

    // A file line before +list runs; the one after it stops the delivery.
    let mut m = Mock::new();
    m.file(
        "/home/joe/.qmail-l",
        0o644,
        b"./Maildir/\n+list\n&a@x\n./Other/\n",
    );
    let o = run(&mut m, "l", "s@x");
    assert_eq!(
        deferred(&o),
        "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n"
    );
    assert_eq!(m.trace(), ["maildir /home/joe/Maildir"]);
    assert!(o.forward.is_none(), "nothing is forwarded after a failure");

    // The owner-execute bit: forward-only from the first line.
    let mut m = Mock::new();
    m.file("/home/joe/.qmail-l", 0o744, b"&a@x\n|echo no\n");
    let o = run(&mut m, "l", "s@x");
    assert_eq!(
        deferred(&o),
        "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)\n"
    );
    assert!(m.calls.is_empty());
    let mut m = Mock::new();
    m.file("/home/joe/.qmail-l", 0o744, b"a@x\nb@x\n");
    assert_eq!(run(&mut m, "l", "s@x").status, DeliveryStatus::Delivered);

    // An empty file with the x bit uses the default delivery, forward-only cleared.
    let mut m = Mock::new();
    m.file("/home/joe/.qmail-l", 0o744, b"");
    assert_eq!(run(&mut m, "l", "s@x").status, DeliveryStatus::Delivered);
    assert_eq!(m.trace(), ["maildir /home/joe/Maildir"]);
}

#[test]
fn owner_newsender_rules() {
    let newsender = |files: &[&str], ext: &str, sender: &str| -> (Vec<u8>, Vec<u8>) {
        let mut m = Mock::new();
        m.file("/home/joe/.qmail-list-default", 0o644, b"|prog\n&sub@x\n");
        m.file("/home/joe/.qmail-list", 0o644, b"|prog\n&sub@x\n");
        for f in files {
            m.file(&format!("/home/joe/{f}"), 0o644, b"x@y\n");
        }
        let o = run(&mut m, ext, sender);
        assert_eq!(o.status, DeliveryStatus::Delivered);
        let Call::Program { env, .. } = &m.calls[0] else {
            panic!()
        };
        let env_ns = env
            .iter()
            .find(|(k, _)| *k == "NEWSENDER")
            .unwrap()
            .1
            .clone();
        (env_ns, o.forward.unwrap().sender)
    };
    let check = |files: &[&str], ext: &str, sender: &str, want: &str| {
        let (env, fwd) = newsender(files, ext, sender);
        assert_eq!(
            String::from_utf8(env).unwrap(),
            want,
            "{files:?} {ext} {sender}"
        );
        assert_eq!(String::from_utf8(fwd).unwrap(), want);
    };
    check(&[], "list", "s@x", "s@x");
    check(
        &[".qmail-list-owner"],
        "list",
        "s@x",
        "joe-list-owner@example.com",
    );
    check(
        &[".qmail-list-owner", ".qmail-list-owner-default"],
        "list",
        "s@x",
        "joe-list-owner-@example.com-@[]",
    );
    // -owner-default alone does nothing.
    check(&[".qmail-list-owner-default"], "list", "s@x", "s@x");
    // Bounces keep their sender.
    check(&[".qmail-list-owner"], "list", "", "");
    check(&[".qmail-list-owner"], "list", "#@[]", "#@[]");
    // The check uses the address's own ext, even when a -default file matched.
    check(&[".qmail-list-owner"], "list-x", "s@x", "s@x");
    check(
        &[".qmail-list-x-owner"],
        "list-x",
        "s@x",
        "joe-list-x-owner@example.com",
    );
    // A transient error on the owner file defers.
    let mut m = Mock::new();
    m.file("/home/joe/.qmail-list", 0o644, b"&a@x\n");
    m.node("/home/joe/.qmail-list-owner", Node::Error(5));
    assert!(
        deferred(&run(&mut m, "list", "s@x")).starts_with("Unable to open .qmail-list-owner: ")
    );
}

#[test]
fn exit_codes_with_mock() {
    let cases: &[(&str, &str)] = &[
        ("exit 0", "K"),
        ("exit 99", "K99"),
        ("exit 100", "D"),
        ("exit 64", "D"),
        ("exit 65", "D"),
        ("exit 70", "D"),
        ("exit 76", "D"),
        ("exit 77", "D"),
        ("exit 78", "D"),
        ("exit 112", "D"),
        ("exit 111", "Z"),
        ("exit 1", "Z"),
        ("exit 75", "Z"),
        ("exit 255", "Z"),
        ("kill", "Zcrash"),
    ];
    for &(cmd, want) in cases {
        let mut m = Mock::new();
        let qmail = format!("&before@x\n|{cmd}\n./Maildir/\n&after@x\n");
        m.file("/home/joe/.qmail", 0o644, qmail.as_bytes());
        let o = run(&mut m, "", "s@x");
        let after_program: Vec<String> = m.trace().into_iter().skip(1).collect();
        match want {
            "K" => {
                assert_eq!(o.status, DeliveryStatus::Delivered);
                assert_eq!(after_program, ["maildir /home/joe/Maildir"]);
                assert_eq!(o.forward.unwrap().recipients.len(), 2);
            }
            "K99" => {
                assert_eq!(o.status, DeliveryStatus::Delivered);
                assert!(after_program.is_empty(), "99 skips the remaining lines");
                assert_eq!(o.forward.unwrap().recipients, [b"before@x".to_vec()]);
                assert_eq!(o.report, b"did 0+1+1\n");
            }
            "D" => {
                assert!(matches!(o.status, DeliveryStatus::Bounced(_)), "{cmd}");
                assert!(after_program.is_empty() && o.forward.is_none(), "{cmd}");
            }
            "Z" | "Zcrash" => {
                assert!(matches!(o.status, DeliveryStatus::Deferred(_)), "{cmd}");
                assert!(after_program.is_empty() && o.forward.is_none(), "{cmd}");
                if want == "Zcrash" {
                    assert_eq!(deferred(&o), "Aack, child crashed. (#4.3.0)\n");
                }
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn file_failures_and_blank_first_line() {
    let mut m = Mock::new();
    m.file("/home/joe/.qmail", 0o644, b"./A/\n./B/\n./C/\n");
    m.failing.push("/home/joe/B".into());
    let o = run(&mut m, "", "s@x");
    assert_eq!(
        deferred(&o),
        "Temporary error on maildir delivery. (#4.3.0)\n"
    );
    assert_eq!(
        m.trace(),
        ["maildir /home/joe/A"],
        "the first failure stops everything"
    );

    let mut m = Mock::new();
    m.file("/home/joe/.qmail", 0o644, b"\n./Maildir/\n");
    assert_eq!(
        deferred(&run(&mut m, "", "s@x")),
        "Uh-oh: first line of .qmail file is blank. (#4.2.1)\n"
    );
    assert!(m.calls.is_empty());
}

#[test]
fn report_is_capped_like_qmail_lspawn() {
    let mut m = Mock::new();
    m.file("/home/joe/.qmail", 0o644, b"|spew 5000\n|echo after\n");
    let o = run(&mut m, "", "s@x");
    assert_eq!(o.status, DeliveryStatus::Delivered);
    assert!(o.report.len() <= 3000, "{}", o.report.len());
    let tail = b"\nError report too long, sorry.\n";
    assert!(
        o.report.ends_with(tail),
        "{:?}",
        String::from_utf8_lossy(&o.report[o.report.len() - 60..])
    );
    assert_eq!(o.report.len(), 3000 - 3);
}

#[test]
fn trash_and_c_string_arguments() {
    // A NUL in an argument ends it, as in qmail's argv.
    let mut m = Mock::new();
    m.file("/home/joe/.qmail", 0o644, b"|prog\n");
    let o = run_with(&mut m, &joe(""), "joe\0junk", "s@x\0junk", MSG);
    assert_eq!(o.status, DeliveryStatus::Delivered);
    let Call::Program { env, .. } = &m.calls[0] else {
        panic!()
    };
    let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
    assert_eq!(get("RECIPIENT"), b"joe@example.com");
    assert_eq!(get("SENDER"), b"s@x");
}

#[test]
fn file_delivery_error_texts() {
    use mta_dotqmail::FileDeliveryError as E;
    use std::io::Error;
    type Case = (&'static [u8], fn() -> E, &'static str);
    let cases: &[Case] = &[
        (
            b"./Maildir/",
            || E::NoMaildir(Error::from_raw_os_error(2)),
            "Unable to chdir to maildir. (#4.2.1)\n",
        ),
        (
            b"./Maildir/",
            || E::ReadMessage(Error::from_raw_os_error(5)),
            "Unable to read message. (#4.3.0)\n",
        ),
        (
            b"./Maildir/",
            || E::Write(Error::from_raw_os_error(28)),
            "Temporary error on maildir delivery. (#4.3.0)\n",
        ),
        (
            b"./mbox",
            || E::Open(Error::from_raw_os_error(13)),
            "Unable to open ./mbox: permission denied. (#4.2.1)\n",
        ),
        (
            b"./mbox",
            || E::LockTimeout,
            "File has been locked for 30 seconds straight. (#4.3.0)\n",
        ),
        (
            b"./mbox",
            || E::ReadMessage(Error::from_raw_os_error(5)),
            "Unable to read message: input/output error. (#4.3.0)\n",
        ),
        (
            b"./mbox",
            || E::Write(Error::from_raw_os_error(28)),
            "Unable to write ./mbox: no space left on device. (#4.3.0)\n",
        ),
    ];
    for &(line, make, want) in cases {
        let mut m = Mock::new();
        m.file("/home/joe/.qmail", 0o644, &[line, b"\n"].concat());
        let target = if line.ends_with(b"/") {
            "/home/joe/Maildir"
        } else {
            "/home/joe/mbox"
        };
        m.file_errors.push((target.into(), make));
        assert_eq!(deferred(&run(&mut m, "", "s@x")), want);
    }
}

/// A maildir's three directories, for explain mode's existence check.
fn maildir_dirs(m: &mut Mock, dir: &str) {
    for sub in ["", "/tmp", "/new"] {
        m.dir(&format!("{dir}{sub}"), 0o700);
    }
}

/// Issue 21: explain said "maildir ./Maildir/" and "did 1+0+0" for a maildir that does
/// not exist, where the real delivery defers. It now says so, and stops there.
#[test]
fn explain_reports_a_missing_maildir_as_a_deferral() {
    let user = joe("");
    let request = DeliveryRequest {
        user: &user,
        local: b"joe",
        domain: b"example.com",
        sender: b"",
        default_delivery: b"./Maildir/\n&bob@example.org\n",
        now: 0,
    };
    let mut m = Mock::new();
    let o = explain(&mut m, &request, &DeliveryOptions::default());
    assert_eq!(
        String::from_utf8_lossy(&o.report),
        "maildir ./Maildir/\nwould defer: maildir ./Maildir/ does not exist. (#4.2.1)\n"
    );
    // (SystemExecutor's maildir delivery defers there with "Unable to chdir to maildir.")
    assert!(matches!(o.status, DeliveryStatus::Deferred(_)));
    assert!(m.calls.is_empty());

    // A maildir without new/: also a deferral.
    let mut m = Mock::new();
    m.dir("/home/joe/Maildir", 0o700)
        .dir("/home/joe/Maildir/tmp", 0o700);
    let o = explain(&mut m, &request, &DeliveryOptions::default());
    assert!(String::from_utf8_lossy(&o.report).contains("has no new/"));

    // An mbox in a missing directory.
    let request = DeliveryRequest {
        default_delivery: b"/var/nomail/joe\n",
        ..request
    };
    let o = explain(&mut Mock::new(), &request, &DeliveryOptions::default());
    assert_eq!(
        String::from_utf8_lossy(&o.report),
        "mbox /var/nomail/joe\nwould defer: the directory of mbox /var/nomail/joe does not exist. (#4.2.1)\n"
    );

    // All there: delivered, as before.
    let mut m = Mock::new();
    maildir_dirs(&mut m, "/home/joe/Maildir");
    let request = DeliveryRequest {
        default_delivery: b"./Maildir/\n",
        ..request
    };
    let o = explain(&mut m, &request, &DeliveryOptions::default());
    assert_eq!(o.report, b"maildir ./Maildir/\ndid 1+0+0\n");
    assert_eq!(o.status, DeliveryStatus::Delivered);
}
