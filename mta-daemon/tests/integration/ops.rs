//! Operating the server (issue 20): the Prometheus endpoint and the graceful stop.

// Counter values are small integers, exact in an f64.
#![allow(clippy::float_cmp)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::serve::{BODY, add_user, send};
use crate::support::*;

/// One HTTP exchange with the metrics endpoint: the raw request in, (status line, body) out.
fn http(addr: SocketAddr, request: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of header");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    let status = head.lines().next().unwrap().to_owned();
    (status, body.to_owned())
}

/// A strict parser of the text exposition (OpenMetrics 1.0, which prometheus-client
/// writes): every line is `# HELP`, `# TYPE`, `# UNIT`, a sample of a declared family, or
/// the final `# EOF`. Returns each sample as `name{labels}` (labels as written) → value.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let body = text.strip_suffix("# EOF\n").expect("ends with # EOF");
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap());
            match kind {
                "TYPE" => {
                    let t = parts.next().unwrap();
                    assert!(
                        ["counter", "gauge", "histogram", "info", "unknown"].contains(&t),
                        "{line}"
                    );
                    assert!(types.insert(name.to_owned(), t.to_owned()).is_none());
                }
                "HELP" | "UNIT" => {}
                _ => panic!("unknown comment line {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').expect("label=value");
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                assert!(v.starts_with('"') && v.ends_with('"') && v.len() >= 2);
            }
        }
        let family = ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        let t = types
            .get(family)
            .unwrap_or_else(|| panic!("sample of undeclared family: {line:?}"));
        if t == "counter" {
            assert!(
                name.ends_with("_total") || name.ends_with("_created"),
                "{line}"
            );
        }
        assert!(samples.insert(series.to_owned(), value).is_none(), "{line}");
    }
    samples
}

fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    parse_exposition(&body)
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no {series} in {m:#?}"))
}

