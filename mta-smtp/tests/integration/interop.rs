//! Interoperability with independent peers over loopback: Python's smtplib and swaks as
//! clients of a server on `blocking::serve`; our `blocking::deliver` to a Python
//! socketserver sink and to Postfix's smtp-sink (PIPELINING on). Tests whose peer is
//! missing print a notice and pass (CI installs them).

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use mta_core::path::{ForwardPath, ReversePath};
use mta_core::{DeliveryResult, Envelope};
use mta_smtp::blocking::{Policy, deliver, serve};
use mta_smtp::{DataSummary, MailParams, RcptParams, Reply, ServerConfig, Verdict};

/// One received message: sender, recipients, data (stored form, LF).
#[derive(Debug, Default, Clone)]
struct Received {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

#[derive(Default)]
struct Recorder {
    current: Received,
    done: Vec<Received>,
}

impl Policy for Recorder {
    fn mail(&mut self, path: &ReversePath, _: &MailParams) -> Verdict {
        self.current = Received {
            from: path.to_address().to_string_lossy(),
            ..Received::default()
        };
        Verdict::Accept
    }
    fn rcpt(&mut self, path: &ForwardPath, _: &RcptParams) -> Verdict {
        let a = path.to_address().to_string_lossy();
        if a.starts_with("reject") {
            return Verdict::Reject(
                Reply::new(550, "no such user")
                    .unwrap()
                    .with_status("5.1.1".parse().unwrap()),
            );
        }
        self.current.to.push(a);
        Verdict::Accept
    }
    fn data_chunk(&mut self, chunk: &[u8]) {
        self.current.data.extend_from_slice(chunk);
    }
    fn data_end(&mut self, _: &DataSummary) -> Verdict {
        self.done.push(std::mem::take(&mut self.current));
        let text = format!("ok {}", self.done.len());
        Verdict::AcceptWith(
            Reply::new(250, &text)
                .unwrap()
                .with_status("2.0.0".parse().unwrap()),
        )
    }
}

/// Starts a server thread for one connection; returns its port and a handle yielding
/// the messages.
fn one_session_server() -> (u16, thread::JoinHandle<Vec<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut rec = Recorder::default();
        let mut cfg = ServerConfig::new("mx.test");
        cfg.timeout = Duration::from_secs(20);
        serve(stream, cfg, &mut rec).unwrap();
        rec.done
    });
    (port, h)
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Kills and reaps a child on drop, so a failing assertion never leaks a process.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SMTPLIB_CLIENT: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
code, _ = s.ehlo("python.test")
assert code == 250, code
for ext in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8"):
    assert s.has_extn(ext), ext
assert int(s.esmtp_features["size"]) == 50 * 1024 * 1024
msg = "Subject: one\r\n\r\n.leading dot\r\n..two dots\r\nlast\r\n"
refused = s.sendmail("alice@example.org", ["bob@example.com", "rejectme@example.com"], msg)
assert list(refused) == ["rejectme@example.com"], refused
assert refused["rejectme@example.com"][0] == 550, refused
code, _ = s.rset()
assert code == 250
try:
    s.sendmail("alice@example.org", ["rejectall@example.com"], "x\r\n")
    raise SystemExit("all recipients refused but no exception")
except smtplib.SMTPRecipientsRefused:
    pass
s.sendmail("", ["carol@example.com"], b"Subject: bin\r\n\r\n\xc3\xa9t\xc3\xa9\r\n")
code, text = s.noop()
assert code == 250
assert s.verify("x")[0] == 252
assert s.docmd("EXPN", "list")[0] == 502
s.quit()
print("ok")
"#;

#[test]
fn python_smtplib_client() {
    if !have("python3", "--version") {
        eprintln!("NOTICE: python3 not found; skipping smtplib interop");
        return;
    }
    let (port, server) = one_session_server();
    let out = Command::new("python3")
        .args(["-c", SMTPLIB_CLIENT, &port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = server.join().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].from, "alice@example.org");
    assert_eq!(msgs[0].to, ["bob@example.com"]);
    assert_eq!(
        msgs[0].data,
        b"Subject: one\n\n.leading dot\n..two dots\nlast\n"
    );
    assert_eq!(msgs[1].from, "");
    assert_eq!(msgs[1].data, b"Subject: bin\n\n\xc3\xa9t\xc3\xa9\n");
}

