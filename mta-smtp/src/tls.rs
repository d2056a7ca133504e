//! TLS for the blocking drivers (feature `rustls`): STARTTLS (RFC 3207) and implicit TLS
//! (RFC 8314) with rustls, the ring provider only, TLS 1.2 and 1.3 only.
//!
//! The state machines stay crypto-free: they only learn that TLS is up
//! ([`ServerSession::tls_established`](crate::ServerSession::tls_established),
//! [`ClientSession::tls_established`](crate::ClientSession::tls_established)). This
//! module makes the configurations and runs the handshakes:
//!
//! - [`server_config_from_pem`]: one PEM file holding the private key and the certificate
//!   chain (qmail-tls's `servercert.pem`) becomes a [`rustls::ServerConfig`];
//! - [`client_config`]: trust anchors (webpki roots and any extra CA file), an optional
//!   client certificate, and whether to check the server's certificate at all;
//! - [`accept`] and [`connect`]: the handshake on a connected socket, bounded by the
//!   socket's timeouts, giving a [`TlsStream`] the drivers read and write;
//! - [`server_hook`] and [`client_hook`]: the same as STARTTLS hooks for
//!   [`serve_with`](crate::blocking::serve_with) and
//!   [`deliver_with`](crate::blocking::deliver_with); [`serve_implicit`] for port 465.
//!
//! ```no_run
//! use std::net::TcpListener;
//! use mta_smtp::{ServerConfig, blocking::{Policy, serve_with}, tls};
//! struct Sink;
//! impl Policy for Sink {}
//! let pem = std::fs::read("servercert.pem")?;
//! let tls_config = tls::server_config_from_pem(&pem)?;
//! let listener = TcpListener::bind("127.0.0.1:2525")?;
//! for conn in listener.incoming() {
//!     let mut config = ServerConfig::new("mx.example.org");
//!     config.offer_starttls = true;
//!     let mut hook = tls::server_hook(tls_config.clone());
//!     serve_with(conn?, config, &mut Sink, Some(&mut hook))?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// A driver, like the blocking ones: it owns the clock (the handshake's deadline); the state
// machines never read it (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::sync::Arc;

pub use rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConnection, CommonState, DigitallySignedStruct, RootCertStore, ServerConnection,
    SignatureScheme, StreamOwned,
};

use crate::ServerConfig;
use crate::blocking::Policy;
use crate::blocking::Stream;

/// A TLS connection over a socket: what the drivers read and write after the handshake.
pub type TlsStream<C> = StreamOwned<C, TcpStream>;

/// The provider every configuration here uses: ring, TLS 1.2 and 1.3.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A certificate or key file that cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// No `CERTIFICATE` block in the PEM text.
    NoCertificate,
    /// No private key (PKCS#8, PKCS#1 or SEC1) in the PEM text.
    NoPrivateKey,
    /// A PEM block did not decode.
    Pem(String),
    /// rustls refused the material (e.g. the key does not match the certificate).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::NoCertificate => f.write_str("no certificate in the PEM file"),
            TlsConfigError::NoPrivateKey => f.write_str("no private key in the PEM file"),
            TlsConfigError::Pem(e) => write!(f, "bad PEM: {e}"),
            TlsConfigError::Rustls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

impl From<rustls::Error> for TlsConfigError {
    fn from(e: rustls::Error) -> Self {
        TlsConfigError::Rustls(e)
    }
}

/// The certificate chain and the private key of one PEM text (key and chain in any
/// order, as qmail-tls's `servercert.pem` and `clientcert.pem` hold them).
///
/// # Errors
/// [`TlsConfigError`] when either is missing or a block does not decode.
pub fn certified_key_from_pem(
    pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey,
        other => TlsConfigError::Pem(other.to_string()),
    })?;
    Ok((certs, key))
}

/// A server configuration from one PEM text holding the private key (RSA, ECDSA or
/// Ed25519) and the certificate chain, first certificate the server's own.
///
/// # Errors
/// [`TlsConfigError`]: missing parts, undecodable PEM, or a key that does not match the
/// certificate.
pub fn server_config_from_pem(pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let (certs, key) = certified_key_from_pem(pem)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// How a client checks the server's certificate.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ServerCheck {
    /// Encrypt without checking who answers (opportunistic TLS, as most MTAs do for MX
    /// hosts: RFC 7435).
    None,
    /// The certificate must chain to one of these anchors and name the host.
    Verify(Arc<RootCertStore>),
}

/// Trust anchors: the webpki (Mozilla) roots plus every certificate of `extra_pem` (e.g.
/// `control/tlsca.pem`).
///
/// # Errors
/// [`TlsConfigError::Pem`] for an undecodable block, [`TlsConfigError::Rustls`] for a
/// certificate that is no usable anchor.
pub fn roots_with(extra_pem: Option<&[u8]>) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore {
        roots: webpki_roots_list(),
    };
    if let Some(pem) = extra_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TlsConfigError::Pem(e.to_string()))?;
            roots.add(cert)?;
        }
    }
    Ok(roots)
}

