//! Integration tests for mta-verp: one binary, one module per topic.
#![allow(clippy::unwrap_used)]

#[path = "integration/compose.rs"]
mod compose;
#[path = "integration/loops.rs"]
mod loops;
#[path = "integration/parse.rs"]
mod parse;
#[path = "integration/verp_props.rs"]
mod verp_props;

use std::path::PathBuf;

/// `tests/data/<rel>`.
pub(crate) fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// Reads `tests/data/<rel>`.
pub(crate) fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}
