//! The async client: [`deliver`] sends one message; [`ClientConnection`] sends several
//! over one connection; [`deliver_batch`] sends a batch to one host, reconnecting when
//! the server ends the connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use mta_core::{DeliveryResult, EnhancedStatus, Envelope, StatusClass};
use mta_smtp::{ClientConfig, ClientEvent, ClientSession};

use crate::stream::{Conn, TlsConnect, now};

/// The message is read in pieces of this size.
const BODY_BUF: usize = 16 * 1024;

/// The server's replies are read in pieces of this size.
const REPLY_BUF: usize = 4 * 1024;

/// Sends one message over a connected `io` (RFC 5321 §3: greeting, EHLO with HELO
/// fallback, STARTTLS as `config.tls` says, AUTH when `config.auth` is set and only
/// inside TLS (RFC 4954), MAIL, pipelined RCPTs and DATA when offered (RFC 2920), the
/// message dot-stuffed, QUIT) and returns one result per recipient of `envelope`, in
/// order. `message` is the stored message (LF line ends; CRLF is fine too).
///
/// `tls` is needed when `config.tls` is not `Never`; without it STARTTLS counts as
/// failed. Replies must come within `config.timeout` (tokio's clock), and each write and
/// handshake must finish within it.
///
/// I/O errors never escape: they become deferrals (qmail-remote's "connection died",
/// with "Possible duplicate!" after the final dot); an unreadable message defers every
/// recipient.
///
/// # Cancel safety
/// Not resumable: dropping the future drops the connection mid-dialogue. A message
/// dropped before the server's final reply may or may not have been accepted (treat it
/// as "possible duplicate").
pub async fn deliver<IO, R>(
    io: IO,
    envelope: &Envelope,
    message: R,
    mut config: ClientConfig,
    tls: Option<&TlsConnect>,
) -> Vec<DeliveryResult>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    R: AsyncRead + Unpin,
{
    config.reuse_connection = false;
    let timeout = config.timeout.max(Duration::from_millis(1));
    let mut session = ClientSession::new(config, envelope.clone(), now());
    let mut conn = Conn::Plain(io);
    drive(&mut session, &mut conn, message, tls, timeout).await;
    // Best effort: the results are final; a peer that already left makes this fail.
    let _ = conn.shutdown(timeout).await;
    session.results()
}

/// A connection to one server that carries several messages (RFC 5321 §4.1.1.4: after
/// the final reply to DATA the next MAIL may follow), with the EHLO, STARTTLS and AUTH
/// done once.
///
/// ```no_run
/// use mta_smtp_tokio::{ClientConfig, ClientConnection, Envelope};
/// # async fn f() -> std::io::Result<()> {
/// let io = tokio::net::TcpStream::connect("127.0.0.1:2525").await?;
/// let mut conn = ClientConnection::new(io, ClientConfig::new("client.example", "mx"), None);
/// for n in 0..3 {
///     let env = Envelope::new("a@example.org", ["b@example.net"]);
///     let results = conn.send(&env, format!("Subject: {n}\n\nhi\n").as_bytes()).await;
///     assert!(results.iter().all(|r| r.is_delivered()));
/// }
/// conn.quit().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClientConnection<IO> {
    conn: Conn<IO>,
    config: ClientConfig,
    tls: Option<TlsConnect>,
    session: Option<ClientSession>,
}

impl<IO> ClientConnection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// A connection over a connected `io`; nothing is sent or read until the first
    /// [`send`](ClientConnection::send). `config.reuse_connection` is switched on.
    pub fn new(io: IO, mut config: ClientConfig, tls: Option<TlsConnect>) -> ClientConnection<IO> {
        config.reuse_connection = true;
        ClientConnection {
            conn: Conn::Plain(io),
            config,
            tls,
            session: None,
        }
    }

    /// True while the connection can carry another message: nothing was sent yet, or the
    /// last message ended with a final reply and the server kept the connection.
    pub fn is_reusable(&self) -> bool {
        self.session.as_ref().is_none_or(ClientSession::is_idle)
    }

    /// Sends one message as [`deliver`] does, keeping the connection for the next. When
    /// the connection is not [reusable](ClientConnection::is_reusable) any more, every
    /// recipient is deferred at once (`4.4.2`) and nothing is sent: open a new one.
    ///
    /// # Cancel safety
    /// As [`deliver`]; after a drop the connection is in an unknown state and must not
    /// be used again (it reports not reusable only if the session noticed).
    pub async fn send<R: AsyncRead + Unpin>(
        &mut self,
        envelope: &Envelope,
        message: R,
    ) -> Vec<DeliveryResult> {
        let timeout = self.config.timeout.max(Duration::from_millis(1));
        let session = match self.session.take() {
            None => ClientSession::new(self.config.clone(), envelope.clone(), now()),
            Some(mut s) => {
                if !s.next_message(envelope.clone(), now()) {
                    self.session = Some(s);
                    return closed(envelope, &self.config.peer);
                }
                s
            }
        };
        let session = self.session.insert(session);
        drive(session, &mut self.conn, message, self.tls.as_ref(), timeout).await;
        session.results()
    }

    /// Ends the connection: QUIT (when the server is still there), then close.
    ///
    /// # Cancel safety
    /// Dropping the future closes the connection without waiting for the `221`; every
    /// result is final already, so nothing is lost.
    pub async fn quit(mut self) {
        let timeout = self.config.timeout.max(Duration::from_millis(1));
        if let Some(session) = self.session.as_mut()
            && session.is_idle()
        {
            session.close(now());
            drive(session, &mut self.conn, tokio::io::empty(), None, timeout).await;
        }
        // Best effort: nothing depends on a clean close any more.
        let _ = self.conn.shutdown(timeout).await;
    }
}

