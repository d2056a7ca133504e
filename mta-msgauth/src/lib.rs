#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
mod keys;
mod names;
mod results;
mod sign;
mod store;
mod strip;
mod verify;

pub use error::{KeyError, SignError, VerifierError};
pub use keys::{KeyKind, PrivateKeyPem, dns_name, generate_key, write_key};
#[doc(hidden)]
pub use names::fuzz_names;
pub use results::{
    AuthResults, DkimCheck, DkimResult, DmarcCheck, DmarcPolicy, DmarcResult, SpfCheck,
    SpfIdentity, SpfResult,
};
pub use sign::{SIGNED_HEADERS, Signer};
pub use store::{KeyInfo, KeyScan, KeyStore};
pub use strip::remove_auth_results;
pub use verify::{BlockingVerifier, Verifier, VerifierConfig};
