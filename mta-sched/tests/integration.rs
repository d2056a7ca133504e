//! Every rule mta-sched holds, as a test with a fake clock (seconds after a fixed epoch):
//! one binary, one module per topic.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "integration/util.rs"]
mod util;

#[path = "integration/bounces.rs"]
mod bounces;
#[path = "integration/concurrency.rs"]
mod concurrency;
#[path = "integration/holds.rs"]
mod holds;
#[path = "integration/properties.rs"]
mod properties;
#[path = "integration/retries.rs"]
mod retries;
