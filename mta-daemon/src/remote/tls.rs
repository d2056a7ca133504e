//! Outbound TLS (design.md "TLS, AUTH and message authentication"): STARTTLS whenever
//! the remote host offers it, under the `control/tlsdestinations` policy of the
//! recipient's domain:
//!
//! | policy | STARTTLS | certificate | without TLS |
//! |---|---|---|---|
//! | `none` | never | | plain text |
//! | `may` (default) | when offered | not checked | plain text; after a failed handshake the same host again in plain text |
//! | `encrypt` | required | not checked | deferred |
//! | `verify` | required | valid for the host name: webpki roots plus `control/tlsca.pem` | deferred |
//!
//! `control/clientcert.pem` (key and chain) is presented when a server asks for a client
//! certificate.

use std::path::Path;
use std::sync::Arc;

use mta_core::control::TlsDestination;
use mta_smtp::TlsPolicy;
use mta_smtp::tls::rustls::ClientConfig;
use mta_smtp::tls::{self as smtp_tls, ServerCheck};

/// The two client configurations every policy needs.
pub(crate) struct Outbound {
    /// Encrypt without checking the certificate (`may`, `encrypt`).
    any: Arc<ClientConfig>,
    /// Check the certificate against the roots (`verify`).
    verified: Arc<ClientConfig>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

/// Reads `dir/name` if it exists.
fn optional(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(dir.join(name)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", dir.join(name).display())),
    }
}

impl Outbound {
    /// Builds the configurations from `control/clientcert.pem` and `control/tlsca.pem`
    /// (both optional).
    ///
    /// # Errors
    /// A file that exists but cannot be read or used, named.
    pub(crate) fn load(control: &Path) -> Result<Outbound, String> {
        let client = optional(control, "clientcert.pem")?;
        let ca = optional(control, "tlsca.pem")?;
        let roots = smtp_tls::roots_with(ca.as_deref())
            .map_err(|e| format!("{}: {e}", control.join("tlsca.pem").display()))?;
        let named = |e: smtp_tls::TlsConfigError| {
            format!("{}: {e}", control.join("clientcert.pem").display())
        };
        Ok(Outbound {
            any: smtp_tls::client_config(&ServerCheck::None, client.as_deref()).map_err(named)?,
            verified: smtp_tls::client_config(
                &ServerCheck::Verify(Arc::new(roots)),
                client.as_deref(),
            )
            .map_err(named)?,
        })
    }

    /// What the client session does about STARTTLS under `policy`, and the configuration
    /// for the handshake (`None`: no TLS).
    pub(crate) fn for_policy(
        &self,
        policy: TlsDestination,
    ) -> (TlsPolicy, Option<Arc<ClientConfig>>) {
        match policy {
            TlsDestination::None => (TlsPolicy::Never, None),
            TlsDestination::May => (TlsPolicy::Opportunistic, Some(Arc::clone(&self.any))),
            TlsDestination::Encrypt => (TlsPolicy::Required, Some(Arc::clone(&self.any))),
            TlsDestination::Verify => (TlsPolicy::Required, Some(Arc::clone(&self.verified))),
        }
    }
}
