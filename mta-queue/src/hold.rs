//! Holds: an operator's "do not deliver this message for now" (`mta queue hold`, Postfix's
//! `postsuper -h`), kept on disk so it survives a restart.
//!
//! A hold is an empty file `hold/<id>` beside `mess/`. Creating and removing it are synced,
//! so a hold the operator was told about is still there after a power loss. The message file
//! itself is not touched: a held message keeps every recorded status, and releasing it only
//! removes the marker. Removing a message removes its marker too; [`Queue::holds`] ignores
//! markers whose message is gone (left by a crash between the two), so a stale marker never
//! holds anything.
//!
//! The queue only stores holds; what a hold means (no delivery attempts, no expiry) is the
//! scheduler's business (mta-sched's `Scheduler::hold`).

use std::io;
use std::sync::atomic::Ordering;

use crate::durable::{self, Access, Fs};
use crate::state::Paths;
use crate::{MessageId, Queue, QueueError};

/// The directory of hold markers, relative to the queue directory.
pub(crate) const HOLD: &str = "hold";

impl<F: Fs> Queue<F> {
    /// Holds message `id` durably: when this returns `Ok`, [`holds`](Queue::holds) names it,
    /// also after a crash or power loss, until [`release`](Queue::release) or the message's
    /// removal. Holding a held message does nothing.
    ///
    /// # Errors
    /// [`QueueError::ReadOnly`], [`QueueError::NotFound`] when no such message is queued,
    /// [`QueueError::Io`].
    pub fn hold(&self, id: MessageId) -> Result<(), QueueError> {
        if self.inner.read_only {
            return Err(QueueError::ReadOnly);
        }
        self.require(id)?;
        let fs = &self.inner.fs;
        let root = &self.inner.root;
        durable::create_dirs_synced(fs, root, "", &[HOLD.to_string()])
            .map_err(|e| QueueError::io("mkdir", HOLD, e))?;
        self.inner.holds_possible.store(true, Ordering::SeqCst);
        let name = durable::join(HOLD, &id.to_string());
        match fs.create_new(root, &name) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(QueueError::io("create", name, e)),
        }
        durable::sync_dir_at(fs, root, HOLD).map_err(|e| QueueError::io("sync", HOLD, e))
    }

    /// Releases message `id` durably (removes its hold marker). Releasing a message that is
    /// not held does nothing.
    ///
    /// # Errors
    /// [`QueueError::ReadOnly`], [`QueueError::Io`].
    pub fn release(&self, id: MessageId) -> Result<(), QueueError> {
        if self.inner.read_only {
            return Err(QueueError::ReadOnly);
        }
        let fs = &self.inner.fs;
        let root = &self.inner.root;
        let name = durable::join(HOLD, &id.to_string());
        match fs.remove_file(root, &name) {
            Ok(()) => {
                durable::sync_dir_at(fs, root, HOLD).map_err(|e| QueueError::io("sync", HOLD, e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(QueueError::io("unlink", name, e)),
        }
    }

    /// The held messages that are still queued, in id order. Works on a queue opened with
    /// [`Queue::inspect`] too.
    ///
    /// # Errors
    /// [`QueueError::Io`] when `hold/` cannot be listed.
    pub fn holds(&self) -> Result<Vec<MessageId>, QueueError> {
        let fs = &self.inner.fs;
        let names = match fs.open_dir_at(&self.inner.root, HOLD) {
            Ok(dir) => fs
                .list_dir(&dir)
                .map_err(|e| QueueError::io("list", HOLD, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(QueueError::io("open", HOLD, e)),
        };
        let mut ids: Vec<MessageId> = names
            .iter()
            .filter_map(|n| n.parse::<MessageId>().ok())
            .filter(|&id| self.require(id).is_ok())
            .collect();
        if !ids.is_empty() {
            self.inner.holds_possible.store(true, Ordering::SeqCst);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// At open: removals drop hold markers only while some marker may exist.
    pub(crate) fn note_holds_at_open(&self) -> Result<(), QueueError> {
        let fs = &self.inner.fs;
        match fs.open_dir_at(&self.inner.root, HOLD) {
            Ok(dir) => {
                let any = !fs
                    .list_dir(&dir)
                    .map_err(|e| QueueError::io("list", HOLD, e))?
                    .is_empty();
                self.inner.holds_possible.store(any, Ordering::SeqCst);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(QueueError::io("open", HOLD, e)),
        }
    }

    /// `Ok` when message `id` is committed.
    fn require(&self, id: MessageId) -> Result<(), QueueError> {
        let path = Paths::of(id, self.inner.split).mess;
        match self.inner.fs.open(&self.inner.root, &path, Access::Read) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(QueueError::NotFound(id)),
            Err(e) => Err(QueueError::io("open", path, e)),
        }
    }

    /// Drops `id`'s hold marker as its message leaves the queue (not synced: a marker
    /// surviving a power loss names no message and is ignored).
    pub(crate) fn forget_hold(&self, id: MessageId) {
        if self.inner.holds_possible.load(Ordering::Relaxed) {
            let name = durable::join(HOLD, &id.to_string());
            // A missing marker is the common case; any other failure leaves a stale
            // marker, which `holds` ignores.
            let _ = durable::discard(&self.inner.fs, &self.inner.root, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::SimFs;
    use crate::{Queue, QueueOptions};
    use mta_core::Envelope;

    #[test]
    fn holds_survive_power_loss_and_leave_with_the_message() {
        let fs = SimFs::new();
        let q = Queue::open_with(fs.clone(), QueueOptions::default()).expect("open");
        let env = Envelope::new("a@example.org", ["b@example.org"]);
        let one = q.enqueue(&env, &b"x\r\n"[..]).expect("enqueue");
        let two = q.enqueue(&env, &b"y\r\n"[..]).expect("enqueue");
        q.hold(one).expect("hold");
        q.hold(one).expect("hold twice");
        q.hold(two).expect("hold");
        q.release(two).expect("release");
        q.release(two).expect("release twice");
        // Every power-loss image keeps exactly the hold that was acknowledged.
        for image in fs.crash_images() {
            let q = Queue::open_with(image, QueueOptions::default()).expect("reopen");
            assert_eq!(q.holds().expect("holds"), vec![one]);
        }
        q.remove_delivered(one).expect("remove");
        assert!(q.holds().expect("holds").is_empty());
        assert!(matches!(
            q.hold(one),
            Err(crate::QueueError::NotFound(id)) if id == one
        ));
    }
}
