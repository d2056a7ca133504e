//! The last step: print the message (`-n`) or put it into the queue.

use std::io::{Read, Write};

use mta_queue::{Queue, QueueError, QueueOptions};

use super::compose::Prepared;
use super::pickup;
use super::{Env, Fatal};
use crate::root::Root;
use crate::trigger::{self, Pull};
use mta_core::address_list::token822::quote_address;

/// `-n`: `Return-Path: <sender>` and the message (head, then `body`), as qmail-inject
/// prints them.
///
/// # Errors
/// [`Fatal::Temporary`] when `out` cannot be written.
pub(crate) fn print(p: &Prepared, mut body: impl Read, out: &mut dyn Write) -> Result<(), Fatal> {
    let mut text = b"Return-Path: <".to_vec();
    text.extend_from_slice(&quote_address(p.envelope.sender.as_bytes()));
    text.extend_from_slice(b">\n");
    text.extend_from_slice(&p.head);
    out.write_all(&text)
        .and_then(|()| std::io::copy(&mut body, out))
        .and_then(|_| out.flush())
        .map_err(|e| Fatal::Temporary(format!("write error: {e}")))
}

/// The line qmail-queue put in front of every message it queued:
/// `Received: (qmail PID invoked by uid UID); DATE822` (qmail-reference §1.2).
pub(crate) fn received_line(pid: u32, uid: u32, unix_secs: i64) -> String {
    format!(
        "Received: (qmail {pid} invoked by uid {uid}); {}\n",
        mta_core::date::qmail_date822(unix_secs)
    )
}

/// Queues the message (head, then `body`) with the Received line in front, then pulls the
/// trigger so a running `mta serve` picks it up at once.
///
/// Only the owner of `DIR/queue` writes into it (design.md, "Processes and accounts": the
/// queue account, or the one user of a server run without root), and only while no server
/// holds its lock; root becomes that owner first ([`become_queue_owner`]: root writes no
/// file in a directory another account owns). Everyone else, and the owner while a server
/// runs, leaves the message in the pickup directory instead ([`pickup`]), which the queue process imports when the trigger
/// is pulled. After a direct enqueue, inject imports whatever such messages are waiting,
/// since it holds the queue at that moment.
///
/// # Errors
/// [`Fatal::Permanent`] for an envelope qmail-queue would refuse (an address with NUL or
/// over 1002 bytes: its exit 11); [`Fatal::Temporary`] when the queue or the pickup
/// directory cannot be written.
pub(crate) fn enqueue(root: &Root, env: &Env, p: &Prepared, body: impl Read) -> Result<(), Fatal> {
    let encoded = mta_queue::qmail::encode(&p.envelope)
        .map_err(|e| Fatal::Permanent(format!("qq permanent problem: {e}")))?;
    let became = !owns_queue(root) && become_queue_owner(root);
    let direct = if owns_queue(root) {
        match Queue::open(root.queue(), QueueOptions::default()) {
            Ok(queue) => {
                crate::log::torn_messages(&queue);
                Some(queue)
            }
            // A running server holds the queue: leave the message for it.
            Err(e) if held_by_server(&e) => {
                if became {
                    back_to_root();
                }
                None
            }
            Err(e) => return Err(Fatal::Temporary(format!("unable to open queue: {e}"))),
        }
    } else {
        None
    };
    if let Some(queue) = direct {
        let received = received_line(env.pid, env.uid, env.now);
        queue
            .enqueue(
                &p.envelope,
                received.as_bytes().chain(&p.head[..]).chain(body),
            )
            .map_err(|e| match e {
                QueueError::TooLarge => Fatal::Permanent(format!("qq permanent problem: {e}")),
                e => Fatal::Temporary(format!("qq temporary problem: {e}")),
            })?;
        // Our message is durable: a failure to import older pickup files must not fail
        // this inject (they stay in place for the server to import).
        let _ = pickup::drain(root, &queue);
    } else {
        pickup::drop_off(root, &encoded, &p.head, body)
            .map_err(|e| Fatal::Temporary(format!("qq temporary problem: {e}")))?;
    }
    trigger::pull(&root.trigger(), Pull::NewMail);
    Ok(())
}

/// Root, as qmail-queue was setuid qmailq, writes the queue as its owner when no server
/// runs: this process (a single-threaded command) takes the queue account's uid and gid as
/// its effective ids, after the invoker's uid was taken for the Received line, keeping root
/// as its real and saved uid so that [`back_to_root`] can undo it when the queue turns out
/// to be held. True when that worked. Never for a queue that root itself owns, nor while a
/// server runs (the message then goes through pickup, written by root as itself).
pub(crate) fn become_queue_owner(root: &Root) -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    let server = std::os::unix::net::UnixStream::connect(crate::serve::submit_socket(root));
    if server.is_ok() {
        return false;
    }
    act_as_queue_owner(root)
}

/// The step of [`become_queue_owner`] that changes the effective uid and gid (root only;
/// not for a queue root owns). For the commands that open the queue themselves (`mta
/// queue ...` without a server): whatever they create in it belongs to its owner.
pub(crate) fn act_as_queue_owner(root: &Root) -> bool {
    use rustix::process::{Gid, Uid};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    match pickup::queue_owner(root) {
        Ok(owner) if owner.uid != 0 && owner.gid != 0 => {
            let (r, u, g) = (
                Uid::ROOT,
                Uid::from_raw(owner.uid),
                Gid::from_raw(owner.gid),
            );
            set_thread_groups(&[]).is_ok()
                && set_thread_res_gid(Gid::ROOT, g, Gid::ROOT).is_ok()
                && set_thread_res_uid(r, u, r).is_ok()
        }
        _ => false,
    }
}

/// Undoes [`become_queue_owner`]: root again (its saved uid), to write into pickup as
/// itself.
pub(crate) fn back_to_root() {
    use rustix::process::{Gid, Uid};
    let _ = rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT);
    let _ = rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT);
}

/// True when this process's effective uid owns `DIR/queue`, or there is no `DIR/queue`
/// yet (opening the queue creates it, ours).
fn owns_queue(root: &Root) -> bool {
    match pickup::queue_owner(root) {
        Ok(owner) => owner.uid == rustix::process::geteuid().as_raw(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// True when the queue cannot be opened because a server owns it: locked by the running
/// process, or not accessible to this user.
fn held_by_server(e: &QueueError) -> bool {
    match e {
        QueueError::Locked => true,
        QueueError::Io { source, .. } => source.kind() == std::io::ErrorKind::PermissionDenied,
        _ => false,
    }
}
