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
}
