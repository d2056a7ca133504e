//! Integration tests for mta-smtp-tokio: one binary, one module per topic.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    missing_docs,
    unreachable_pub
)]

#[path = "integration/common.rs"]
mod common;
/// The vectors shared with mta-smtp's blocking driver tests.
#[path = "../../mta-smtp/tests/vectors/mod.rs"]
mod vectors;

#[path = "integration/client.rs"]
mod client;
#[path = "integration/interop.rs"]
mod interop;
#[path = "integration/server.rs"]
mod server;
#[path = "integration/shared_vectors.rs"]
mod shared_vectors;
#[path = "integration/tls.rs"]
mod tls;
