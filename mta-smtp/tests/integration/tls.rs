//! TLS through the blocking drivers (feature `rustls`), with certificates made by rcgen:
//! our client against our server with STARTTLS and with implicit TLS, Python's `ssl` and
//! `smtplib` as independent peers, and the attacks: plaintext pipelined behind STARTTLS,
//! TLS 1.1 and below, a failed handshake.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mta_core::Envelope;
use mta_smtp::blocking::{Policy, deliver_with, serve_with};
use mta_smtp::tls::{self, ServerCheck};
use mta_smtp::{ClientConfig, DataSummary, ServerConfig, TlsPolicy, Verdict};

/// A CA, and a server certificate for `localhost` and 127.0.0.1 signed by it: (CA PEM,
/// server key + chain PEM).
pub(crate) fn test_pki() -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "mta test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let server_pem = format!("{}{}{}", key.serialize_pem(), cert.pem(), ca_cert.pem());
    (ca_cert.pem(), server_pem)
}

/// Records what the server saw.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Policy for Recorder {
    fn hello(&mut self, name: &str) {
        self.0.lock().unwrap().push(format!("hello {name}"));
    }
    fn data_chunk(&mut self, chunk: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("data {}", String::from_utf8_lossy(chunk)));
    }
    fn data_end(&mut self, _: &DataSummary) -> Verdict {
        self.0.lock().unwrap().push("end".to_owned());
        Verdict::Accept
    }
}

/// A server thread for one connection: STARTTLS (or implicit TLS) with `pem`.
fn tls_server(pem: &str, implicit: bool) -> (u16, Recorder, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls_config = tls::server_config_from_pem(pem.as_bytes()).unwrap();
    let rec = Recorder::default();
    let mut policy = rec.clone();
    let h = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut cfg = ServerConfig::new("mx.test");
        cfg.offer_starttls = true;
        cfg.timeout = Duration::from_secs(10);
        // Failed handshakes end the session with an error: that is expected in some tests.
        let _ = if implicit {
            tls::serve_implicit(sock, cfg, &mut policy, tls_config)
        } else {
            let mut hook = tls::server_hook(tls_config);
            serve_with(sock, cfg, &mut policy, Some(&mut hook))
        };
    });
    (port, rec, h)
}

#[test]
fn our_client_delivers_over_starttls_with_a_verified_certificate() {
    let (ca, pem) = test_pki();
    let (port, rec, h) = tls_server(&pem, false);
    let roots = tls::roots_with(Some(ca.as_bytes())).unwrap();
    let client_tls = tls::client_config(&ServerCheck::Verify(Arc::new(roots)), None).unwrap();
    let mut cfg = ClientConfig::new("client.test", "127.0.0.1");
    cfg.tls = TlsPolicy::Required;
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut hook = tls::client_hook(client_tls, "localhost".to_owned());
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let r = deliver_with(
        stream,
        &env,
        &b"Subject: t\n\nover tls\n"[..],
        cfg,
        Some(&mut hook),
    );
    assert!(r[0].is_delivered(), "{r:?}");
    h.join().unwrap();
    let seen = rec.0.lock().unwrap().clone();
    // EHLO before and after the handshake (RFC 3207 §4.2), then the message.
    assert_eq!(seen.iter().filter(|l| l.starts_with("hello")).count(), 2);
    assert!(seen.iter().any(|l| l.contains("over tls")));
}

#[test]
fn an_unknown_ca_fails_verification_and_defers() {
    let (_ca, pem) = test_pki();
    let (other_ca, _) = test_pki();
    let (port, rec, h) = tls_server(&pem, false);
    let roots = tls::roots_with(Some(other_ca.as_bytes())).unwrap();
    let client_tls = tls::client_config(&ServerCheck::Verify(Arc::new(roots)), None).unwrap();
    let mut cfg = ClientConfig::new("client.test", "127.0.0.1");
    cfg.tls = TlsPolicy::Required;
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut hook = tls::client_hook(client_tls, "localhost".to_owned());
    let env = Envelope::new("a@example.org", ["b@example.com"]);
    let r = deliver_with(stream, &env, &b"x\n"[..], cfg, Some(&mut hook));
    assert_eq!(r[0].letter(), 'Z', "{r:?}");
    h.join().unwrap();
    assert!(
        !rec.0.lock().unwrap().iter().any(|l| l.starts_with("data")),
        "nothing may be sent over an unverified connection"
    );
}

