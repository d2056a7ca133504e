//! The async server's own duties: timeouts on tokio's clock, backpressure, the orderly
//! shutdown of `Server::run`, whole-message mode.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mta_smtp_tokio::mta_smtp::LineEnding;
use mta_smtp_tokio::{
    DataSummary, Handler, MessageMode, Server, ServerConfig, SessionInfo, Verdict,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::common::Running;

async fn read_all(mut c: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_idle_client_gets_the_421_timeout() {
    let mut cfg = ServerConfig::new("mx.test");
    cfg.timeout = Duration::from_millis(300);
    let running = Running::start(Server::new(cfg)).await;
    let mut c = TcpStream::connect(running.addr).await.unwrap();
    let start = Instant::now();
    c.write_all(b"HELO x\r\n").await.unwrap();
    let got = read_all(c).await;
    assert_eq!(
        got,
        "220 mx.test ESMTP\r\n250 mx.test\r\n421 4.4.2 timeout\r\n"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    running.stop().await;
}

#[tokio::test]
async fn a_dripping_data_below_the_min_rate_times_out() {
    let mut cfg = ServerConfig::new("mx.test");
    cfg.timeout = Duration::from_millis(300);
    cfg.min_data_rate = 1000;
    let running = Running::start(Server::new(cfg)).await;
    let mut c = TcpStream::connect(running.addr).await.unwrap();
    c.write_all(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    // One byte every 50 ms: 20 B/s, far below 1000 B/s.
    for _ in 0..40 {
        if c.write_all(b"x").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if start.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    let got = read_all(c).await;
    assert!(
        got.ends_with("354 go ahead\r\n421 4.4.2 timeout\r\n"),
        "{got}"
    );
    assert!(running.stop().await.messages.is_empty());
}

#[tokio::test]
async fn shutdown_sends_421_to_open_sessions_and_waits_for_them() {
    let running = Running::start(Server::new(ServerConfig::new("mx.test"))).await;
    let mut c = TcpStream::connect(running.addr).await.unwrap();
    let mut greeting = [0u8; 19];
    c.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"220 mx.test ESMTP\r\n");
    let seen = running.stop().await;
    assert_eq!(seen.sessions, 1);
    assert_eq!(read_all(c).await, "421 4.3.2 shutting down\r\n");
}

/// Counts the bytes the server read from the socket.
struct Counting<T>(T, Arc<AtomicUsize>);

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.0).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.1.fetch_add(n, Ordering::SeqCst);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Slow: sleeps on every chunk, and checks that the server has not read far ahead.
struct Slow {
    read: Arc<AtomicUsize>,
    handled: usize,
    max_ahead: usize,
    chunks: usize,
}

impl Handler for Slow {
    async fn data_chunk(&mut self, chunk: &[u8], _: &SessionInfo) {
        self.handled += chunk.len();
        self.chunks += 1;
        let ahead = self
            .read
            .load(Ordering::SeqCst)
            .saturating_sub(self.handled);
        self.max_ahead = self.max_ahead.max(ahead);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_slows_the_reading_of_data() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let r2 = Arc::clone(&read);
    let server = tokio::spawn(async move {
        let (s, peer) = listener.accept().await.unwrap();
        let mut cfg = ServerConfig::new("mx.test");
        cfg.line_ending = LineEnding::Crlf;
        let mut h = Slow {
            read: r2,
            handled: 0,
            max_ahead: 0,
            chunks: 0,
        };
        Server::new(cfg)
            .serve_connection(Counting(s, Arc::clone(&h.read)), Some(peer), &mut h)
            .await
            .unwrap();
        h
    });
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
        .await
        .unwrap();
    let line = [b'x'; 98];
    let mut body = Vec::new();
    for _ in 0..40_000 {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b".\r\nQUIT\r\n");
    c.write_all(&body).await.unwrap();
    let got = read_all(c).await;
    assert!(got.ends_with("250 2.0.0 ok\r\n221 mx.test\r\n"), "{got}");
    let h = server.await.unwrap();
    assert_eq!(h.handled, 40_000 * 100);
    assert!(h.chunks > 100, "{} chunks", h.chunks);
    // Never more than one DATA read buffer (32 KiB) plus the command lines ahead.
    assert!(
        h.max_ahead <= 33 * 1024,
        "read {} bytes ahead of the handler",
        h.max_ahead
    );
}

struct WholeMessages(Vec<Vec<u8>>);

impl Handler for WholeMessages {
    fn message_mode(&self) -> MessageMode {
        MessageMode::Whole
    }
    async fn data_chunk(&mut self, _: &[u8], _: &SessionInfo) {
        panic!("no chunks in whole mode");
    }
    async fn data_end(&mut self, _: &DataSummary, m: Option<&[u8]>, info: &SessionInfo) -> Verdict {
        assert_eq!(info.envelope().unwrap().recipients.len(), 2);
        self.0.push(m.unwrap().to_vec());
        Verdict::Accept
    }
}

#[tokio::test]
async fn whole_mode_hands_over_the_message_and_envelope() {
    let (a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let mut h = WholeMessages(Vec::new());
        Server::new(ServerConfig::new("mx.test"))
            .serve_connection(a, None, &mut h)
            .await
            .unwrap();
        h.0
    });
    let (mut r, mut w) = tokio::io::split(b);
    w.write_all(
        b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@d.example>\r\n\
DATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    assert_eq!(
        server.await.unwrap(),
        vec![b"Subject: x\n\n.dot\n".to_vec()]
    );
}
