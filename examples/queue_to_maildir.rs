//! Enqueue a message with mta-queue and deliver it to one maildir per recipient with
//! mta-maildir: the loop a local-delivery agent runs.
//!
//! The queue makes the message durable before `enqueue` returns; each recipient's status is
//! marked as it is delivered, and the message is removed once every status is final.
//!
//! ```text
//! cargo run --example queue_to_maildir
//! ```

use std::io::Read;

use mta::core::Envelope;
use mta::maildir::{Maildir, Subdir};
use mta::queue::{Queue, QueueOptions, Status};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let queue = Queue::open(dir.path().join("queue"), QueueOptions::default())?;

    // Enqueue: the envelope and the message bytes (LF line ends, as qmail stores them).
    let envelope = Envelope::new(
        "alice@example.com",
        ["bob@example.org", "carol@example.org"],
    );
    let id = queue.enqueue(&envelope, &b"Subject: minutes\n\nSee attached.\n"[..])?;
    println!("queued message {id}");

    // Deliver: everything the queue holds, recipient by recipient.
    for id in queue.scan()? {
        let info = queue.info(id)?;
        let mut message = Vec::new();
        queue.open_message(id)?.read_to_end(&mut message)?;
        let mut marks = Vec::new();
        for (index, rcpt) in info.envelope.recipients.iter().enumerate() {
            let local = String::from_utf8_lossy(rcpt.local_part()).into_owned();
            let maildir = Maildir::create(dir.path().join(&local))?;
            let delivered_to = format!("Delivered-To: {rcpt}\n");
            let name = maildir.deliver(delivered_to.as_bytes(), &message[..])?;
            println!("{rcpt}: delivered as {local}/new/{name}");
            marks.push((u32::try_from(index)?, Status::Delivered));
        }
        queue.mark_many(id, &marks)?;
        if queue.info(id)?.is_complete() {
            queue.remove(id)?;
        }
    }

    // Each recipient has the message once, and the queue is empty.
    for local in ["bob", "carol"] {
        let maildir = Maildir::open(dir.path().join(local))?;
        let stored = maildir.list(Subdir::New)?;
        assert_eq!(stored.len(), 1, "{local}");
        let text = String::from_utf8(maildir.read(&stored[0])?)?;
        assert!(text.starts_with(&format!("Delivered-To: {local}@example.org\n")));
        assert!(text.ends_with("See attached.\n"));
    }
    assert!(queue.scan()?.is_empty());
    println!("ok: 2 deliveries, queue empty");
    Ok(())
}
