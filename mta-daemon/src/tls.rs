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
use std::sync::Arc;
use std::time::Duration;

use mta_smtp::tls::rustls::{ServerConfig, ServerConnection};
use mta_smtp::tls::{self as smtp_tls, TlsStream};

use crate::watched::Watched;

/// How close to its expiry a certificate makes `mta check` warn.
const EXPIRY_WARNING: u64 = 14 * 24 * 3600;

/// `mta check` for one key + chain PEM file (`servercert.pem`, `clientcert.pem`): the
/// key must match the first certificate (rustls checks it), the certificate must not
/// have expired; warnings for one that expires within 14 days and for a key file every
/// account can read. `now` is in Unix seconds.
///
/// # Errors
/// What makes the file unusable, as one line.
pub(crate) fn check_pem_file(path: &std::path::Path, now: u64) -> Result<Vec<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let name = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let (certs, _) = smtp_tls::certified_key_from_pem(&pem).map_err(|e| format!("{name}: {e}"))?;
    smtp_tls::server_config_from_pem(&pem).map_err(|e| format!("{name}: {e}"))?;
    let mut warnings = Vec::new();
    let first = certs
        .first()
        .ok_or_else(|| format!("{name}: no certificate"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(first)
        .map_err(|e| format!("{name}: certificate does not parse: {e}"))?;
    let not_after = cert.validity().not_after.timestamp();
    let not_after = u64::try_from(not_after).unwrap_or(0);
    if not_after <= now {
        return Err(format!("{name}: the certificate expired"));
    }
    if not_after - now < EXPIRY_WARNING {
        warnings.push(format!(
            "{name}: the certificate expires in {} days",
            (not_after - now) / 86_400
        ));
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        // Group read is how the one process that needs the key gets it (`serve` gives
        // the file to that account's group, mode 0640); others must not read it.
        warnings.push(format!(
            "{name}: the private key is readable by every account (chmod 640)"
        ));
    }
    Ok(warnings)
}

/// `control/servercert.pem`, parsed and kept current ([`Watched`]).
pub(crate) type CertStore = Watched<Arc<ServerConfig>>;

/// The certificate store for `path`.
pub(crate) fn cert_store(path: std::path::PathBuf) -> CertStore {
    Watched::new(path, |p| {
        let pem = std::fs::read(p).map_err(|e| e.to_string())?;
        smtp_tls::server_config_from_pem(&pem).map_err(|e| e.to_string())
    })
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
