//! What an abusive client or a careless local user gets (design.md "Limits"): each limit
//! with a small control value, against the real daemon on loopback, plus a load test of
//! idle and slow-drip connections from many source addresses.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::serve::{BODY, add_user, send, test_ids, write_qmail};
use crate::support::*;

/// A connection to `to` from the loopback address `from` (any of 127.0.0.0/8).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddr::from((from, 0)))?;
    connect(&fd, &to)?;
    Ok(TcpStream::from(fd))
}

/// Reads until EOF or `limit`; returns what came and whether EOF was seen.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

/// Writes `next()` then waits 100 ms for an answer, at most `rounds` times, until the
/// server closes the connection; the only thing it may say is `421 4.4.2 timeout`. Returns
/// how long after the first write it closed (`None`: still open).
fn trickle_until_closed(
    s: &mut TcpStream,
    mut next: impl FnMut() -> Vec<u8>,
    rounds: usize,
) -> Option<Duration> {
    let t = Instant::now();
    for _ in 0..rounds {
        if s.write_all(&next()).is_err() {
            return Some(t.elapsed());
        }
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => return Some(t.elapsed()),
            Ok(n) => assert_eq!(&buf[..n], b"421 4.4.2 timeout\r\n"),
            Err(_) => {}
        }
    }
    None
}

fn greeting(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    read_reply(s)
}

#[test]
fn silent_client_gets_421_after_timeoutsmtpd() {
    let root = TestRoot::new();
    root.control("timeoutsmtpd", "2\n");
    let server = root.serve();
    let mut s = TcpStream::connect(root.addr()).unwrap();
    assert!(greeting(&mut s).starts_with("220 "));
    let t = Instant::now();
    let (got, closed) = read_to_close(&mut s, Duration::from_secs(15));
    assert!(closed, "still open after 15 s: {got:?}");
    assert_eq!(got, "421 4.4.2 timeout\r\n");
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(1500), "early: {waited:?}");
    assert!(
        server.wait_log("smtp: refused 127.0.0.1: timeout (timeoutsmtpd 2)", 1, 5),
        "{}",
        server.log_text()
    );
}

#[test]
fn dripping_client_is_closed_at_the_deadline() {
    let root = TestRoot::new();
    root.control("timeoutsmtpd", "2\n");
    let server = root.serve();
    let mut s = TcpStream::connect(root.addr()).unwrap();
    assert!(greeting(&mut s).starts_with("220 "));
    s.write_all(b"HELO drip.example\r\n").unwrap();
    assert!(read_reply(&mut s).starts_with("250 "));
    // One byte every 100 ms of a command line that never ends.
    let mut line = b"MAIL FROM:<"
        .iter()
        .copied()
        .chain(std::iter::repeat(b'a'));
    let closed_after = trickle_until_closed(&mut s, || vec![line.next().unwrap_or(b'a')], 200);
    let closed_after = closed_after.expect("a dripping client held its session for 20 s");
    assert!(
        closed_after < Duration::from_secs(6),
        "closed only after {closed_after:?}"
    );
    assert!(server.wait_log("timeout (timeoutsmtpd 2)", 1, 5));
}

#[test]
fn slow_data_below_mindatarate_is_cut_off() {
    let root = TestRoot::new();
    root.control("timeoutsmtpd", "2\n");
    root.control("mindatarate", "1000\n");
    let joe = add_user(&root, "joe");
    let server = root.serve();
    let mut s = TcpStream::connect(root.addr()).unwrap();
    assert!(greeting(&mut s).starts_with("220 "));
    s.write_all(
        b"HELO slow.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<joe@example.org>\r\nDATA\r\n",
    )
    .unwrap();
    for _ in 0..4 {
        read_reply(&mut s);
    }
    // 100 bytes a second: far below 1000 bytes/s once the 2 s grace is over.
    let cut = trickle_until_closed(&mut s, || b"0123456789".to_vec(), 200);
    let cut = cut.expect("a trickle of DATA held the session for 20 s");
    assert!(cut < Duration::from_secs(6), "cut only after {cut:?}");
    assert!(server.wait_log("refused 127.0.0.1: timeout", 1, 5));
    // Nothing of the trickled message was queued.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !server.log_text().contains("new msg"),
        "{}",
        server.log_text()
    );
    assert!(maildir_messages(&joe.join("Maildir")).is_empty());
}

