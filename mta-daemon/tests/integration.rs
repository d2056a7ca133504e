//! End-to-end tests of the `mta` command: one test binary with topic modules.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub, dead_code)]

#[path = "integration/fakes.rs"]
mod fakes;
#[path = "integration/support.rs"]
mod support;

#[path = "integration/admin.rs"]
mod admin;
#[path = "integration/auth.rs"]
mod auth;
#[path = "integration/crash.rs"]
mod crash;
#[path = "integration/inject.rs"]
mod inject;
#[path = "integration/limits.rs"]
mod limits;
#[path = "integration/msgauth.rs"]
mod msgauth;
#[path = "integration/ops.rs"]
mod ops;
#[path = "integration/pickup.rs"]
mod pickup;
#[path = "integration/processes.rs"]
mod processes;
#[path = "integration/qmail_compat.rs"]
mod qmail_compat;
#[path = "integration/remote.rs"]
mod remote;
#[path = "integration/serve.rs"]
mod serve;
#[path = "integration/tls.rs"]
mod tls;
