//! Receive mail on a TCP port into a maildir with mta-smtp's blocking server driver.
//!
//! The server side is a [`Policy`]: it collects the DATA chunks and, when the message is
//! complete, delivers it into a maildir with mta-maildir. To prove it works, the example
//! starts its own client on loopback (mta-smtp's blocking client), then checks the maildir.
//!
//! ```text
//! cargo run --example receive_smtp
//! ```

use std::net::{TcpListener, TcpStream};

use mta::core::path::{ForwardPath, ReversePath};
use mta::core::{DeliveryResult, Envelope};
use mta::maildir::{Maildir, Subdir};
use mta::smtp::blocking::{Policy, deliver, serve};
use mta::smtp::{DataSummary, MailParams, RcptParams, Reply, ServerConfig, Verdict};

/// Accepts everyone and writes each message into one maildir.
struct IntoMaildir {
    maildir: Maildir,
    sender: String,
    message: Vec<u8>,
}

impl Policy for IntoMaildir {
    fn mail(&mut self, path: &ReversePath, _: &MailParams) -> Verdict {
        self.sender = path.to_address().to_string();
        Verdict::Accept
    }

    fn rcpt(&mut self, _: &ForwardPath, _: &RcptParams) -> Verdict {
        Verdict::Accept
    }

    fn data_chunk(&mut self, chunk: &[u8]) {
        self.message.extend_from_slice(chunk);
    }

    fn data_end(&mut self, _: &DataSummary) -> Verdict {
        let return_path = format!("Return-Path: <{}>\n", self.sender);
        let message = std::mem::take(&mut self.message);
        match self.maildir.deliver(return_path.as_bytes(), &message[..]) {
            Ok(_) => Verdict::Accept,
            // A 451 makes the client try again later; the message is not lost.
            Err(_) => Verdict::Reject(
                Reply::new(451, "4.3.0 cannot store the message").expect("a valid 4xx reply"),
            ),
        }
    }

    fn reset(&mut self) {
        self.message.clear();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let maildir = Maildir::create(dir.path().join("Maildir"))?;

    // The server: one connection on a free loopback port, in its own thread.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server_dir = maildir.path().to_path_buf();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (stream, _) = listener.accept()?;
        let mut policy = IntoMaildir {
            maildir: Maildir::open(server_dir).map_err(std::io::Error::other)?,
            sender: String::new(),
            message: Vec::new(),
        };
        serve(stream, ServerConfig::new("mx.example.org"), &mut policy)
    });

    // The client: one message for one recipient.
    let envelope = Envelope::new("alice@example.com", ["bob@example.org"]);
    let message = b"Subject: hello\n\nHello Bob, over SMTP.\n";
    let results = deliver(
        TcpStream::connect(addr)?,
        &envelope,
        &message[..],
        "client.example",
    );
    server.join().map_err(|_| "server thread panicked")??;
    println!("client results: {results:?}");
    assert!(matches!(
        results.as_slice(),
        [DeliveryResult::Delivered { .. }]
    ));

    // The message is in the maildir, behind the Return-Path line.
    let stored = maildir.list(Subdir::New)?;
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8(maildir.read(&stored[0])?)?;
    print!("{text}");
    assert!(text.starts_with("Return-Path: <alice@example.com>\n"));
    assert!(text.contains("Hello Bob, over SMTP."));
    println!("ok: 1 message received into {}", maildir.path().display());
    Ok(())
}
