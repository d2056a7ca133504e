#![doc = include_str!("../README.md")]
//!
//! ## API overview
//!
//! A crash-safe on-disk mail queue in qmail's tradition: a message, once accepted, is never
//! lost, not on `kill -9`, not on power loss, not on a full disk.
//!
//! - [`Queue`]: [`open`](Queue::open) (creates and recovers),
//!   [`enqueue`](Queue::enqueue) or the streaming [`begin`](Queue::begin) → [`Incoming`]
//!   (write chunks as SMTP DATA arrives, then [`commit`](Incoming::commit) with the
//!   envelope, or abort by dropping it), [`scan`](Queue::scan),
//!   [`open_message`](Queue::open_message) → [`MessageReader`], [`info`](Queue::info) →
//!   [`MessageInfo`] (envelope, birth time, every recipient's [`Status`]), durable
//!   [`mark`](Queue::mark) / [`mark_many`](Queue::mark_many), and [`remove`](Queue::remove).
//! - [`MessageId`]: printable, parseable, hashable message names.
//! - [`qmail`]: qmail-queue's `F`/`T` envelope wire format, to import from and export to
//!   qmail-queue-style programs.
//! - [`retry`]: qmail-send's retry schedules and the [`RetrySchedule`](retry::RetrySchedule)
//!   trait.
//! - [`submit`]: handing messages to the queue from another process over a local socket
//!   (an SMTP server that may not write the queue; `250` only after the durable commit).
//! - [`rspawn`]: the frames between the queue's owner and a remote delivery process that
//!   gets each message as a descriptor.
//! - [`Fs`]: the file-system trait every durable operation runs through (from
//!   [`mta_durable`], shared with mta-maildir); [`OsFs`] is the real disk, [`sim::SimFs`] a
//!   power-loss simulator for crash tests.
//!
//! ```
//! use mta_core::Envelope;
//! use mta_queue::{Queue, QueueOptions, Status};
//! use std::io::Read;
//! # let dir = tempfile::tempdir()?;
//! let queue = Queue::open(dir.path(), QueueOptions::default())?;
//! let env = Envelope::new("alice@example.com", ["bob@example.org", "carol@example.net"]);
//! let id = queue.enqueue(&env, &b"Subject: hi\r\n\r\nhello\r\n"[..])?; // durable now: say 250
//! println!("250 ok {id}");
//!
//! // A delivery thread reads it back and records results, recipient by recipient.
//! let mut body = Vec::new();
//! queue.open_message(id)?.read_to_end(&mut body)?;
//! queue.mark(id, 0, Status::Delivered)?;
//! queue.mark(id, 1, Status::Failed(b"550 no such user".to_vec()))?;
//! let info = queue.info(id)?;
//! assert!(info.is_complete());
//! queue.remove(id)?;
//! assert!(queue.scan()?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## On-disk layout
//!
//! ```text
//! DIR/lock             flock'd by the process that has the queue open
//! DIR/layout           "mta-queue 2\nsplit N\nrun R\n", written once, last, when the queue
//!                      is made ("mta-queue 1\nsplit N\n" means R = 16)
//! DIR/tmp/<id>         a message being received (never trusted: removed by recovery)
//! DIR/mess/<n>/<id>    a committed message, n = (id / R) % N (by default N = 512, R = 256)
//! DIR/mess/<n>/free.<id>  a removed message's file, kept for reuse (removed by recovery)
//! DIR/free/            where builds before issue 22's ninth step kept them (emptied by recovery)
//! DIR/boot             the boot id of the last open that checked every message (unsynced)
//! ```
//!
//! A committed message is **one file**: a 32-byte header (with its CRC and the CRC of the
//! message bytes), the message bytes, the envelope section (birth time, sender, recipients,
//! each length-prefixed, the message's own id, with a CRC),
//! then an append-only log of status records (recipient index, status, CRC); the last record
//! for a recipient wins, and a recipient without one is pending. No byte of an address or a
//! reply text is ever interpreted, so attacker-controlled CR, LF or NUL cannot forge a field
//! (the Exim 21Nails / OpenSMTPD CVE-2020-8794 class). The split directories keep every
//! directory small (a few hundred entries at 100,000 messages) so no operation's cost grows
//! with the queue; runs of neighbouring ids share a directory, so the commits of one round
//! and the removals of the messages before them change few directories per sync.
//!
//! ## Why a crash at any point loses nothing
//!
//! A message's state follows only from which of its two names exist (qmail's INTERNALS):
//! `tmp/<id>` only = *receiving*; both = *committed, stale tmp name*; `mess/<n>/<id>` only =
//! *committed*. Enqueue goes:
//!
//! 1. create `tmp/<id>`, write the bytes as they arrive. A crash here leaves *receiving*: the
//!    client never heard "ok" and will retry; recovery deletes the file.
//! 2. at commit, write the header and envelope, then `fdatasync` the file. A crash here is
//!    still *receiving*, whatever part of the data reached the disk.
//! 3. move `tmp/<id>` → `mess/<n>/<id>`: a hard link, then an unlink of the old name (a
//!    `rename` between directories takes a lock global to the file system on Linux; see
//!    [`mta_durable::move_file`]), or a `rename` where hard links are unsupported. The file's
//!    content is already durable, so whichever name survives a crash names complete data.
//!    If the new name is lost, state is *receiving* (never acknowledged); if only the
//!    removal of the old name is lost, state is *committed, stale tmp name* and recovery
//!    removes just the `tmp/` name.
//! 4. `fsync` the directory `mess/<n>/`. Only now is the new name durable (ext4 and XFS give
//!    no such promise before it; qmail 1.03 never fsyncs a directory, so a power cut right
//!    after its 250 can lose the message). **Only after this step does enqueue return.**
//!
//! **Commit rounds** ([`CommitMode::Filesystem`], the default) share the syncs across
//! concurrent enqueues and use one where the steps above use two: step 2 writes without
//! `fdatasync`, and a round moves (step 3) every message written since the last round, then
//! runs one `syncfs`, which makes their data and their names durable together (step 4). An
//! enqueue returns only after a sync that started after its move, and N concurrent enqueues
//! share one cache flush. The price is the order: a power loss *during* that sync may keep a
//! name and lose some of its file's data, so the name points at an empty, short or partly
//! old file, or (a reused file) at the previous message whole. Such a message was never
//! acknowledged, and every file says what it should hold: format 2 files carry the CRC of
//! their message bytes and their own id. The first [`Queue::open`] after the machine
//! restarted ([`Fs::boot_id`], recorded in `DIR/boot`) reads every queued message whole and
//! removes those that fail ([`Queue::torn_at_open`]); opens within one boot skip that.
//!
//! A status change appends a CRC-checked record to the message file and makes it durable
//! before [`mark`](Queue::mark) returns: with [`CommitMode::Filesystem`] by the next commit
//! round's `syncfs` (marks of many messages and the enqueues share its flush), else by an
//! `fdatasync` of the file. A crash during the append leaves a torn record,
//! which readers ignore (the previous status stands: at most that recipient is delivered
//! again, the duplicate qmail also accepts), and which the next mark cuts off before
//! appending.
//!
//! Removal takes the file's `mess/` name away (renaming it to its free name, or unlinking
//! it) **without** a directory fsync, as qmail-send and Postfix's qmgr remove theirs: a
//! power loss soon after may bring the message back, whole and with the statuses it had on
//! disk, so it is removed again or (after [`remove_delivered`](Queue::remove_delivered))
//! its deliveries are repeated. A duplicate, never a loss; the name's removal becomes
//! durable with the next fsync of that directory.
//!
//! ## File reuse
//!
//! A removed message's file is kept under a free name beside its old one,
//! `mess/<n>/free.<id>` (up to [`QueueOptions::recycle`] files), and the next enqueue writes
//! into it instead of creating a file: no inode is allocated or freed per message, and the
//! commit's `fdatasync` writes the data blocks (and the inode when the length changes) but
//! no new directory entry. The free name stays in the directory the removal changes anyway,
//! so a commit round's sync writes no other directory for it. Three rules keep this safe:
//!
//! - a file is reused only after the directory it was removed from has been fsynced since
//!   (removals do that in batches), because until then a power loss could revive its old
//!   `mess/` name, which would then name the *new* message's bytes under the old id;
//! - recovery removes every free name and never reuses its files, since after a crash a free
//!   name may be a stale second name of a file that now holds a committed message;
//! - only a format 2 file is reused: a commit round names a message before its bytes are
//!   durable, so after a power loss the new name may show the file's old contents, and
//!   those must name another message's id to be told apart (a format 1 file names none).
//!
//! The new message's bytes overwrite the old ones in place, under the file's free name,
//! and the file is cut to the new length before the commit's `fdatasync`; the commit then
//! moves it from its free name to its new `mess/` name as it would from `tmp/`, and until
//! then recovery treats it like a `tmp/` file (it removes free names). On a full disk an
//! enqueue first releases the free files and retries.
//!
//! Recovery ([`Queue::open`]) is a `match` on each `tmp/` name's state, then a linear scan of
//! `mess/`, which removes the free names. A crash during recovery is harmless: it only
//! removes `tmp/` and free names. The queue directory and every directory in it are
//! fsynced into their parents (and `layout` written last) before the first message can be
//! accepted, so no acknowledged message hangs from a directory entry that could vanish.
//!
//! A full disk or an I/O error during an enqueue returns [`QueueError`] (with
//! [`QueueError::is_storage_full`] for ENOSPC/EDQUOT, the SMTP 452 case) and removes the
//! `tmp/` file; committed messages are never rewritten, so nothing already accepted is
//! harmed. A failed mark cuts its partial record off again and the previous status stands.
//!
//! These claims are tested three ways (see `tests/`): a child process is SIGKILLed at over a
//! thousand points; the same operations run on [`sim::SimFs`], which on a simulated power
//! loss keeps only synced data and names, at every crash point of enqueue, mark, remove and
//! enqueue into reused files; and ENOSPC/EIO are injected mid-enqueue.
//!
//! ## Group commit
//!
//! Each enqueue fsyncs its own file (in its own thread, so the kernel overlaps them), then
//! hands the move into `mess/` to a group commit: the first caller to arrive becomes the
//! leader, moves every waiting message and fsyncs each directory once for the whole batch; the
//! others wait and return only when their batch is durable. Marks of one message share one
//! append and one fsync the same way; [`mark_many`](Queue::mark_many) marks a whole batch
//! (say 8,192 recipients) with one. A lone caller leads immediately and never waits. See
//! `benches/enqueue.rs` and `examples/enqueue.rs` for the measured effect.

#![forbid(unsafe_code)]

mod durable;
mod error;
mod format;
mod group;
mod hold;
mod id;
mod incoming;
pub mod qmail;
mod queue;
pub mod retry;
mod rounds;
pub mod rspawn;
mod state;
mod status;
pub mod submit;
mod verify;

#[doc(hidden)]
pub mod fuzzing;

pub mod sim;

/// The `mta-core` crate, re-exported: this crate's public API takes and returns its types
/// ([`Envelope`](mta_core::Envelope) in [`Queue::enqueue`], [`MessageInfo`]), so callers can name them as `mta_queue::mta_core::...` without a
/// dependency of their own that could drift to another version.
pub use mta_core;

/// The `mta-durable` crate, re-exported: [`Queue`] is generic over its [`Fs`] trait, so a
/// caller can write its own `Fs` (or use [`mta_durable::SimFs`]) without a dependency of its own.
pub use mta_durable;

pub use durable::{Access, Fs, OsFs};
pub use error::QueueError;
pub use id::{MessageId, ParseMessageIdError};
pub use incoming::{Incoming, MessageReader};
pub use queue::{CommitMode, Queue, QueueOptions};
pub use status::{MessageInfo, Status};
