//! STARTTLS (RFC 3207) and implicit TLS (RFC 8314) with tokio-rustls, AUTH inside TLS
//! only, and the STARTTLS plaintext injection (CVE-2011-0411 class).

use std::sync::Arc;

use mta_smtp_tokio::mta_smtp::Secret;
use mta_smtp_tokio::rustls::pki_types::ServerName;
use mta_smtp_tokio::{
    ClientAuth, ClientConfig, DeliveryResult, Envelope, Server, ServerConfig, TlsPolicy, deliver,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::{Running, tls_configs, tls_connect};

fn ccfg(tls: TlsPolicy) -> ClientConfig {
    let mut c = ClientConfig::new("client.test", "127.0.0.1");
    c.tls = tls;
    c
}

#[tokio::test]
async fn starttls_round_trip_with_auth() {
    let (server_tls, client_tls, _) = tls_configs();
    let mut cfg = ServerConfig::new("mx.test");
    cfg.offer_auth = true;
    let running = Running::start(Server::new(cfg).with_starttls(server_tls)).await;
    let mut c = ccfg(TlsPolicy::Required);
    c.auth = Some(ClientAuth {
        login: "user".into(),
        password: Secret::new(b"secret".to_vec()),
    });
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let tls = tls_connect(client_tls);
    let results = deliver(stream, &env, &b"Subject: t\n\nhi\n"[..], c, Some(&tls)).await;
    assert!(results[0].is_delivered(), "{results:?}");
    let seen = running.stop().await;
    assert_eq!(seen.auths, ["user"]);
    assert_eq!(seen.messages.len(), 1);
    assert!(seen.messages[0].2, "the message did not come over TLS");
    assert_eq!(seen.messages[0].0, b"Subject: t\n\nhi\n");
}

#[tokio::test]
async fn auth_is_never_sent_outside_tls() {
    let mut cfg = ServerConfig::new("mx.test");
    cfg.offer_auth = true;
    cfg.auth_requires_tls = false;
    let running = Running::start(Server::new(cfg)).await;
    let mut c = ccfg(TlsPolicy::Never);
    c.auth = Some(ClientAuth {
        login: "user".into(),
        password: Secret::new(b"secret".to_vec()),
    });
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let results = deliver(stream, &env, &b"hi\n"[..], c, None).await;
    assert!(
        matches!(results[0], DeliveryResult::Deferred { .. }),
        "{results:?}"
    );
    let seen = running.stop().await;
    assert!(seen.auths.is_empty());
    assert!(seen.messages.is_empty());
}

#[tokio::test]
async fn implicit_tls_round_trip() {
    let (server_tls, client_tls, _) = tls_configs();
    let running =
        Running::start(Server::new(ServerConfig::new("mx.test")).with_implicit_tls(server_tls))
            .await;
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let tls = TlsConnector::from(client_tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let env = Envelope::new("a@example.org", ["b@example.com", "rejectme@example.com"]);
    let results = deliver(tls, &env, &b"hi\n"[..], ccfg(TlsPolicy::Never), None).await;
    assert!(results[0].is_delivered(), "{results:?}");
    assert!(
        matches!(results[1], DeliveryResult::Failed { .. }),
        "{results:?}"
    );
    let seen = running.stop().await;
    assert!(seen.messages[0].2);
}

/// Commands pipelined behind STARTTLS in clear text must not run inside TLS.
#[tokio::test]
async fn commands_pipelined_behind_starttls_are_discarded() {
    let (server_tls, client_tls, _) = tls_configs();
    let running =
        Running::start(Server::new(ServerConfig::new("mx.test")).with_starttls(server_tls)).await;
    let mut tcp = TcpStream::connect(running.addr).await.unwrap();
    tcp.write_all(b"EHLO evil\r\nSTARTTLS\r\nMAIL FROM:<smuggled@evil.example>\r\n")
        .await
        .unwrap();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).await.unwrap() > 0,
            "closed early"
        );
        if line.starts_with("220 2.0.0") {
            break;
        }
    }
    let tcp = reader.into_inner();
    let tls = TlsConnector::from(client_tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    // The three lines arrive in one segment and one read: the session itself must drop
    // the MAIL, so the handshake succeeds and the TLS session starts clean.
    let mut tls = tls.expect("handshake after the injected bytes");
    {
        tls.write_all(b"EHLO evil\r\nRCPT TO:<victim@example.com>\r\nQUIT\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains("503 5.5.1 MAIL first"), "{out}");
    }
    let seen = running.stop().await;
    assert!(
        seen.mails.is_empty(),
        "the injected MAIL ran: {:?}",
        seen.mails
    );
}

#[tokio::test]
async fn required_tls_without_offer_defers() {
    let running = Running::start(Server::new(ServerConfig::new("mx.test"))).await;
    let (_, client_tls, _) = tls_configs();
    let tls = tls_connect(Arc::clone(&client_tls));
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let results = deliver(
        stream,
        &env,
        &b"hi\n"[..],
        ccfg(TlsPolicy::Required),
        Some(&tls),
    )
    .await;
    assert!(
        matches!(results[0], DeliveryResult::Deferred { .. }),
        "{results:?}"
    );
    assert!(running.stop().await.messages.is_empty());
}
