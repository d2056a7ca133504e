//! Who queued a message: the `qp` and `uid` of qmail-send's `info msg` line.
//!
//! qmail-send took both from the queue's `info` file, which qmail-queue filled with its own
//! pid and its caller's uid. Every way into our queue writes qmail-queue's trace line first
//! (`Received: (qmail PID invoked by uid UID); DATE`, or `invoked from network`, `invoked
//! for bounce`, `invoked by alias`; reference §1.2), so the message's first line carries
//! the same facts and the queue format needs nothing more. The lines that name no uid
//! (network, bounce, alias) were written by this daemon's own accounts: the SMTP sessions
//! and the finishing threads run as the queue owner, which is also the alias account.

use std::io::Read;

use mta_queue::{MessageId, Queue};

/// The `qp` and `uid` of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    /// qmail-queue's pid in qmail: the injecting process's pid for `mta inject`, and the
    /// message's own queue id for what the daemon queues (SMTP, forwards, bounces), as its
    /// `250 ok ... qp N` reply and delivery reports show.
    pub qp: u64,
    /// The uid it was queued by.
    pub uid: u32,
}

/// Bytes read from the front of a message: enough for the longest trace line we write.
const HEAD: usize = 160;

/// The origin named by qmail-queue's trace line at the front of `head`
/// ([`mta_core::header::parse_received_queue`]); `queue_uid` is the uid meant by the lines
/// that name none. `None` when `head` does not start with such a line.
pub fn parse(head: &[u8], queue_uid: u32) -> Option<Origin> {
    use mta_core::header::{QueueInvoker, parse_received_queue};
    let (qp, invoker) = parse_received_queue(head)?;
    let uid = match invoker {
        QueueInvoker::Uid(uid) => uid,
        QueueInvoker::Network | QueueInvoker::Bounce | QueueInvoker::Alias => queue_uid,
    };
    Some(Origin { qp, uid })
}

/// Reads the origin of message `id` from its first line; zeros when it has none (a
/// message queued by an older version) or cannot be read.
pub fn of_message(queue: &Queue, id: MessageId, queue_uid: u32) -> Origin {
    let mut head = Vec::with_capacity(HEAD);
    let read = queue
        .open_message(id)
        .map_err(std::io::Error::other)
        .and_then(|r| r.take(HEAD as u64).read_to_end(&mut head));
    match read {
        Ok(_) => parse(&head, queue_uid).unwrap_or_default(),
        Err(_) => Origin::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines() {
        let by_uid = b"Received: (qmail 4711 invoked by uid 1000); 29 Nov 2026 04:08:05 -0000\n";
        assert_eq!(
            parse(by_uid, 7),
            Some(Origin {
                qp: 4711,
                uid: 1000
            })
        );
        let net = b"Received: (qmail 12 invoked from network); 29 Nov 2026 04:08:05 -0000\n";
        assert_eq!(parse(net, 7), Some(Origin { qp: 12, uid: 7 }));
        let bounce = b"Received: (qmail 3 invoked for bounce); 1 Dec 2026\n";
        assert_eq!(parse(bounce, 7), Some(Origin { qp: 3, uid: 7 }));
        assert_eq!(parse(b"Received: from x by y\n", 7), None);
        assert_eq!(parse(b"Received: (qmail 1 invoked by magic)\n", 7), None);
        assert_eq!(parse(b"Subject: hi\n", 7), None);
    }
}
