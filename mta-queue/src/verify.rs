//! After the machine restarts: finding the messages a power loss tore.
//!
//! A commit round ([`CommitMode::Filesystem`](crate::CommitMode::Filesystem), `rounds.rs`)
//! links a message into `mess/` and then makes its name and its data durable with one
//! `syncfs`. A power loss during that sync may keep the name and lose some of the data: the
//! file comes back empty, cut short, with some blocks old, or (a removed message's file,
//! reused) still holding the previous message whole. None of those messages was
//! acknowledged: `250` comes only after the sync. Every format 2 file says what it should
//! hold (the CRC of its message bytes in the header, its own id in the CRC-checked envelope
//! section), so [`Queue::open`](crate::Queue::open) checks every committed file whole and
//! removes those that fail, the first time the queue is opened after the machine restarted.
//!
//! "After a restart" is told by [`Fs::boot_id`], recorded in `DIR/boot` once the check is
//! done: an open within the same boot (the process was killed and restarted) skips the
//! check, since the page cache kept everything written. The record is written unsynced: if
//! it is lost with the next power loss, that power loss changed the boot id anyway. A crash
//! during the check leaves the old record, so the next open checks again. Where the boot
//! cannot be told (`Ok(None)`), every open checks.

use crate::durable::{self, Access, Fs};
use crate::format::{self, HEADER_LEN};
use crate::queue::{read_exact_at, read_failed};
use crate::{MessageId, Queue, QueueError};

/// `DIR/boot`: the boot id of the last open that checked the queue.
const BOOT: &str = "boot";

/// Bytes read at a time while checking a message's body.
const CHUNK: usize = 64 * 1024;

/// A message removed by the check, and why.
pub(crate) type Torn = (MessageId, &'static str);

/// Checks every committed message whole if the machine restarted since the last check, and
/// removes the torn ones (unsynced: a torn file that comes back after another power loss is
/// found again). Returns what it removed.
///
/// # Errors
/// [`QueueError::Io`] when a directory cannot be listed, a file cannot be read or a torn
/// file cannot be removed (the open fails; the next open checks again).
pub(crate) fn after_restart<F: Fs>(queue: &Queue<F>) -> Result<Vec<Torn>, QueueError> {
    let fs = &queue.inner.fs;
    let root = &queue.inner.root;
    // An unreadable boot id counts as unknown: check.
    let boot = fs.boot_id().ok().flatten();
    if let Some(boot) = &boot
        && recorded_boot(queue).as_deref() == Some(boot.as_str())
    {
        return Ok(Vec::new());
    }
    let mut torn = Vec::new();
    for id in queue.scan()? {
        match check_whole(queue, id) {
            Ok(()) | Err(QueueError::NotFound(_)) => {}
            Err(QueueError::Corrupt { reason, .. }) => {
                let path = crate::state::Paths::of(id, queue.inner.split).mess;
                durable::discard(fs, root, &path)
                    .map_err(|e| QueueError::io("unlink", path.clone(), e))?;
                torn.push((id, reason));
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(boot) = boot {
        record_boot(queue, &boot)?;
    }
    Ok(torn)
}

/// The boot id in `DIR/boot`, if it holds one.
fn recorded_boot<F: Fs>(queue: &Queue<F>) -> Option<String> {
    let fs = &queue.inner.fs;
    let file = fs.open(&queue.inner.root, BOOT, Access::Read).ok()?;
    // One read, as for `layout`: a short one only makes the next open check again.
    let mut buf = [0u8; 128];
    let len = fs.read_at(&file, &mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..len])
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Replaces `DIR/boot` with `boot` (unsynced, see the module docs).
fn record_boot<F: Fs>(queue: &Queue<F>, boot: &str) -> Result<(), QueueError> {
    let fs = &queue.inner.fs;
    let root = &queue.inner.root;
    let io_err = |op, e| QueueError::io(op, BOOT, e);
    durable::discard(fs, root, BOOT).map_err(|e| io_err("unlink", e))?;
    let mut file = fs.create_new(root, BOOT).map_err(|e| io_err("create", e))?;
    fs.write_all(&mut file, format!("{boot}\n").as_bytes())
        .map_err(|e| io_err("write", e))
}

/// Checks message `id`'s file whole: its header, then (format 2) the envelope section and
/// the id it names (as [`Queue::info`] reads them) and the CRC of its message bytes. A format 1
/// file was committed with its data synced before its name, so it cannot be torn this way:
/// only its header is read.
///
/// # Errors
/// [`QueueError::Corrupt`] for a file that does not hold what it says; `NotFound`, `Io`.
pub(crate) fn check_whole<F: Fs>(queue: &Queue<F>, id: MessageId) -> Result<(), QueueError> {
    let (file, header, path) = queue.open_file(id, Access::Read)?;
    let Some(expected) = header.body_crc else {
        // Format 1: committed with its data synced before its name, so never torn this
        // way, and never the old contents of a reused file (only format 2 files are
        // reused, `Queue::reuse_free`): left as it is.
        return Ok(());
    };
    queue.info_of(id, &file, &header, &path)?;
    let fs = &queue.inner.fs;
    let mut buf = vec![0u8; CHUNK];
    let mut crc = 0;
    let mut done = 0u64;
    while done < header.body_len {
        let n = usize::try_from(header.body_len - done).map_or(CHUNK, |left| left.min(CHUNK));
        read_exact_at(fs, &file, &mut buf[..n], HEADER_LEN + done)
            .map_err(|e| read_failed(id, &path, e))?;
        crc = format::crc32_update(crc, &buf[..n]);
        done += n as u64;
    }
    if crc != expected {
        return Err(QueueError::Corrupt {
            id,
            reason: "message bytes do not match their checksum",
        });
    }
    Ok(())
}
