//! Fakes for the integration tests, shared by every test file that needs them: a DNS
//! responder on loopback (UDP and TCP, any zone, SERVFAIL, truncation), an SMTP sink with
//! scriptable replies, several sinks on one port across 127.0.0.x, and Postfix's smtp-sink.
//! Every server here is stopped when its value is dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};
// ---------------------------------------------------------------- DNS responder

/// What the responder says for one (name, type).
#[derive(Clone)]
pub enum Answer {
    Records(Vec<Record>),
    ServFail,
    /// Over UDP: an empty answer with TC set; over TCP: the records.
    Truncated(Vec<Record>),
}

#[derive(Default)]
pub struct Zone {
    pub table: HashMap<(String, RecordType), Answer>,
}

pub fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

pub fn dname(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

impl Zone {
    pub fn push(&mut self, name: &str, rtype: RecordType, rdata: RData) -> &mut Self {
        let rec = Record::from_rdata(dname(name), 300, rdata);
        match self
            .table
            .entry((key(name), rtype))
            .or_insert(Answer::Records(Vec::new()))
        {
            Answer::Records(v) | Answer::Truncated(v) => v.push(rec),
            Answer::ServFail => {}
        }
        self
    }
    pub fn mx(&mut self, domain: &str, pref: u16, host: &str) -> &mut Self {
        self.push(
            domain,
            RecordType::MX,
            RData::MX(MX::new(pref, dname(host))),
        )
    }
    pub fn a(&mut self, host: &str, ip: [u8; 4]) -> &mut Self {
        self.push(host, RecordType::A, RData::A(A(Ipv4Addr::from(ip))))
    }
    pub fn aaaa(&mut self, host: &str, ip: Ipv6Addr) -> &mut Self {
        self.push(host, RecordType::AAAA, RData::AAAA(AAAA(ip)))
    }
    pub fn cname(&mut self, host: &str, target: &str) -> &mut Self {
        self.push(host, RecordType::CNAME, RData::CNAME(CNAME(dname(target))))
    }
    pub fn servfail(&mut self, name: &str, rtype: RecordType) -> &mut Self {
        self.table.insert((key(name), rtype), Answer::ServFail);
        self
    }
    pub fn truncate(&mut self, name: &str, rtype: RecordType) -> &mut Self {
        if let Some(Answer::Records(v)) = self.table.remove(&(key(name), rtype)) {
            self.table.insert((key(name), rtype), Answer::Truncated(v));
        }
        self
    }

    /// The reply for `q`; `tcp` selects the full answer for truncated entries.
    pub fn respond(&self, q: &Message, tcp: bool) -> Message {
        let query = q.queries()[0].clone();
        let name = key(&query.name().to_ascii());
        let mut r = Message::new();
        r.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_recursion_available(true)
            .add_query(query.clone());
        let exact = self.table.get(&(name.clone(), query.query_type()));
        let cname = self.table.get(&(name.clone(), RecordType::CNAME));
        match exact.or(cname) {
            Some(Answer::Records(v)) => {
                r.add_answers(v.clone());
            }
            Some(Answer::ServFail) => {
                r.set_response_code(ResponseCode::ServFail);
            }
            Some(Answer::Truncated(v)) if tcp => {
                r.add_answers(v.clone());
            }
            Some(Answer::Truncated(_)) => {
                r.set_truncated(true);
            }
            None if self.table.keys().any(|(n, _)| *n == name) => {}
            None => {
                r.set_response_code(ResponseCode::NXDomain);
            }
        }
        r
    }
}

/// A DNS server on 127.0.0.1 (UDP and TCP on one port) answering from a [`Zone`].
pub struct Dns {
    pub addr: SocketAddr,
    pub stop: Arc<AtomicBool>,
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    pub threads: Vec<JoinHandle<()>>,
}

impl Dns {
    pub fn start(zone: Zone) -> Dns {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let zone = Arc::new(zone);
        let stop = Arc::new(AtomicBool::new(false));
        let (udp_queries, tcp_queries) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mut threads = Vec::new();
        {
            let (zone, stop, count) = (
                Arc::clone(&zone),
                Arc::clone(&stop),
                Arc::clone(&udp_queries),
            );
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let q = Message::from_vec(&buf[..n]).unwrap();
                    udp.send_to(&zone.respond(&q, false).to_vec().unwrap(), from)
                        .unwrap();
                }
            }));
        }
        {
            let (zone, stop, count) = (
                Arc::clone(&zone),
                Arc::clone(&stop),
                Arc::clone(&tcp_queries),
            );
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut s, _)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    s.read_exact(&mut buf).unwrap();
                    count.fetch_add(1, Ordering::SeqCst);
                    let reply = zone
                        .respond(&Message::from_vec(&buf).unwrap(), true)
                        .to_vec()
                        .unwrap();
                    let mut out = u16::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
                    out.extend_from_slice(&reply);
                    s.write_all(&out).unwrap();
                }
            }));
        }
        Dns {
            addr,
            stop,
            udp_queries,
            tcp_queries,
            threads,
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

// ---------------------------------------------------------------- SMTP sink

/// How a sink behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// RCPT by local part: `temp*` → 451, `perm*` → 550, else 250; DATA → 250.
    Normal,
    /// Greets with 421.
    Busy,
    /// Reads the whole message, then closes without replying.
    DropAfterDot,
    /// Closes the connection after the first line of the message.
    DropInData,
    /// Accepts the connection and never says anything.
    Silent,
    /// Accepts the connection and closes it at once.
    Hangup,
}

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Txn {
    pub helo: String,
    pub mail: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
    /// RCPT commands arrived together with MAIL (RFC 2920 pipelining).
    pub pipelined: bool,
}

