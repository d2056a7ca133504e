//! TLS in `mta serve` against independent clients: Python's `ssl`/`smtplib`, swaks
//! (`--tls`, `--tlsc`) and `openssl s_client -starttls smtp`, with certificates made by
//! rcgen in the test. STARTTLS on `smtp` listeners, implicit TLS on `smtps`, TLS required
//! before MAIL on `submission`, the certificate replaced while `serve` runs, and the
//! `ESMTPS` Received line.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::serve::{BODY, add_user};
use crate::support::*;

/// A CA PEM, and a server key + chain PEM for `localhost`/127.0.0.1 signed by it.
pub fn test_pki(name: &str) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        ca_cert.pem(),
        format!("{}{}{}", key.serialize_pem(), cert.pem(), ca_cert.pem()),
    )
}

/// Installs `pem` as control/servercert.pem (mode 0600, as a key file should be).
fn install_cert(root: &TestRoot, pem: &str) {
    let path = root.path("control/servercert.pem");
    let tmp = root.path("control/servercert.pem.new");
    std::fs::write(&tmp, pem).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn write_ca(root: &TestRoot, ca: &str) -> String {
    let p = root.tmp.path().join(format!("ca-{}.pem", ca.len()));
    std::fs::write(&p, ca).unwrap();
    p.to_str().unwrap().to_owned()
}

const STARTTLS_SEND: &str = r#"
import smtplib, ssl, sys
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
if mode == "smtps":
    s = smtplib.SMTP_SSL("localhost", port, context=ctx, timeout=20)
    s.ehlo("py.example")
    s.login("alice", "wonderland")
else:
    s = smtplib.SMTP("localhost", port, timeout=20)
    s.ehlo("py.example")
    if mode == "mail-first":
        code, text = s.mail("a@example.net")
        print("MAIL", code)
    assert s.has_extn("starttls"), "no STARTTLS offered"
    s.starttls(context=ctx)
    s.ehlo("py.example")
    assert not s.has_extn("starttls"), "STARTTLS offered again"
    if mode == "mail-first":
        s.login("alice", "wonderland")
print(s.sock.version(), s.sock.cipher()[0])
s.sendmail("a@example.net", ["joe@example.org"], sys.argv[4].encode())
s.quit()
print("SENT")
"#;

fn py_send(port: u16, ca: &str, mode: &str) -> String {
    let (code, out, err) = python(STARTTLS_SEND, &[&port.to_string(), ca, mode, BODY]);
    assert_eq!(code, 0, "{mode}: {err}");
    out
}

#[test]
fn starttls_with_smtplib_delivers_with_an_esmtps_received_line() {
    let root = TestRoot::new();
    let (ca, pem) = test_pki("mx");
    install_cert(&root, &pem);
    let joe = add_user(&root, "joe");
    let server = root.serve();
    let ca = write_ca(&root, &ca);
    let out = py_send(root.port, &ca, "starttls");
    assert!(out.starts_with("TLSv1.3 "), "{out}");
    assert!(out.contains("SENT"));
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    let m = &maildir_messages(&joe.join("Maildir"))[0];
    assert!(
        m.contains("by example.org with ESMTPS (TLSv1.3 TLS13_"),
        "{m}"
    );
    assert!(server.log_text().contains("smtp: tls 127.0.0.1 TLSv1.3"));
}

#[test]
fn smtps_and_submission_listeners() {
    let root = TestRoot::new();
    let (ca, pem) = test_pki("mx");
    install_cert(&root, &pem);
    let smtps = free_port();
    let submission = free_port();
    root.control(
        "listen",
        &format!(
            "127.0.0.1:{}\n127.0.0.1:{smtps} smtps\n127.0.0.1:{submission} submission\n",
            root.port
        ),
    );
    let joe = add_user(&root, "joe");
    // smtps and submission take mail from logged-in users only.
    let passwd = std::process::Command::new(MTA)
        .arg("--root")
        .arg(&root.dir)
        .args(["passwd", "alice"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().map(|mut i| i.write_all(b"wonderland\n"));
            c.wait()
        })
        .unwrap();
    assert!(passwd.success());
    let server = root.serve();
    let ca = write_ca(&root, &ca);
    // Implicit TLS: encrypted from the first byte, no STARTTLS offered.
    let out = py_send(smtps, &ca, "smtps");
    assert!(out.starts_with("TLSv1.3"), "{out}");
    // Submission: MAIL before STARTTLS gets 530, then the session goes on under TLS.
    let out = py_send(submission, &ca, "mail-first");
    assert!(out.starts_with("MAIL 530"), "{out}");
    assert!(out.contains("SENT"), "{out}");
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    // swaks with implicit TLS (--tlsc, logged in) and with STARTTLS (--tls, on the MX
    // port), as a third client.
    for (port, flag) in [(smtps, "--tlsc"), (root.port, "--tls")] {
        let login: &[&str] = if port == smtps {
            &[
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                "wonderland",
            ]
        } else {
            &[]
        };
        let out = Command::new("swaks")
            .args(login)
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                flag,
                "--from",
                "a@example.net",
                "--to",
                "joe@example.org",
                "--timeout",
                "20",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "swaks {flag}: {text}");
        assert!(text.contains("TLS started"), "swaks {flag}: {text}");
    }
    assert!(
        wait_maildir(&joe.join("Maildir"), 4, 20),
        "{}",
        server.log_text()
    );
}

