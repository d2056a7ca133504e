//! Receive mail into a maildir with mta-smtp-tokio's async server.
//!
//! The [`Handler`] streams the DATA chunks into memory and, when the message is complete,
//! delivers it with mta-maildir (on tokio's blocking pool, since maildir delivery fsyncs).
//! To prove it works, the example sends itself one message over loopback with the async
//! client, checks the maildir, and exits non-zero on any mismatch.
//!
//! ```text
//! cargo run --example tokio_receive_maildir
//! ```

use std::path::PathBuf;

use mta::maildir::{Maildir, Subdir};
use mta_smtp_tokio::{
    ClientConfig, DataSummary, DeliveryResult, Envelope, Handler, Reply, Server, ServerConfig,
    SessionInfo, Verdict, deliver,
};

/// Writes each accepted message into one maildir, behind a Return-Path line.
struct IntoMaildir {
    maildir: PathBuf,
    message: Vec<u8>,
}

impl Handler for IntoMaildir {
    async fn data_chunk(&mut self, chunk: &[u8], _: &SessionInfo) {
        self.message.extend_from_slice(chunk);
    }

    async fn data_end(&mut self, _: &DataSummary, _: Option<&[u8]>, info: &SessionInfo) -> Verdict {
        let sender = info
            .sender()
            .map(|s| s.to_address().to_string_lossy())
            .unwrap_or_default();
        let return_path = format!("Return-Path: <{sender}>\n");
        let message = std::mem::take(&mut self.message);
        let dir = self.maildir.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let maildir = Maildir::open(dir).map_err(|e| e.to_string())?;
            maildir
                .deliver(return_path.as_bytes(), &message[..])
                .map_err(|e| e.to_string())
        })
        .await;
        match stored {
            Ok(Ok(_)) => Verdict::Accept,
            // A 451 makes the client try again later; the message is not lost.
            _ => Reply::new(451, "4.3.0 cannot store the message")
                .map_or(Verdict::Accept, Verdict::Reject),
        }
    }

    async fn reset(&mut self) {
        self.message.clear();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let maildir = Maildir::create(dir.path().join("Maildir"))?;

    // The server: every connection on a free loopback port, until `stop`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let path = maildir.path().to_path_buf();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let handler = move |_peer| IntoMaildir {
            maildir: path.clone(),
            message: Vec::new(),
        };
        let shutdown = async {
            // A dropped sender also means stop.
            let _ = stopped.await;
        };
        Server::new(ServerConfig::new("mx.example.org"))
            .run(listener, handler, shutdown)
            .await
    });

    // The client: one message for one recipient.
    let envelope = Envelope::new("alice@example.com", ["bob@example.org"]);
    let message = b"Subject: hello\n\nHello Bob, over async SMTP.\n";
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let config = ClientConfig::new("client.example", addr.ip().to_string());
    let results = deliver(stream, &envelope, &message[..], config, None).await;
    let _ = stop.send(());
    server.await??;
    println!("client results: {results:?}");

    // The message is in the maildir, behind the Return-Path line.
    let stored = maildir.list(Subdir::New)?;
    let text = match stored.as_slice() {
        [one] => String::from_utf8(maildir.read(one)?)?,
        _ => String::new(),
    };
    let ok = matches!(results.as_slice(), [DeliveryResult::Delivered { .. }])
        && text.starts_with("Return-Path: <alice@example.com>\n")
        && text.contains("Hello Bob, over async SMTP.");
    if !ok {
        eprintln!("mismatch: {} stored, text {text:?}", stored.len());
        std::process::exit(1);
    }
    print!("{text}");
    println!("ok: 1 message received into {}", maildir.path().display());
    Ok(())
}
