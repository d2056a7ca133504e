//! Integration tests for mta-smtp: one binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

#[path = "integration/common.rs"]
mod common;

#[path = "integration/blocking.rs"]
mod blocking;
#[path = "integration/client.rs"]
mod client;
#[path = "integration/core_crosscheck.rs"]
mod core_crosscheck;
#[path = "integration/driver_vectors.rs"]
mod driver_vectors;
#[path = "integration/interop.rs"]
mod interop;
#[path = "integration/pipelining.rs"]
mod pipelining;
#[path = "integration/server_states.rs"]
mod server_states;
#[path = "integration/smuggling.rs"]
mod smuggling;
#[cfg(feature = "rustls")]
#[path = "integration/tls.rs"]
mod tls;
#[path = "integration/transcripts.rs"]
mod transcripts;
#[path = "vectors/mod.rs"]
mod vectors;
