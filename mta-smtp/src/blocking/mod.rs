//! Blocking drivers: run a [`crate::ServerSession`] or a [`crate::ClientSession`] over a
//! [`std::net::TcpStream`], one thread per connection.
//!
//! Reads go through a 64 KiB buffer (no per-byte system calls); each batch of replies is
//! written with one `write_all`, which is what makes PIPELINING cheap. The session's
//! `poll_timeout` becomes the socket's read timeout. This module is the only place in the
//! crate that reads the clock.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;

mod client;
mod server;

pub use client::{deliver, deliver_with};
#[cfg(feature = "rustls")]
pub(crate) use server::serve_stream;
pub use server::{Policy, serve, serve_with};

const BUF: usize = 64 * 1024;

/// Something TLS-wrapped (or not) to talk SMTP over, for [`deliver_with`]'s upgrade hook.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// The STARTTLS hook: given the plain stream after the server's `220`, run the TLS
/// handshake and return the encrypted stream.
pub type TlsUpgrade<'a> = &'a mut dyn FnMut(TcpStream) -> io::Result<Box<dyn Stream>>;

pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<dyn Stream>),
    Gone,
}

impl Conn {
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
    pub(crate) fn start_tls(&mut self, upgrade: Option<&mut TlsUpgrade<'_>>) -> bool {
        match (std::mem::replace(self, Conn::Gone), upgrade) {
            (Conn::Plain(plain), Some(upgrade)) => match upgrade(plain) {
                Ok(encrypted) => {
                    *self = Conn::Tls(encrypted);
                    true
                }
                Err(_) => false,
            },
            (other, _) => {
                *self = other;
                false
            }
        }
    }
}
