#![doc = include_str!("../README.md")]
//!
//! ## API overview
//!
//! One durable-file vocabulary for the mta workspace: the [`Fs`] trait every durable
//! operation runs through, [`OsFs`] (the real file system, through rustix), [`SimFs`] (an
//! in-memory power-loss simulator for crash tests), and the durable steps built on them,
//! each named for its guarantee ([`write_at_synced`], [`move_file`], [`publish_by_link`],
//! [`publish_unnamed`], [`rename_synced`], [`copy_synced`], ...).
//!
//! ## What is durable when
//!
//! A write, a new name, a rename or a removal is visible at once to every process, but
//! survives power loss only once synced:
//!
//! - a file's bytes and length after [`Fs::sync_data`] or [`Fs::sync_all`] of that file;
//! - a name created, linked, renamed or removed in a directory after [`Fs::sync_dir`] of
//!   that directory (both directories for a rename or a move);
//! - both, for a whole file system, after [`Fs::sync_filesystem`] (`syncfs`).
//!
//! The two halves are independent: a synced file whose name was never synced can vanish,
//! and a synced name can point at a file whose data was never synced (and is empty or torn
//! after a crash). So the order that makes a new file durable and visible only when
//! complete is: create it under a temporary name, write, sync the file, link or rename it
//! to its final name, sync that directory (qmail's maildir delivery and queue commit).
//! Where the file system has files without a name (Linux's `O_TMPFILE`:
//! [`Fs::create_unnamed`]), the temporary name can go: write the unnamed file, sync it,
//! name it with [`publish_unnamed`], sync that directory; one directory change instead of
//! three, and nothing left to clean after a crash.
//! [`SimFs`] enforces exactly this model: [`SimFs::restart`] and [`SimFs::crash_images`]
//! give back only what the rules say may survive, and [`SimFs::crash_after`] cuts the power
//! after any numbered operation, so a test can prove an fsync order at every step.
//!
//! ```
//! use std::path::Path;
//! use mta_durable::{Fs, OsFs, publish_by_link, write_at_synced};
//! # let tmp = tempfile::tempdir()?;
//! # let path = tmp.path();
//! let fs = OsFs::new();
//! let dir = fs.open_dir(path)?;
//! let file = fs.create_new(&dir, "tmp.1")?;
//! write_at_synced(&fs, &file, 0, b"hello\n")?;      // the bytes are durable
//! let name = publish_by_link(&fs, &dir, "tmp.1", &dir, || "msg.2".into())?;
//! fs.sync_dir(&dir)?;                                // now the name is durable too
//! fs.remove_file(&dir, "tmp.1")?;
//! assert_eq!(std::fs::read(path.join(&name))?, b"hello\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Library code built on [`Fs`] is generic over it (`Queue<F: Fs = OsFs>` in mta-queue,
//! `Maildir<F: Fs = OsFs>` in mta-maildir), so its crash tests run on [`SimFs`] unchanged.

#![forbid(unsafe_code)]

mod fs;
mod os;
pub mod sim;
mod synced;

pub use fs::{Access, Fs};
pub use os::OsFs;
pub use sim::SimFs;
pub use synced::{
    NAME_ATTEMPTS, append_synced, copy_synced, create_dirs_synced, discard, join, move_file,
    publish_by_link, publish_unnamed, remove_unsynced, rename_synced, sync_dir_at, truncate_synced,
    write_at_synced,
};
