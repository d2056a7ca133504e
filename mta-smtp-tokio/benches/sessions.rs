//! The async server against mta-smtp's blocking one on the same machine: sessions per
//! second (connect, EHLO, QUIT), messages per second (1 KiB messages over reused
//! connections, pipelined), and the memory of idle async sessions (RSS of a child server
//! process before and after N connections that sent EHLO, divided by N).
//!
//! `cargo bench -p mta-smtp-tokio --bench sessions` runs the full sizes (10,000 idle
//! sessions); `cargo bench -p mta-smtp-tokio --bench sessions -- --test` a quick smoke.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mta_smtp_tokio::mta_smtp::blocking::{Policy, serve};
use mta_smtp_tokio::{
    ClientConfig, ClientConnection, DeliveryResult, Envelope, Handler, Server, ServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROLE: &str = "MTA_BENCH_ROLE";

struct Sink;
impl Handler for Sink {}
impl Policy for Sink {}

fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let max = limit.maximum;
    let raised = rustix::process::Rlimit {
        current: max,
        maximum: max,
    };
    // Not fatal: the measurement then runs with what there is.
    let _ = setrlimit(Resource::Nofile, raised);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new("mx.bench");
    c.timeout = Duration::from_mins(10);
    c
}

/// The async server in its own 2-worker runtime; the flag stops it.
fn start_async() -> (SocketAddr, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = Arc::clone(&stop);
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let stopped = async move {
                while !s2.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            Server::new(config())
                .run(listener, |_| Sink, stopped)
                .await
                .unwrap();
        });
    });
    (rx.recv().unwrap(), stop, h)
}

/// The blocking server: a thread per connection, as mta-smtp's `serve` is meant to run.
fn start_blocking() -> (SocketAddr, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let h = std::thread::spawn(move || {
        for conn in listener.incoming() {
            if s2.load(Ordering::Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let _ = conn.set_nodelay(true);
            std::thread::spawn(move || {
                let _ = serve(conn, config(), &mut Sink);
            });
        }
    });
    (addr, stop, h)
}

fn stop_server(addr: SocketAddr, stop: &AtomicBool, h: std::thread::JoinHandle<()>) {
    stop.store(true, Ordering::Relaxed);
    // Wakes a blocking accept so it sees the flag.
    let _ = std::net::TcpStream::connect(addr);
    h.join().unwrap();
}

/// `sessions` sessions of connect, greeting, EHLO, QUIT, `concurrency` at a time.
async fn sessions(addr: SocketAddr, sessions: usize, concurrency: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let n = sessions / concurrency + usize::from(w < sessions % concurrency);
        tasks.spawn(async move {
            for _ in 0..n {
                let mut c = TcpStream::connect(addr).await.unwrap();
                c.set_nodelay(true).unwrap();
                c.write_all(b"EHLO bench.client\r\nQUIT\r\n").await.unwrap();
                let mut out = Vec::new();
                c.read_to_end(&mut out).await.unwrap();
                assert!(out.ends_with(b"221 mx.bench\r\n"));
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    sessions as f64 / start.elapsed().as_secs_f64()
}

/// `per_conn` 1 KiB messages on each of `conns` reused connections.
async fn messages(addr: SocketAddr, conns: usize, per_conn: usize) -> f64 {
    let body: Vec<u8> = b"Subject: bench\n\n"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'x', 1000))
        .chain(*b"\n")
        .collect();
    let body = Arc::new(body);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let body = Arc::clone(&body);
        tasks.spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let cfg = ClientConfig::new("bench.client", "127.0.0.1");
            let mut conn = ClientConnection::new(stream, cfg, None);
            let env = Envelope::new("a@example.org", ["b@example.com", "c@example.com"]);
            for _ in 0..per_conn {
                let r = conn.send(&env, &body[..]).await;
                assert!(r.iter().all(DeliveryResult::is_delivered), "{r:?}");
            }
            conn.quit().await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    (conns * per_conn) as f64 / start.elapsed().as_secs_f64()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child: a server (async, or blocking with `blocking`) that prints its address, then
/// serves until its stdin closes.
fn idle_server_child(kind: &str) {
    raise_nofile();
    let (addr, stop, h) = if kind == "blocking" {
        start_blocking()
    } else {
        start_async()
    };
    println!("{addr}");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    // Any input or EOF ends the child.
    let _ = std::io::stdin().read_line(&mut line);
    stop_server(addr, &stop, h);
}

/// Opens `n` sessions (greeting read, EHLO answered) to a child server of `kind` and
/// returns (sessions held, bytes of RSS per session).
async fn idle_sessions(kind: &str, n: usize) -> (usize, f64) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .env(ROLE, kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib(child.id());
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut c) = TcpStream::connect(addr).await else {
            break;
        };
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        if c.write_all(b"EHLO idle.client\r\n").await.is_err() {
            break;
        }
        while !got.ends_with(b"250 SMTPUTF8\r\n") {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        if !got.ends_with(b"250 SMTPUTF8\r\n") {
            break;
        }
        held.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib(child.id());
    let sessions = held.len();
    drop(held);
    drop(child.stdin.take());
    child.wait().unwrap();
    let per = (after.saturating_sub(before) * 1024) as f64 / sessions.max(1) as f64;
    (sessions, per)
}

fn main() {
    if let Ok(kind) = std::env::var(ROLE) {
        return idle_server_child(&kind);
    }
    let smoke = std::env::args().any(|a| a == "--test");
    let limit = raise_nofile();
    let (n_sessions, conns, per_conn, n_idle) = if smoke {
        (40, 2, 10, 100)
    } else {
        (5_000, 4, 2_500, 10_000)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("RLIMIT_NOFILE {limit}; clients in this process, each server in its own threads");
        for kind in ["async", "blocking"] {
            let (addr, stop, h) = if kind == "async" {
                start_async()
            } else {
                start_blocking()
            };
            let s = sessions(addr, n_sessions, 16).await;
            let m = messages(addr, conns, per_conn).await;
            stop_server(addr, &stop, h);
            println!("{kind:8} server: {s:9.0} sessions/s (EHLO+QUIT, 16 clients)");
            println!(
                "{kind:8} server: {m:9.0} messages/s (1 KiB, 2 rcpts, {conns} reused connections)"
            );
        }
        let (held, per) = idle_sessions("async", n_idle).await;
        println!("async    server: {held} idle sessions (after EHLO), {per:.0} bytes RSS each");
        let (held, per) = idle_sessions("blocking", n_idle.min(2_000)).await;
        println!("blocking server: {held} idle sessions (after EHLO), {per:.0} bytes RSS each");
        if held < n_idle.min(2_000) || smoke {
            println!("(smoke run or fd limit: fewer sessions than asked)");
        }
    });
}
