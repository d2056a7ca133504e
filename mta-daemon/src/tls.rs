//! TLS for the daemon (design.md "TLS, AUTH and message authentication"): the server
//! certificate `control/servercert.pem`, re-read when it changes, and the byte stream an
//! SMTP session runs over, plain or encrypted.
//!
//! The certificate file holds the private key and the chain (qmail-tls's layout). It is
//! read by the accepting thread, which keeps the daemon's privileges, so a root-only 0600
//! key works; sessions get the parsed configuration. A file that changed is parsed again on
//! the next connection; a file that fails to parse keeps the previous configuration and is
//! logged once per change, so a renewal that goes wrong never takes TLS down.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mta_smtp::tls::rustls::{ServerConfig, ServerConnection};
use mta_smtp::tls::{self as smtp_tls, TlsStream};

use crate::log;

/// What identifies one version of the certificate file: inode, size, modification time.
type Stamp = (u64, u64, i64, i64);

/// `control/servercert.pem`, parsed and kept current.
#[derive(Debug)]
pub(crate) struct CertStore {
    path: PathBuf,
    current: Mutex<(Option<Stamp>, Option<Arc<ServerConfig>>)>,
}

impl CertStore {
    /// A store for the file at `path` (which may not exist: then there is no TLS).
    pub(crate) fn new(path: PathBuf) -> CertStore {
        CertStore {
            path,
            current: Mutex::new((None, None)),
        }
    }

    /// The configuration for a new connection: re-reads the file if it changed since the
    /// last call. `None` when there is no usable certificate.
    pub(crate) fn current(&self) -> Option<Arc<ServerConfig>> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.ino(), m.len(), m.mtime(), m.mtime_nsec()));
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if cur.0 != stamp {
            cur.0 = stamp;
            match stamp {
                None => {
                    if cur.1.take().is_some() {
                        log::line("status: servercert.pem removed; TLS off");
                    }
                }
                Some(_) => match std::fs::read(&self.path)
                    .map_err(|e| e.to_string())
                    .and_then(|pem| {
                        smtp_tls::server_config_from_pem(&pem).map_err(|e| e.to_string())
                    }) {
                    Ok(config) => {
                        log::line("status: servercert.pem loaded");
                        cur.1 = Some(config);
                    }
                    Err(e) => log::line(&format!(
                        "warning: {}: {}; keeping the previous certificate",
                        self.path.display(),
                        log::safe(e.as_bytes())
                    )),
                },
            }
        }
        cur.1.clone()
    }
}

/// A session's connection: plain, or TLS after STARTTLS or on an smtps port.
pub(crate) enum Wire {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<ServerConnection>>),
    /// A handshake failed; nothing more can be read or written.
    Gone,
}

impl Wire {
    /// The socket underneath (for timeouts), if any.
    fn socket(&self) -> Option<&TcpStream> {
        match self {
            Wire::Plain(s) => Some(s),
            Wire::Tls(t) => Some(&t.sock),
            Wire::Gone => None,
        }
    }

    /// Runs the server handshake on the plain connection (within `timeout`) and keeps the
    /// encrypted one; returns the version and cipher (`TLSv1.3 TLS13_...`).
    ///
    /// # Errors
    /// The handshake failed or timed out; the wire is [`Wire::Gone`] then.
    pub(crate) fn start_tls(
        &mut self,
        config: Arc<ServerConfig>,
        timeout: Duration,
    ) -> io::Result<String> {
        let Wire::Plain(tcp) = std::mem::replace(self, Wire::Gone) else {
            return Err(io::Error::other("not a plain connection"));
        };
        tcp.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let tls = smtp_tls::accept(tcp, config)?;
        let described = smtp_tls::describe(&tls.conn);
        *self = Wire::Tls(Box::new(tls));
        Ok(described)
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "tls handshake failed")
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(t) => t.read(buf),
            Wire::Gone => Err(gone()),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(t) => t.write(buf),
            Wire::Gone => Err(gone()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(t) => t.flush(),
            Wire::Gone => Err(gone()),
        }
    }
}

impl crate::smtpd::SessionStream for Wire {
    fn set_read_wait(&mut self, wait: Option<Duration>) -> io::Result<()> {
        match self.socket() {
            Some(s) => s.set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1)))),
            None => Ok(()),
        }
    }

    fn start_tls(&mut self, config: Arc<ServerConfig>, timeout: Duration) -> io::Result<String> {
        Wire::start_tls(self, config, timeout)
    }
}