#[test]
fn openssl_s_client_starttls_and_tls_1_1_refused() {
    let root = TestRoot::new();
    let (ca, pem) = test_pki("mx");
    install_cert(&root, &pem);
    let _server = root.serve();
    let ca = write_ca(&root, &ca);
    let connect = format!("127.0.0.1:{}", root.port);
    let run = |extra: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            &connect,
            "-CAfile",
            &ca,
            "-verify_hostname",
            "localhost",
        ]);
        cmd.args(extra);
        cmd.stdin(std::process::Stdio::piped());
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(b"QUIT\r\n");
        }
        let out = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let ok = run(&[]);
    assert!(ok.contains("Verify return code: 0 (ok)"), "{ok}");
    assert!(ok.contains("TLSv1.3"), "{ok}");
    let old = run(&["-tls1_1"]);
    assert!(
        old.contains("Cipher is (NONE)") && !old.contains("221 "),
        "TLS 1.1 accepted: {old}"
    );
}

fn peer_cert_cn(port: u16) -> String {
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.starttls(context=ctx)
der = s.sock.getpeercert(binary_form=True)
print(der.hex())
s.quit()
"#;
    let (code, out, err) = python(script, &[&port.to_string()]);
    assert_eq!(code, 0, "{err}");
    out.trim().to_owned()
}

