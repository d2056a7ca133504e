//! The blocking drivers over real loopback sockets: read timeouts, the STARTTLS hook, and
//! the `smtp_sink` example binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use mta_core::{DeliveryResult, Envelope};
use mta_smtp::blocking::{Policy, Stream, deliver, deliver_with, serve};
use mta_smtp::{ClientConfig, Event, ServerConfig, ServerSession, TlsPolicy, Verdict};

struct AcceptAll;
impl Policy for AcceptAll {}

#[test]
fn serve_times_out_an_idle_client() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut cfg = ServerConfig::new("mx.test");
        cfg.timeout = Duration::from_millis(300);
        serve(s, cfg, &mut AcceptAll)
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    c.write_all(b"HELO x\r\n").unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(
        got,
        "220 mx.test ESMTP\r\n250 mx.test\r\n421 4.4.2 timeout\r\n"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    server.join().unwrap().unwrap();
}

/// A server that offers STARTTLS and, after its 220, carries on in clear text: the
/// "handshake" is a no-op on both sides, which is enough to test the plumbing.
fn null_tls_server() -> (u16, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let now = Instant::now();
        let mut cfg = ServerConfig::new("mx.test");
        cfg.offer_starttls = true;
        let mut s = ServerSession::new(cfg, now);
        let mut log = Vec::new();
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        loop {
            while let Some(ev) = s.poll_event() {
                log.push(format!("{ev:?}"));
                match ev {
                    Event::StartTls => {
                        let _ = s.poll_transmit(&mut out);
                        sock.write_all(&out).unwrap();
                        out.clear();
                        s.tls_established(now);
                    }
                    Event::Mail { .. }
                    | Event::Rcpt { .. }
                    | Event::DataStart
                    | Event::DataEnd(_) => {
                        s.decide(Verdict::Accept).unwrap();
                    }
                    _ => {}
                }
            }
            if s.poll_transmit(&mut out) {
                sock.write_all(&out).unwrap();
                out.clear();
            }
            if s.is_closed() {
                return log;
            }
            match sock.read(&mut buf).unwrap() {
                0 => s.handle_eof(),
                n => s.handle_input(&buf[..n], now),
            }
        }
    });
    (port, h)
}

#[test]
fn deliver_with_starttls_hook() {
    let (port, server) = null_tls_server();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut cfg = ClientConfig::new("client.test", "127.0.0.1");
    cfg.tls = TlsPolicy::Required;
    let mut upgrades = 0;
    let mut hook = |plain: TcpStream| -> std::io::Result<Box<dyn Stream>> {
        upgrades += 1;
        Ok(Box::new(plain))
    };
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let results = deliver_with(stream, &env, &b"hi\n"[..], cfg, Some(&mut hook));
    assert!(results[0].is_delivered(), "{results:?}");
    assert_eq!(upgrades, 1);
    let log = server.join().unwrap();
    let ehlos = log.iter().filter(|l| l.starts_with("Ehlo")).count();
    assert_eq!(ehlos, 2, "EHLO must be repeated after STARTTLS: {log:?}");
    assert!(log.iter().any(|l| l == "StartTls"));
}

#[test]
fn deliver_with_failing_hook_defers() {
    let (port, server) = null_tls_server();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut cfg = ClientConfig::new("client.test", "127.0.0.1");
    cfg.tls = TlsPolicy::Opportunistic;
    let mut hook = |_: TcpStream| -> std::io::Result<Box<dyn Stream>> {
        Err(std::io::Error::other("handshake failed"))
    };
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let results = deliver_with(stream, &env, &b"hi\n"[..], cfg, Some(&mut hook));
    assert_eq!(results[0].letter(), 'Z');
    let _ = server.join();
}

#[test]
fn deliver_to_a_closed_port_style_failure() {
    // The server greets and hangs up at once: every recipient is deferred.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"220 bye\r\n").unwrap();
    });
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let env = Envelope::new("a@example.org", ["b@example.com", "c@example.com"]);
    let results = deliver(stream, &env, &b"x\n"[..], "client.test");
    h.join().unwrap();
    assert!(
        results
            .iter()
            .all(|r| matches!(r, DeliveryResult::Deferred { .. })),
        "{results:?}"
    );
}

/// Kills and reaps a child even when an assertion fails.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example_binary(name: &str) -> Option<PathBuf> {
    // target/<profile>/deps/integration-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples").join(name);
    p.exists().then_some(p)
}