#[test]
fn implicit_tls_with_python_smtplib() {
    let (ca, pem) = test_pki();
    let (port, rec, h) = tls_server(&pem, true);
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = smtplib.SMTP_SSL("localhost", int(sys.argv[1]), context=ctx, timeout=10)
code, text = s.ehlo("py.example")
assert b"STARTTLS" not in text, text
s.sendmail("a@example.org", ["b@example.com"], b"Subject: p\r\n\r\nvia smtps\r\n")
print(s.sock.version())
s.quit()
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string(), ca_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "TLSv1.3");
    h.join().unwrap();
    assert!(
        rec.0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("via smtps"))
    );
}

#[test]
fn starttls_with_python_and_plaintext_injection_is_never_run() {
    let (ca, pem) = test_pki();
    let (port, rec, h) = tls_server(&pem, false);
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    // STARTTLS with a MAIL pipelined behind it in the same packet, then a real session.
    let script = r#"
import smtplib, ssl, sys, socket
ctx = ssl.create_default_context(cafile=sys.argv[2])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = raw.makefile("rb")
assert f.readline().startswith(b"220")
raw.sendall(b"EHLO py\r\n")
line = f.readline()
while line[3:4] == b"-":
    line = f.readline()
raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
assert f.readline().startswith(b"220"), "no 220 to STARTTLS"
tls = ctx.wrap_socket(raw, server_hostname="localhost")
tf = tls.makefile("rb")
tls.sendall(b"EHLO py\r\n")
ehlo = b""
line = tf.readline()
while True:
    ehlo += line
    if line[3:4] != b"-":
        break
    line = tf.readline()
assert b"STARTTLS" not in ehlo, ehlo
tls.sendall(b"RCPT TO:<b@example.com>\r\n")
print(tf.readline().decode().strip())
tls.sendall(b"QUIT\r\n")
print(tf.readline().decode().strip())
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string(), ca_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The injected MAIL was discarded: RCPT finds no transaction.
    assert!(text.starts_with("503 5.5.1 MAIL first"), "{text}");
    h.join().unwrap();
    assert!(!rec.0.lock().unwrap().iter().any(|l| l.contains("injected")));
}

#[test]
fn tls_1_1_and_below_are_refused_and_the_session_ends_cleanly() {
    let (_ca, pem) = test_pki();
    let (port, _rec, h) = tls_server(&pem, true);
    let script = r#"
import ssl, socket, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
ctx.maximum_version = ssl.TLSVersion.TLSv1_1
try:
    ctx.set_ciphers("ALL:@SECLEVEL=0")
except ssl.SSLError:
    pass
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    ctx.wrap_socket(raw, server_hostname="localhost")
    print("CONNECTED")
except (ssl.SSLError, OSError) as e:
    print("REFUSED", type(e).__name__)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("REFUSED"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server thread ends (no hang) after the failed handshake.
    h.join().unwrap();
}

#[test]
fn a_failed_starttls_handshake_ends_the_session() {
    let (_ca, pem) = test_pki();
    let (port, rec, h) = tls_server(&pem, false);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"EHLO x\r\nSTARTTLS\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("220 2.0.0") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    // Garbage instead of a ClientHello, then plain SMTP.
    c.write_all(b"MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        !String::from_utf8_lossy(&rest).contains("250"),
        "plaintext after a failed handshake was answered"
    );
    h.join().unwrap();
    assert_eq!(
        rec.0.lock().unwrap().len(),
        1,
        "only the first EHLO was seen"
    );
}