#[test]
fn concurrencyperip_refuses_the_fourth_connection_from_one_address() {
    let root = TestRoot::new();
    root.control("concurrencyperip", "3\n");
    let server = root.serve();
    let from = Ipv4Addr::LOCALHOST;
    // The readiness probe's session may still hold a slot for a moment: retry until three
    // sessions are greeted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = Vec::new();
    while held.len() < 3 {
        let mut s = connect_from(from, root.addr()).unwrap();
        if greeting(&mut s).starts_with("220 ") {
            held.push(s);
        } else {
            assert!(Instant::now() < deadline, "three sessions never fitted");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut fourth = connect_from(from, root.addr()).unwrap();
    let (got, closed) = read_to_close(&mut fourth, Duration::from_secs(5));
    assert!(closed, "the fourth connection stayed open");
    assert!(got.starts_with("421 4.7.0 "), "{got:?}");
    // Another client address is still served.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), root.addr()).unwrap();
    assert!(greeting(&mut other).starts_with("220 "));
    assert!(
        server.wait_log(
            "smtp: refused 127.0.0.1: too_many_from_ip (concurrencyperip 3)",
            1,
            5
        ),
        "{}",
        server.log_text()
    );
    // A slot comes back when a session ends.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from(from, root.addr()).unwrap();
        if greeting(&mut again).starts_with("220 ") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn maxrcpt_refuses_extra_recipients_with_452() {
    let root = TestRoot::new();
    root.control("maxrcpt", "3\n");
    let joe = add_user(&root, "joe");
    write_qmail(&joe, ".qmail-default", "./Maildir/\n");
    let server = root.serve();
    let to: Vec<String> = (1..=5).map(|i| format!("joe-{i}@example.org")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    assert_eq!(
        send(&root, "a@example.net", &to, BODY),
        "OK [('joe-4@example.org', 452), ('joe-5@example.org', 452)]"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 3, 20),
        "{}",
        server.log_text()
    );
    assert!(server.wait_log("too_many_recipients (maxrcpt 3)", 2, 5));
}

#[test]
fn duplicate_recipients_are_delivered_once() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let server = root.serve();
    let to = [
        "joe@example.org",
        "joe@example.org",
        "joe@EXAMPLE.ORG",
        "joe@example.org",
    ];
    assert_eq!(send(&root, "a@example.net", &to, BODY), "OK []");
    assert!(server.wait_log("end msg", 1, 20), "{}", server.log_text());
    assert_eq!(maildir_messages(&joe.join("Maildir")).len(), 1);
    let log = server.log_text();
    assert_eq!(log.matches("starting delivery").count(), 1, "{log}");
}

#[test]
fn maxerrors_ends_an_address_harvest() {
    let root = TestRoot::new();
    root.control("maxerrors", "3\n");
    let server = root.serve();
    let mut s = TcpStream::connect(root.addr()).unwrap();
    assert!(greeting(&mut s).starts_with("220 "));
    let mut script = b"EHLO harvester.example\r\nMAIL FROM:<h@example.net>\r\n".to_vec();
    for i in 0..50 {
        script.extend_from_slice(format!("RCPT TO:<guess{i}@example.org>\r\n").as_bytes());
    }
    // The server may close while we still write: that is the point.
    let _ = s.write_all(&script);
    let (got, closed) = read_to_close(&mut s, Duration::from_secs(10));
    assert!(closed, "session not ended: {got}");
    assert_eq!(got.matches("550 5.1.1").count(), 3, "{got}");
    assert!(got.ends_with("421 4.7.0 too many errors\r\n"), "{got}");
    assert!(server.wait_log("too_many_errors (maxerrors 3)", 1, 5));
    assert_eq!(server.log_text().matches("unknown_user").count(), 3);
}

#[test]
fn fresh_init_refuses_an_unknown_local_user() {
    let root = TestRoot::new();
    let _server = root.serve();
    let mut s = TcpStream::connect(root.addr()).unwrap();
    assert!(greeting(&mut s).starts_with("220 "));
    s.write_all(b"HELO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<nosuch@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nQUIT\r\n")
        .unwrap();
    let (got, _) = read_to_close(&mut s, Duration::from_secs(10));
    let lines: Vec<&str> = got.lines().collect();
    assert!(
        lines[2].starts_with("550 5.1.1 "),
        "unknown user not refused: {got}"
    );
    assert!(lines[3].starts_with("250 "), "postmaster refused: {got}");
}

#[test]
fn program_past_timeoutlocal_is_killed_and_deferred() {
    let root = TestRoot::new();
    root.control("timeoutlocal", "1\n");
    let joe = add_user(&root, "joe");
    let pidfile = joe.join("bg.pid");
    write_qmail(
        &joe,
        ".qmail-slow",
        &format!(
            "|sleep 1000 & echo $! > {}; sleep 1000000\n",
            pidfile.display()
        ),
    );
    let server = root.serve();
    let started = Instant::now();
    assert_eq!(
        send(&root, "a@example.net", &["joe-slow@example.org"], BODY),
        "OK []"
    );
    assert!(server.wait_log("deferral", 1, 30), "{}", server.log_text());
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        server.log_text().contains("timeoutlocal"),
        "{}",
        server.log_text()
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let pid = pid.trim();
    let gone = (0..100).any(|_| {
        let alive =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        if alive {
            std::thread::sleep(Duration::from_millis(20));
        }
        !alive
    });
    assert!(gone, "the program's background child {pid} survived");
}

#[test]
fn fifo_mbox_defers_while_other_deliveries_go_through() {
    let root = TestRoot::new();
    root.control("concurrencylocal", "1\n");
    let joe = add_user(&root, "joe");
    let bob = add_user(&root, "bob");
    write_qmail(&bob, ".qmail", "./Mailbox\n");
    let fifo = bob.join("Mailbox");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let (uid, gid) = test_ids();
    crate::serve::chown_tree(&fifo, uid, gid);
    let server = root.serve();
    // A message bigger than a pipe's buffer, to bob first, then one to joe.
    let big = format!("{BODY}{}", format!("{}\r\n", "x".repeat(999)).repeat(100));
    assert_eq!(
        send(&root, "a@example.net", &["bob@example.org"], &big),
        "OK []"
    );
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "joe's delivery waited behind the FIFO: {}",
        server.log_text()
    );
    assert!(
        server.wait_log("not_a_regular_file", 1, 10),
        "{}",
        server.log_text()
    );
}

#[test]
fn private_home_user_is_accepted_at_rcpt_and_delivered() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    // Only joe may search his home; the SMTP server (an unprivileged account when the
    // tests run as root) cannot look for his .qmail files.
    std::fs::set_permissions(&joe, std::fs::Permissions::from_mode(0o700)).unwrap();
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
}