#[test]
fn smtp_sink_example_prints_one_line_per_message() {
    let Some(bin) = example_binary("smtp_sink") else {
        eprintln!("NOTICE: examples/smtp_sink not built; skipping");
        return;
    };
    let mut child = Kill(
        Command::new(bin)
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut lines = Vec::new();
    for (i, rcpts) in [1usize, 3].into_iter().enumerate() {
        let env = Envelope::new(
            format!("s{i}@example.org").as_str(),
            (0..rcpts).map(|k| format!("r{k}@example.com")),
        );
        let stream = TcpStream::connect(&addr).unwrap();
        let results = deliver(
            stream,
            &env,
            &b"Received: x\nSubject: s\n\nbody\n"[..],
            "client.test",
        );
        assert!(
            results.iter().all(DeliveryResult::is_delivered),
            "{results:?}"
        );
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        lines.push(l);
    }
    // swaks, an independent client, against the same example server.
    if std::path::Path::new("/usr/bin/swaks").exists() {
        let (host, port) = addr.rsplit_once(':').unwrap();
        let st = Command::new("swaks")
            .args([
                "--server",
                host,
                "--port",
                port,
                "--pipeline",
                "--timeout",
                "10",
            ])
            .args([
                "--from",
                "swaks@example.org",
                "--to",
                "x@example.com,y@example.com",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        assert!(
            l.starts_with("message 3 from=<swaks@example.org> rcpts=2 bytes="),
            "{l}"
        );
    } else {
        eprintln!("NOTICE: swaks not found; skipping the swaks part (CI installs it)");
    }
    drop(child);
    assert_eq!(
        lines,
        [
            "message 1 from=<s0@example.org> rcpts=1 bytes=29 hops=1\n",
            "message 2 from=<s1@example.org> rcpts=3 bytes=29 hops=1\n",
        ]
    );
}

/// Both blocking drivers with STARTTLS hooks (identity "TLS", enough to test the
/// plumbing): the client requires TLS, the server offers it, the mail goes through, and
/// each side's hook ran exactly once.
#[test]
fn serve_with_and_deliver_with_starttls_hooks() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SERVER_UPGRADES: AtomicUsize = AtomicUsize::new(0);
    struct Count(usize);
    impl Policy for Count {
        fn data_end(&mut self, _: &mta_smtp::DataSummary) -> Verdict {
            self.0 += 1;
            Verdict::Accept
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut cfg = ServerConfig::new("mx.test");
        cfg.offer_starttls = true;
        let mut hook = |plain: TcpStream| -> std::io::Result<Box<dyn Stream>> {
            SERVER_UPGRADES.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(plain))
        };
        let mut policy = Count(0);
        mta_smtp::blocking::serve_with(sock, cfg, &mut policy, Some(&mut hook)).unwrap();
        policy.0
    });
    let mut cfg = ClientConfig::new("client.test", "127.0.0.1");
    cfg.tls = TlsPolicy::Required;
    let mut client_upgrades = 0;
    let mut hook = |plain: TcpStream| -> std::io::Result<Box<dyn Stream>> {
        client_upgrades += 1;
        Ok(Box::new(plain))
    };
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let stream = TcpStream::connect(addr).unwrap();
    let results = deliver_with(stream, &env, &b"hi\n"[..], cfg, Some(&mut hook));
    assert!(results[0].is_delivered(), "{results:?}");
    assert_eq!(server.join().unwrap(), 1);
    assert_eq!(
        (client_upgrades, SERVER_UPGRADES.load(Ordering::SeqCst)),
        (1, 1)
    );
}

#[test]
fn serve_without_hook_ends_session_on_starttls() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut cfg = ServerConfig::new("mx.test");
        cfg.offer_starttls = true;
        serve(sock, cfg, &mut AcceptAll)
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"STARTTLS\r\n").unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "220 mx.test ESMTP\r\n220 2.0.0 ready to start TLS\r\n");
    server.join().unwrap().unwrap();
}

/// Records what `data_end` is told.
#[derive(Default)]
struct Recorder {
    seen: Vec<(Envelope, Option<std::net::SocketAddr>, usize)>,
}

impl Policy for Recorder {
    fn rcpt(&mut self, path: &mta_core::path::ForwardPath, _: &mta_smtp::RcptParams) -> Verdict {
        if path.to_address().as_bytes().starts_with(b"nobody@") {
            return Verdict::Reject(mta_smtp::Reply::new(550, "5.1.1 no such user").unwrap());
        }
        Verdict::Accept
    }
    fn data_end(&mut self, summary: &mta_smtp::DataSummary) -> Verdict {
        self.seen
            .push((summary.envelope.clone(), summary.peer, summary.size));
        Verdict::Accept
    }
}