/// Sends `messages` (envelope and stored message each) to the server at `addr`, over as
/// few connections as the server allows: a message whose transaction did not end with a
/// final reply makes the next one reconnect. Returns one result list per message, in
/// order. A failed connect defers that message's recipients.
///
/// # Cancel safety
/// As [`deliver`]: messages before the one in progress have their final results (not
/// returned when dropped); the one in progress may or may not have been accepted.
pub async fn deliver_batch(
    addr: SocketAddr,
    messages: &[(Envelope, &[u8])],
    config: &ClientConfig,
    tls: Option<&TlsConnect>,
) -> Vec<Vec<DeliveryResult>> {
    let mut results = Vec::with_capacity(messages.len());
    let mut conn: Option<ClientConnection<TcpStream>> = None;
    let timeout = config.timeout.max(Duration::from_millis(1));
    for (envelope, message) in messages {
        if conn.as_ref().is_some_and(|c| !c.is_reusable())
            && let Some(old) = conn.take()
        {
            old.quit().await;
        }
        if conn.is_none() {
            let Ok(Ok(stream)) = tokio::time::timeout(timeout, TcpStream::connect(addr)).await
            else {
                results.push(closed(envelope, &config.peer));
                continue;
            };
            // Commands are written in whole batches; Nagle would only add delay (a failure
            // leaves the default, which works too).
            let _ = stream.set_nodelay(true);
            conn = Some(ClientConnection::new(stream, config.clone(), tls.cloned()));
        }
        if let Some(c) = conn.as_mut() {
            results.push(c.send(envelope, *message).await);
        }
    }
    if let Some(c) = conn {
        c.quit().await;
    }
    results
}

/// Every recipient deferred: no connection to send on.
fn closed(envelope: &Envelope, peer: &str) -> Vec<DeliveryResult> {
    let status = EnhancedStatus::new(StatusClass::Transient, 4, 2).ok();
    envelope
        .recipients
        .iter()
        .map(|_| DeliveryResult::Deferred {
            text: format!("Connection to {peer} is closed."),
            status,
        })
        .collect()
}

/// Runs the session until it is finished (or idle), with the same steps as mta-smtp's
/// blocking `deliver_with`.
async fn drive<IO, R>(
    s: &mut ClientSession,
    conn: &mut Conn<IO>,
    mut message: R,
    tls: Option<&TlsConnect>,
    timeout: Duration,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    R: AsyncRead + Unpin,
{
    let mut out = Vec::new();
    let mut buf = vec![0u8; REPLY_BUF];
    while !s.is_finished() {
        while let Some(ev) = s.poll_event() {
            match ev {
                ClientEvent::StartTls => {
                    flush(s, conn, &mut out, timeout).await;
                    let up = match tls {
                        Some(tls) => conn.connect_tls(tls, timeout).await,
                        None => false,
                    };
                    if up {
                        s.tls_established(now());
                    } else {
                        *conn = Conn::Gone;
                        s.handle_eof();
                    }
                }
                ClientEvent::SendBody => send_body(s, conn, &mut message, &mut out, timeout).await,
                _ => {}
            }
        }
        flush(s, conn, &mut out, timeout).await;
        if s.is_finished() {
            break;
        }
        let read = match s.poll_timeout() {
            Some(at) => {
                tokio::time::timeout_at(tokio::time::Instant::from_std(at), conn.read(&mut buf))
                    .await
            }
            None => Ok(conn.read(&mut buf).await),
        };
        match read {
            Ok(Ok(0) | Err(_)) => s.handle_eof(),
            Ok(Ok(n)) => s.handle_input(&buf[..n], now()),
            Err(_) => s.handle_timeout(now()),
        }
    }
}

/// Pushes the message through the session's encoder, writing as it goes.
async fn send_body<IO, R>(
    s: &mut ClientSession,
    conn: &mut Conn<IO>,
    message: &mut R,
    out: &mut Vec<u8>,
    timeout: Duration,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; BODY_BUF];
    loop {
        match message.read(&mut buf).await {
            Ok(0) => {
                s.finish_body(now());
                return;
            }
            Ok(n) => {
                s.send_body(&buf[..n]);
                if !flush(s, conn, out, timeout).await {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                s.abort(&format!("Unable to read message: {e}."));
                return;
            }
        }
    }
}

/// Writes pending output; on failure the session learns the connection died.
async fn flush<IO>(
    s: &mut ClientSession,
    conn: &mut Conn<IO>,
    out: &mut Vec<u8>,
    timeout: Duration,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    if !s.poll_transmit(out) {
        return true;
    }
    if conn.write_out(out, timeout).await.is_err() {
        s.handle_eof();
        return false;
    }
    true
}