/// Raises this process's open-file limit so the load test can hold its sockets.
fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let max = lim.maximum.unwrap_or(want);
    let cur = want.min(max);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(cur),
            maximum: lim.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(cur)
}

/// 1,000 idle connections from 100 addresses and 200 slow-drip ones from 20 more: a
/// well-behaved client is still greeted at once (the bound, 3 s, leaves room for a loaded
/// machine and stays well under the 8 s a shut-out client would wait for the crowd's
/// deadline) and delivers, and once the deadline passes every abusive connection is gone.
/// Sizes: `LOAD_IDLE`, `LOAD_DRIP`.
#[test]
fn idle_and_dripping_crowd_does_not_shut_out_a_real_client() {
    let idle_n: usize = std::env::var("LOAD_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let drip_n: usize = std::env::var("LOAD_DRIP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let have = raise_nofile(((idle_n + drip_n) * 2 + 256) as u64);
    let (idle_n, drip_n) = if have < ((idle_n + drip_n) + 128) as u64 {
        eprintln!("open-file limit {have}: load test scaled down");
        let scale = (have as usize).saturating_sub(128) / (idle_n + drip_n).max(1);
        (idle_n * scale, drip_n * scale)
    } else {
        (idle_n, drip_n)
    };
    let root = TestRoot::new();
    let timeout = 8;
    root.control("timeoutsmtpd", &format!("{timeout}\n"));
    root.control(
        "concurrencyincoming",
        &format!("{}\n", idle_n + drip_n + 50),
    );
    root.control("concurrencyperip", "10\n");
    let joe = add_user(&root, "joe");
    let server = root.serve();
    let addr = root.addr();
    let source = |block: u8, i: usize| {
        Ipv4Addr::new(127, block, (i / 10 / 250) as u8, (i / 10 % 250 + 1) as u8)
    };

    let t0 = Instant::now();
    let mut idle = Vec::with_capacity(idle_n);
    for i in 0..idle_n {
        idle.push(connect_from(source(1, i), addr).unwrap());
    }
    let mut drips = Vec::with_capacity(drip_n);
    for i in 0..drip_n {
        drips.push(connect_from(source(2, i), addr).unwrap());
    }
    let opened = t0.elapsed();
    // The drippers send one byte of a never-ending line every 200 ms until closed.
    let dripper = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_mins(1);
        let mut open: Vec<TcpStream> = drips;
        for s in &open {
            s.set_nonblocking(true).unwrap();
        }
        let mut sent = 0u64;
        while !open.is_empty() && Instant::now() < until {
            open.retain_mut(|s| {
                let mut buf = [0u8; 256];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return false,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => return false,
                    }
                }
                sent += 1;
                s.write_all(b"x").is_ok()
            });
            std::thread::sleep(Duration::from_millis(200));
        }
        (open.len(), sent)
    });

    // A well-behaved client among them.
    let t = Instant::now();
    let mut good = TcpStream::connect(addr).unwrap();
    let hello = greeting(&mut good);
    let greeted = t.elapsed();
    assert!(hello.starts_with("220 "), "{hello}");
    assert!(
        greeted < Duration::from_secs(3),
        "greeting took {greeted:?}"
    );
    drop(good);
    let t = Instant::now();
    assert_eq!(
        send(&root, "a@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    let delivered_in = t.elapsed();
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );

    // After the deadline, every idle connection is answered 421 and closed.
    let mut closed = 0;
    let mut deadline_reply = 0;
    let check_until = Instant::now() + Duration::from_secs(timeout + 20);
    for s in &mut idle {
        let left = check_until.saturating_duration_since(Instant::now());
        let (got, eof) = read_to_close(s, left.max(Duration::from_millis(10)));
        closed += usize::from(eof);
        deadline_reply += usize::from(got.contains("421 4.4.2 timeout"));
    }
    let idle_gone = t0.elapsed();
    let (drips_open, bytes_dripped) = dripper.join().unwrap();
    let all_gone = t0.elapsed();
    eprintln!(
        "load: {idle_n} idle + {drip_n} drip connections opened in {opened:?}; good client \
         greeted in {greeted:?}, delivered in {delivered_in:?}; idle closed {closed}/{idle_n} \
         ({deadline_reply} with 421) by {idle_gone:?}; drips still open {drips_open} after \
         {bytes_dripped} bytes, by {all_gone:?} (timeoutsmtpd {timeout} s)"
    );
    assert_eq!(closed, idle_n, "idle connections left open");
    assert_eq!(deadline_reply, idle_n);
    assert_eq!(drips_open, 0, "dripping connections left open");
}

