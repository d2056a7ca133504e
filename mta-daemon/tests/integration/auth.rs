//! SMTP AUTH in `mta serve` against independent clients: Python's `smtplib` (`login()`
//! over STARTTLS on a submission port and over `SMTP_SSL` on smtps) and swaks
//! (`--auth PLAIN|LOGIN`), with `mta passwd`, SENDERS, a checkpassword program, the
//! authfailmax lockout, relaying after AUTH, `ESMTPSA` Received lines; and outbound AUTH to
//! a smarthost named in control/smtpauth, only inside TLS.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::serve::{BODY, add_user};
use crate::support::*;
use crate::tls::test_pki;

/// `mta passwd LOGIN` with `password` on stdin.
fn passwd(root: &TestRoot, login: &str, password: &str) {
    let mut child = Command::new(MTA)
        .arg("--root")
        .arg(&root.dir)
        .args(["passwd", login])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success());
}

/// A root with a certificate, a submission and an smtps listener, user joe, and logins.
struct AuthRoot {
    root: TestRoot,
    ca: String,
    submission: u16,
    smtps: u16,
}

fn auth_root() -> AuthRoot {
    let root = TestRoot::new();
    let (ca, pem) = test_pki("mx");
    std::fs::write(root.path("control/servercert.pem"), pem).unwrap();
    let submission = free_port();
    let smtps = free_port();
    root.control(
        "listen",
        &format!(
            "127.0.0.1:{}\n127.0.0.1:{submission} submission\n127.0.0.1:{smtps} smtps\n",
            root.port
        ),
    );
    // Nobody relays by address: only a login lets a client send elsewhere.
    root.control("relayclients", "192.0.2.0/24\n");
    root.control("smtproutes", "remote.test:127.0.0.1:9\n");
    add_user(&root, "joe");
    passwd(&root, "alice", "wonderland");
    let ca_path = root.tmp.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    AuthRoot {
        root,
        ca: ca_path.to_str().unwrap().to_owned(),
        submission,
        smtps,
    }
}

const LOGIN_SEND: &str = r#"
import smtplib, ssl, sys
port, ca, mode, user, pw, sender, rcpt = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
if mode == "smtps":
    s = smtplib.SMTP_SSL("localhost", int(port), context=ctx, timeout=20)
else:
    s = smtplib.SMTP("localhost", int(port), timeout=20)
    s.starttls(context=ctx)
s.ehlo("py.example")
try:
    s.login(user, pw)
    print("LOGIN OK")
except smtplib.SMTPAuthenticationError as e:
    print("LOGIN", e.smtp_code)
    raise SystemExit(0)
except smtplib.SMTPResponseException as e:
    print("LOGIN", e.smtp_code)
    raise SystemExit(0)
try:
    refused = s.sendmail(sender, [rcpt], sys.argv[8].encode())
    print("SENT", sorted(refused.items()))
except smtplib.SMTPSenderRefused as e:
    print("SENDER", e.smtp_code)
except smtplib.SMTPRecipientsRefused as e:
    print("RCPT", sorted((k, v[0]) for k, v in e.recipients.items()))
s.quit()
"#;

fn login_send(
    a: &AuthRoot,
    port: u16,
    mode: &str,
    user: &str,
    pw: &str,
    from: &str,
    to: &str,
) -> String {
    let (code, out, err) = python(
        LOGIN_SEND,
        &[&port.to_string(), &a.ca, mode, user, pw, from, to, BODY],
    );
    assert_eq!(code, 0, "{err}");
    out.trim().to_owned()
}

#[test]
fn smtplib_login_on_submission_and_smtps_with_esmtpsa() {
    let a = auth_root();
    let joe = a.root.path("../home/joe");
    let server = a.root.serve();
    let out = login_send(
        &a,
        a.submission,
        "starttls",
        "alice",
        "wonderland",
        "alice@example.org",
        "joe@example.org",
    );
    assert_eq!(out, "LOGIN OK\nSENT []", "{}", server.log_text());
    let out = login_send(
        &a,
        a.smtps,
        "smtps",
        "alice",
        "wonderland",
        "alice@example.org",
        "joe@example.org",
    );
    assert_eq!(out, "LOGIN OK\nSENT []");
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    let m = &maildir_messages(&joe.join("Maildir"))[0];
    assert!(m.contains("with ESMTPSA (TLSv1.3"), "{m}");
    let log = server.log_text();
    assert!(log.contains("auth ok alice 127.0.0.1"), "{log}");
    assert!(!log.contains("wonderland"), "a password reached the log");
}

