//! The power-loss simulator for crash tests: [`SimFs`], an in-memory file system that models
//! power loss (mta-durable's, shared with mta-maildir; see [`mta_durable::sim`]).
//!
//! Every file and directory keeps two versions: what a running process sees, and what would
//! survive a power cut. [`Fs::sync_data`](crate::Fs::sync_data) copies a file's data to its
//! durable version; [`Fs::sync_dir`](crate::Fs::sync_dir) copies a directory's names to its
//! durable version (so a created, renamed or removed name survives only once its directory
//! is synced, the rule ext4 and XFS actually give). [`SimFs::restart`] builds the file
//! system a rebooted (or merely restarted) machine would see; the queue directory is the
//! simulator's `/`.
//!
//! Crash points: [`SimFs::crash_after`]`(n)` lets operations up to number `n` run, then
//! fails the next one and everything after it, as a dead process would
//! (`crash_after(fs.op_count() + k)` lets `k` more run). Faults:
//! [`SimFs::fail_writes_after`] and [`SimFs::fail_syncs_after`] make writes or syncs fail
//! with a chosen errno (ENOSPC, EIO, ...) while the process lives on.
//!
//! ```
//! use mta_queue::sim::{Restart, SimFs};
//! use mta_queue::{Queue, QueueOptions};
//! use mta_core::Envelope;
//! let fs = SimFs::new();
//! let q = Queue::open_with(fs.clone(), QueueOptions::default())?;
//! let id = q.enqueue(&Envelope::new("a@b", ["c@d"]), &b"hello"[..])?;
//! drop(q);
//! // Power is cut right after enqueue returned: the message survives.
//! let q = Queue::open_with(fs.restart(Restart::PowerLoss), QueueOptions::default())?;
//! assert_eq!(q.scan()?, vec![id]);
//! # Ok::<(), mta_queue::QueueError>(())
//! ```

pub use mta_durable::sim::{Restart, SimFile, SimFs};
