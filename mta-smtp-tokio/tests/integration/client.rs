//! The async client against the async server, against mta-smtp's blocking server, and
//! connection reuse.

use std::net::TcpListener as StdListener;

use mta_smtp_tokio::mta_smtp::blocking::{Policy, serve};
use mta_smtp_tokio::{
    ClientConfig, ClientConnection, DeliveryResult, Envelope, Server, ServerConfig, deliver,
    deliver_batch,
};
use tokio::net::TcpStream;

use crate::common::Running;

fn ccfg() -> ClientConfig {
    ClientConfig::new("client.test", "127.0.0.1")
}

#[tokio::test]
async fn per_recipient_results_from_the_async_server() {
    let running = Running::start(Server::new(ServerConfig::new("mx.test"))).await;
    let env = Envelope::new(
        "a@example.org",
        [
            "ok1@example.com",
            "rejectme@example.com",
            "deferme@example.com",
            "ok2@example.com",
        ],
    );
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let results = deliver(stream, &env, &b"Subject: x\n\n.dot\n"[..], ccfg(), None).await;
    assert!(results[0].is_delivered(), "{results:?}");
    assert!(
        matches!(results[1], DeliveryResult::Failed { .. }),
        "{results:?}"
    );
    assert!(
        matches!(results[2], DeliveryResult::Deferred { .. }),
        "{results:?}"
    );
    assert!(results[3].is_delivered(), "{results:?}");
    let seen = running.stop().await;
    assert_eq!(seen.messages.len(), 1);
    assert_eq!(seen.messages[0].0, b"Subject: x\n\n.dot\n");
    assert_eq!(seen.messages[0].1, ["ok1@example.com", "ok2@example.com"]);
    assert!(
        seen.messages[0].3.is_some(),
        "the handler had no peer address"
    );
}

#[tokio::test]
async fn one_connection_carries_several_messages() {
    let running = Running::start(Server::new(ServerConfig::new("mx.test"))).await;
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let mut conn = ClientConnection::new(stream, ccfg(), None);
    for n in 0..5 {
        let env = Envelope::new("a@example.org", [format!("b{n}@example.com")]);
        let body = format!("Subject: {n}\n\nhi\n");
        let results = conn.send(&env, body.as_bytes()).await;
        assert!(results[0].is_delivered(), "{n}: {results:?}");
        assert!(conn.is_reusable());
    }
    conn.quit().await;
    let seen = running.stop().await;
    assert_eq!(seen.sessions, 1);
    assert_eq!(seen.messages.len(), 5);
    assert_eq!(seen.messages[4].0, b"Subject: 4\n\nhi\n");
}

#[tokio::test]
async fn a_batch_reconnects_after_a_refused_transaction() {
    let running = Running::start(Server::new(ServerConfig::new("mx.test"))).await;
    let messages = [
        (
            Envelope::new("a@example.org", ["b@example.com"]),
            &b"1\n"[..],
        ),
        (
            Envelope::new("a@example.org", ["rejectme@example.com"]),
            &b"2\n"[..],
        ),
        (
            Envelope::new("a@example.org", ["c@example.com"]),
            &b"3\n"[..],
        ),
        (
            Envelope::new("a@example.org", ["d@example.com"]),
            &b"4\n"[..],
        ),
    ];
    let results = deliver_batch(running.addr, &messages, &ccfg(), None).await;
    assert_eq!(results.len(), 4);
    assert!(results[0][0].is_delivered());
    assert!(matches!(results[1][0], DeliveryResult::Failed { .. }));
    assert!(results[2][0].is_delivered());
    assert!(results[3][0].is_delivered());
    let seen = running.stop().await;
    // The refused RCPT ends that transaction with QUIT: one reconnect, not four.
    assert_eq!(seen.sessions, 2);
    assert_eq!(seen.messages.len(), 3);
}

struct Collect(Vec<u8>);
impl Policy for Collect {
    fn data_chunk(&mut self, chunk: &[u8]) {
        self.0.extend_from_slice(chunk);
    }
}

#[tokio::test]
async fn async_client_against_the_blocking_server() {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut p = Collect(Vec::new());
        serve(s, ServerConfig::new("mx.test"), &mut p).unwrap();
        p.0
    });
    let env = Envelope::new("a@example.org", ["b@example.com", "c@example.com"]);
    let stream = TcpStream::connect(addr).await.unwrap();
    let message = b"Subject: blocking\n\n.starts with a dot\nend\n";
    let results = deliver(stream, &env, &message[..], ccfg(), None).await;
    assert!(
        results.iter().all(DeliveryResult::is_delivered),
        "{results:?}"
    );
    assert_eq!(server.join().unwrap(), message);
}

#[tokio::test]
async fn a_dead_server_defers() {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        drop(s);
    });
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let stream = TcpStream::connect(addr).await.unwrap();
    let results = deliver(stream, &env, &b"x\n"[..], ccfg(), None).await;
    assert!(
        matches!(results[0], DeliveryResult::Deferred { .. }),
        "{results:?}"
    );
    server.join().unwrap();
}