#[test]
fn wrong_password_relaying_and_senders() {
    let a = auth_root();
    // SENDERS: bob may send only as bob@example.org or from @lists.example.org.
    passwd(&a.root, "bob", "builder");
    let p = a.root.path("users/passwords");
    let text = std::fs::read_to_string(&p).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("bob:") {
                format!("{l}:bob@example.org,@lists.example.org\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&p, text).unwrap();
    let server = a.root.serve();
    let sub = a.submission;
    // Wrong password: 535.
    assert_eq!(
        login_send(
            &a,
            sub,
            "starttls",
            "alice",
            "nope",
            "a@x",
            "joe@example.org"
        ),
        "LOGIN 535"
    );
    // Submission without a login: MAIL gets 530.
    let (code, out, err) = python(
        r#"
import smtplib, ssl, sys
s = smtplib.SMTP("localhost", int(sys.argv[1]), timeout=20)
s.starttls(context=ssl.create_default_context(cafile=sys.argv[2]))
code, text = s.mail("a@example.org")
print(code)
"#,
        &[&sub.to_string(), &a.ca],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "530");
    // Relaying: with a login, allowed; on the MX port without one, refused.
    let out = login_send(
        &a,
        sub,
        "starttls",
        "alice",
        "wonderland",
        "alice@example.org",
        "far@remote.test",
    );
    assert_eq!(out, "LOGIN OK\nSENT []", "{}", server.log_text());
    assert_eq!(
        crate::serve::send(&a.root, "a@example.org", &["far@remote.test"], BODY),
        "REFUSED [('far@remote.test', 553)]"
    );
    // SENDERS enforced at MAIL FROM.
    assert_eq!(
        login_send(
            &a,
            sub,
            "starttls",
            "bob",
            "builder",
            "boss@example.org",
            "joe@example.org"
        ),
        "LOGIN OK\nSENDER 553"
    );
    assert_eq!(
        login_send(
            &a,
            sub,
            "starttls",
            "bob",
            "builder",
            "news@lists.example.org",
            "joe@example.org"
        ),
        "LOGIN OK\nSENT []"
    );
    assert!(server.log_text().contains("auth fail alice 127.0.0.1"));
}

#[test]
fn swaks_auth_plain_and_login() {
    let a = auth_root();
    let joe = a.root.path("../home/joe");
    let server = a.root.serve();
    for mech in ["PLAIN", "LOGIN"] {
        let out = Command::new("swaks")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &a.submission.to_string(),
                "--tls",
                "--auth",
                mech,
                "--auth-user",
                "alice",
                "--auth-password",
                "wonderland",
                "--from",
                "alice@example.org",
                "--to",
                "joe@example.org",
                "--timeout",
                "20",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "swaks {mech}: {text}");
        assert!(text.contains("235 2.7.0"), "swaks {mech}: {text}");
    }
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
}

#[test]
fn checkpassword_and_the_authfailmax_lockout() {
    let a = auth_root();
    a.root.control("authfailmax", "4\n");
    let script = a.root.tmp.path().join("checkpw");
    std::fs::write(
        &script,
        "#!/usr/bin/python3\nimport os, sys\nd = os.read(3, 1024).split(b'\\0')\n\
         sys.exit(0 if d[0] == b'cp' and d[1] == b'secret' else 1)\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    a.root
        .control("checkpassword", &format!("{}\n", script.display()));
    let server = a.root.serve();
    let sub = a.submission;
    // A login not in users/passwords goes to checkpassword.
    assert_eq!(
        login_send(
            &a,
            sub,
            "starttls",
            "cp",
            "secret",
            "cp@example.org",
            "joe@example.org"
        ),
        "LOGIN OK\nSENT []",
        "{}",
        server.log_text()
    );
    // smtplib tries PLAIN, then LOGIN: two failures per login() call. Four failures,
    // then even the right password is refused from this address.
    for _ in 0..2 {
        assert_eq!(
            login_send(&a, sub, "starttls", "cp", "wrong", "a@x", "joe@example.org"),
            "LOGIN 535"
        );
    }
    assert_eq!(
        login_send(
            &a,
            sub,
            "starttls",
            "alice",
            "wonderland",
            "a@x",
            "joe@example.org"
        ),
        "LOGIN 454"
    );
    assert!(server.log_text().contains("auth_locked (authfailmax 4)"));
}

#[test]
fn check_validates_users_passwords() {
    let root = TestRoot::new();
    std::fs::write(root.path("users/passwords"), "joe:plaintext\n").unwrap();
    let out = mta(&root.dir, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("passwords:1"));
}

/// Outbound AUTH to a smarthost: only inside TLS, the exchange checked byte for byte.
#[test]
fn outbound_auth_to_a_smarthost_only_inside_tls() {
    use mta_smtp::blocking::{Policy, Stream, serve_with};
    use mta_smtp::{Credentials, DataSummary, ServerConfig, Verdict};
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Smarthost(Arc<Mutex<Vec<String>>>, Arc<Mutex<bool>>);
    impl Policy for Smarthost {
        fn auth(&mut self, c: &Credentials) -> Verdict {
            let tls = *self.1.lock().unwrap();
            self.0.lock().unwrap().push(format!(
                "auth {:?} {} {} tls={tls}",
                c.mechanism,
                c.login,
                String::from_utf8_lossy(c.password.expose())
            ));
            if c.login == "relay" && c.password.expose() == b"p:ss w0rd" {
                Verdict::Accept
            } else {
                Verdict::Reject(mta_smtp::Reply::new(535, "5.7.8 no").unwrap())
            }
        }
        fn data_end(&mut self, _: &DataSummary) -> Verdict {
            self.0.lock().unwrap().push("message".into());
            Verdict::Accept
        }
    }
    let (_, pem) = test_pki("smarthost");
    for offer_tls in [true, false] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls_config = mta_smtp::tls::server_config_from_pem(pem.as_bytes()).unwrap();
        let policy = Smarthost::default();
        let seen = policy.clone();
        let sink = std::thread::spawn(move || {
            let mut policy = policy;
            listener.set_nonblocking(false).unwrap();
            let (sock, _) = listener.accept().unwrap();
            let mut cfg = ServerConfig::new("smarthost.test");
            cfg.offer_starttls = offer_tls;
            cfg.offer_auth = true;
            cfg.auth_requires_tls = false; // a careless smarthost: AUTH offered in clear too
            cfg.timeout = Duration::from_secs(20);
            let flag = Arc::clone(&policy.1);
            let mut hook = |tcp: std::net::TcpStream| -> std::io::Result<Box<dyn Stream>> {
                let s = mta_smtp::tls::accept(tcp, Arc::clone(&tls_config))?;
                *flag.lock().unwrap() = true;
                Ok(Box::new(s))
            };
            let _ = serve_with(sock, cfg, &mut policy, Some(&mut hook));
        });
        let root = TestRoot::new();
        root.control("smtproutes", &format!(":127.0.0.1:{port}\n"));
        root.control("smtpauth", "127.0.0.1:relay:p:ss w0rd\n");
        let server = root.serve();
        assert_eq!(
            crate::serve::send(&root, "a@example.org", &["x@elsewhere.test"], BODY),
            "OK []"
        );
        if offer_tls {
            assert!(
                server.wait_log("delivery 1: success", 1, 20),
                "{}",
                server.log_text()
            );
            sink.join().unwrap();
            let seen = seen.0.lock().unwrap().clone();
            assert_eq!(seen, ["auth Plain relay p:ss w0rd tls=true", "message"]);
        } else {
            assert!(server.wait_log("deferral", 1, 20), "{}", server.log_text());
            assert!(
                server.log_text().contains("STARTTLS"),
                "{}",
                server.log_text()
            );
            drop(server);
            sink.join().unwrap();
            assert!(
                seen.0.lock().unwrap().is_empty(),
                "credentials sent in clear"
            );
        }
    }
}

/// mta relaying through a second mta's submission port: STARTTLS, then AUTH with the
/// login of control/smtpauth, then the message, delivered by the second server.
#[test]
fn outbound_auth_through_a_second_mta_submission_port() {
    let b = auth_root();
    let joe = b.root.path("../home/joe");
    let b_server = b.root.serve();
    let a = TestRoot::new();
    a.root_relay(b.submission);
    let a_server = a.serve();
    assert_eq!(
        crate::serve::send(&a, "someone@example.net", &["joe@example.org"], BODY),
        "OK []"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 30),
        "A: {}\nB: {}",
        a_server.log_text(),
        b_server.log_text()
    );
    assert!(b_server.log_text().contains("auth ok alice 127.0.0.1"));
    let m = &maildir_messages(&joe.join("Maildir"))[0];
    assert!(m.contains("with ESMTPSA"), "{m}");
}

trait RelayThrough {
    fn root_relay(&self, port: u16);
}

impl RelayThrough for TestRoot {
    /// Routes every remote domain, and example.org, to 127.0.0.1:`port` with alice's
    /// login; this root is no longer local for example.org.
    fn root_relay(&self, port: u16) {
        self.control("locals", "localhost\n");
        self.control("rcpthosts", "example.org\n");
        self.control("smtproutes", &format!(":127.0.0.1:{port}\n"));
        self.control("smtpauth", "127.0.0.1:alice:wonderland\n");
    }
}
