//! `DIR/pickup/`: where `mta inject` leaves a message when it cannot open the queue because
//! a running `mta serve` holds it (mta-queue allows one process at a time), like Postfix's
//! maildrop.
//!
//! The pickup directory is a maildir, so a message left there is durable by the time inject
//! exits 0 (mta-maildir's tmp/ → fsync → link into new/ → fsync new/). Each file holds the
//! envelope in qmail-queue's wire form (`F<sender>\0T<rcpt>\0…\0`, [`mta_queue::qmail`])
//! followed by the message bytes. The process that holds the queue imports the files with
//! [`drain`]: `mta serve` at start and whenever the trigger is pulled, and `mta inject` itself
//! right after its own enqueue succeeded.
//!
//! The `Received: (qmail PID invoked by uid UID); DATE` line is not taken from the file: the
//! importer writes it from what the writer cannot forge, the file's owner and modification
//! time, and the writer's pid from the maildir file name (qmail-queue, being setuid, knew
//! the caller's uid the same way). For local users to drop messages while a server running
//! as root holds the queue, the directory must be writable by them (as Postfix's maildrop).
//!
//! Import order is enqueue (durable), then remove the pickup file: a crash in between
//! queues the message twice, never loses it.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use mta_maildir::{DeliverError, Flags, Maildir, MaildirError, Subdir};
use mta_queue::{MessageId, Queue, QueueError};

use super::deliver::received_line;
use crate::root::Root;

/// `DIR/pickup`.
pub fn dir(root: &Root) -> PathBuf {
    root.dir().join("pickup")
}

/// Leaves a message in the pickup directory: `envelope` (already qmail-encoded), then
/// `prefix` and the bytes of `message` (no Received line: [`drain`] adds it).
///
/// # Errors
/// The maildir could not be created or the delivery into it failed (a temporary failure).
pub(crate) fn drop_off(
    root: &Root,
    envelope: &[u8],
    prefix: &[u8],
    message: impl std::io::Read,
) -> Result<(), PickupError> {
    let md = Maildir::create(dir(root)).map_err(PickupError::Maildir)?;
    let mut head = Vec::with_capacity(envelope.len() + prefix.len());
    head.extend_from_slice(envelope);
    head.extend_from_slice(prefix);
    md.deliver(&head, message).map_err(PickupError::Deliver)?;
    Ok(())
}

/// What [`drain`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// The queue ids of the imported messages, in pickup order.
    pub imported: Vec<MessageId>,
    /// Files that did not start with a valid envelope: moved to `pickup/cur/` (kept, never
    /// deleted) so they are not retried forever.
    pub unreadable: Vec<String>,
}

/// Imports every message waiting in the pickup directory into `queue`, oldest first, with
/// the Received line in front, and removes each file once its enqueue is durable. A missing
/// pickup directory means nothing to do.
///
/// # Errors
/// [`PickupError`] when the directory cannot be listed or read, or an enqueue fails; the
/// messages already imported stay imported, the rest stay in the pickup directory.
pub fn drain(root: &Root, queue: &Queue) -> Result<Drained, PickupError> {
    let mut done = Drained::default();
    if !dir(root).is_dir() {
        return Ok(done);
    }
    let md = Maildir::open(dir(root)).map_err(PickupError::Maildir)?;
    let mut waiting = md.list(Subdir::New).map_err(PickupError::Maildir)?;
    waiting.sort_by(|a, b| a.file_name().cmp(b.file_name()));
    for msg in waiting {
        let path = md.path().join("new").join(msg.file_name());
        let file = File::open(&path).map_err(|e| PickupError::Read(path.clone(), e))?;
        let meta = file
            .metadata()
            .map_err(|e| PickupError::Read(path.clone(), e))?;
        let mut reader = BufReader::new(file);
        let Ok(envelope) = mta_queue::qmail::read_from(&mut reader) else {
            md.set_flags(&msg, &Flags::new())
                .map_err(PickupError::Maildir)?;
            done.unreadable.push(msg.file_name().to_owned());
            continue;
        };
        let received = received_line(writer_pid(msg.file_name()), meta.uid(), meta.mtime());
        let id = queue
            .enqueue(&envelope, received.as_bytes().chain(reader))
            .map_err(PickupError::Queue)?;
        md.remove(&msg).map_err(PickupError::Maildir)?;
        done.imported.push(id);
    }
    Ok(done)
}

/// The writer's pid from a maildir name `<secs>.M<usecs>P<pid>Q...`; 0 if there is none.
fn writer_pid(name: &str) -> u32 {
    name.split_once('.')
        .and_then(|(_, rest)| rest.split_once('P'))
        .map_or(0, |(_, rest)| {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().unwrap_or(0)
        })
}

/// Why the pickup directory could not be written or drained. Every case is temporary.
#[derive(Debug)]
#[non_exhaustive]
pub enum PickupError {
    /// Creating, opening, listing, reading or updating the maildir failed.
    Maildir(MaildirError),
    /// Writing a message into the maildir failed.
    Deliver(DeliverError),
    /// Opening or reading a waiting file failed.
    Read(PathBuf, io::Error),
    /// Enqueueing an imported message failed.
    Queue(QueueError),
}

impl fmt::Display for PickupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickupError::Maildir(e) => write!(f, "pickup directory: {e}"),
            PickupError::Deliver(e) => write!(f, "pickup directory: {e}"),
            PickupError::Read(p, e) => write!(f, "reading {}: {e}", p.display()),
            PickupError::Queue(e) => write!(f, "importing from the pickup directory: {e}"),
        }
    }
}

impl std::error::Error for PickupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PickupError::Maildir(e) => Some(e),
            PickupError::Deliver(e) => Some(e),
            PickupError::Read(_, e) => Some(e),
            PickupError::Queue(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_from_maildir_names() {
        assert_eq!(writer_pid("1795926434.M625255P15373Q0Rc4c1.vm"), 15373);
        assert_eq!(writer_pid("1795926434.M625255P15373"), 15373);
        assert_eq!(writer_pid("1795926434.host"), 0);
        assert_eq!(writer_pid("garbage"), 0);
    }
}
