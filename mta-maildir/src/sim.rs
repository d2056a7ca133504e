//! [`PowerLossFs`]: an in-memory [`Fs`](crate::Fs) that models what survives power loss.
//!
//! The simulator is [`mta_durable::sim::SimFs`], shared with mta-queue; this module
//! re-exports it under the name this crate's tests and docs have always used. See
//! [`mta_durable::sim`] for the model: file data and directory entries are durable only
//! once synced, independently; [`crash_after`](PowerLossFs::crash_after) cuts the power
//! after any numbered operation, [`crash_images`](PowerLossFs::crash_images) enumerates
//! the states a real file system may come back in, [`fail_op`](PowerLossFs::fail_op) makes
//! one operation fail with `EIO`, and [`trace`](PowerLossFs::trace) lists what ran.
//!
//! ```
//! use mta_maildir::sim::PowerLossFs;
//! use mta_maildir::{Maildir, Subdir};
//! use std::path::Path;
//! let fs = PowerLossFs::new();
//! fs.create_dir_all(Path::new("/home/u"))?;
//! let md = Maildir::create_in(fs.clone(), "/home/u/Maildir")?;
//! md.deliver(b"", &b"hello\n"[..])?;
//! // Power is cut right after deliver returned: whatever state the disk comes back in,
//! // the message is there.
//! for img in fs.crash_images() {
//!     assert_eq!(Maildir::open_in(img, "/home/u/Maildir")?.list(Subdir::New)?.len(), 1);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use mta_durable::sim::{Restart, SimFile, SimFs, SimFs as PowerLossFs};