#[test]
fn metrics_move_with_a_delivery() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let mport = free_port();
    root.control("metrics", &format!("127.0.0.1:{mport}\n"));
    let server = root.serve();
    let maddr = SocketAddr::from(([127, 0, 0, 1], mport));
    assert!(server.wait_log("status: metrics on", 1, 10));

    // The readiness probe's session is counted once accepted, and may still be ending.
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = loop {
        let m = scrape(maddr);
        let probe_done = value(&m, "mta_smtp_sessions_total") >= 1.0
            && value(&m, "mta_smtp_sessions_active") == 0.0;
        if probe_done || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for g in [
        "mta_queue_messages",
        "mta_queue_oldest_seconds",
        "mta_smtp_sessions_active",
    ] {
        assert_eq!(value(&before, g), 0.0, "{g}");
    }
    assert_eq!(value(&before, "mta_smtp_messages_total"), 0.0);
    assert_eq!(
        value(
            &before,
            "mta_deliveries_total{channel=\"local\",result=\"success\"}"
        ),
        0.0
    );
    assert_eq!(value(&before, "mta_delivery_seconds_count"), 0.0);
    assert_eq!(value(&before, "mta_smtp_tls_total"), 0.0);
    assert_eq!(value(&before, "mta_smtp_auth_total{result=\"fail\"}"), 0.0);
    assert_eq!(
        value(&before, "mta_smtp_rejects_total{reason=\"unknown_user\"}"),
        0.0
    );

    // One delivered message, one unknown recipient refused at RCPT.
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert!(
        send(&root, "a@example.net", &["nobody-here@example.org"], BODY).starts_with("REFUSED"),
    );
    assert!(wait_maildir(&joe.join("Maildir"), 1, 20));
    assert!(server.wait_log("end msg", 1, 10), "{}", server.log_text());

    // The scheduler logs `end msg` just before it drops the message from the queue gauge.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = scrape(maddr);
    while value(&after, "mta_queue_messages") != 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        after = scrape(maddr);
    }
    assert_eq!(
        value(&after, "mta_smtp_sessions_total") - value(&before, "mta_smtp_sessions_total"),
        2.0,
        "two smtplib sessions"
    );
    assert_eq!(value(&after, "mta_smtp_messages_total"), 1.0);
    assert_eq!(
        value(
            &after,
            "mta_deliveries_total{channel=\"local\",result=\"success\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "mta_deliveries_total{channel=\"remote\",result=\"deferral\"}"
        ),
        0.0
    );
    assert_eq!(value(&after, "mta_delivery_seconds_count"), 1.0);
    assert_eq!(
        value(&after, "mta_delivery_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert_eq!(
        value(&after, "mta_smtp_rejects_total{reason=\"unknown_user\"}"),
        1.0
    );
    assert_eq!(
        value(&after, "mta_queue_messages"),
        0.0,
        "delivered and removed"
    );
}

#[test]
fn metrics_listener_answers_only_get_metrics() {
    let root = TestRoot::new();
    let mport = free_port();
    root.control("metrics", &format!("127.0.0.1:{mport}\n"));
    let server = root.serve();
    let maddr = SocketAddr::from(([127, 0, 0, 1], mport));
    assert!(server.wait_log("status: metrics on", 1, 10));
    let (status, _) = http(maddr, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(
        maddr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, _) = http(maddr, b"EHLO example.org\r\n");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    // A client that sends half a request and waits is cut off, and does not block
    // the next scraper for long.
    let mut slow = TcpStream::connect(maddr).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    let t = Instant::now();
    let (status, body) = http(maddr, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(body.contains("mta_queue_messages"));
    // Queued, not yet delivered: a message for a remote host that cannot be reached.
    assert_eq!(
        send(&root, "a@example.net", &["x@remote.example"], BODY),
        "OK []"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(maddr);
        if value(&m, "mta_queue_messages") == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{m:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to the server without waiting.
fn sigterm(server: &Server) {
    let st = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Waits for the server to exit; its exit code and how long it took.
fn wait_exit(server: &mut Server, secs: u64) -> (Option<i32>, Duration) {
    let t = Instant::now();
    let mut child = server.child.take().unwrap();
    while t.elapsed() < Duration::from_secs(secs) {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code(), t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, t.elapsed())
}

fn connect(root: &TestRoot) -> TcpStream {
    let mut s = TcpStream::connect(root.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(read_reply(&mut s).starts_with("220 "));
    s
}

fn command(s: &mut TcpStream, line: &str) -> String {
    s.write_all(line.as_bytes()).unwrap();
    read_reply(s)
}

#[test]
fn sigterm_answers_open_sessions_421_and_exits_0() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let mut server = root.serve();
    // An idle session, and one in the middle of DATA.
    let mut idle = connect(&root);
    assert!(command(&mut idle, "EHLO client.example\r\n").starts_with("250"));
    let mut in_data = connect(&root);
    assert!(command(&mut in_data, "HELO client.example\r\n").starts_with("250 "));
    assert!(command(&mut in_data, "MAIL FROM:<a@example.net>\r\n").starts_with("250 "));
    assert!(command(&mut in_data, "RCPT TO:<joe@example.org>\r\n").starts_with("250 "));
    assert!(command(&mut in_data, "DATA\r\n").starts_with("354 "));
    in_data
        .write_all(b"Subject: never queued\r\n\r\nhalf a message\r\n")
        .unwrap();
    // A message accepted before the signal: 250, so it must not be lost.
    let mut accepted = connect(&root);
    assert!(command(&mut accepted, "HELO client.example\r\n").starts_with("250 "));
    assert!(command(&mut accepted, "MAIL FROM:<a@example.net>\r\n").starts_with("250 "));
    assert!(command(&mut accepted, "RCPT TO:<joe@example.org>\r\n").starts_with("250 "));
    assert!(command(&mut accepted, "DATA\r\n").starts_with("354 "));
    let r = command(
        &mut accepted,
        "Subject: accepted\r\n\r\nqueued before the stop\r\n.\r\n",
    );
    assert!(r.starts_with("250 "), "{r}");

    sigterm(&server);
    for s in [&mut idle, &mut in_data, &mut accepted] {
        let r = read_reply(s);
        assert!(r.starts_with("421 4.3.2 "), "{r:?}\n{}", server.log_text());
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "closed after 421");
    }
    let (code, took) = wait_exit(&mut server, 15);
    assert_eq!(code, Some(0), "{}", server.log_text());
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The accepted message is delivered, before the exit or after a restart; the voided
    // one never is.
    let server = root.serve();
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let msgs = maildir_messages(&joe.join("Maildir"));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("queued before the stop"), "{msgs:?}");
    let out = mta(&root.dir, &["queue", "stat"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "messages in queue: 0\nmessages in queue but not yet preprocessed: 0\n"
    );
}

#[test]
fn sigterm_waits_a_bounded_time_for_deliveries_in_flight() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    crate::serve::write_qmail(&joe, ".qmail", "|sleep 20\n");
    let mut server = root.serve();
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert!(server.wait_log("starting delivery 1", 1, 10));
    sigterm(&server);
    let (code, took) = wait_exit(&mut server, 30);
    assert_eq!(code, Some(0), "{}", server.log_text());
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert!(
        server.log_text().contains("deliveries still running"),
        "{}",
        server.log_text()
    );
    // Not marked: still queued for the next start.
    let out = mta(&root.dir, &["queue", "stat"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("messages in queue: 1\n"),
        "{out:?}"
    );
}

/// `mta queue ...` against the running server; (exit code, stdout, stderr).
fn queue_cmd(root: &TestRoot, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    let out = mta(&root.dir, &all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `queue list --json` read by Python's json module, as `id sender held state,state...`
/// lines (attempts and the types of next_retry and last_error checked there too).
fn json_listing(root: &TestRoot) -> Vec<String> {
    let (code, out, err) = queue_cmd(root, &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let check = r#"
import json, sys
for m in json.loads(sys.argv[1]):
    assert isinstance(m["id"], str) and isinstance(m["size"], int) and isinstance(m["received"], int)
    for r in m["recipients"]:
        assert set(r) == {"address", "state", "attempts", "next_retry", "last_error"}, r
        if r["state"] == "deferred":
            assert r["attempts"] >= 1 and isinstance(r["next_retry"], int) and isinstance(r["last_error"], str), r
    states = ",".join(r["state"] for r in m["recipients"])
    print(m["id"], m["sender"], m["held"], states)
"#;
    let (code, lines, err) = python(check, &[&out]);
    assert_eq!(code, 0, "{err}\n{out}");
    lines.lines().map(str::to_owned).collect()
}

/// Every queue command on a running server, with its exact effect: a held message is not
/// attempted by `flush`, is delivered once released; deletions by id, sender and
/// recipient leave no bounce; `list --json` parses with Python's json.
#[test]
fn queue_commands_on_a_running_server() {
    let root = TestRoot::new();
    // Remote mail for b.example goes to a closed port first: every attempt defers.
    let dead = free_port();
    root.control("smtproutes", &format!("b.example:127.0.0.1:{dead}\n"));
    let mut server = root.serve();
    for (from, to) in [
        ("alice@example.net", "x@b.example"),
        ("bob@example.net", "y@b.example"),
        ("carol@example.net", "z@b.example"),
        ("dave@example.net", "w@b.example"),
    ] {
        assert_eq!(send(&root, from, &[to], BODY), "OK []");
    }
    assert!(server.wait_log("deferral", 4, 30), "{}", server.log_text());
    let listing = json_listing(&root);
    assert_eq!(listing.len(), 4, "{listing:?}");
    let id_of = |sender: &str| -> String {
        listing
            .iter()
            .find(|l| l.split(' ').nth(1) == Some(sender))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("{sender} not in {listing:?}"))
            .to_owned()
    };
    let (alice, bob) = (id_of("alice@example.net"), id_of("bob@example.net"));
    assert!(
        listing.iter().all(|l| l.ends_with("False deferred")),
        "{listing:?}"
    );

    // Hold alice's message: shown as held, in JSON and in `show`.
    let (code, out, err) = queue_cmd(&root, &["hold", &alice]);
    assert_eq!(
        (code, out.as_str()),
        (0, format!("held {alice}\n").as_str()),
        "{err}"
    );
    let (code, out, _) = queue_cmd(&root, &["show", &alice]);
    assert_eq!(code, 0);
    assert!(out.contains("held: yes"), "{out}");
    assert!(out.contains("sender: <alice@example.net>"), "{out}");
    assert!(
        out.contains("recipient: remote <x@b.example> deferred, 1 attempts"),
        "{out}"
    );
    assert!(out.contains("Subject:"), "{out}");
    assert!(json_listing(&root).contains(&format!("{alice} alice@example.net True deferred")));
    let (code, out, _) = queue_cmd(&root, &["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("#{alice} ")) && out.contains(" held\n"),
        "{out}"
    );

    // Another local account (not the queue's, which is `nobody` here) may not use the
    // control socket.
    if rustix::process::geteuid().is_root() && std::path::Path::new("/usr/bin/setpriv").exists() {
        let out = std::process::Command::new("/usr/bin/setpriv")
            .args([
                "--reuid=4242",
                "--regid=4242",
                "--clear-groups",
                MTA,
                "--root",
            ])
            .arg(&root.dir)
            .args(["queue", "delete", &alice])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        assert!(json_listing(&root).iter().any(|l| l.starts_with(&alice)));
    }

    // Deletions by id, by sender and by recipient; none bounces.
    let (code, out, err) = queue_cmd(&root, &["delete", &bob]);
    assert_eq!((code, out), (0, format!("deleted {bob}\n")), "{err}");
    let (code, _, err) = queue_cmd(&root, &["delete", "--from", "CAROL@example.net"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = queue_cmd(&root, &["delete", "--to", "w@b.example"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = queue_cmd(&root, &["delete", &bob]);
    assert_eq!(code, 1, "a second delete is refused");
    assert!(err.contains("not in the queue"), "{err}");
    assert_eq!(
        json_listing(&root),
        [format!("{alice} alice@example.net True deferred")]
    );

    // b.example now reachable (a second server); flush does not touch the held message.
    let other = TestRoot::new();
    other.control("me", "b.example\n");
    other.control("locals", "b.example\n");
    other.control("rcpthosts", "b.example\n");
    let x = add_user(&other, "x");
    let _other_server = other.serve();
    root.control(
        "smtproutes",
        &format!("b.example:127.0.0.1:{}\n", other.port),
    );
    assert!(
        server.wait_log("status: queue reloaded configuration", 1, 10),
        "{}",
        server.log_text()
    );
    let (code, _, err) = queue_cmd(&root, &["flush"]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(Duration::from_secs(2));
    let starts = |log: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("msg {alice} to remote")))
            .count()
    };
    assert_eq!(starts(&server.log_text()), 1, "{}", server.log_text());
    assert!(maildir_messages(&x.join("Maildir")).is_empty());

    // Released: tried at its recorded retry time, or at once with a flush.
    let (code, out, err) = queue_cmd(&root, &["release", &alice]);
    assert_eq!((code, out), (0, format!("released {alice}\n")), "{err}");
    let (code, _, err) = queue_cmd(&root, &["flush"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_maildir(&x.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !json_listing(&root).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(json_listing(&root).is_empty());
    let log = server.log_text();
    assert!(!log.contains("bounce msg"), "{log}");

    // A hold survives a restart, and without a server the commands work on the queue
    // directly (under its lock).
    root.control("smtproutes", &format!("b.example:127.0.0.1:{dead}\n"));
    assert!(
        server.wait_log("status: queue reloaded configuration", 2, 10),
        "{}",
        server.log_text()
    );
    assert_eq!(
        send(&root, "frank@example.net", &["f@b.example"], BODY),
        "OK []"
    );
    assert!(server.wait_log("deferral", 5, 30), "{}", server.log_text());
    assert_eq!(server.stop(), Some(0));
    let listing = json_listing(&root);
    assert_eq!(listing.len(), 1, "{listing:?}");
    let frank = listing[0].split(' ').next().unwrap().to_owned();
    let (code, out, err) = queue_cmd(&root, &["hold", &frank]);
    assert_eq!((code, out), (0, format!("held {frank}\n")), "{err}");
    let mut again = root.serve();
    let (code, _, err) = queue_cmd(&root, &["flush"]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        json_listing(&root),
        [format!("{frank} frank@example.net True deferred")]
    );
    assert!(
        !again.log_text().contains("starting delivery"),
        "{}",
        again.log_text()
    );
    assert_eq!(again.stop(), Some(0));
    let (code, out, err) = queue_cmd(&root, &["delete", "--to", "F@B.EXAMPLE"]);
    assert_eq!((code, out), (0, format!("deleted {frank}\n")), "{err}");
    assert!(json_listing(&root).is_empty());
}

/// The queue process writes its log lines together (`log::delay_writes`): none may be
/// lost or come out of order. Thirty messages from three concurrent clients: each one's
/// `new msg`, `info msg`, `starting delivery` and `end msg` are all in the log, in that
/// order, once the deliveries are done (at once, since the queue then has nothing to do).
#[test]
fn the_queue_log_keeps_every_line_and_its_order() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let server = root.serve();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..10 {
                    assert!(
                        send(&root, "a@example.net", &["joe@example.org"], BODY).starts_with("OK")
                    );
                }
            });
        }
    });
    assert!(
        wait_maildir(&joe.join("Maildir"), 30, 30),
        "{}",
        server.log_text()
    );
    assert!(
        server.wait_log(" end msg ", 30, 10),
        "{}",
        server.log_text()
    );
    let log = server.log_text();
    let ids: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(" new msg ").map(|(_, id)| id))
        .collect();
    assert_eq!(ids.len(), 30, "{log}");
    for id in ids {
        let at = |what: &str| {
            let needle = format!("{what}{id}");
            log.lines()
                .position(|l| {
                    l.ends_with(&needle)
                        || l.contains(&format!("{needle}:"))
                        || l.contains(&format!("{needle} "))
                })
                .unwrap_or_else(|| panic!("no {needle:?} in\n{log}"))
        };
        let (new, info, start, end) = (
            at(" new msg "),
            at(" info msg "),
            at(": msg "),
            at(" end msg "),
        );
        assert!(
            new < info && info < start && start < end,
            "{id}: {new} {info} {start} {end}\n{log}"
        );
    }
}
