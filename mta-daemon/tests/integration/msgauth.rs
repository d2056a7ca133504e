//! Message authentication through `mta serve` (issue 19): DKIM signatures made at remote
//! delivery and verified by dkimpy, never on mail from outside that a user forwards; SPF,
//! DKIM and DMARC results for mail from outside in an Authentication-Results header,
//! against a DNS responder on loopback; `spfreject` and `dmarcreject`; a DNS server that
//! never answers.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RData;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::TXT;

use crate::fakes::{Dns, Mode, Sink, Zone};
use crate::serve::{add_user, send, write_qmail};
use crate::support::*;

/// Debian's python3 (where python3-dkim lives), else the one on PATH.
fn system_python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Verifies every DKIM-Signature of `message` with dkimpy, answering its DNS queries from
/// `records` (name → TXT). Prints one `ok`/`bad` line per signature.
const DKIMPY_VERIFY: &str = r#"
import sys, dkim
records = dict(line.split(" ", 1) for line in sys.argv[2].splitlines())
def dnsfunc(name, timeout=5):
    return records.get(name.decode().rstrip("."), "").encode()
msg = open(sys.argv[1], "rb").read()
d = dkim.DKIM(msg)
n = msg.count(b"DKIM-Signature:")
for i in range(n):
    try:
        print("ok" if d.verify(idx=i, dnsfunc=dnsfunc) else "bad")
    except dkim.DKIMException as e:
        print("bad")
"#;

