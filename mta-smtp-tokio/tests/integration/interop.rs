//! Interoperability over loopback with other SMTP software: Python's smtplib (plain and
//! STARTTLS), swaks, Postfix's smtp-source against the async server; the async client
//! against Postfix's smtp-sink. A missing tool skips its test with a printed note.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use mta_smtp_tokio::{ClientConfig, Envelope, Server, ServerConfig, deliver};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::common::{Running, tls_configs};

fn tool(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| {
            if p.contains('/') {
                Path::new(p).exists()
            } else {
                std::process::Command::new("which")
                    .arg(p)
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            }
        })
        .map(|p| (*p).to_owned())
}

const PY_SEND: &str = r#"
import smtplib, ssl, sys
port, tls = int(sys.argv[1]), sys.argv[2] == "tls"
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.ehlo("python.test")
if tls:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.ehlo("python.test")
refused = s.sendmail("py@example.org", ["a@example.com", "rejectme@example.com"],
                     "Subject: from python\r\n\r\n.leading dot\r\nbye\r\n")
assert list(refused) == ["rejectme@example.com"], refused
s.quit()
"#;

async fn python(tls: bool) {
    let Some(py) = tool(&["python3"]) else {
        println!("note: python3 not found, smtplib interop skipped");
        return;
    };
    let (server_tls, _, _) = tls_configs();
    let mut server = Server::new(ServerConfig::new("mx.test"));
    if tls {
        server = server.with_starttls(server_tls);
    }
    let running = Running::start(server).await;
    let status = Command::new(py)
        .args([
            "-c",
            PY_SEND,
            &running.addr.port().to_string(),
            if tls { "tls" } else { "plain" },
        ])
        .status()
        .await
        .unwrap();
    let seen = running.stop().await;
    assert!(status.success(), "python smtplib failed");
    assert_eq!(seen.messages.len(), 1);
    assert_eq!(
        seen.messages[0].0,
        b"Subject: from python\n\n.leading dot\nbye\n"
    );
    assert_eq!(seen.messages[0].2, tls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_plain() {
    python(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_starttls() {
    python(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_plain_and_starttls() {
    let Some(swaks) = tool(&["swaks"]) else {
        println!("note: swaks not found, swaks interop skipped");
        return;
    };
    let (server_tls, _, _) = tls_configs();
    let running =
        Running::start(Server::new(ServerConfig::new("mx.test")).with_starttls(server_tls)).await;
    let port = running.addr.port().to_string();
    for extra in [&[][..], &["--tls"][..]] {
        let out = Command::new(&swaks)
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &port,
                "--from",
                "swaks@example.org",
            ])
            .args([
                "--to",
                "b@example.com",
                "--helo",
                "swaks.test",
                "--timeout",
                "20",
            ])
            .args(extra)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let seen = running.stop().await;
    assert_eq!(seen.messages.len(), 2);
    assert!(!seen.messages[0].2);
    assert!(
        seen.messages[1].2,
        "the --tls message did not come over TLS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_smtp_source_to_the_async_server() {
    let Some(source) = tool(&["/usr/sbin/smtp-source", "/usr/lib/postfix/sbin/smtp-source"]) else {
        println!("note: postfix smtp-source not found, skipped");
        return;
    };
    let running = Running::start(Server::new(ServerConfig::new("mx.test"))).await;
    let target = format!("127.0.0.1:{}", running.addr.port());
    // 40 messages over 4 parallel sessions, 2 recipients each, 2 KiB each.
    let out = Command::new(source)
        .args(["-c", "-s", "4", "-m", "40", "-r", "2", "-l", "2048"])
        .args([
            "-f",
            "source@example.org",
            "-t",
            "sink@example.com",
            &target,
        ])
        .output()
        .await
        .unwrap();
    let seen = running.stop().await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(seen.messages.len(), 40);
    assert!(
        seen.messages
            .iter()
            .all(|m| m.1.len() == 2 && m.0.len() >= 2048)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_to_postfix_smtp_sink() {
    let Some(sink) = tool(&["/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink"]) else {
        println!("note: postfix smtp-sink not found, skipped");
        return;
    };
    // A free port, picked now; smtp-sink binds it itself.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(sink);
    if rustix::process::geteuid().is_root() {
        cmd.args(["-u", "nobody"]);
    }
    let mut child = cmd
        .args(["-c", &format!("127.0.0.1:{port}"), "10"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = stream.expect("smtp-sink did not start");
    let env = Envelope::new("a@example.org", ["b@example.com", "c@example.com"]);
    let cfg = ClientConfig::new("client.test", "127.0.0.1");
    let results = deliver(stream, &env, &b"Subject: to sink\n\nhi\n"[..], cfg, None).await;
    child.kill().await.unwrap();
    assert!(
        results
            .iter()
            .all(mta_smtp_tokio::DeliveryResult::is_delivered),
        "{results:?}"
    );
}
