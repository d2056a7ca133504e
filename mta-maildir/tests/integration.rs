//! Integration tests for mta-maildir: one binary, one module per topic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "integration/common.rs"]
mod common;
#[path = "integration/concurrency.rs"]
mod concurrency;
#[path = "integration/crash.rs"]
mod crash;
#[path = "integration/maildir_ops.rs"]
mod maildir_ops;
#[path = "integration/mbox_ops.rs"]
mod mbox_ops;
#[path = "integration/powerloss.rs"]
mod powerloss;
#[path = "integration/python.rs"]
mod python;