fn dkimpy(message: &[u8], records: &str) -> Vec<String> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), message).unwrap();
    let out = Command::new(system_python())
        .arg("-c")
        .arg(DKIMPY_VERIFY)
        .arg(tmp.path())
        .arg(records)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn has_dkimpy() -> bool {
    Command::new(system_python())
        .args(["-c", "import dkim"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `mta dkim keygen`'s TXT record as `NAME VALUE` (the quoted strings joined).
fn keygen(root: &TestRoot, selector: &str, args: &[&str]) -> String {
    let mut all = vec!["dkim", "keygen", "example.org", selector];
    all.extend_from_slice(args);
    let out = mta(&root.dir, &all);
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let name = line
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('.');
    let value: String = line.split('"').skip(1).step_by(2).collect();
    format!("{name} {value}")
}

fn wait_txns(sink: &Sink, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.txns().len() < n {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    true
}

/// Signed with every selector (RSA and Ed25519 side by side) when a relay client sends
/// it; dkimpy verifies both; a changed body byte fails both. Mail from outside that a
/// local user forwards out is not signed.
#[test]
fn remote_delivery_signs_what_this_host_vouches_for() {
    if !has_dkimpy() {
        assert!(std::env::var_os("CI").is_none(), "CI installs python3-dkim");
        eprintln!("skipped: python3-dkim is not installed");
        return;
    }
    let root = TestRoot::new();
    let records = [
        keygen(&root, "rsa1", &[]),
        keygen(&root, "ed1", &["--ed25519"]),
    ]
    .join("\n");
    assert!(mta(&root.dir, &["check"]).status.success());
    let sink = Sink::start(TcpListener::bind("127.0.0.1:0").unwrap(), Mode::Normal);
    root.control(
        "smtproutes",
        &format!("remote.test:127.0.0.1:{}\n", sink.addr.port()),
    );
    let joe = add_user(&root, "joe");
    write_qmail(&joe, ".qmail", "&x@remote.test\n");
    let server = root.serve();
    let body = "From: Alice <alice@example.org>\r\nTo: x@remote.test\r\nSubject: signed\r\n\
                Date: Wed, 02 Dec 2026 07:00:00 +0000\r\n\r\nhello\r\n.leading dot\r\n";
    assert_eq!(
        send(&root, "alice@example.org", &["x@remote.test"], body),
        "OK []"
    );
    assert!(wait_txns(&sink, 1), "{}", server.log_text());
    let signed = sink.txns()[0].data.clone();
    let text = String::from_utf8_lossy(&signed).into_owned();
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(
        text.contains("a=rsa-sha256") && text.contains("a=ed25519-sha256"),
        "{text}"
    );
    assert_eq!(dkimpy(&signed, &records), ["ok", "ok"]);
    let tampered = text.replacen("hello", "hellO", 1).into_bytes();
    assert_eq!(dkimpy(&tampered, &records), ["bad", "bad"]);

    // From outside (not a relay client): joe's forward leaves unsigned.
    root.control("relayclients", "");
    assert!(
        server.wait_log("status: smtpd reloaded configuration", 1, 10),
        "{}",
        server.log_text()
    );
    assert_eq!(
        send(&root, "alice@example.org", &["joe@example.org"], body),
        "OK []"
    );
    assert!(wait_txns(&sink, 2), "{}", server.log_text());
    let forwarded = String::from_utf8_lossy(&sink.txns()[1].data).into_owned();
    assert!(
        forwarded.contains("Delivered-To: joe@example.org"),
        "{forwarded}"
    );
    assert!(!forwarded.contains("DKIM-Signature:"), "{forwarded}");
}

fn txt(zone: &mut Zone, name: &str, text: &str) {
    zone.push(
        name,
        RecordType::TXT,
        RData::TXT(TXT::new(vec![text.to_owned()])),
    );
}

/// The Authentication-Results header of the one message in `maildir`, unfolded.
fn auth_results(maildir: &std::path::Path, n: usize) -> Vec<String> {
    assert!(wait_maildir(maildir, n, 20));
    maildir_messages(maildir)
        .iter()
        .map(|m| {
            let m = m.replace("\\n\\t", " ").replace("\\n ", " ");
            m.split("\\n")
                .filter(|l| l.starts_with("Authentication-Results:"))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

/// SPF pass and fail, DMARC fail under p=reject, a forged Authentication-Results header
/// naming this host removed; then `spfreject` and `dmarcreject` refuse.
#[test]
fn mail_from_outside_is_checked_and_refused_when_asked() {
    let mut zone = Zone::default();
    txt(&mut zone, "good.test", "v=spf1 ip4:127.0.0.1 -all");
    txt(&mut zone, "bad.test", "v=spf1 -all");
    txt(&mut zone, "_dmarc.bad.test", "v=DMARC1; p=reject");
    txt(&mut zone, "soft.test", "v=spf1 ~all");
    let dns = Dns::start(zone);
    let root = TestRoot::new();
    root.control("dnsservers", &format!("{}\n", dns.addr));
    root.control("relayclients", "");
    let joe = add_user(&root, "joe");
    write_qmail(&joe, ".qmail", "./Maildir/\n");
    let server = root.serve();
    let msg = |from: &str| {
        format!(
            "From: <{from}>\r\nAuthentication-Results: example.org; spf=pass smtp.mailfrom=forged\r\n\
             Authentication-Results: other.example; spf=none\r\nSubject: t\r\n\r\nbody\r\n"
        )
    };
    assert_eq!(
        send(
            &root,
            "a@good.test",
            &["joe@example.org"],
            &msg("a@good.test")
        ),
        "OK []"
    );
    let ar = auth_results(&joe.join("Maildir"), 1);
    assert!(
        ar[0].contains("Authentication-Results: example.org;"),
        "{ar:?}"
    );
    assert!(
        ar[0].contains("spf=pass smtp.mailfrom=a@good.test"),
        "{ar:?}"
    );
    assert!(ar[0].contains("dkim=none"), "{ar:?}");
    assert!(
        !ar[0].contains("forged"),
        "the forged header naming us is gone: {ar:?}"
    );
    assert!(
        ar[0].contains("other.example; spf=none"),
        "another host's stays: {ar:?}"
    );
    assert_eq!(
        send(
            &root,
            "a@bad.test",
            &["joe@example.org"],
            &msg("a@bad.test")
        ),
        "OK []"
    );
    assert_eq!(
        send(
            &root,
            "a@soft.test",
            &["joe@example.org"],
            &msg("a@soft.test")
        ),
        "OK []"
    );
    let all = auth_results(&joe.join("Maildir"), 3).join("\n");
    assert!(all.contains("spf=fail smtp.mailfrom=a@bad.test"), "{all}");
    assert!(all.contains("dmarc=fail"), "{all}");
    assert!(
        all.contains("spf=softfail smtp.mailfrom=a@soft.test"),
        "{all}"
    );

    root.control("spfreject", "1\n");
    assert!(server.wait_log("status: smtpd reloaded configuration", 1, 10));
    let refused = send(
        &root,
        "a@bad.test",
        &["joe@example.org"],
        &msg("a@bad.test"),
    );
    assert!(refused.starts_with("ERR 550 5.7.23"), "{refused}");
    root.control("spfreject", "0\n");
    root.control("dmarcreject", "1\n");
    assert!(server.wait_log("status: smtpd reloaded configuration", 2, 10));
    let refused = send(
        &root,
        "a@bad.test",
        &["joe@example.org"],
        &msg("a@bad.test"),
    );
    assert!(refused.starts_with("ERR 550 5.7.1"), "{refused}");
    assert_eq!(
        send(
            &root,
            "a@good.test",
            &["joe@example.org"],
            &msg("a@good.test")
        ),
        "OK []"
    );
    assert!(wait_maildir(&joe.join("Maildir"), 4, 20));
    let log = server.log_text();
    assert!(log.contains("smtp: refused 127.0.0.1: spf_fail"), "{log}");
    assert!(
        log.contains("smtp: refused 127.0.0.1: dmarc_reject"),
        "{log}"
    );
}

/// A DNS server that never answers: `temperror`, and the message is accepted within the
/// SMTP timeouts (the checks' own bounds).
#[test]
fn a_silent_dns_server_gives_temperror_not_a_refusal() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let root = TestRoot::new();
    root.control("dnsservers", &format!("{}\n", silent.local_addr().unwrap()));
    root.control("relayclients", "");
    root.control("spfreject", "1\n");
    root.control("dmarcreject", "1\n");
    let joe = add_user(&root, "joe");
    write_qmail(&joe, ".qmail", "./Maildir/\n");
    let _server = root.serve();
    let t0 = Instant::now();
    let body = "From: <a@slow.test>\r\nSubject: t\r\n\r\nbody\r\n";
    assert_eq!(
        send(&root, "a@slow.test", &["joe@example.org"], body),
        "OK []"
    );
    assert!(t0.elapsed() < Duration::from_mins(1), "{:?}", t0.elapsed());
    let ar = auth_results(&joe.join("Maildir"), 1);
    assert!(ar[0].contains("spf=temperror"), "{ar:?}");
    assert!(ar[0].contains("dmarc=temperror"), "{ar:?}");
    drop(silent);
}
