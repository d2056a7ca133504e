//! # mta: a modern qmail in Rust
//!
//! This facade re-exports the workspace's crates under short names, so one dependency
//! brings the whole family. Each crate is also usable alone (`cargo add mta-smtp`).
//!
//! | module | crate | what it is for |
//! |---|---|---|
//! | [`core`] | `mta-core` | addresses (RFC 5321/5322), envelopes, header helpers, qmail control files |
//! | [`queue`] | `mta-queue` | a crash-safe on-disk mail queue with group commit |
//! | [`maildir`] | `mta-maildir` | maildir and mbox delivery with the fsync discipline, and reading |
//! | [`dotqmail`] | `mta-dotqmail` | `.qmail` files, users/assign and the qmail-local interpreter |
//! | [`smtp`] | `mta-smtp` | sans-IO SMTP server and client state machines, blocking drivers |
//! | [`verp`] | `mta-verp` | VERP, loop detection, QSBMF/DSN bounces |
//!
//! The `mta` daemon itself lives in the `mta-daemon` crate.
//!
//! ```
//! let env = mta::core::Envelope::new("sender@example.org", ["rcpt@example.com"]);
//! assert_eq!(env.recipients.len(), 1);
//! ```

#![forbid(unsafe_code)]

pub use mta_core as core;
pub use mta_dotqmail as dotqmail;
pub use mta_maildir as maildir;
pub use mta_queue as queue;
pub use mta_smtp as smtp;
pub use mta_verp as verp;