#[test]
fn swaks_client() {
    if !Path::new("/usr/bin/swaks").exists() && !have("swaks", "--version") {
        eprintln!("NOTICE: swaks not found; skipping swaks interop (CI installs it)");
        return;
    }
    let (port, server) = one_session_server();
    let out = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--ehlo",
            "swaks.test",
            "--from",
            "sender@example.org",
            "--to",
            "one@example.com,two@example.com",
            "--pipeline",
            "--header",
            "Subject: swaks test",
            "--body",
            "hello from swaks",
            "--timeout",
            "20",
        ])
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swaks failed:\n{transcript}");
    assert!(transcript.contains("250 2.0.0 ok 1"), "{transcript}");
    let msgs = server.join().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].to, ["one@example.com", "two@example.com"]);
    let data = String::from_utf8_lossy(&msgs[0].data);
    assert!(
        data.contains("Subject: swaks test\n") && data.contains("\nhello from swaks\n"),
        "{data}"
    );
    assert!(!data.contains('\r'));
}

/// A minimal SMTP sink written with socketserver: PIPELINING advertised, replies per line,
/// strict CRLF check, then prints what it got.
const PYTHON_SINK: &str = r#"
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        w = self.wfile
        w.write(b"220 pysink ESMTP\r\n"); w.flush()
        while True:
            line = self.rfile.readline()
            if not line:
                return
            assert line.endswith(b"\r\n") and b"\r" not in line[:-2] and b"\n" not in line[:-2], line
            verb = line[:4].upper()
            if verb == b"EHLO":
                w.write(b"250-pysink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb in (b"MAIL", b"RCPT"):
                print(line[:-2].decode(), flush=True)
                if b"reject" in line:
                    w.write(b"550 5.1.1 unknown user\r\n")
                else:
                    w.write(b"250 ok\r\n")
            elif verb == b"DATA":
                w.write(b"354 go\r\n"); w.flush()
                data = b""
                while True:
                    l = self.rfile.readline()
                    assert l.endswith(b"\r\n") and b"\r" not in l[:-2] and b"\n" not in l[:-2], l
                    if l == b".\r\n":
                        break
                    data += l[1:] if l.startswith(b".") else l
                print("DATA " + data.hex(), flush=True)
                w.write(b"250 2.0.0 queued as PY1\r\n")
            elif verb == b"QUIT":
                w.write(b"221 bye\r\n"); w.flush()
                return
            else:
                w.write(b"502 no\r\n")
            w.flush()
srv = socketserver.TCPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.handle_request()
"#;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn deliver_to_python_sink() {
    if !have("python3", "--version") {
        eprintln!("NOTICE: python3 not found; skipping python sink interop");
        return;
    }
    let child = Command::new("python3")
        .args(["-c", PYTHON_SINK])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let env = Envelope::new(
        "me@example.org",
        [
            "a@example.com",
            "rejectb@example.com",
            "odd user@example.com",
        ],
    );
    let message = b"Subject: to python\n\n.dot\nbare\rcr\r\nend".as_slice();
    let results = deliver(stream, &env, message, "client.test");
    let letters: String = results.iter().map(DeliveryResult::letter).collect();
    assert_eq!(letters, "KDK", "{results:?}");
    assert!(
        results[0]
            .text()
            .contains("Remote host said: 250 2.0.0 queued as PY1")
    );
    let got: Vec<String> = lines.map(Result::unwrap).collect();
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.0.wait().unwrap().success(), "sink failed: {stderr}");
    assert_eq!(
        got,
        [
            "MAIL FROM:<me@example.org>".to_owned(),
            "RCPT TO:<a@example.com>".to_owned(),
            "RCPT TO:<rejectb@example.com>".to_owned(),
            "RCPT TO:<\"odd user\"@example.com>".to_owned(),
            format!(
                "DATA {}",
                hex(b"Subject: to python\r\n\r\n.dot\r\nbare\r\ncr\r\nend\r\n")
            ),
        ]
    );
}

