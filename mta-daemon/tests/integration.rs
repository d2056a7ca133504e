//! End-to-end tests of the `mta` command.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "integration/inject.rs"]
mod inject;
