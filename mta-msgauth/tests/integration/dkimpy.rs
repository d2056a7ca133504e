//! Independent verification with dkimpy (Debian package `python3-dkim`): our signatures
//! verify with dkimpy, and dkimpy's signatures verify with ours (through the fake DNS).
//!
//! dkimpy gets our DNS records through its `dnsfunc` argument, never through real DNS.
//! Without dkimpy these tests are skipped with a note, except under CI (`CI` set), where
//! they fail.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use mta_msgauth::{DkimResult, KeyKind, PrivateKeyPem};

use crate::dns::{FakeDns, Zone, localhost};
use crate::{key_dir, message, sign, verifier};

const SCRIPT: &str = r#"
import sys, json, dkim
mode = sys.argv[1]
msg = sys.stdin.buffer.read()
if mode == "verify":
    records = json.loads(sys.argv[2])
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.rstrip("."), "").encode()
    d = dkim.DKIM(msg)
    n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
    def one(i):
        try:
            return "pass" if d.verify(idx=i, dnsfunc=dnsfunc) else "fail"
        except dkim.ValidationError:
            return "fail"
    print(" ".join(one(i) for i in range(n)))
else:
    selector, domain, alg, keyfile = sys.argv[2:6]
    key = open(keyfile, "rb").read().strip()
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                    canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=alg.encode(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    sys.stdout.buffer.write(sig + msg)
"#;

/// A Python interpreter that has dkimpy, or `None` (and a note) when there is none.
fn python() -> Option<&'static str> {
    for py in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(py)
            .args(["-c", "import dkim, nacl"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "dkimpy is missing: apt-get install python3-dkim"
    );
    eprintln!("skipped: dkimpy is missing (apt-get install python3-dkim)");
    None
}

fn run(py: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(py)
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn dkimpy_verify(py: &str, records: &[(String, String, PrivateKeyPem)], msg: &[u8]) -> String {
    let map: Vec<String> = records
        .iter()
        .map(|(n, t, _)| format!("\"{n}\": \"{t}\""))
        .collect();
    let json = format!("{{{}}}", map.join(", "));
    String::from_utf8(run(py, &["verify", &json], msg))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn our_signatures_verify_with_dkimpy() {
    let Some(py) = python() else { return };
    let (dir, records) = key_dir(&[
        ("example.com", "ed", KeyKind::Ed25519),
        ("example.com", "rsa", KeyKind::default()),
    ]);
    let signed = sign(dir.path(), &message());
    assert_eq!(dkimpy_verify(py, &records, &signed), "pass pass");
    // LF line ends: the same message as a Unix mailbox would hold it
    let lf = String::from_utf8(signed.clone())
        .unwrap()
        .replace("\r\n", "\n");
    assert_eq!(dkimpy_verify(py, &records, lf.as_bytes()), "pass pass");
    // one byte of the body changed
    let mut tampered = signed;
    let at = tampered.len() - 4;
    tampered[at] ^= 0x20;
    assert_eq!(dkimpy_verify(py, &records, &tampered), "fail fail");
}

/// The key in the form dkimpy signs with: PKCS#1 PEM for RSA, the base64 seed for Ed25519.
fn dkimpy_key(dir: &Path, key: &PrivateKeyPem) -> std::path::PathBuf {
    let path = dir.join("dkimpy.key");
    let text = if key.kind() == KeyKind::Ed25519 {
        {
            let b64: String = key
                .pem()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            // RFC 8410 PKCS#8: ... OCTET STRING { OCTET STRING (32) seed } ...
            let at = der.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
            base64::engine::general_purpose::STANDARD.encode(&der[at..at + 32])
        }
    } else {
        {
            let out = Command::new("openssl")
                .args(["pkey", "-traditional"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    c.stdin.take().unwrap().write_all(key.pem().as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        }
    };
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn dkimpy_signatures_verify_with_ours() {
    let Some(py) = python() else { return };
    let (dir, records) = key_dir(&[
        ("example.com", "ed", KeyKind::Ed25519),
        ("example.com", "rsa", KeyKind::default()),
    ]);
    let mut zone = Zone::new();
    for (name, text, _) in &records {
        zone.txt(name, text);
    }
    let dns = FakeDns::start(zone);
    let v = verifier(&dns);
    for (i, (alg, selector)) in [("ed25519-sha256", "ed"), ("rsa-sha256", "rsa")]
        .into_iter()
        .enumerate()
    {
        let keyfile = dkimpy_key(dir.path(), &records[i].2);
        let signed = run(
            py,
            &[
                "sign",
                selector,
                "example.com",
                alg,
                keyfile.to_str().unwrap(),
            ],
            &message(),
        );
        let text = String::from_utf8(signed).unwrap();
        assert!(text.starts_with("DKIM-Signature: v=1; a="), "{text}");

        let r = v.check(localhost(), "client.example", "", text.as_bytes());
        assert_eq!(r.dkim().len(), 1);
        assert_eq!(
            r.dkim()[0].result(),
            DkimResult::Pass,
            "{alg}: {:?}",
            r.dkim()
        );
        assert_eq!(r.dkim()[0].selector(), selector);

        // relaxed/relaxed survives refolding and whitespace changes in transit
        let mangled = text
            .replace(
                "Subject: DKIM test message",
                "subject:   DKIM\r\n\t test   message ",
            )
            .replace("To: Bob <bob@example.net>", "To:Bob\r\n  <bob@example.net>")
            .replace("Hello Bob,\r\n", "Hello   Bob,  \r\n")
            .replace("-- \r\nAlice\r\n", "--\r\nAlice\r\n\r\n\r\n");
        assert_ne!(mangled, text);
        let r = v.check(localhost(), "client.example", "", mangled.as_bytes());
        assert_eq!(
            r.dkim()[0].result(),
            DkimResult::Pass,
            "{alg} mangled: {:?}",
            r.dkim()
        );

        // but not a changed word
        let changed = text.replace("Hello Bob", "Hello Rob");
        let r = v.check(localhost(), "client.example", "", changed.as_bytes());
        assert_eq!(r.dkim()[0].result(), DkimResult::Fail, "{alg} changed");
    }
}