fn webpki_roots_list() -> Vec<rustls::pki_types::TrustAnchor<'static>> {
    webpki_roots::TLS_SERVER_ROOTS.to_vec()
}

/// A client configuration: `check` decides whether the server's certificate is verified;
/// `client_pem` (key and chain, qmail-tls's `clientcert.pem`) is presented when the
/// server asks.
///
/// # Errors
/// [`TlsConfigError`] for an unusable client certificate.
pub fn client_config(
    check: &ServerCheck,
    client_pem: Option<&[u8]>,
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let builder =
        rustls::ClientConfig::builder_with_provider(provider()).with_protocol_versions(VERSIONS)?;
    let builder = match check {
        ServerCheck::Verify(roots) => builder.with_root_certificates(Arc::clone(roots)),
        ServerCheck::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCheck(provider()))),
    };
    let config = match client_pem {
        Some(pem) => {
            let (certs, key) = certified_key_from_pem(pem)?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any certificate (signatures are still checked, so the handshake is real):
/// opportunistic encryption against passive eavesdroppers only.
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs the server side of the handshake on `tcp`; the socket's read timeout, if set,
/// bounds the whole handshake.
///
/// # Errors
/// The handshake failed (the peer's error, a protocol below TLS 1.2, a timeout).
pub fn accept(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<TlsStream<ServerConnection>> {
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    handshake(StreamOwned::new(conn, tcp))
}

/// Runs the client side of the handshake with `server_name` (the host name checked
/// under [`ServerCheck::Verify`]).
///
/// # Errors
/// The handshake failed, or the name is not a valid DNS name or IP address.
pub fn connect(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> io::Result<TlsStream<ClientConnection>> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    handshake(StreamOwned::new(conn, tcp))
}

/// Runs the handshake. The socket's read timeout, if set, bounds the whole handshake, not
/// each read: a peer dripping its ClientHello a byte at a time is cut off like a silent
/// one. The timeout is restored afterwards.
fn handshake<C, S>(mut s: StreamOwned<C, TcpStream>) -> io::Result<StreamOwned<C, TcpStream>>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>>,
    S: rustls::SideData,
{
    // One record at a time rather than rustls's complete_io, which loops on its own until
    // the handshake is done and so would let each dripped byte restart the read timeout.
    let budget = s.sock.read_timeout()?;
    let deadline = budget.and_then(|b| std::time::Instant::now().checked_add(b));
    while s.conn.is_handshaking() {
        while s.conn.wants_write() {
            s.conn.write_tls(&mut s.sock)?;
        }
        if !s.conn.is_handshaking() {
            break;
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            }
            s.sock.set_read_timeout(Some(left))?;
        }
        if s.conn.read_tls(&mut s.sock)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during the TLS handshake",
            ));
        }
        if let Err(e) = s.conn.process_new_packets() {
            // Tell the peer why (the alert rustls queued), then give up.
            let _ = s.conn.write_tls(&mut s.sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
    s.sock.set_read_timeout(budget)?;
    // What is left to send: the last handshake flight, a TLS 1.3 server's session tickets.
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    Ok(s)
}

/// `TLSv1.3 TLS13_AES_256_GCM_SHA384`: the version and cipher suite, for `Received:`
/// lines and logs (RFC 3848 leaves the comment's form open).
pub fn describe(state: &CommonState) -> String {
    let version = match state.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "TLS".to_owned(),
    };
    match state.negotiated_cipher_suite() {
        Some(suite) => format!("{version} {:?}", suite.suite()),
        None => version,
    }
}

/// A STARTTLS hook for [`serve_with`](crate::blocking::serve_with).
pub fn server_hook(
    config: Arc<rustls::ServerConfig>,
) -> impl FnMut(TcpStream) -> io::Result<Box<dyn Stream>> {
    move |tcp| Ok(Box::new(accept(tcp, Arc::clone(&config))?) as Box<dyn Stream>)
}

/// A STARTTLS hook for [`deliver_with`](crate::blocking::deliver_with), checking the
/// certificate against `server_name` when `config` verifies.
pub fn client_hook(
    config: Arc<rustls::ClientConfig>,
    server_name: String,
) -> impl FnMut(TcpStream) -> io::Result<Box<dyn Stream>> {
    move |tcp| Ok(Box::new(connect(tcp, Arc::clone(&config), &server_name)?) as Box<dyn Stream>)
}

/// Runs one implicit-TLS session (port 465, RFC 8314): the handshake first, then the
/// greeting and the whole session encrypted; the session never offers STARTTLS.
///
/// # Errors
/// A failed handshake, or I/O errors as [`serve`](crate::blocking::serve).
pub fn serve_implicit(
    stream: TcpStream,
    mut config: ServerConfig,
    policy: &mut impl Policy,
    tls: Arc<rustls::ServerConfig>,
) -> io::Result<()> {
    config.implicit_tls = true;
    let timeout = config.timeout.max(std::time::Duration::from_millis(1));
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let socket = stream.try_clone()?;
    let encrypted = accept(stream, tls)?;
    crate::blocking::serve_stream(Box::new(encrypted), &socket, config, policy)
}
