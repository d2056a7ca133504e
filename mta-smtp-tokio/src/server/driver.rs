//! The per-connection loop: bytes from the connection into the [`ServerSession`], its
//! events to the [`Handler`], its replies back; the same order as mta-smtp's blocking
//! driver (events, transmit, STARTTLS, close, read with the session's deadline).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use mta_smtp::{Event, Reply, ServerSession, Verdict};

use crate::handler::{Handler, MessageMode, SessionInfo};
use crate::stream::{Conn, now};

/// The read buffer between commands: small, since an idle session should cost little.
const COMMAND_BUF: usize = 1024;

/// The read buffer during DATA, allocated at `354` and freed after the message.
const DATA_BUF: usize = 32 * 1024;

/// What a read with the session's deadline gave.
enum Read {
    Data(usize),
    Eof,
    Timeout,
    Shutdown,
    Failed(io::Error),
}

/// What an accepted verdict changes in the [`SessionInfo`].
enum OnAccept {
    Mail(mta_core::path::ReversePath),
    Rcpt(mta_core::path::ForwardPath),
    DataStart,
    DataEnd,
    Auth,
}

pub(super) struct Driver<'a, IO, H> {
    pub(super) session: ServerSession,
    pub(super) conn: Conn<IO>,
    pub(super) handler: &'a mut H,
    pub(super) info: SessionInfo,
    pub(super) acceptor: Option<&'a TlsAcceptor>,
    pub(super) timeout: Duration,
    pub(super) shutdown: Option<watch::Receiver<bool>>,
}

