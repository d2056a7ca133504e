//! Bounce composition: byte-exact QSBMF against hand-checked files, decisions, DSNs.

use std::io::Read;
use std::process::{Command, Stdio};

use mail_parser::{MessageParser, MimeHeaders};
use mta_core::Address;
use mta_verp::{
    Bounce, BounceConfig, BounceFormat, BounceMessage, Failure, ParsedFormat, compose_bounce,
    parse_bounce,
};
use proptest::prelude::*;

use crate::read;

const DATE: &str = "29 Nov 2026 04:08:05 -0000";

fn failures() -> Vec<Failure> {
    vec![
        Failure::new(
            "bob@example.net",
            "Sorry, no mailbox here by that name. (#5.1.1)\n",
        ),
        Failure::new(
            "odd user@example.net",
            "Connected to 192.0.2.7 but recipient was rejected.\nRemote host said: 550-first line\n\n550 5.7.1 second line\n",
        ),
    ]
}

fn send(b: Bounce) -> BounceMessage {
    match b {
        Bounce::Send(m) => m,
        other => panic!("unexpected {other:?}"),
    }
}

fn compose(cfg: &BounceConfig, sender: &str) -> BounceMessage {
    let original = read("compose/original.eml");
    send(
        compose_bounce(
            cfg,
            &Address::from(sender),
            &failures(),
            DATE,
            &original[..],
        )
        .unwrap(),
    )
}

#[test]
fn single_bounce_is_byte_exact() {
    let cfg = BounceConfig::new("mx.example.org");
    // A VERP sender: the bounce goes to P@H, with -@[] removed.
    let b = compose(&cfg, "list-owner-@lists.example.org-@[]");
    assert_eq!(
        String::from_utf8_lossy(&b.message),
        String::from_utf8_lossy(&read("compose/single.eml"))
    );
    assert!(!b.double);
    assert!(b.envelope.sender.is_null());
    assert_eq!(
        b.envelope.recipients,
        [Address::from("list-owner-@lists.example.org")]
    );
}

#[test]
fn double_bounce_is_byte_exact() {
    let cfg = BounceConfig::new("mx.example.org");
    let b = compose(&cfg, "");
    assert_eq!(
        String::from_utf8_lossy(&b.message),
        String::from_utf8_lossy(&read("compose/double.eml"))
    );
    assert!(b.double);
    assert!(b.envelope.sender.is_double_bounce());
    assert_eq!(
        b.envelope.recipients,
        [Address::from("postmaster@mx.example.org")]
    );

    let cfg = cfg.doublebounceto("").doublebouncehost("dbh.example");
    let b = compose(&cfg, "");
    assert_eq!(b.envelope.recipients, [Address::from("@dbh.example")]);
    assert!(b.message.windows(17).any(|w| w == b"\nTo: \"\"@dbh.examp"));
}

struct Untouchable;
impl Read for Untouchable {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("a triple bounce must not read the message")
    }
}

#[test]
fn triple_bounce_is_discarded() {
    let cfg = BounceConfig::new("mx.example.org");
    for sender in ["#@[]", "#@[]-@[]"] {
        let r = compose_bounce(&cfg, &Address::from(sender), &failures(), DATE, Untouchable);
        assert_eq!(r.unwrap(), Bounce::Discard);
    }
}

#[test]
fn no_failures_no_bounce() {
    let cfg = BounceConfig::new("mx.example.org");
    let r = compose_bounce(&cfg, &Address::from("a@b"), &[], DATE, Untouchable);
    assert_eq!(r.unwrap(), Bounce::NoFailures);
}

#[test]
fn custom_controls_and_quoting() {
    let cfg = BounceConfig::new("me.example")
        .bouncefrom("bounce daemon")
        .bouncehost("bh.example");
    let b = compose(&cfg, "a b@c.example");
    let text = String::from_utf8(b.message).unwrap();
    assert!(text.contains("\nFrom: \"bounce daemon\"@bh.example\nTo: \"a b\"@c.example\n"));
    assert!(text.contains("Hi. This is the qmail-send program at bh.example.\n"));
    assert!(text.contains("\nReturn-Path: <\"a b\"@c.example>\n"));
}

#[test]
fn truncated_copy_keeps_whole_lines() {
    let cfg = BounceConfig::new("mx.example.org").max_original_bytes(Some(100));
    let b = compose(&cfg, "alice@example.com");
    let text = String::from_utf8(b.message).unwrap();
    let copy = text
        .split("Return-Path: <alice@example.com>\n")
        .nth(1)
        .unwrap();
    assert_eq!(
        copy,
        "Received: (qmail 4242 invoked by uid 89); 29 Nov 2026 04:08:00 -0000\nFrom: list@lists.example.org\n"
    );
    assert_eq!(parse_bounce(text.as_bytes()).unwrap().recipients.len(), 2);
}

#[test]
fn composed_qsbmf_parses_back() {
    let b = compose(&BounceConfig::new("mx.example.org"), "alice@example.com");
    let p = parse_bounce(&b.message).unwrap();
    assert_eq!(p.format, ParsedFormat::Qsbmf);
    assert_eq!(p.reporting_mta.as_deref(), Some("mx.example.org"));
    let got: Vec<_> = p
        .recipients
        .iter()
        .map(|r| {
            (
                r.recipient.to_string_lossy(),
                r.status.map(|s| s.to_string()),
                r.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "bob@example.net".to_owned(),
                Some("5.1.1".to_owned()),
                "Sorry, no mailbox here by that name. (#5.1.1)".to_owned()
            ),
            (
                "odd user@example.net".to_owned(),
                Some("5.7.1".to_owned()),
                "Connected to 192.0.2.7 but recipient was rejected.\nRemote host said: 550-first line\n/550 5.7.1 second line".to_owned()
            ),
        ]
    );
}

