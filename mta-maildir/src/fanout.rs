//! Batched fan-out: one message into many maildirs with one data fsync.

use std::io::{self, Read};

use crate::durable::{self, Fs};
use crate::error::{DeliverError, DeliverStep, copy_io_error};
use crate::maildir::{Maildir, create_unique};
use crate::name::{DeliveredName, unique_name};

/// How [`deliver_many_with`] makes the new names in the targets' `new/` durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FanoutSync {
    /// `fsync` each target's `new/` once: portable, N + 1 fsyncs for N targets.
    #[default]
    EachDirectory,
    /// One `syncfs` per chunk of 256 targets for all targets the message could be
    /// hard-linked into (a successful link proves they share the source's filesystem);
    /// targets reached by copy still get their own `new/` fsync. Much faster on large lists
    /// (each directory fsync on ext4 is a journal check plus a cache flush), but it also
    /// flushes unrelated dirty data on that filesystem, and Linux reports write-back errors
    /// from `syncfs` only since 5.8. Where `syncfs` is unsupported it falls back to
    /// [`EachDirectory`](Self::EachDirectory).
    WholeFilesystem,
}

/// How many targets are linked before their `new/` directories are synced, bounding the
/// number of directory descriptors held open at once.
const CHUNK: usize = 256;

/// Delivers the same bytes (`prefix_headers` then `message`) into every maildir of
/// `maildirs`, returning one result per target, in order.
///
/// A single [`Maildir::deliver`] costs two fsyncs (file data, then `new/`). Here the message
/// is written once into the first maildir's `tmp/` and its data synced once; then it is
/// hard-linked into each target's `new/` and each `new/` is synced once. For N targets that
/// is N + 1 fsyncs instead of 2N and no extra copies of the data; on a journalling
/// filesystem the first directory sync commits the links of the whole chunk, so the others
/// cost a journal check and a cache flush rather than a commit. When a link fails with `EXDEV` (the target is on another filesystem) the
/// message is copied into that target's `tmp/`, synced, and linked from there. The `tmp/`
/// name is unlinked at the end. Each target's result is `Ok` only after its `new/` is
/// durable; a crash leaves each target with nothing or the complete message.
///
/// **Per-recipient headers.** qmail-local writes a `Delivered-To:` line per recipient, which
/// makes the bytes differ per target, and hard links can only share identical bytes. So
/// this function takes one prefix for all targets: use it for a list fan-out where the
/// shared prefix (say the list's own `Delivered-To:`) is enough, and call
/// [`Maildir::deliver`] per target when each needs its own prefix, at two fsyncs each.
///
/// **One inode.** All targets share one file, owned by the delivering uid with mode 0600, so
/// fan-out fits maildirs read by one uid (a virtual-domain mail store, list archives);
/// where qmail would deliver as each target user, deliver per user instead. A reader
/// removing or flagging its copy only unlinks or renames its own name, and maildir readers
/// never rewrite a message in place, so the copies stay independent in practice.
///
/// See [`deliver_many_with`] for a faster way to make the links durable.
///
/// # Errors
/// Per target, a [`DeliverError`] naming the failed step. A failure before the links
/// (creating, writing or syncing the shared file) is reported for every target.
pub fn deliver_many<F: Fs>(
    maildirs: &[&Maildir<F>],
    prefix_headers: &[u8],
    message: impl Read,
) -> Vec<Result<DeliveredName, DeliverError>> {
    deliver_many_with(maildirs, prefix_headers, message, FanoutSync::EachDirectory)
}

