//! Blocking drivers: run a [`crate::ServerSession`] or a [`crate::ClientSession`] over any
//! byte stream that implements [`Transport`] (`TcpStream`, `UnixStream`, or your own
//! in-memory pipe), one thread per connection.
//!
//! Every server entry point ([`serve`], [`serve_with`], [`serve_connection`], and
//! `tls::serve_implicit`) runs the one session loop of [`serve_connection`]: reads go
//! through a 2 KiB buffer that grows to 64 KiB once a client fills it (an idle session
//! stays small; a client streaming DATA costs no per-byte system calls), and each batch of
//! replies is written with one `write_all`, which is what makes PIPELINING cheap. The
//! session's `poll_timeout` becomes the connection's read timeout (through
//! [`Transport::timeouts`] or [`Connection::set_read_wait`]). This module is the only place
//! in the crate that reads the clock.
//!
//! ```
//! # #[cfg(unix)] {
//! use std::os::unix::net::UnixStream;
//! use mta_smtp::blocking::{Policy, deliver_with, serve};
//! use mta_smtp::{ClientConfig, DataSummary, ServerConfig, Verdict};
//!
//! struct Print;
//! impl Policy for Print {
//!     fn data_end(&mut self, summary: &DataSummary) -> Verdict {
//!         assert_eq!(summary.envelope.recipients[0].as_bytes(), b"b@example.net");
//!         Verdict::Accept
//!     }
//! }
//! let (server_end, client_end) = UnixStream::pair()?;
//! let server = std::thread::spawn(move || serve(server_end, ServerConfig::new("mx"), &mut Print));
//! let env = mta_core::Envelope::new("a@example.org", ["b@example.net"]);
//! let results = deliver_with(client_end, &env, &b"Subject: hi\n\nhello\n"[..],
//!     ClientConfig::new("client.example", "unix socket"), None);
//! assert!(results[0].is_delivered());
//! server.join().expect("server thread")?;
//! # }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::Duration;

mod client;
mod server;

pub use client::{deliver, deliver_with};
#[cfg(feature = "rustls")]
pub(crate) use server::serve_stream;
pub use server::{Connection, Policy, ReadWait, serve, serve_connection, serve_with};

/// The read buffer of a busy connection (the client driver's, and a server session's once
/// a read filled [`IDLE_BUF`]).
const BUF: usize = 64 * 1024;
/// A server session's first read buffer: enough for a pipelined envelope.
const IDLE_BUF: usize = 2048;
/// A server session's read buffer once a DATA is under way: a message of a few KB in one
/// read.
const DATA_BUF: usize = 8 * 1024;

/// Something TLS-wrapped (or not) to talk SMTP over, for [`deliver_with`]'s upgrade hook.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A connection the blocking drivers can run over: a byte stream plus the two things a
/// driver needs from a socket that `Read`/`Write` do not give.
///
/// Implemented for `TcpStream` and (on Unix) `UnixStream`. For an in-memory pipe, a
/// child's stdin/stdout pair or a test double, `impl Transport for MyPipe {}` is enough:
/// both methods have defaults (no timeouts, no peer address).
pub trait Transport: Read + Write {
    /// A handle that sets this connection's read and write timeouts, taken before the
    /// stream is handed to a STARTTLS hook (the encrypted stream reads through the same
    /// socket, so the handle must stay valid).
    ///
    /// The default does nothing: reads then block until input or EOF, so the session's
    /// deadlines (RFC 5321 §4.5.3.2, `ServerConfig::timeout`) are checked only when input
    /// arrives.
    ///
    /// # Errors
    /// When the handle cannot be made (`TcpStream::try_clone` failing).
    fn timeouts(&self) -> io::Result<Box<dyn Timeouts>> {
        Ok(Box::new(NoTimeouts))
    }

    /// The peer's IP address and port, reported to the server's [`Policy`] in
    /// [`DataSummary::peer`](crate::DataSummary) and used in the client's report texts.
    /// The default is `None`.
    fn peer(&self) -> Option<SocketAddr> {
        None
    }
}

/// Sets read and write timeouts on a connection; see [`Transport::timeouts`].
pub trait Timeouts {
    /// How long a read may block; `None` waits forever.
    ///
    /// # Errors
    /// As `TcpStream::set_read_timeout`.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// How long a write may block; `None` waits forever.
    ///
    /// # Errors
    /// As `TcpStream::set_write_timeout`.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

/// The [`Timeouts`] of a stream that cannot time out.
struct NoTimeouts;

impl Timeouts for NoTimeouts {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

impl Timeouts for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

impl Transport for TcpStream {
    fn timeouts(&self) -> io::Result<Box<dyn Timeouts>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn peer(&self) -> Option<SocketAddr> {
        self.peer_addr().ok()
    }
}

#[cfg(unix)]
impl Timeouts for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
}

/// A Unix socket has no IP peer: [`Transport::peer`] is `None`.
#[cfg(unix)]
impl Transport for UnixStream {
    fn timeouts(&self) -> io::Result<Box<dyn Timeouts>> {
        Ok(Box::new(self.try_clone()?))
    }
}

/// The STARTTLS hook: given the plain stream after the server's `220`, run the TLS
/// handshake and return the encrypted stream. `S` is the plain stream's type.
pub type TlsUpgrade<'a, S = TcpStream> = &'a mut dyn FnMut(S) -> io::Result<Box<dyn Stream>>;

/// The connection a driver talks over: plain, upgraded to TLS, or lost in a failed upgrade.
pub(crate) enum Conn<S> {
    Plain(S),
    Tls(Box<dyn Stream>),
    Gone,
}

impl<S: Read + Write> Conn<S> {
    pub(crate) fn io(&mut self) -> io::Result<&mut dyn Stream> {
        match self {
            Conn::Plain(s) => Ok(s),
            Conn::Tls(s) => Ok(s.as_mut()),
            Conn::Gone => Err(io::Error::new(
                ErrorKind::NotConnected,
                "tls upgrade failed",
            )),
        }
    }

    /// Writes and flushes `out` (one batch of replies or commands), then empties it.
    pub(crate) fn write_out(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let written = self
            .io()
            .and_then(|io| io.write_all(out).and_then(|()| io.flush()));
        out.clear();
        written
    }

    /// STARTTLS: hands the plain stream to `upgrade` and keeps the encrypted one; true when
    /// TLS is up. After a failed handshake the connection is [`Conn::Gone`]; without a hook,
    /// or when the connection is not plain, it stays as it was.
    pub(crate) fn start_tls(&mut self, upgrade: Option<&mut TlsUpgrade<'_, S>>) -> bool {
        self.upgrade(upgrade).is_ok()
    }

    /// [`Conn::start_tls`] with the reason a handshake did not happen.
    pub(crate) fn upgrade(&mut self, upgrade: Option<&mut TlsUpgrade<'_, S>>) -> io::Result<()> {
        match (std::mem::replace(self, Conn::Gone), upgrade) {
            (Conn::Plain(plain), Some(upgrade)) => {
                *self = Conn::Tls(upgrade(plain)?);
                Ok(())
            }
            (other, upgrade) => {
                *self = other;
                Err(io::Error::new(
                    ErrorKind::Unsupported,
                    if upgrade.is_none() {
                        "no TLS on this connection"
                    } else {
                        "already encrypted"
                    },
                ))
            }
        }
    }
}
