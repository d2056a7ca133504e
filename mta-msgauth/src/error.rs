//! Error types, one per operation family.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A key file or key directory could not be used (loading, generating or writing DKIM keys).
///
/// Every variant that concerns a file names its path, so `mta check` can print one line per
/// problem.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a file or directory failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A key file does not hold a usable private key.
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or directory name under the key directory is not `DOMAIN/SELECTOR.pem`.
    BadName {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with the name.
        reason: &'static str,
    },
    /// A domain or selector given to [`write_key`](crate::write_key) is not a valid DNS label
    /// sequence.
    BadArgument {
        /// Which argument (`domain` or `selector`).
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// A key file already exists where [`write_key`](crate::write_key) was asked to create
    /// one (keys are never overwritten: rotate by adding a selector).
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Generating a key failed (RSA keys need the `openssl` program).
    Generate {
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            KeyError::BadKey { path, reason } => write!(f, "{}: {reason}", path.display()),
            KeyError::BadName { path, reason } => write!(f, "{}: {reason}", path.display()),
            KeyError::BadArgument { what, value } => write!(f, "invalid {what} {value:?}"),
            KeyError::Exists { path } => write!(f, "{}: key file exists", path.display()),
            KeyError::Generate { reason } => write!(f, "cannot generate key: {reason}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Signing a message failed.
///
/// A message whose From: domain has no keys is not an error (it is left unsigned); this is
/// returned when a domain has keys but one of them cannot be used, so that a caller can
/// defer the message rather than send it unsigned.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignError {
    /// A key file of the signing domain could not be read or parsed.
    Key(KeyError),
    /// The DKIM library refused to sign (for example: no header field to sign).
    Dkim {
        /// The selector whose signature failed.
        selector: String,
        /// The library's message.
        reason: String,
    },
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Key(e) => write!(f, "dkim key: {e}"),
            SignError::Dkim { selector, reason } => {
                write!(f, "dkim signing with selector {selector} failed: {reason}")
            }
        }
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignError::Key(e) => Some(e),
            SignError::Dkim { .. } => None,
        }
    }
}

impl From<KeyError> for SignError {
    fn from(e: KeyError) -> Self {
        SignError::Key(e)
    }
}

/// Building a [`Verifier`](crate::Verifier) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifierError {
    /// No DNS server was configured.
    NoDnsServers,
    /// The resolver or the runtime could not be created.
    Setup {
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for VerifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifierError::NoDnsServers => f.write_str("no dns servers configured"),
            VerifierError::Setup { reason } => write!(f, "cannot set up the resolver: {reason}"),
        }
    }
}

impl std::error::Error for VerifierError {}
