//! The async server: [`Server`] holds the configuration and TLS, runs one connection
//! ([`Server::serve_connection`]) or an accept loop ([`Server::run`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use mta_smtp::{Reply, ServerConfig, ServerSession};

use crate::handler::{Handler, SessionInfo};
use crate::stream::Conn;

mod driver;

/// How the server uses TLS.
#[derive(Clone)]
enum Tls {
    None,
    /// STARTTLS (RFC 3207) is offered.
    Upgrade(TlsAcceptor),
    /// TLS from the first byte (RFC 8314, port 465).
    Implicit(TlsAcceptor),
}

/// An SMTP server: the [`ServerConfig`] every session starts with, and its TLS setup.
/// Cheap to clone (the configuration is shared).
///
/// ```no_run
/// use mta_smtp_tokio::{Handler, Server, ServerConfig};
/// struct Sink;
/// impl Handler for Sink {}
/// # async fn f() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:2525").await?;
/// let server = Server::new(ServerConfig::new("mx.example.org"));
/// server.run(listener, |_peer| Sink, std::future::pending()).await
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    config: Arc<ServerConfig>,
    tls: Tls,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = match self.tls {
            Tls::None => "none",
            Tls::Upgrade(_) => "starttls",
            Tls::Implicit(_) => "implicit",
        };
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tls", &tls)
            .finish()
    }
}

impl Server {
    /// A server without TLS. `config.implicit_tls` is switched off; if
    /// `config.offer_starttls` is set, a STARTTLS gets its `220` and then ends the
    /// session, as the blocking `serve` without a hook does (use
    /// [`with_starttls`](Server::with_starttls)).
    pub fn new(mut config: ServerConfig) -> Server {
        config.implicit_tls = false;
        Server {
            config: Arc::new(config),
            tls: Tls::None,
        }
    }

    /// Offers STARTTLS (RFC 3207) with this rustls configuration (use the ring provider:
    /// the crate never enables another). Sets `offer_starttls`; `require_tls` stays as
    /// configured.
    #[must_use]
    pub fn with_starttls(self, tls: Arc<rustls::ServerConfig>) -> Server {
        let mut config = Arc::unwrap_or_clone(self.config);
        config.offer_starttls = true;
        config.implicit_tls = false;
        Server {
            config: Arc::new(config),
            tls: Tls::Upgrade(TlsAcceptor::from(tls)),
        }
    }

    /// Implicit TLS (RFC 8314 §3.3, port 465): the handshake runs before the greeting;
    /// STARTTLS is never offered.
    #[must_use]
    pub fn with_implicit_tls(self, tls: Arc<rustls::ServerConfig>) -> Server {
        let mut config = Arc::unwrap_or_clone(self.config);
        config.offer_starttls = false;
        config.implicit_tls = true;
        Server {
            config: Arc::new(config),
            tls: Tls::Implicit(TlsAcceptor::from(tls)),
        }
    }

    /// The configuration each session starts with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Runs one SMTP session on `io` until QUIT, timeout, EOF or an I/O error, answering
    /// through `handler`; `peer` is shown to the handler in [`SessionInfo::peer`].
    ///
    /// Timeouts come from the [`ServerConfig`] on tokio's clock: a command line must
    /// arrive within `timeout` of the previous reply, DATA must keep `min_data_rate`
    /// (RFC 5321 §4.5.3.2; `421 4.4.2 timeout`); each write and each TLS handshake may
    /// take at most `timeout`.
    ///
    /// # Errors
    /// I/O errors other than timeouts (the session's `421` covers those), as the blocking
    /// driver returns them; a failed TLS handshake ends the session without an error.
    ///
    /// # Cancel safety
    /// Not cancel-safe in the sense of resumable: dropping the future drops the session
    /// mid-dialogue (the client sees the connection close, any message in progress is not
    /// accepted, and [`Handler::reset`] is not called). Use [`Server::run`]'s shutdown
    /// for an orderly `421`.
    pub async fn serve_connection<IO, H>(
        &self,
        io: IO,
        peer: Option<SocketAddr>,
        handler: &mut H,
    ) -> io::Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send,
        H: Handler,
    {
        self.serve_until(io, peer, handler, None).await
    }

    async fn serve_until<IO, H>(
        &self,
        io: IO,
        peer: Option<SocketAddr>,
        handler: &mut H,
        shutdown: Option<watch::Receiver<bool>>,
    ) -> io::Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send,
        H: Handler,
    {
        let mut conn = Conn::Plain(io);
        let timeout = self.config.timeout.max(Duration::from_millis(1));
        if let Tls::Implicit(acceptor) = &self.tls
            && !conn.accept_tls(acceptor, timeout).await
        {
            // RFC 8314: no greeting before the handshake; nothing to say to a failed one.
            return Ok(());
        }
        let acceptor = match &self.tls {
            Tls::Upgrade(a) => Some(a),
            Tls::None | Tls::Implicit(_) => None,
        };
        let mut info = SessionInfo::new(peer);
        info.tls = self.config.implicit_tls;
        let session = ServerSession::new((*self.config).clone(), crate::stream::now());
        let mut driver = driver::Driver {
            session,
            conn,
            handler,
            info,
            acceptor,
            timeout,
            shutdown,
        };
        driver.run().await
    }

    /// Accepts connections on `listener` and serves each in its own task with a handler
    /// from `new_handler` (given the peer's address), until `shutdown` completes. Then it
    /// stops accepting, ends every open session with `421 4.3.2 shutting down` at its
    /// next read (RFC 5321 §3.8), and returns once all have finished.
    ///
    /// An error on one connection ends that connection only.
    ///
    /// # Errors
    /// None at present besides what `listener` reports as fatal; accept errors such as
    /// running out of file descriptors are retried after 100 ms.
    ///
    /// # Cancel safety
    /// Dropping the future stops accepting and aborts every session task at once (their
    /// clients see the connection close). Complete `shutdown` instead for an orderly end.
    pub async fn run<H, F, S>(
        &self,
        listener: TcpListener,
        mut new_handler: F,
        shutdown: S,
    ) -> io::Result<()>
    where
        H: Handler + 'static,
        F: FnMut(SocketAddr) -> H,
        S: Future<Output = ()>,
    {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Replies are written in whole batches; Nagle would only add delay.
                        // A failure leaves the default, which still works.
                        let _ = stream.set_nodelay(true);
                        let server = self.clone();
                        let mut handler = new_handler(peer);
                        let stopped = stopped.clone();
                        tasks.spawn(async move {
                            server
                                .serve_until(stream, Some(peer), &mut handler, Some(stopped))
                                .await
                        });
                    }
                    // EMFILE, ECONNABORTED and the like: wait a little and accept again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                },
            }
        }
        // Receivers only go away with their sessions; no session left is fine too.
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// The reply to open sessions when [`Server::run`] shuts down.
pub(crate) fn shutdown_reply() -> Option<Reply> {
    Reply::new(421, "4.3.2 shutting down").ok()
}