#[test]
fn a_certificate_replaced_on_disk_is_used_for_new_connections() {
    let root = TestRoot::new();
    let (_, first) = test_pki("first");
    install_cert(&root, &first);
    let server = root.serve();
    let a = peer_cert_cn(root.port);
    // "first" as DER hex: the CN is in the certificate.
    assert!(a.contains(&hex(b"first")), "first certificate not served");
    let (_, second) = test_pki("second");
    std::thread::sleep(Duration::from_millis(20));
    install_cert(&root, &second);
    // Run as root, the master gives the new file to the SMTP account's group within its
    // 2 s check; unprivileged, it is readable at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    let mut b = peer_cert_cn(root.port);
    while !b.contains(&hex(b"second")) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        b = peer_cert_cn(root.port);
    }
    assert!(
        b.contains(&hex(b"second")),
        "the renewed certificate was not picked up"
    );
    // A broken file keeps the last good certificate.
    install_cert(&root, "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let c = peer_cert_cn(root.port);
    assert_eq!(b, c);
    assert!(server.log_text().contains("keeping the previous version"));
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

#[test]
fn no_certificate_no_starttls() {
    let root = TestRoot::new();
    let _server = root.serve();
    let mut s = TcpStream::connect(root.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(read_reply(&mut s).starts_with("220"));
    std::io::Write::write_all(&mut s, b"EHLO x\r\nSTARTTLS\r\n").unwrap();
    let ehlo = read_reply(&mut s);
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(read_reply(&mut s).starts_with("502 "));
    assert!(Path::new(&root.path("control")).is_dir());
}

/// What kind of TLS a test sink offers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SinkTls {
    /// No STARTTLS.
    Off,
    /// STARTTLS with this certificate.
    On,
    /// STARTTLS offered, but every handshake fails.
    Broken,
}

/// A sink on loopback for `conns` connections: returns its port and, at the end, the
/// messages it took with whether each came under TLS.
fn tls_sink(
    pem: &str,
    mode: SinkTls,
    conns: usize,
) -> (u16, std::thread::JoinHandle<Vec<(bool, String)>>) {
    use mta_smtp::blocking::{Policy, Stream, serve_with};
    use mta_smtp::{DataSummary, ServerConfig, Verdict};
    use std::sync::{Arc, Mutex};
    struct Sink {
        tls: Arc<Mutex<bool>>,
        data: Vec<u8>,
        got: Arc<Mutex<Vec<(bool, String)>>>,
    }
    impl Policy for Sink {
        fn data_chunk(&mut self, chunk: &[u8]) {
            self.data.extend_from_slice(chunk);
        }
        fn data_end(&mut self, _: &DataSummary) -> Verdict {
            let tls = *self.tls.lock().unwrap();
            let text = String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned();
            self.got.lock().unwrap().push((tls, text));
            Verdict::Accept
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = mta_smtp::tls::server_config_from_pem(pem.as_bytes()).unwrap();
    let h = std::thread::spawn(move || {
        let got = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..conns {
            let Ok((sock, _)) = listener.accept() else {
                break;
            };
            let tls = Arc::new(Mutex::new(false));
            let mut policy = Sink {
                tls: Arc::clone(&tls),
                data: Vec::new(),
                got: Arc::clone(&got),
            };
            let mut cfg = ServerConfig::new("sink.test");
            cfg.offer_starttls = mode != SinkTls::Off;
            cfg.timeout = Duration::from_secs(20);
            let config = Arc::clone(&config);
            let mut hook = |tcp: TcpStream| -> std::io::Result<Box<dyn Stream>> {
                if mode == SinkTls::Broken {
                    return Err(std::io::Error::other("broken on purpose"));
                }
                let s = mta_smtp::tls::accept(tcp, Arc::clone(&config))?;
                *tls.lock().unwrap() = true;
                Ok(Box::new(s))
            };
            let _ = serve_with(sock, cfg, &mut policy, Some(&mut hook));
        }
        got.lock().unwrap().clone()
    });
    (port, h)
}

/// A server certificate valid for the IP address 127.0.0.1, and its CA.
fn ip_pki() -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress(std::net::IpAddr::from([
        127, 0, 0, 1,
    ]))];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        ca_cert.pem(),
        format!("{}{}", key.serialize_pem(), cert.pem()),
    )
}

/// One message to `x@tls.test`, routed to the sink; returns the server for its log.
fn send_out(root: &TestRoot, sink_port: u16, policy: &str) -> Server {
    root.control("smtproutes", &format!("tls.test:127.0.0.1:{sink_port}\n"));
    root.control("tlsdestinations", &format!("tls.test:{policy}\n"));
    let server = root.serve();
    assert_eq!(
        crate::serve::send(root, "a@example.org", &["x@tls.test"], BODY),
        "OK []"
    );
    server
}

#[test]
fn outbound_starttls_when_offered_and_plaintext_retry_under_may() {
    let (_, pem) = ip_pki();
    // Offered: used.
    let root = TestRoot::new();
    let (port, sink) = tls_sink(&pem, SinkTls::On, 1);
    let server = send_out(&root, port, "may");
    let got = sink.join().unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].0, "delivered without TLS");
    assert!(
        server.wait_log("remote: tls 127.0.0.1", 1, 10),
        "{}",
        server.log_text()
    );
    assert!(server.wait_log("delivery 1: success", 1, 10));
    drop(server);
    // A handshake that fails: the same host again in plain text, delivered.
    let root = TestRoot::new();
    let (port, sink) = tls_sink(&pem, SinkTls::Broken, 2);
    let server = send_out(&root, port, "may");
    let got = sink.join().unwrap();
    assert_eq!(got.len(), 1, "{}", server.log_text());
    assert!(!got[0].0);
    assert!(
        server.wait_log("delivery 1: success", 1, 10),
        "{}",
        server.log_text()
    );
    assert!(server.log_text().contains("tls handshake with 127.0.0.1"));
}