/// CPU time (user + system, all threads) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let tail = stat.rsplit_once(") ").unwrap().1;
    let fields: Vec<&str> = tail.split(' ').collect();
    // After the command: state is field 3 of stat(5), utime 14 and stime 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The SMTP process out of descriptors (the server's open-file limit set to 64; the SMTP
/// process holds about a dozen at rest, one per session): a connection past the limit
/// waits in the listen queue, unanswered; the acceptor pauses between `accept` calls
/// instead of retrying at once (which kept one CPU busy for as long as the shortage
/// lasted), says so once in the log, and greets the waiting client once a descriptor
/// comes free.
#[test]
fn acceptor_out_of_descriptors_pauses_instead_of_spinning() {
    let root = TestRoot::new();
    root.control("concurrencyperip", "200\n");
    root.control("concurrencyincoming", "200\n");
    let mut server = root.serve_with_nofile(64);
    let smtpd = crate::processes::wait_role(server.pid(), "smtpd");
    // Sessions until one is not greeted: the SMTP process has no descriptor left for it.
    let mut greeted = Vec::new();
    let waiting = loop {
        let mut s = TcpStream::connect(root.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        if !read_reply(&mut s).starts_with("220 ") {
            break s;
        }
        greeted.push(s);
        assert!(greeted.len() < 64, "the open-file limit was never reached");
    };
    let before = cpu_ticks(smtpd);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(smtpd) - before;
    // Retrying at once costs about 200 ticks (a CPU for 2 s at 100 ticks a second); the
    // paced loop tries about once a second by now.
    assert!(used < 40, "the acceptor spun: {used} ticks in 2 s");
    assert!(
        server.wait_log("warning: smtp: accept: ", 1, 5),
        "{}",
        server.log_text()
    );
    assert_eq!(
        server.log_text().matches("warning: smtp: accept: ").count(),
        1,
        "logged once per shortage: {}",
        server.log_text()
    );
    // Descriptors come free: the waiting client is greeted (within the longest pause).
    drop(greeted);
    let mut waiting = waiting;
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(read_reply(&mut waiting).starts_with("220 "));
    drop(waiting);
    assert_eq!(server.stop(), Some(0), "{}", server.log_text());
}
