//! Send mail with mta-smtp-tokio's async client to an in-process async server: one
//! message with per-recipient results (one recipient refused, one deferred), then a
//! batch of three over one connection. Exits non-zero on any mismatch.
//!
//! ```text
//! cargo run --example tokio_send
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mta::core::path::ForwardPath;
use mta_smtp_tokio::{
    ClientConfig, DataSummary, DeliveryResult, Envelope, Handler, RcptParams, Reply, Server,
    ServerConfig, SessionInfo, Verdict, deliver, deliver_batch,
};

/// Refuses `unknown@` (550) and defers `busy@` (451); counts accepted messages.
struct Counting(Arc<AtomicUsize>);

impl Handler for Counting {
    async fn rcpt(&mut self, path: &ForwardPath, _: &RcptParams, _: &SessionInfo) -> Verdict {
        let address = path.to_address().to_string_lossy();
        let refusal = if address.starts_with("unknown@") {
            Reply::new(550, "5.1.1 no such user").ok()
        } else if address.starts_with("busy@") {
            Reply::new(451, "4.2.1 mailbox busy, try later").ok()
        } else {
            None
        };
        refusal.map_or(Verdict::Accept, Verdict::Reject)
    }

    async fn data_end(&mut self, _: &DataSummary, _: Option<&[u8]>, _: &SessionInfo) -> Verdict {
        self.0.fetch_add(1, Ordering::SeqCst);
        Verdict::Accept
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let (counter, connections) = (Arc::clone(&accepted), Arc::new(AtomicUsize::new(0)));
    let conns = Arc::clone(&connections);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let handler = move |_peer| {
            conns.fetch_add(1, Ordering::SeqCst);
            Counting(Arc::clone(&counter))
        };
        let shutdown = async {
            // A dropped sender also means stop.
            let _ = stopped.await;
        };
        Server::new(ServerConfig::new("mx.example.org"))
            .run(listener, handler, shutdown)
            .await
    });

    let config = ClientConfig::new("client.example", addr.ip().to_string());
    let envelope = Envelope::new(
        "alice@example.com",
        ["bob@example.org", "unknown@example.org", "busy@example.org"],
    );
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let results = deliver(
        stream,
        &envelope,
        &b"Subject: hi\n\nhello\n"[..],
        config.clone(),
        None,
    )
    .await;
    for (rcpt, result) in envelope.recipients.iter().zip(&results) {
        println!("{rcpt}: {result:?}");
    }

    let batch: Vec<(Envelope, &[u8])> = (0..3)
        .map(|_| {
            (
                Envelope::new("alice@example.com", ["carol@example.org"]),
                &b"batch\n"[..],
            )
        })
        .collect();
    let batch_results = deliver_batch(addr, &batch, &config, None).await;
    let _ = stop.send(());
    server.await??;

    let ok = matches!(
        results.as_slice(),
        [
            DeliveryResult::Delivered { .. },
            DeliveryResult::Failed { .. },
            DeliveryResult::Deferred { .. }
        ]
    ) && batch_results
        .iter()
        .all(|r| r.iter().all(DeliveryResult::is_delivered))
        && accepted.load(Ordering::SeqCst) == 4
        && connections.load(Ordering::SeqCst) == 2;
    if !ok {
        eprintln!(
            "mismatch: {results:?} {batch_results:?}, {} accepted over {} connections",
            accepted.load(Ordering::SeqCst),
            connections.load(Ordering::SeqCst)
        );
        std::process::exit(1);
    }
    println!("ok: 4 messages accepted over 2 connections (the batch shared one)");
    Ok(())
}
