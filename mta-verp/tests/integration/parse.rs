//! Bounce parsing against hand-written DSNs and QSBMF files, and malformed input.

use std::fs;

use mta_core::Address;
use mta_verp::{DsnAction, ParseBounceError, ParsedFormat, envelope_recipient, parse_bounce};
use proptest::prelude::*;

use crate::{data, read};

/// Checks `NAME.eml` against `NAME.expect`: a `FORMAT<TAB>REPORTING-MTA` line, then one
/// `RECIPIENT<TAB>ACTION<TAB>STATUS<TAB>REASON-SUBSTRING<TAB>REMOTE-MTA-SUBSTRING` line per
/// recipient, optionally followed by `<TAB>ORIGINAL-RECIPIENT` (`-` for none; lines
/// starting with `#` are comments).
fn check(rel: &str) {
    let msg = read(&format!("{rel}.eml"));
    let expect = String::from_utf8(read(&format!("{rel}.expect"))).unwrap();
    let mut lines = expect.lines().filter(|l| !l.starts_with('#'));
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let p = parse_bounce(&msg).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let format = match head[0] {
        "DSN" => ParsedFormat::Dsn,
        "QSBMF" => ParsedFormat::Qsbmf,
        "X-FAILED-RECIPIENTS" => ParsedFormat::XFailedRecipients,
        other => panic!("bad format {other}"),
    };
    assert_eq!(p.format, format, "{rel}");
    let mta = (head[1] != "-").then(|| head[1].to_owned());
    assert_eq!(p.reporting_mta, mta, "{rel}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    assert_eq!(p.recipients.len(), rows.len(), "{rel}: {:#?}", p.recipients);
    for (r, row) in p.recipients.iter().zip(rows) {
        assert_eq!(r.recipient.to_string_lossy(), row[0], "{rel}");
        let action = match row[1] {
            "failed" => DsnAction::Failed,
            "delayed" => DsnAction::Delayed,
            other => panic!("bad action {other}"),
        };
        assert_eq!(r.action, action, "{rel} {}", row[0]);
        assert_eq!(r.is_failure(), action == DsnAction::Failed);
        let status = r.status.map_or_else(|| "-".to_owned(), |s| s.to_string());
        assert_eq!(status, row[2], "{rel} {}", row[0]);
        let flat = r.reason.replace('\n', " ");
        assert!(
            flat.contains(row[3]),
            "{rel} {}: {flat:?} lacks {:?}",
            row[0],
            row[3]
        );
        match row[4] {
            "-" => assert_eq!(r.remote_mta, None, "{rel}"),
            want => assert!(
                r.remote_mta.as_deref().unwrap_or("").contains(want),
                "{rel}"
            ),
        }
        if let Some(orig) = row.get(5) {
            let got = r.original_recipient.as_ref().map(Address::to_string_lossy);
            assert_eq!(got.as_deref(), Some(*orig).filter(|o| *o != "-"), "{rel}");
            let subscriber = if *orig == "-" { row[0] } else { orig };
            assert_eq!(r.subscriber().to_string_lossy(), subscriber, "{rel}");
        }
    }
}

#[test]
fn postfix() {
    check("dsn/postfix");
}

#[test]
fn exim() {
    check("dsn/exim");
}

#[test]
fn gmail() {
    check("dsn/gmail");
}

#[test]
fn exchange_crlf() {
    check("dsn/exchange");
}

#[test]
fn exchange_base64_status_part() {
    check("dsn/exchange-base64");
    let p = parse_bounce(&read("dsn/exchange-base64.eml")).unwrap();
    assert_eq!(p.failures().count(), 1);
}

#[test]
fn qmail_qsbmf() {
    check("qsbmf/qmail");
}

#[test]
fn qmail_qsbmf_with_crlf() {
    let lf = read("qsbmf/qmail.eml");
    let crlf = String::from_utf8(lf.clone()).unwrap().replace('\n', "\r\n");
    assert_eq!(parse_bounce(crlf.as_bytes()), parse_bounce(&lf));
}

#[test]
fn envelope_recipient_from_delivered_to() {
    let got = |rel: &str| envelope_recipient(&read(rel)).map(|a| a.to_string_lossy());
    assert_eq!(
        got("qsbmf/qmail.eml").as_deref(),
        Some("list-owner-alice=a.example@lists.example.org")
    );
    assert_eq!(
        got("dsn/postfix.eml").as_deref(),
        Some("list-owner-bob=example.net@lists.example.org")
    );
    // Exim's Envelope-to when there is no Delivered-To.
    assert_eq!(
        got("dsn/exim.eml").as_deref(),
        Some("list-owner-dave=example.com@lists.example.org")
    );
    // (exim.eml's returned message has a Delivered-To line in its body: not taken.)
    // None of the three fields in the header: nothing, even though bodies mention them.
    assert_eq!(got("dsn/exchange.eml"), None);
    assert_eq!(
        envelope_recipient(
            b"Subject: x

Delivered-To: a@b
"
        ),
        None
    );
}

#[test]
fn qmail_double_bounce() {
    check("qsbmf/double");
}

#[test]
fn old_exim_text_bounce() {
    check("other/exim-text");
}

#[test]
fn every_data_file_has_an_expectation() {
    for dir in ["dsn", "qsbmf", "other"] {
        for e in fs::read_dir(data(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "eml") {
                assert!(p.with_extension("expect").exists(), "{}", p.display());
            }
        }
    }
}

#[test]
fn malformed_is_not_a_bounce() {
    let mut n = 0;
    for e in fs::read_dir(data("malformed")).unwrap() {
        let p = e.unwrap().path();
        let bytes = fs::read(&p).unwrap();
        assert_eq!(
            parse_bounce(&bytes),
            Err(ParseBounceError::NotABounce),
            "{}",
            p.display()
        );
        n += 1;
    }
    assert!(n >= 10);
    assert_eq!(
        ParseBounceError::NotABounce.to_string(),
        "not a bounce: no delivery-status part and no qmail failure paragraph"
    );
}

/// Every prefix of every sample (a bounce cut short in transit) parses or is refused,
/// without panicking.
#[test]
fn truncated_samples_never_panic() {
    for dir in ["dsn", "qsbmf", "other", "compose"] {
        for e in fs::read_dir(data(dir)).unwrap() {
            let bytes = fs::read(e.unwrap().path()).unwrap();
            for cut in (0..bytes.len()).step_by(13) {
                let _ = parse_bounce(&bytes[..cut]);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_bounce(&bytes);
    }

    /// Random bytes spliced into a real DSN never panic either.
    #[test]
    fn spliced_dsn_never_panics(at in any::<prop::sample::Index>(), junk in prop::collection::vec(any::<u8>(), 0..32)) {
        let mut msg = read("dsn/postfix.eml");
        let i = at.index(msg.len());
        msg.splice(i..i, junk);
        let _ = parse_bounce(&msg);
    }
}