/// Issue 21: the drivers run over any `Transport`, here a Unix socket pair, and `data_end`
/// gets the envelope with only the accepted recipients.
#[cfg(unix)]
#[test]
fn serve_and_deliver_over_a_unix_socket_pair() {
    use std::os::unix::net::UnixStream;
    let (server_end, client_end) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || {
        let mut policy = Recorder::default();
        serve(server_end, ServerConfig::new("mx.test"), &mut policy).map(|()| policy.seen)
    });
    let env = Envelope::new(
        "alice@example.org",
        ["bob@example.net", "nobody@example.net", "carol@example.net"],
    );
    let results = deliver_with(
        client_end,
        &env,
        &b"Subject: hi\n\nhello\n"[..],
        ClientConfig::new("client.test", "unix"),
        None,
    );
    assert!(results[0].is_delivered(), "{results:?}");
    assert!(
        matches!(results[1], DeliveryResult::Failed { .. }),
        "{results:?}"
    );
    assert!(results[2].is_delivered(), "{results:?}");
    let seen = server.join().unwrap().unwrap();
    assert_eq!(seen.len(), 1);
    let (envelope, peer, size) = &seen[0];
    assert_eq!(
        envelope,
        &Envelope::new(
            "alice@example.org",
            ["bob@example.net", "carol@example.net"]
        )
    );
    assert_eq!(*peer, None, "a Unix socket has no IP peer");
    assert_eq!(
        *size,
        b"Subject: hi\n\nhello\n".len(),
        "LF line ends, the default"
    );
}

/// Issue 21: over TCP, `data_end` also gets the client's address.
#[test]
fn data_end_gets_the_tcp_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut policy = Recorder::default();
        serve(s, ServerConfig::new("mx.test"), &mut policy).map(|()| policy.seen)
    });
    let stream = TcpStream::connect(addr).unwrap();
    let client_addr = stream.local_addr().unwrap();
    let env = Envelope::new("", ["postmaster"]);
    let results = deliver(stream, &env, &b"\nbody\n"[..], "client.test");
    assert!(results[0].is_delivered(), "{results:?}");
    let seen = server.join().unwrap().unwrap();
    assert_eq!(seen[0].0, Envelope::new("", ["postmaster"]));
    assert_eq!(seen[0].1, Some(client_addr));
}

/// An in-memory transport: a scripted client and a transcript, no socket at all.
struct Script {
    input: std::io::Cursor<Vec<u8>>,
    output: Vec<u8>,
}
impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}
impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl mta_smtp::blocking::Transport for &mut Script {}

/// Issue 21: `serve` over a type that is neither a TCP nor a Unix socket, with the
/// default (no-op) timeouts.
#[test]
fn serve_over_an_in_memory_script() {
    let mut script = Script {
        input: std::io::Cursor::new(
            b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n".to_vec(),
        ),
        output: Vec::new(),
    };
    let mut policy = Recorder::default();
    serve(&mut script, ServerConfig::new("mx.test"), &mut policy).unwrap();
    let transcript = String::from_utf8(script.output).unwrap();
    assert_eq!(
        transcript,
        "220 mx.test ESMTP\r\n250 mx.test\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n\
         250 2.0.0 ok\r\n221 mx.test\r\n"
    );
    assert_eq!(policy.seen[0].0, Envelope::new("a@x", ["b@y"]));
}