fn smtp_sink_path() -> Option<&'static str> {
    [
        "/usr/sbin/smtp-sink",
        "/usr/bin/smtp-sink",
        "/usr/lib/postfix/sbin/smtp-sink",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

#[test]
fn deliver_to_postfix_smtp_sink() {
    let Some(sink) = smtp_sink_path() else {
        eprintln!("NOTICE: postfix smtp-sink not found; skipping (CI installs postfix)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(sink);
    // smtp-sink refuses to run as root without -u; the dump directory must be writable.
    if rustix_euid_is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(["-h", "sink.test", "-D"])
        .arg(&dump)
        .arg(format!("127.0.0.1:{port}"))
        .arg("10")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let _child = Reap(cmd.spawn().unwrap());
    let start = Instant::now();
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("smtp-sink did not start: {e}"),
        }
    };
    let env = Envelope::new("me@example.org", ["one@example.com", "two@example.com"]);
    let message = b"Subject: to postfix\n\n..two\n.one\nlast".as_slice();
    let results = deliver(stream, &env, message, "client.test");
    assert!(
        results.iter().all(DeliveryResult::is_delivered),
        "{results:?}"
    );
    assert!(
        results[0].text().contains("Remote host said: 250 2.0.0 Ok"),
        "{results:?}"
    );
    // The dump is written when the transaction ends; wait for it.
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(10) {
        text = std::fs::read_to_string(&dump).unwrap_or_default();
        if text.contains("last") {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(text.contains("X-Client-Proto: ESMTP\n"), "{text}");
    assert!(text.contains("X-Helo-Args: client.test\n"), "{text}");
    assert!(text.contains("X-Mail-Args: <me@example.org>\n"), "{text}");
    assert!(text.contains("X-Rcpt-Args: <one@example.com>\n"), "{text}");
    assert!(text.contains("X-Rcpt-Args: <two@example.com>\n"), "{text}");
    assert!(
        text.contains("Subject: to postfix\n\n..two\n.one\nlast\n"),
        "{text}"
    );
}

fn rustix_euid_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// swaks as an independent attacker: `--no-data-fixup` sends each smuggling variant
/// byte for byte. The server must refuse the whole thing and accept no message at all.
#[test]
fn swaks_smuggling_attempts() {
    if !Path::new("/usr/bin/swaks").exists() && !have("swaks", "--version") {
        eprintln!("NOTICE: swaks not found; skipping swaks smuggling test (CI installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, variant) in [
        &b"\n.\n"[..],
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r",
        b"\r\n.\r",
        b"\r\n\x00.\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let mut data = b"Subject: real\r\n\r\nreal body".to_vec();
        data.extend_from_slice(variant);
        data.extend_from_slice(
            b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\
Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n",
        );
        let file = dir.path().join(format!("v{i}.eml"));
        std::fs::write(&file, &data).unwrap();
        let (port, server) = one_session_server();
        let out = Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port", &port.to_string()])
            .args(["--from", "a@example.org", "--to", "victim@example.com"])
            .args(["--no-data-fixup", "--timeout", "10", "--data"])
            .arg(&file)
            .output()
            .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout);
        let msgs = server.join().unwrap();
        assert!(
            msgs.is_empty(),
            "variant {variant:?} delivered {msgs:?}\n{transcript}"
        );
        let refused = transcript.contains("<** 451 4.6.0 See https://cr.yp.to/docs/smtplf.html.")
            || transcript.contains("<** 554 5.6.0 message contains NUL");
        assert!(refused, "variant {variant:?}:\n{transcript}");
    }
}

/// A server on `blocking::serve` for many connections (a thread each), stopped by
/// `stop()`; returns every message received.
struct MultiServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: thread::JoinHandle<Vec<Received>>,
}

impl MultiServer {
    fn start() -> MultiServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let all = Arc::new(Mutex::new(Vec::new()));
            let mut workers = Vec::new();
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let stream = conn.unwrap();
                let all = Arc::clone(&all);
                workers.push(thread::spawn(move || {
                    let mut rec = Recorder::default();
                    let mut cfg = ServerConfig::new("mx.test");
                    cfg.timeout = Duration::from_secs(20);
                    serve(stream, cfg, &mut rec).unwrap();
                    all.lock().unwrap().extend(rec.done);
                }));
            }
            for w in workers {
                w.join().unwrap();
            }
            std::mem::take(&mut *all.lock().unwrap())
        });
        MultiServer { port, stop, handle }
    }

    fn stop(self) -> Vec<Received> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.handle.join().unwrap()
    }
}

/// Postfix's smtp-source as a load client: parallel sessions, several messages per
/// connection, several recipients per message.
#[test]
fn postfix_smtp_source_client() {
    let source = ["/usr/sbin/smtp-source", "/usr/bin/smtp-source"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(source) = source else {
        eprintln!("NOTICE: postfix smtp-source not found; skipping (CI installs postfix)");
        return;
    };
    let server = MultiServer::start();
    let out = Command::new(source)
        .args(["-s", "2", "-m", "20", "-r", "3", "-l", "3000", "-d"])
        .args(["-S", "from smtp-source", "-M", "client.test"])
        .args(["-f", "sender@example.org", "-t", "rcpt@example.com"])
        .arg(format!("127.0.0.1:{}", server.port))
        .output()
        .unwrap();
    let msgs = server.stop();
    assert!(
        out.status.success(),
        "smtp-source: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(msgs.len(), 20);
    for m in &msgs {
        assert_eq!(m.from, "sender@example.org");
        assert_eq!(m.to.len(), 3, "{:?}", m.to);
        let text = String::from_utf8_lossy(&m.data);
        assert!(text.contains("Subject: from smtp-source\n"), "{text}");
        assert!(m.data.len() >= 3000 && !m.data.contains(&b'\r'));
    }
}
