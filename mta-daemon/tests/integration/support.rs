//! Test support: a temporary root, a running `mta serve` that is always stopped, and
//! independent clients (Python's smtplib and mailbox modules, swaks).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MTA: &str = env!("CARGO_BIN_EXE_mta");

/// A root directory in a temp dir, initialised with `mta init --hostname example.org`.
pub struct TestRoot {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub port: u16,
}

/// A DNS responder on loopback, shared by the whole test binary, that answers every UDP
/// query with SERVFAIL (RFC 1035 §4.1.1: the query echoed, QR set, RCODE 2).
pub fn servfail_dns() -> std::net::SocketAddr {
    static ADDR: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();
    *ADDR.get_or_init(|| {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                if n < 12 {
                    continue;
                }
                let mut reply = buf[..n].to_vec();
                reply[2] |= 0x80; // QR: a response
                reply[3] = (reply[3] & 0xf0) | 2; // RCODE: SERVFAIL
                let _ = sock.send_to(&reply, peer);
            }
        });
        addr
    })
}

/// A free loopback port (the listener is dropped just before use; a small race we accept).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl TestRoot {
    pub fn new() -> TestRoot {
        let tmp = tempfile::tempdir().unwrap();
        // Session threads and delivery workers run unprivileged when the tests run as
        // root: they must be able to traverse the temporary directory.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let dir = tmp.path().join("root");
        let out = mta(&dir, &["init", "--hostname", "example.org"]);
        assert!(out.status.success(), "init failed: {out:?}");
        let port = free_port();
        std::fs::write(dir.join("control/listen"), format!("127.0.0.1:{port}\n")).unwrap();
        // Tests never reach a real DNS server: every query gets SERVFAIL at once from a
        // responder on loopback (a temporary failure, as from a broken resolver, without
        // waiting for timeouts).
        std::fs::write(
            dir.join("control/dnsservers"),
            format!("{}\n", servfail_dns()),
        )
        .unwrap();
        TestRoot { tmp, dir, port }
    }

    pub fn control(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join("control").join(name), text).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn serve(&self) -> Server {
        Server::start(self)
    }

    /// [`serve`](TestRoot::serve) with the open-file limit (soft and hard) of the whole
    /// process tree set to `nofile`, by util-linux's `prlimit` (which execs the server: the
    /// pid is the server's).
    pub fn serve_with_nofile(&self, nofile: u64) -> Server {
        let limit = format!("--nofile={nofile}:{nofile}");
        Server::start_under(self, &["prlimit", &limit, "--"])
    }
}

/// Runs `mta --root DIR args...` to completion.
pub fn mta(root: &Path, args: &[&str]) -> Output {
    Command::new(MTA)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `mta --root DIR args...` with `input` on its standard input, to completion
/// (`mta inject`).
pub fn mta_input(root: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(MTA)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails at once never reads its input: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// A running `mta serve`; killed (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub child: Option<Child>,
    pub log: PathBuf,
    addr: SocketAddr,
}

impl Server {
    pub fn start(root: &TestRoot) -> Server {
        Server::start_under(root, &[])
    }

    /// [`start`](Server::start), the server run by the command `wrapper` (empty: none).
    fn start_under(root: &TestRoot, wrapper: &[&str]) -> Server {
        let log = root
            .tmp
            .path()
            .join(format!("serve-{}.log", Instant::now().elapsed().as_nanos()));
        let logf = std::fs::File::create(&log).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(MTA);
                c
            }
            None => Command::new(MTA),
        };
        let child = command
            .arg("--root")
            .arg(&root.dir)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .unwrap();
        let s = Server {
            child: Some(child),
            log,
            addr: root.addr(),
        };
        s.wait_ready();
        s
    }

    /// Waits for the greeting, not just the connection: the master binds the listener
    /// before it starts any child, and the SMTP process starts only once the queue process
    /// is ready, so a greeting means a message injected now is seen as new.
    fn wait_ready(&self) {
        use std::io::Write;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
                let greeting = read_reply(&mut s);
                if greeting.is_empty() && Instant::now() >= deadline {
                    break;
                }
                // A greeting, or a refusal that closed the connection: the SMTP process runs.
                if greeting.len() >= 3 {
                    let _ = s.write_all(b"QUIT\r\n");
                    let _ = read_reply(&mut s);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mta serve did not start listening; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` `count` times.
    pub fn wait_log(&self, needle: &str, count: usize, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.log_text().matches(needle).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a Python snippet with arguments; returns (exit code, stdout, stderr).
pub fn python(script: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends one message with Python's smtplib; returns smtplib's outcome line.
pub const SMTPLIB_SEND: &str = r#"
import smtplib, sys
host, port, sender, rcpts, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(","), sys.argv[5]
s = smtplib.SMTP(host, port, timeout=20)
try:
    refused = s.sendmail(sender, rcpts, body.encode())
    print("OK", sorted((k, v[0]) for k, v in refused.items()))
except smtplib.SMTPRecipientsRefused as e:
    print("REFUSED", sorted((k, v[0]) for k, v in e.recipients.items()))
except smtplib.SMTPResponseException as e:
    print("ERR", e.smtp_code, e.smtp_error.decode(errors="replace"))
finally:
    try: s.quit()
    except Exception: pass
"#;

/// Lists a maildir with Python's mailbox module: one line per message, the raw bytes
/// as a Python repr, sorted.
pub const MAILDIR_DUMP: &str = r"
import mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = sorted(md.get_bytes(k) for k in md.keys())
for b in out: print(repr(b))
";

pub fn maildir_messages(dir: &Path) -> Vec<String> {
    let (code, out, err) = python(MAILDIR_DUMP, &[dir.to_str().unwrap()]);
    assert_eq!(code, 0, "python mailbox failed: {err}");
    out.lines().map(str::to_owned).collect()
}

/// Waits until `dir` (a maildir) holds `n` messages in new/ + cur/.
pub fn wait_maildir(dir: &Path, n: usize, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let count = ["new", "cur"]
            .iter()
            .map(|d| std::fs::read_dir(dir.join(d)).map_or(0, Iterator::count))
            .sum::<usize>();
        if count >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Reads an SMTP reply from a raw stream (for hand-written sessions).
pub fn read_reply(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                out.push(b[0]);
                if out.ends_with(b"\r\n") {
                    let line_start = out[..out.len() - 2]
                        .iter()
                        .rposition(|&c| c == b'\n')
                        .map_or(0, |p| p + 1);
                    if out.len() - line_start >= 4 && out[line_start + 3] == b' ' {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The uid and gid of the system account `name` (from /etc/passwd).
pub fn account(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 3 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// How many times each `X-Id: N` header (the crash tests' message numbers) was delivered
/// into `maildir`.
pub fn delivered_ids(maildir: &Path) -> std::collections::HashMap<u32, usize> {
    let mut seen = std::collections::HashMap::new();
    for m in maildir_messages(maildir) {
        if let Some(p) = m.find("X-Id: ") {
            let id: u32 = m[p + 6..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap();
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}