/// Records which of the [`Policy`] hooks the driver called, in order.
#[derive(Default)]
struct Calls {
    log: Vec<String>,
    /// Set by the test to make `stop` answer `421 4.3.2`.
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Policy for Calls {
    fn hello(&mut self, name: &str) {
        self.log.push(format!("hello {name}"));
    }
    fn reset(&mut self) {
        self.log.push("reset".into());
    }
    fn tls_started(&mut self, described: &str) {
        self.log.push(format!("tls {described}"));
    }
    fn tls_failed(&mut self, error: &std::io::Error) {
        self.log.push(format!("tls failed: {error}"));
    }
    fn timed_out(&mut self) {
        self.log.push("timed out".into());
    }
    fn too_many_recipients(&mut self) {
        self.log.push("too many recipients".into());
    }
    fn aborted(&mut self, reason: mta_smtp::AbortReason) {
        self.log.push(format!("aborted {reason:?}"));
    }
    fn stop(&mut self) -> Option<mta_smtp::Reply> {
        let stop = self.stop.as_ref()?;
        stop.load(std::sync::atomic::Ordering::SeqCst)
            .then(|| mta_smtp::Reply::new(421, "4.3.2 shutting down").unwrap())
    }
    fn stop_poll(&self) -> Option<Duration> {
        self.stop.as_ref().map(|_| Duration::from_millis(20))
    }
}

/// A scripted client that hands over one line per read (so nothing is pipelined behind
/// STARTTLS), on a connection that "upgrades" in place without encrypting.
struct LineScript {
    lines: std::collections::VecDeque<&'static [u8]>,
    output: Vec<u8>,
}
impl Read for LineScript {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(line) = self.lines.pop_front() else {
            return Ok(0);
        };
        buf[..line.len()].copy_from_slice(line);
        Ok(line.len())
    }
}
impl Write for LineScript {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl mta_smtp::blocking::Connection for LineScript {
    fn start_tls(&mut self) -> std::io::Result<String> {
        Ok("null tls".into())
    }
}

/// Issue 14 (one SMTP driver): `serve_connection` runs STARTTLS through the connection and
/// tells the policy, and reports the recipient limit, the error limit and the session's
/// end: what a daemon logs and counts.
#[test]
fn serve_connection_reports_tls_limits_and_the_end_to_the_policy() {
    let mut cfg = ServerConfig::new("mx.test");
    cfg.offer_starttls = true;
    cfg.max_recipients = 1;
    cfg.max_errors = 2;
    let mut conn = LineScript {
        lines: [
            &b"EHLO c\r\n"[..],
            b"STARTTLS\r\n",
            b"EHLO d\r\n",
            b"MAIL FROM:<a@x>\r\n",
            b"RCPT TO:<b@y>\r\n",
            b"RCPT TO:<c@y>\r\n",
            b"BAD\r\n",
            b"BAD\r\n",
            b"BAD\r\n",
        ]
        .into(),
        output: Vec::new(),
    };
    let mut policy = Calls::default();
    let session = ServerSession::new(cfg, Instant::now());
    mta_smtp::blocking::serve_connection(&mut conn, session, &mut policy).unwrap();
    let transcript = String::from_utf8(conn.output).unwrap();
    assert!(
        transcript.contains("220 2.0.0 ready to start TLS\r\n"),
        "{transcript}"
    );
    assert!(transcript.contains("\r\n452 "), "{transcript}");
    assert!(
        transcript.ends_with("\r\n421 4.7.0 too many errors\r\n"),
        "{transcript}"
    );
    assert_eq!(
        policy.log,
        [
            "hello c",
            "tls null tls",
            "hello d",
            "too many recipients",
            "aborted TooManyErrors",
            "reset"
        ],
        "{transcript}"
    );
}

/// A Unix socket as a [`mta_smtp::blocking::Connection`]: reads bounded as the driver asks.
#[cfg(unix)]
struct Socket(std::os::unix::net::UnixStream);
#[cfg(unix)]
impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}
#[cfg(unix)]
impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
#[cfg(unix)]
impl mta_smtp::blocking::Connection for Socket {
    fn set_read_wait(&mut self, wait: Option<Duration>) -> std::io::Result<()> {
        self.0.set_read_timeout(wait)
    }
}

/// The server thread of [`serve_pair`]: the session's result and the policy's log.
#[cfg(unix)]
type Served = thread::JoinHandle<(std::io::Result<()>, Vec<String>)>;

/// Runs `serve_connection` on one end of a socket pair in a thread.
#[cfg(unix)]
fn serve_pair(cfg: ServerConfig, mut policy: Calls) -> (std::os::unix::net::UnixStream, Served) {
    let (server_end, client_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let h = thread::spawn(move || {
        let session = ServerSession::new(cfg, Instant::now());
        let r = mta_smtp::blocking::serve_connection(&mut Socket(server_end), session, &mut policy);
        (r, policy.log)
    });
    client_end
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (client_end, h)
}

/// A server that is stopping: a silent client is told `421 4.3.2` within the policy's
/// stop poll, long before the session's own 60 s deadline.
#[cfg(unix)]
#[test]
fn serve_connection_stop_ends_a_silent_session_with_the_policys_reply() {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut cfg = ServerConfig::new("mx.test");
    cfg.timeout = Duration::from_mins(1);
    let policy = Calls {
        stop: Some(std::sync::Arc::clone(&flag)),
        ..Calls::default()
    };
    let (mut c, server) = serve_pair(cfg, policy);
    c.write_all(b"HELO c\r\n").unwrap();
    let mut first = [0u8; 64];
    let mut got = 0;
    while !String::from_utf8_lossy(&first[..got]).contains("250 mx.test\r\n") {
        got += c.read(&mut first[got..]).unwrap();
    }
    let start = Instant::now();
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut rest = String::new();
    c.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "421 4.3.2 shutting down\r\n");
    assert!(start.elapsed() < Duration::from_secs(5));
    let (r, log) = server.join().unwrap();
    r.unwrap();
    assert_eq!(log, ["hello c", "aborted Shutdown", "reset"]);
}

/// A silent client gets `421 4.4.2` at the session's deadline, and the policy hears of it.
#[cfg(unix)]
#[test]
fn serve_connection_times_out_a_silent_client_and_tells_the_policy() {
    let mut cfg = ServerConfig::new("mx.test");
    cfg.timeout = Duration::from_millis(200);
    let (mut c, server) = serve_pair(cfg, Calls::default());
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "220 mx.test ESMTP\r\n421 4.4.2 timeout\r\n");
    let (r, log) = server.join().unwrap();
    r.unwrap();
    assert_eq!(log, ["timed out", "reset"]);
}