/// [`deliver_many`] with a choice of how the links are made durable ([`FanoutSync`]).
///
/// # Errors
/// As [`deliver_many`].
pub fn deliver_many_with<F: Fs>(
    maildirs: &[&Maildir<F>],
    prefix_headers: &[u8],
    message: impl Read,
    sync: FanoutSync,
) -> Vec<Result<DeliveredName, DeliverError>> {
    let Some(first) = maildirs.first() else {
        return Vec::new();
    };
    let fs = first.fs();
    let all_fail = |e: DeliverError| maildirs.iter().map(|_| Err(e.duplicate())).collect();
    let src_tmp = match first.open_sub("tmp") {
        Ok(d) => d,
        Err(e) => return all_fail(DeliverError::new(DeliverStep::OpenDir, e)),
    };
    let (mut file, src_name) = match create_unique(fs, &src_tmp) {
        Ok(x) => x,
        Err(e) => return all_fail(e),
    };
    if let Err((step, e)) = durable::write_synced(fs, &mut file, prefix_headers, message) {
        // Best effort: the write error is what the caller needs; a leftover is cleaned later.
        let _ = durable::remove_unsynced(fs, &src_tmp, &src_name);
        return all_fail(DeliverError::new(step, e));
    }
    drop(file);
    let mut results = Vec::with_capacity(maildirs.len());
    for chunk in maildirs.chunks(CHUNK) {
        let linked: Vec<_> = chunk
            .iter()
            .map(|md| link_one(fs, md, &src_tmp, &src_name))
            .collect();
        let whole = match sync {
            FanoutSync::WholeFilesystem => match durable::sync_filesystem(fs, &src_tmp) {
                Err(e) if e.kind() == io::ErrorKind::Unsupported => None,
                other => Some(other),
            },
            FanoutSync::EachDirectory => None,
        };
        for item in linked {
            results.push(item.and_then(|p| p.finish(fs, whole.as_ref())));
        }
    }
    // As in Maildir::deliver: a leftover tmp/ name is harmless and cleaned after 36 hours.
    let _ = durable::remove_unsynced(fs, &src_tmp, &src_name);
    results
}

/// A message linked into a target's `new/` whose directory is not yet synced.
struct Pending<F: Fs> {
    new: F::Dir,
    name: String,
    /// The target's own `tmp/` copy, when the message had to be copied (`EXDEV`).
    copy: Option<(F::Dir, String)>,
}

impl<F: Fs> Pending<F> {
    /// Makes the new name durable: by `whole`, the result of one `syncfs` of the source's
    /// filesystem, when given and the message was linked (not copied); else by syncing
    /// `new/`.
    fn finish(self, fs: &F, whole: Option<&io::Result<()>>) -> Result<DeliveredName, DeliverError> {
        let synced = match whole {
            Some(r) if self.copy.is_none() => r.as_ref().copied().map_err(copy_io_error),
            _ => durable::sync_dir(fs, &self.new),
        };
        if synced.is_err() {
            // Same reasoning as Maildir::deliver: take back a name not known durable.
            let _ = durable::remove_unsynced(fs, &self.new, &self.name);
        }
        if let Some((tmp, name)) = &self.copy {
            let _ = durable::remove_unsynced(fs, tmp, name);
        }
        synced
            .map(|()| DeliveredName::new(self.name))
            .map_err(|e| DeliverError::new(DeliverStep::SyncNew, e))
    }
}

fn link_one<F: Fs>(
    fs: &F,
    md: &Maildir<F>,
    src_tmp: &F::Dir,
    src_name: &str,
) -> Result<Pending<F>, DeliverError> {
    let new = md
        .open_sub("new")
        .map_err(|e| DeliverError::new(DeliverStep::OpenDir, e))?;
    match durable::publish_by_link(fs, src_tmp, src_name, &new, unique_name) {
        Ok(name) => Ok(Pending {
            new,
            name,
            copy: None,
        }),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let tmp = md
                .open_sub("tmp")
                .map_err(|e| DeliverError::new(DeliverStep::OpenDir, e))?;
            let copy_name = unique_name();
            durable::copy_synced(fs, src_tmp, src_name, &tmp, &copy_name)
                .map_err(|e| DeliverError::new(DeliverStep::Copy, e))?;
            match durable::publish_by_link(fs, &tmp, &copy_name, &new, unique_name) {
                Ok(name) => Ok(Pending {
                    new,
                    name,
                    copy: Some((tmp, copy_name)),
                }),
                Err(e) => {
                    let _ = durable::remove_unsynced(fs, &tmp, &copy_name);
                    Err(DeliverError::new(DeliverStep::Link, e))
                }
            }
        }
        Err(e) => Err(DeliverError::new(DeliverStep::Link, e)),
    }
}