impl<IO, H> Driver<'_, IO, H>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    pub(super) async fn run(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        // The message in MessageMode::Whole, from 354 to its end.
        let mut whole: Option<Vec<u8>> = None;
        let mut in_data = false;
        let result = loop {
            let start_tls = self.drain_events(&mut whole, &mut in_data).await;
            if self.session.poll_transmit(&mut out)
                && let Err(e) = self.conn.write_out(&mut out, self.timeout).await
            {
                break Err(e);
            }
            if start_tls {
                let up = match self.acceptor {
                    Some(acceptor) => self.conn.accept_tls(acceptor, self.timeout).await,
                    None => false,
                };
                if up {
                    self.session.tls_established(now());
                    self.info.tls = true;
                    self.info.helo = None;
                    self.info.authenticated = None;
                    self.info.reset_transaction();
                } else {
                    self.session.tls_failed();
                }
                continue;
            }
            if self.session.is_closed() {
                break Ok(());
            }
            // Backpressure: every event was handled (and awaited) above, so the session
            // holds at most one read's worth of input when we read again.
            let size = if in_data { DATA_BUF } else { COMMAND_BUF };
            if buf.len() != size {
                buf = vec![0; size];
            }
            match self.read(&mut buf).await {
                Read::Data(n) => self.session.handle_input(&buf[..n], now()),
                Read::Eof => self.session.handle_eof(),
                Read::Timeout => self.session.handle_timeout(now()),
                Read::Shutdown => {
                    if let Some(reply) = super::shutdown_reply() {
                        self.session.shutdown(&reply);
                    }
                    self.shutdown = None;
                }
                Read::Failed(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Read::Failed(e) => break Err(e),
            }
        };
        self.handler.reset().await;
        if result.is_ok() {
            // Best effort: the dialogue is over; a peer that already left makes this fail.
            let _ = self.conn.shutdown(self.timeout).await;
        }
        result
    }

    /// One read, bounded by the session's deadline and the server's shutdown signal.
    async fn read(&mut self, buf: &mut [u8]) -> Read {
        let deadline = self.session.poll_timeout();
        let conn = &mut self.conn;
        let shutdown = &mut self.shutdown;
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let stop = async {
            match shutdown {
                Some(rx) => {
                    // A dropped sender (the accept loop is gone) never signals.
                    if !*rx.borrow_and_update() && rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            // Cancel-safe: a read that loses the race has read nothing.
            r = conn.read(buf) => match r {
                Ok(0) => Read::Eof,
                Ok(n) => Read::Data(n),
                Err(e) => Read::Failed(e),
            },
            () = timer => Read::Timeout,
            () = stop => Read::Shutdown,
        }
    }

    /// Hands events to the handler and applies its verdicts; true on STARTTLS.
    async fn drain_events(&mut self, whole: &mut Option<Vec<u8>>, in_data: &mut bool) -> bool {
        let mut start_tls = false;
        let max = self.session.config().max_message_size;
        loop {
            let (verdict, on_accept) = match self.session.poll_event() {
                None => return start_tls,
                Some(Event::Helo { name } | Event::Ehlo { name }) => {
                    self.info.helo = Some(name);
                    self.info.reset_transaction();
                    self.handler.hello(&self.info).await;
                    continue;
                }
                Some(Event::Mail { path, params }) => {
                    let v = self.handler.mail(&path, &params, &self.info).await;
                    (v, OnAccept::Mail(path))
                }
                Some(Event::Rcpt { path, params }) => {
                    let v = self.handler.rcpt(&path, &params, &self.info).await;
                    (v, OnAccept::Rcpt(path))
                }
                Some(Event::Auth(credentials)) => (
                    self.handler.auth(&credentials, &self.info).await,
                    OnAccept::Auth,
                ),
                Some(Event::DataStart) => {
                    let v = self.handler.data_start(&self.info).await;
                    (v, OnAccept::DataStart)
                }
                Some(Event::DataChunk(chunk)) => {
                    match whole {
                        Some(message) => {
                            // The session refuses a message over the limit at its end;
                            // never collect more than that meanwhile.
                            if message.len().saturating_add(chunk.len()) <= max {
                                message.extend_from_slice(chunk);
                            }
                        }
                        None => self.handler.data_chunk(chunk, &self.info).await,
                    }
                    continue;
                }
                Some(Event::DataEnd(summary)) => {
                    let message = whole.take();
                    let v = self
                        .handler
                        .data_end(&summary, message.as_deref(), &self.info)
                        .await;
                    (v, OnAccept::DataEnd)
                }
                Some(Event::DataRejected(error)) => {
                    *whole = None;
                    *in_data = false;
                    self.info.reset_transaction();
                    self.handler.data_rejected(error, &self.info).await;
                    continue;
                }
                Some(Event::Rset) => {
                    self.info.reset_transaction();
                    self.handler.reset().await;
                    continue;
                }
                Some(Event::StartTls) => {
                    start_tls = true;
                    continue;
                }
                Some(_) => {
                    // Quit, Timeout, Aborted, TooManyRecipients: nothing to decide.
                    *whole = None;
                    *in_data = false;
                    continue;
                }
            };
            let accepted = self.decide(verdict);
            match on_accept {
                OnAccept::Mail(path) if accepted => {
                    self.info.reset_transaction();
                    self.info.sender = Some(path);
                }
                OnAccept::Rcpt(path) if accepted => self.info.recipients.push(path),
                OnAccept::DataStart if accepted => {
                    *in_data = true;
                    *whole = (self.handler.message_mode() == MessageMode::Whole).then(Vec::new);
                }
                OnAccept::DataStart | OnAccept::DataEnd => {
                    // A refused DATA and a message's final reply both end the transaction.
                    *in_data = false;
                    *whole = None;
                    self.info.reset_transaction();
                }
                OnAccept::Auth if accepted => {
                    self.info.authenticated = self.session.authenticated().map(str::to_owned);
                }
                _ => {}
            }
        }
    }

    /// Applies a verdict; one of the wrong class becomes `451 local error in policy`, as
    /// in the blocking driver. True when the command was accepted.
    fn decide(&mut self, verdict: Verdict) -> bool {
        let accepted = matches!(verdict, Verdict::Accept | Verdict::AcceptWith(_));
        if self.session.decide(verdict).is_ok() {
            return accepted;
        }
        if let Ok(local) = Reply::new(451, "local error in policy") {
            // invariant: an event is pending (decide only failed on the reply class) and a
            // 451 is a valid refusal, so this cannot fail.
            let _ = self.session.decide(Verdict::Reject(local));
        }
        false
    }
}
