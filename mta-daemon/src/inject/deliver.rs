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
/// holds its lock. Everyone else, root included (root writes no file in a directory
/// another account owns), and the owner while a server runs, leaves the message in the
/// pickup directory instead ([`pickup`]), which the queue process imports when the trigger
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
    let direct = if owns_queue(root) {
        match Queue::open(root.queue(), QueueOptions::default()) {
            Ok(queue) => Some(queue),
            // A running server holds the queue: leave the message for it.
            Err(e) if held_by_server(&e) => None,
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
