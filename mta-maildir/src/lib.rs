#![doc = include_str!("../README.md")]
//!
//! ## API overview
//!
//! Maildir and mbox delivery that survives crashes and power loss, plus maildir reading,
//! following qmail-local (qmail-reference §2.7, §2.8) and maildir(5).
//!
//! - [`Maildir`]: [`create`](Maildir::create) / [`open`](Maildir::open) a maildir and
//!   [`deliver`](Maildir::deliver) into it (tmp/, fsync, link into new/, fsync new/), with
//!   Maildir++ sub-folders ([`Maildir::folder`]) and reading: [`Maildir::list`],
//!   [`Maildir::read`], [`Maildir::set_flags`] (move to cur/ with `:2,` [`Flags`]) and
//!   [`Maildir::clean_tmp`] (the 36-hour rule).
//! - [`deliver_many`]: one message into many maildirs with N + 1 fsyncs instead of 2N, for
//!   mailing-list fan-out; [`deliver_many_with`] and [`FanoutSync::WholeFilesystem`] replace
//!   the N directory fsyncs with one `syncfs`.
//! - [`DeliveryBatch`]: many deliveries (one maildir or many) staged in `tmp/` and
//!   committed with two `syncfs` calls in all instead of two fsyncs each.
//! - [`Mbox`]: appending with a qmail `From ` line ([`mbox_from_line`]), mboxrd `>From `
//!   quoting, locking, fsync and truncation back on failure.
//! - [`durable`]: the only module that calls fsync, link, rename or unlink, through the
//!   [`Fs`] trait of [`mta_durable`] (re-exported); [`sim::PowerLossFs`] (mta-durable's
//!   `SimFs`) is an in-memory [`Fs`] that keeps only what was made durable, used to prove
//!   the fsync order.
//!
//! Message bytes are opaque: they are written exactly as given (qmail's queue stores LF line
//! ends), and errors say which step failed. Every error is temporary in qmail's sense.
//!
//! ```
//! use mta_maildir::{Maildir, Mbox, Subdir, mbox_from_line};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let home = tempfile::tempdir()?;
//! let md = Maildir::create(home.path().join("Maildir"))?;
//! let name = md.deliver(b"Delivered-To: joe@example.com\n", &b"Subject: hi\n\nhello\n"[..])?;
//! let new = md.list(Subdir::New)?;
//! assert_eq!(new[0].file_name(), name.as_str());
//! assert!(md.read(&new[0])?.starts_with(b"Delivered-To: joe@example.com\nSubject: hi"));
//!
//! let mbox = Mbox::new(home.path().join("Mailbox"));
//! mbox.deliver(&mbox_from_line(b"ann@example.org", 0), b"", &b"From here\n"[..])?;
//! let text = std::fs::read(home.path().join("Mailbox"))?;
//! assert_eq!(text, b"From ann@example.org Thu Jan 01 00:00:00 1970\n>From here\n\n");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod batch;
pub mod durable;
mod error;
mod fanout;
mod flags;
mod maildir;
mod mbox;
mod name;
mod read;
pub mod sim;

/// The `mta-durable` crate, re-exported: [`Maildir`] is generic over its [`Fs`] trait, so a
/// caller can write its own `Fs` (or use [`mta_durable::SimFs`]) without a dependency of its own.
pub use mta_durable;

pub use batch::DeliveryBatch;
pub use durable::{Fs, OsFs};
pub use error::{DeliverError, DeliverStep, MaildirError, MboxError, MboxStep};
pub use fanout::{FanoutSync, deliver_many, deliver_many_with};
pub use flags::{Flag, Flags, ParseFlagError};
pub use maildir::Maildir;
pub use mbox::{DEFAULT_LOCK_TIMEOUT, Mbox, ctime_utc, mbox_from_line};
pub use name::{DeliveredName, escape_hostname};
#[allow(deprecated)]
pub use read::Message;
pub use read::{Entry, Subdir, TMP_MAX_AGE};
