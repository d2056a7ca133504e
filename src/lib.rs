//! # mta: a modern qmail in Rust
//!
//! This facade re-exports the workspace's crates under short names, each behind a Cargo
//! feature of the same name, so one dependency brings the part of the family you need.
//! Each crate is also usable alone (`cargo add mta-smtp`).
//!
//! ```toml
//! [dependencies]
//! mta = "0.1"                                                          # everything
//! # mta = { version = "0.1", default-features = false, features = ["smtp", "queue"] }
//! ```
//!
//! | module | feature | crate | what it is for |
//! |---|---|---|---|
//! | [`core`] | (always) | `mta-core` | addresses (RFC 5321/5322), envelopes, header helpers, qmail control files |
//! | `durable` | `durable` | `mta-durable` | the `Fs` trait, fsync-ordered steps, a power-loss simulator |
//! | `queue` | `queue` | `mta-queue` | a crash-safe on-disk mail queue with group commit |
//! | `maildir` | `maildir` | `mta-maildir` | maildir and mbox delivery with the fsync discipline, and reading |
//! | `dotqmail` | `dotqmail` | `mta-dotqmail` | `.qmail` files, users/assign and the qmail-local interpreter |
//! | `smtp` | `smtp` | `mta-smtp` | sans-IO SMTP server and client state machines, blocking drivers |
//! | `verp` | `verp` | `mta-verp` | VERP, loop detection, QSBMF/DSN bounces |
//! | `sched` | `sched` | `mta-sched` | qmail-send's scheduling decisions as a sans-IO state machine |
//! | `smtp_tokio` | `smtp-tokio` | `mta-smtp-tokio` | async SMTP server and client drivers on tokio, with STARTTLS |
//!
//! The default features enable every module but `smtp_tokio` (tokio stays opt-in). `core` is always there (the feature exists
//! only so it can be named); `dotqmail` also builds mta-maildir and `sched` mta-queue, as
//! those crates depend on them, without re-exporting them unless their features are on.
//!
//! The `mta` daemon itself lives in the `mta-daemon` crate.
//!
//! ```
//! let env = mta::core::Envelope::new("sender@example.org", ["rcpt@example.com"]);
//! assert_eq!(env.recipients.len(), 1);
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use mta_core as core;
#[cfg(feature = "dotqmail")]
pub use mta_dotqmail as dotqmail;
#[cfg(feature = "durable")]
pub use mta_durable as durable;
#[cfg(feature = "maildir")]
pub use mta_maildir as maildir;
#[cfg(feature = "queue")]
pub use mta_queue as queue;
#[cfg(feature = "sched")]
pub use mta_sched as sched;
#[cfg(feature = "smtp")]
pub use mta_smtp as smtp;
#[cfg(feature = "smtp-tokio")]
pub use mta_smtp_tokio as smtp_tokio;
#[cfg(feature = "verp")]
pub use mta_verp as verp;

/// The workspace README's Rust snippets, compiled and run as doctests (the README is
/// mostly about the daemon, so it is not this crate's front page).
#[cfg(all(doctest, feature = "queue", feature = "maildir"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
