//! Header iteration (tests/data/headers.txt over tests/data/messages/), checked against
//! mail-parser where the message is well formed, and qmail's trace lines.

use mta_core::Address;
use mta_core::header::{
    self, QueueInvoker, ReceivedSmtp, delivered_to_line, received_queue, received_smtp,
    return_path_line,
};

use super::data;

#[derive(Default)]
struct Expect {
    file: String,
    line: usize,
    fields: Vec<(String, usize, Option<String>)>,
    count: Option<usize>,
    body: usize,
    hops: usize,
    mail_parser: bool,
}

fn expectations() -> Vec<Expect> {
    let mut out: Vec<Expect> = Vec::new();
    for (line, text) in data::lines("headers.txt") {
        let (key, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        if key == "file" {
            out.push(Expect {
                file: rest.to_owned(),
                line,
                ..Expect::default()
            });
            continue;
        }
        let e = out.last_mut().unwrap();
        match key {
            "field" => {
                let (name, off) = rest.rsplit_once(' ').unwrap();
                e.fields.push((name.to_owned(), off.parse().unwrap(), None));
            }
            "value" => e.fields.last_mut().unwrap().2 = Some(rest.to_owned()),
            "count" => e.count = Some(rest.parse().unwrap()),
            "body" => e.body = rest.parse().unwrap(),
            "hops" => e.hops = rest.parse().unwrap(),
            "mail-parser" => e.mail_parser = rest == "yes",
            other => panic!("headers.txt line {line}: unknown key {other}"),
        }
    }
    out
}

#[test]
fn header_vectors() {
    let cases = expectations();
    assert!(cases.len() >= 9);
    for e in cases {
        let msg = std::fs::read(data::path(&format!("messages/{}", e.file))).unwrap();
        let ctx = format!("headers.txt line {} ({})", e.line, e.file);
        let mut it = header::fields(&msg);
        let got: Vec<_> = it.by_ref().collect();
        assert_eq!(got.len(), e.count.unwrap_or(e.fields.len()), "{ctx}");
        for (f, (name, off, value)) in got.iter().zip(&e.fields) {
            assert_eq!(f.name(), name.as_bytes(), "{ctx}");
            assert!(f.is(&name.to_ascii_uppercase()), "{ctx}");
            assert_eq!(f.offset(), *off, "{ctx}: {name}");
            assert_eq!(
                &msg[f.offset()..f.offset() + f.raw().len()],
                f.raw(),
                "{ctx}"
            );
            if let Some(v) = value {
                let unfolded = f.unfolded_value();
                assert_eq!(
                    String::from_utf8_lossy(&unfolded).trim(),
                    v,
                    "{ctx}: {name}"
                );
            }
        }
        assert_eq!(it.body_offset(), e.body, "{ctx}: body");
        assert_eq!(
            header::fields(&msg).body_offset(),
            e.body,
            "{ctx}: body without iterating"
        );
        assert_eq!(header::hop_count(&msg), e.hops, "{ctx}: hops");
        if e.mail_parser {
            let m = mail_parser::MessageParser::default().parse(&msg).unwrap();
            let theirs: Vec<(String, usize)> = m
                .headers()
                .iter()
                .map(|h| (h.name().to_owned(), h.offset_field as usize))
                .collect();
            let ours: Vec<(String, usize)> = got
                .iter()
                .map(|f| (String::from_utf8_lossy(f.name()).into_owned(), f.offset()))
                .collect();
            assert_eq!(ours, theirs, "{ctx}: mail-parser disagrees");
            assert_eq!(
                m.root_part().raw_body_offset() as usize,
                e.body,
                "{ctx}: mail-parser body"
            );
        }
    }
}

#[test]
fn fields_cover_the_header_exactly() {
    // The raw fields, concatenated, are the header up to the blank line.
    let msg = std::fs::read(data::path("messages/crlf.eml")).unwrap();
    let mut it = header::fields(&msg);
    let joined: Vec<u8> = it.by_ref().flat_map(|f| f.raw().to_vec()).collect();
    let body = it.body_offset();
    assert_eq!(&msg[..joined.len()], &joined[..]);
    assert_eq!(&msg[joined.len()..body], b"\r\n");
}

#[test]
fn qmail_trace_lines() {
    assert_eq!(return_path_line(&Address::null()), b"Return-Path: <>\n");
    assert_eq!(
        return_path_line(&Address::from("joe@example.com")),
        b"Return-Path: <joe@example.com>\n"
    );
    assert_eq!(
        return_path_line(&Address::from_bytes(b"a b\n@x".to_vec())),
        b"Return-Path: <\"a b\\_\"@x>\n"
    );
    assert_eq!(
        return_path_line(&Address::double_bounce()),
        b"Return-Path: <#@[]>\n"
    );
    assert_eq!(
        delivered_to_line(&Address::from("mary@example.net")),
        b"Delivered-To: mary@example.net\n"
    );
    assert_eq!(
        delivered_to_line(&Address::from_bytes(b"a\nb@x".to_vec())),
        b"Delivered-To: a_b@x\n"
    );
    let date = mta_core::date::qmail_date822(1_795_925_285);
    let mut r = ReceivedSmtp::new("mx.example.com", "192.0.2.1", "mail.example.net", &date);
    r.helo = Some("evil\r\nX-Injected: yes");
    r.remote_info = Some("joe");
    assert_eq!(
        String::from_utf8(received_smtp(&r)).unwrap(),
        "Received: from mx.example.com (HELO evil??X-Injected:?yes) (joe@192.0.2.1)\n  by mail.example.net with SMTP; 29 Nov 2026 04:08:05 -0000\n"
    );
    let mut same_helo = r;
    same_helo.helo = Some("MX.example.com");
    same_helo.remote_info = None;
    assert_eq!(
        String::from_utf8(received_smtp(&same_helo)).unwrap(),
        "Received: from mx.example.com (192.0.2.1)\n  by mail.example.net with SMTP; 29 Nov 2026 04:08:05 -0000\n"
    );
    let mut v6 = r;
    v6.remote_host = "unknown";
    v6.remote_ip = "[2001:db8::1]";
    v6.helo = None;
    assert!(received_smtp(&v6).starts_with(b"Received: from unknown (joe@[2001:db8::1])\n"));
    assert_eq!(
        received_queue(4711, QueueInvoker::Uid(1000), 0),
        b"Received: (qmail 4711 invoked by uid 1000); 1 Jan 1970 00:00:00 -0000\n"
    );
    assert_eq!(
        received_queue(1, QueueInvoker::Network, 0),
        b"Received: (qmail 1 invoked from network); 1 Jan 1970 00:00:00 -0000\n"
    );
    // A message we built parses back through our own iterator, and counts as hops.
    let mut msg = received_smtp(&r);
    msg.extend(delivered_to_line(&Address::from("mary@example.net")));
    msg.extend(return_path_line(&Address::from("joe@example.com")));
    msg.extend_from_slice(b"\nbody\n");
    assert_eq!(header::fields(&msg).count(), 3);
    assert_eq!(header::hop_count(&msg), 2);
}

mod props {
    use mta_core::header;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_and_stays_in_bounds(msg in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut it = header::fields(&msg);
            let mut last_end = 0;
            for f in it.by_ref() {
                prop_assert_eq!(f.offset(), last_end);
                last_end = f.offset() + f.raw().len();
            }
            let body = it.body_offset();
            prop_assert!(body >= last_end && body <= msg.len());
            let _ = header::hop_count(&msg);
        }

        #[test]
        fn structured_messages(fields in proptest::collection::vec(("[A-Za-z-]{1,10}", "[ -~]{0,20}", proptest::bool::ANY), 0..10), crlf in proptest::bool::ANY, body in "[ -~\n]{0,30}") {
            let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut msg = Vec::new();
            for (name, value, fold) in &fields {
                msg.extend_from_slice(name.as_bytes());
                msg.extend_from_slice(b": ");
                msg.extend_from_slice(value.as_bytes());
                if *fold {
                    msg.extend_from_slice(nl);
                    msg.extend_from_slice(b"\tmore");
                }
                msg.extend_from_slice(nl);
            }
            let header_len = msg.len();
            msg.extend_from_slice(nl);
            msg.extend_from_slice(body.as_bytes());
            let mut it = header::fields(&msg);
            let got: Vec<_> = it.by_ref().collect();
            prop_assert_eq!(got.len(), fields.len());
            for (f, (name, value, fold)) in got.iter().zip(&fields) {
                prop_assert!(f.is(name));
                let mut want = format!(" {value}");
                if *fold { want.push_str("\tmore"); }
                prop_assert_eq!(f.unfolded_value(), want.into_bytes());
            }
            prop_assert_eq!(it.body_offset(), header_len + nl.len());
        }
    }
}