#[test]
fn outbound_encrypt_and_verify_policies() {
    let (ca, pem) = ip_pki();
    // encrypt, but the host offers no STARTTLS: deferred with the reason in queue list.
    let root = TestRoot::new();
    let (port, sink) = tls_sink(&pem, SinkTls::Off, 1);
    let server = send_out(&root, port, "encrypt");
    assert!(server.wait_log("deferral", 1, 20), "{}", server.log_text());
    let list = mta(&root.dir, &["queue", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("which is required"), "{text}");
    drop(server);
    assert!(sink.join().unwrap().is_empty());
    // verify with a CA we do not know: deferred, nothing sent.
    let root = TestRoot::new();
    let (port, sink) = tls_sink(&pem, SinkTls::On, 1);
    let server = send_out(&root, port, "verify");
    assert!(server.wait_log("deferral", 1, 20), "{}", server.log_text());
    assert!(
        server
            .log_text()
            .contains("tlsdestinations_requires_verify"),
        "{}",
        server.log_text()
    );
    drop(server);
    assert!(sink.join().unwrap().is_empty());
    // verify with the CA in tlsca.pem: delivered under TLS.
    let root = TestRoot::new();
    root.control("tlsca.pem", &ca);
    let (port, sink) = tls_sink(&pem, SinkTls::On, 1);
    let server = send_out(&root, port, "verify");
    let got = sink.join().unwrap();
    assert_eq!(got.len(), 1, "{}", server.log_text());
    assert!(got[0].0);
    assert!(
        server.wait_log("delivery 1: success", 1, 10),
        "{}",
        server.log_text()
    );
}

#[test]
fn check_validates_the_certificate_files() {
    let root = TestRoot::new();
    let (_, good) = test_pki("mx");
    install_cert(&root, &good);
    let out = mta(&root.dir, &["check"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // World-readable key: a warning, still valid.
    std::fs::set_permissions(
        root.path("control/servercert.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = mta(&root.dir, &["check"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("readable by every account"));
    // A key that does not belong to the certificate: an error.
    let (_, other) = test_pki("other");
    let key_end = other.find("-----END PRIVATE KEY-----").unwrap() + 26;
    let cert_start = good.find("-----BEGIN CERTIFICATE-----").unwrap();
    install_cert(
        &root,
        &format!("{}{}", &other[..key_end], &good[cert_start..]),
    );
    let out = mta(&root.dir, &["check"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "mismatched key accepted: {out:?}"
    );
    // Expiring within 14 days: a warning naming the days.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(now + 5 * 86_400);
    let soon = params.self_signed(&key).unwrap();
    install_cert(&root, &format!("{}{}", key.serialize_pem(), soon.pem()));
    let out = mta(&root.dir, &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("expires in 4 days") || err.contains("expires in 5 days"),
        "{err}"
    );
}

/// A client that drips its TLS handshake a byte at a time after STARTTLS is cut off at
/// `timeoutsmtpd` for the whole handshake, not per byte.
#[test]
fn a_dripped_handshake_is_cut_at_the_deadline() {
    use std::io::{Read, Write};
    let root = TestRoot::new();
    let (_, pem) = test_pki("mx");
    install_cert(&root, &pem);
    root.control("timeoutsmtpd", "2\n");
    let server = root.serve();
    let mut s = TcpStream::connect(root.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(read_reply(&mut s).starts_with("220"));
    s.write_all(b"EHLO x\r\n").unwrap();
    read_reply(&mut s);
    s.write_all(b"STARTTLS\r\n").unwrap();
    assert!(read_reply(&mut s).starts_with("220"));
    // The start of a TLS record (a ClientHello), then one byte every 200 ms.
    let t = std::time::Instant::now();
    let hello = [
        0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let mut closed = None;
    for b in hello.iter().chain(std::iter::repeat(&0u8)).take(100) {
        if s.write_all(&[*b]).is_err() {
            closed = Some(t.elapsed());
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 64];
        if let Ok(0) = s.read(&mut buf) {
            closed = Some(t.elapsed());
            break;
        }
    }
    let closed = closed.unwrap_or_else(|| {
        panic!(
            "a dripped handshake held the session for 20 s: {}",
            server.log_text()
        )
    });
    assert!(
        closed < Duration::from_secs(6),
        "closed only after {closed:?}"
    );
}