fn dsn(limit: Option<usize>) -> Vec<u8> {
    let cfg = BounceConfig::new("mx.example.org")
        .format(BounceFormat::Dsn)
        .max_original_bytes(limit);
    compose(&cfg, "alice@example.com").message
}

#[test]
fn dsn_structure() {
    let raw = dsn(None);
    let m = MessageParser::default().parse(&raw).unwrap();
    let ct = m.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let kinds: Vec<String> = m
        .parts
        .iter()
        .skip(1)
        .filter_map(|p| {
            p.content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
        })
        .collect();
    assert_eq!(
        kinds[..3],
        ["text/plain", "message/delivery-status", "message/rfc822"]
    );
    assert!(
        m.body_text(0)
            .unwrap()
            .starts_with("Hi. This is the qmail-send program at mx.example.org.\n")
    );

    let p = parse_bounce(&raw).unwrap();
    assert_eq!(p.format, ParsedFormat::Dsn);
    assert_eq!(p.reporting_mta.as_deref(), Some("mx.example.org"));
    assert_eq!(p.recipients.len(), 2);
    assert_eq!(p.recipients[0].status.unwrap().to_string(), "5.1.1");
    assert_eq!(
        p.recipients[0].reason,
        "No mailbox. (#5.1.1)".replace("No mailbox.", "Sorry, no mailbox here by that name.")
    );
    assert_eq!(p.recipients[1].status.unwrap().to_string(), "5.7.1");
    assert_eq!(
        p.recipients[1].reason,
        "550-first line 550 5.7.1 second line"
    );
    assert!(p.failures().count() == 2);
}

#[test]
fn dsn_truncated_returns_headers_only() {
    let raw = dsn(Some(100));
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(text.contains("Content-Type: text/rfc822-headers\n\nReturn-Path: <alice@example.com>\nReceived: (qmail 4242"));
    assert!(!text.contains("body line"));
    assert_eq!(parse_bounce(&raw).unwrap().recipients.len(), 2);
}

#[test]
fn dsn_eight_bit_original_is_labelled() {
    let cfg = BounceConfig::new("mx.example.org").format(BounceFormat::Dsn);
    let original = "Subject: caf\u{e9}\n\nna\u{ef}ve body\n";
    let date = mta_core::date::qmail_date822(0);
    let b = send(
        compose_bounce(
            &cfg,
            &Address::from("s@example.com"),
            &failures(),
            &date,
            original.as_bytes(),
        )
        .unwrap(),
    );
    let text = String::from_utf8(b.message.clone()).unwrap();
    assert!(text.starts_with(&format!("Date: {date}\n")));
    let top = &text[..text.find("\n\n").unwrap()];
    assert!(top.contains("\nContent-Transfer-Encoding: 8bit"), "{top}");
    assert!(text.contains("Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n"));
    let m = MessageParser::default().parse(&b.message).unwrap();
    let inner = m.parts.iter().find_map(|p| p.message()).unwrap();
    assert_eq!(inner.subject(), Some("caf\u{e9}"));
    assert_eq!(parse_bounce(&b.message).unwrap().recipients.len(), 2);
}

/// Independent reference: Python's `email` package reads our DSN as a
/// multipart/report with a message/delivery-status part carrying our fields.
#[test]
fn dsn_read_by_python_email() {
    let script = r"
import email, sys
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
parts = m.get_payload()
print(' '.join(p.get_content_type() for p in parts))
ds = parts[1].get_payload()
for block in ds[1:]:
    print(block['Final-Recipient'], '|', block['Action'], '|', block['Status'])
orig = parts[2].get_payload()[0]
print(orig['Subject'])
";
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("python3 not available; skipping");
        return;
    };
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &dsn(None)).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "text/plain message/delivery-status message/rfc822\n\
rfc822; bob@example.net | failed | 5.1.1\n\
rfc822; \"odd user\"@example.net | failed | 5.7.1\n\
hi\n"
    );
}

fn rcpt() -> impl Strategy<Value = String> {
    ("[a-z0-9=+._ -]{1,12}", "[a-z0-9-]{1,10}\\.(org|net)").prop_map(|(l, d)| format!("{l}@{d}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// What we compose, we read back: same recipients, same order, the report text with
    /// qmail's blank-line rule applied, in both formats.
    #[test]
    fn compose_then_parse(
        items in prop::collection::vec((rcpt(), "[ -~\n]{0,80}"), 1..6),
        as_dsn in any::<bool>(),
    ) {
        let fs: Vec<Failure> = items.iter().map(|(r, t)| Failure::new(r.as_str(), t.as_str())).collect();
        let cfg = BounceConfig::new("mx.example.org")
            .format(if as_dsn { BounceFormat::Dsn } else { BounceFormat::Qsbmf });
        let b = send(compose_bounce(&cfg, &Address::from("s@example.com"), &fs, DATE, &b"Subject: x\n\ny\n"[..]).unwrap());
        let p = parse_bounce(&b.message).unwrap();
        let got: Vec<String> = p.recipients.iter().map(|r| r.recipient.to_string_lossy()).collect();
        let want: Vec<String> = items.iter().map(|(r, _)| r.clone()).collect();
        prop_assert_eq!(got, want);
        if !as_dsn {
            for (r, (_, t)) in p.recipients.iter().zip(&items) {
                let mut expect = String::new();
                let mut prev = '\n';
                for c in t.chars() {
                    expect.push(if c == '\n' && prev == '\n' { '/' } else { c });
                    prev = c;
                }
                prop_assert_eq!(&r.reason, expect.trim_end_matches('\n'));
            }
        }
    }
}
