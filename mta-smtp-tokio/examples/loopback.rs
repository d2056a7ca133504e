//! An async SMTP server and client talking over loopback, with only mta-smtp-tokio and
//! tokio: the server refuses one recipient and keeps each accepted message; the client
//! sends two messages over one connection and checks every result.
//!
//! ```text
//! cargo run -p mta-smtp-tokio --example loopback
//! ```

use std::sync::{Arc, Mutex};

use mta_smtp_tokio::mta_core::path::ForwardPath;
use mta_smtp_tokio::{
    ClientConfig, ClientConnection, DataSummary, DeliveryResult, Envelope, Handler, RcptParams,
    Reply, Server, ServerConfig, SessionInfo, Verdict,
};

/// The accepted messages, each with its recipients.
type Store = Arc<Mutex<Vec<(Vec<String>, Vec<u8>)>>>;

/// Keeps every accepted message with its recipients.
struct Keep {
    store: Store,
    message: Vec<u8>,
}

impl Handler for Keep {
    async fn rcpt(&mut self, path: &ForwardPath, _: &RcptParams, _: &SessionInfo) -> Verdict {
        if path.to_address().to_string_lossy().starts_with("nobody@") {
            match Reply::new(550, "5.1.1 no such user") {
                Ok(r) => Verdict::Reject(r),
                Err(_) => Verdict::Accept,
            }
        } else {
            Verdict::Accept
        }
    }

    async fn data_chunk(&mut self, chunk: &[u8], _: &SessionInfo) {
        self.message.extend_from_slice(chunk);
    }

    async fn data_end(&mut self, _: &DataSummary, _: Option<&[u8]>, info: &SessionInfo) -> Verdict {
        let rcpts = info
            .recipients()
            .iter()
            .map(|r| r.to_address().to_string_lossy())
            .collect();
        let message = std::mem::take(&mut self.message);
        if let Ok(mut store) = self.store.lock() {
            store.push((rcpts, message));
        }
        Verdict::Accept
    }

    async fn reset(&mut self) {
        self.message.clear();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let store: Store = Arc::new(Mutex::new(Vec::new()));
    let server_store = Arc::clone(&store);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        Server::new(ServerConfig::new("mx.example.org"))
            .run(
                listener,
                move |_peer| Keep {
                    store: Arc::clone(&server_store),
                    message: Vec::new(),
                },
                async {
                    // A dropped sender also means stop.
                    let _ = stopped.await;
                },
            )
            .await
    });

    let stream = tokio::net::TcpStream::connect(addr).await?;
    let mut conn = ClientConnection::new(stream, ClientConfig::new("client.example", "mx"), None);
    let first = Envelope::new(
        "alice@example.com",
        ["bob@example.org", "nobody@example.org"],
    );
    let results = conn.send(&first, &b"Subject: one\n\nfirst\n"[..]).await;
    let second = Envelope::new("alice@example.com", ["carol@example.org"]);
    let more = conn.send(&second, &b"Subject: two\n\n.second\n"[..]).await;
    conn.quit().await;
    let _ = stop.send(());
    server.await??;

    let ok = results[0].is_delivered()
        && matches!(results[1], DeliveryResult::Failed { .. })
        && more[0].is_delivered();
    let stored = store.lock().map(|s| s.clone()).unwrap_or_default();
    let want = vec![
        (
            vec!["bob@example.org".to_owned()],
            b"Subject: one\n\nfirst\n".to_vec(),
        ),
        (
            vec!["carol@example.org".to_owned()],
            b"Subject: two\n\n.second\n".to_vec(),
        ),
    ];
    if !ok || stored != want {
        eprintln!("mismatch: results {results:?} {more:?}, stored {stored:?}");
        std::process::exit(1);
    }
    println!("2 messages over one connection; bob and carol got theirs, nobody was refused");
    Ok(())
}