pub struct SinkState {
    pub mode: Mutex<Mode>,
    pub txns: Mutex<Vec<Txn>>,
    pub connections: AtomicUsize,
    pub stop: AtomicBool,
}

/// An SMTP server written for these tests (line-based, independent of mta-smtp).
pub struct Sink {
    pub addr: SocketAddr,
    pub state: Arc<SinkState>,
    pub thread: Option<JoinHandle<()>>,
}

impl Sink {
    pub fn start(listener: TcpListener, mode: Mode) -> Sink {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(SinkState {
            mode: Mutex::new(mode),
            txns: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let st = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let mut sessions = Vec::new();
            while !st.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        st.connections.fetch_add(1, Ordering::SeqCst);
                        let st = Arc::clone(&st);
                        sessions.push(std::thread::spawn(move || session(s, &st)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for s in sessions {
                s.join().unwrap();
            }
        });
        Sink {
            addr,
            state,
            thread: Some(thread),
        }
    }
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }
    pub fn txns(&self) -> Vec<Txn> {
        self.state.txns.lock().unwrap().clone()
    }
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Reads one CRLF line, polling the stop flag; `None` at EOF or stop.
pub fn read_line(r: &mut BufReader<TcpStream>, st: &SinkState) -> Option<String> {
    let mut line = Vec::new();
    loop {
        if st.stop.load(Ordering::SeqCst) {
            return None;
        }
        match r.read_until(b'\n', &mut line) {
            Ok(0) => return None,
            Ok(_) if line.ends_with(b"\n") => {
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

pub fn session(stream: TcpStream, st: &SinkState) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mode = *st.mode.lock().unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    if mode == Mode::Silent {
        while read_line(&mut r, st).is_some() {}
        return;
    }
    if mode == Mode::Hangup {
        return;
    }
    if mode == Mode::Busy {
        let _ = w.write_all(b"421 4.3.2 sink is busy\r\n");
        let _ = read_line(&mut r, st);
        return;
    }
    w.write_all(b"220 sink.test ESMTP test sink\r\n").unwrap();
    let mut txn = Txn {
        helo: String::new(),
        mail: String::new(),
        rcpts: Vec::new(),
        data: Vec::new(),
        pipelined: false,
    };
    while let Some(line) = read_line(&mut r, st) {
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        let arg = |p: &str| {
            cmd[p.len()..]
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_owned()
        };
        let reply: String = if upper.starts_with("EHLO ") {
            cmd[5..].clone_into(&mut txn.helo);
            "250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n".into()
        } else if upper.starts_with("HELO ") {
            cmd[5..].clone_into(&mut txn.helo);
            "250 sink.test\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            txn.mail = arg("MAIL FROM:");
            txn.rcpts.clear();
            txn.pipelined = !r.buffer().is_empty();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = arg("RCPT TO:");
            if rcpt.starts_with("temp") {
                "451 4.2.1 mailbox busy, try later\r\n".into()
            } else if rcpt.starts_with("perm") {
                "550 5.1.1 no such user here\r\n".into()
            } else {
                txn.rcpts.push(rcpt);
                "250 2.1.5 ok\r\n".into()
            }
        } else if upper == "DATA" {
            if txn.rcpts.is_empty() {
                "554 5.5.1 no valid recipients\r\n".into()
            } else {
                w.write_all(b"354 go ahead\r\n").unwrap();
                txn.data.clear();
                let mut complete = false;
                while let Some(l) = read_line(&mut r, st) {
                    if l == ".\r\n" {
                        complete = true;
                        break;
                    }
                    let l = l.strip_prefix('.').unwrap_or(&l);
                    txn.data.extend_from_slice(l.as_bytes());
                    if *st.mode.lock().unwrap() == Mode::DropInData {
                        let _ = w.shutdown(Shutdown::Both);
                        return;
                    }
                }
                if !complete {
                    return;
                }
                if *st.mode.lock().unwrap() == Mode::DropAfterDot {
                    let _ = w.shutdown(Shutdown::Both);
                    return;
                }
                st.txns.lock().unwrap().push(txn.clone());
                format!(
                    "250 2.0.0 ok: queued as {}\r\n",
                    st.txns.lock().unwrap().len()
                )
            }
        } else if upper == "QUIT" {
            let _ = w.write_all(b"221 2.0.0 bye\r\n");
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok\r\n".into()
        } else {
            "502 5.5.2 unknown command\r\n".into()
        };
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Listeners on `ips`, all on one port (retrying until a port is free on every address).
pub fn bind_same_port(ips: &[IpAddr]) -> (u16, Vec<TcpListener>) {
    for _ in 0..50 {
        let first = TcpListener::bind(SocketAddr::new(ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let mut all = vec![first];
        for &ip in &ips[1..] {
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(l) => all.push(l),
                Err(_) => break,
            }
        }
        if all.len() == ips.len() {
            return (port, all);
        }
    }
    panic!("no common free port on {ips:?}");
}

pub fn lo(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

// ---------------------------------------------------------------- Postfix smtp-sink

/// A running smtp-sink, killed on drop.
pub struct PostfixSink {
    pub child: std::process::Child,
    pub dir: tempfile::TempDir,
}

impl PostfixSink {
    pub fn start(addr: SocketAddr) -> Option<PostfixSink> {
        let exe = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let mut cmd = std::process::Command::new(exe);
        if rustix::process::getuid().is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg("-d")
            .arg(dir.path().join("%M."))
            .args([&addr.to_string(), "64"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(PostfixSink { child, dir })
    }

    pub fn dumps(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
