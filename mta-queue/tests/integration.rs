//! Integration tests for mta-queue: one binary, one module per topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

#[path = "integration/common.rs"]
mod common;

#[path = "integration/api.rs"]
mod api;
#[path = "integration/concurrency.rs"]
mod concurrency;
#[path = "integration/crash.rs"]
mod crash;
#[path = "integration/faults.rs"]
mod faults;
#[path = "integration/golden.rs"]
mod golden;
#[path = "integration/power_loss.rs"]
mod power_loss;
#[path = "integration/qmail_format.rs"]
mod qmail_format;
#[path = "integration/roundtrip.rs"]
mod roundtrip;
#[path = "integration/scale.rs"]
mod scale;
