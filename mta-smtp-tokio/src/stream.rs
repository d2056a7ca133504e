//! The connection under a session: plain, or TLS after STARTTLS or from the start.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// How a client runs STARTTLS (RFC 3207): the rustls client configuration and the name
/// the server's certificate is checked against.
#[derive(Clone)]
pub struct TlsConnect {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl TlsConnect {
    /// TLS with `config` (build it with the ring provider; see the crate docs), checking
    /// the certificate against `name` as far as `config`'s verifier does.
    pub fn new(config: Arc<rustls::ClientConfig>, name: ServerName<'static>) -> TlsConnect {
        TlsConnect {
            connector: TlsConnector::from(config),
            name,
        }
    }
}

impl std::fmt::Debug for TlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnect")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A session's transport. TLS streams are boxed: rustls' state is large and most
/// sessions never use it.
pub(crate) enum Conn<IO> {
    Plain(IO),
    Tls(Box<TlsStream<IO>>),
    /// After a failed handshake: every operation fails.
    Gone,
}

impl<IO> std::fmt::Debug for Conn<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Plain",
            Conn::Tls(_) => "Tls",
            Conn::Gone => "Gone",
        })
    }
}

/// Now on tokio's clock (so a paused test clock drives the sessions' timeouts too).
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "tls handshake failed")
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Conn<IO> {
    /// Reads some bytes. Cancel-safe: if the future is dropped before it completes, no
    /// data was read.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(io) => io.read(buf).await,
            Conn::Tls(io) => io.read(buf).await,
            Conn::Gone => Err(gone()),
        }
    }

    /// Writes and flushes `out`, then empties it; fails after `timeout` (a client that
    /// does not read must not hold the session forever).
    pub(crate) async fn write_out(
        &mut self,
        out: &mut Vec<u8>,
        timeout: Duration,
    ) -> io::Result<()> {
        let write = async {
            match self {
                Conn::Plain(io) => {
                    io.write_all(out).await?;
                    io.flush().await
                }
                Conn::Tls(io) => {
                    io.write_all(out).await?;
                    io.flush().await
                }
                Conn::Gone => Err(gone()),
            }
        };
        let written = match tokio::time::timeout(timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        };
        out.clear();
        written
    }

    /// Server STARTTLS or implicit TLS: the handshake, bounded by `timeout`. True when TLS
    /// is up; on failure the connection is [`Conn::Gone`].
    pub(crate) async fn accept_tls(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> bool {
        let Conn::Plain(io) = std::mem::replace(self, Conn::Gone) else {
            return false;
        };
        if let Ok(Ok(tls)) = tokio::time::timeout(timeout, acceptor.accept(io)).await {
            *self = Conn::Tls(Box::new(TlsStream::Server(tls)));
            return true;
        }
        false
    }

    /// Client STARTTLS: the handshake, bounded by `timeout`. True when TLS is up; on
    /// failure the connection is [`Conn::Gone`].
    pub(crate) async fn connect_tls(&mut self, tls: &TlsConnect, timeout: Duration) -> bool {
        let Conn::Plain(io) = std::mem::replace(self, Conn::Gone) else {
            return false;
        };
        let handshake = tls.connector.connect(tls.name.clone(), io);
        if let Ok(Ok(stream)) = tokio::time::timeout(timeout, handshake).await {
            *self = Conn::Tls(Box::new(TlsStream::Client(stream)));
            return true;
        }
        false
    }

    /// Closes the sending side (TLS `close_notify`, then FIN), bounded by `timeout`.
    pub(crate) async fn shutdown(&mut self, timeout: Duration) -> io::Result<()> {
        let close = async {
            match self {
                Conn::Plain(io) => io.shutdown().await,
                Conn::Tls(io) => io.shutdown().await,
                Conn::Gone => Ok(()),
            }
        };
        tokio::time::timeout(timeout, close)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "close timed out")))
    }
}
