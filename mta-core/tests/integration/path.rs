//! RFC 5321 §4.1.2 paths: the vectors in `tests/data/rfc5321_paths.txt` and property tests.

use mta_core::Domain;
use mta_core::path::{
    ForwardPath, Mailbox, PathErrorKind, PathOptions, ReversePath, parse_forward_path,
    parse_mailbox, parse_reverse_path,
};
use proptest::prelude::*;

use super::data;

#[derive(Debug, PartialEq)]
enum Outcome {
    Null,
    Postmaster,
    Ok(Mailbox, usize),
    Err(&'static str, usize),
}

fn kind_name(k: PathErrorKind) -> &'static str {
    match k {
        PathErrorKind::Syntax(_) => "syntax",
        PathErrorKind::LocalPartTooLong => "local",
        PathErrorKind::DomainTooLong => "domain",
        PathErrorKind::PathTooLong => "path",
        PathErrorKind::Utf8NotAllowed => "utf8",
        _ => "other",
    }
}

fn run(direction: &str, opts: PathOptions, input: &[u8]) -> Outcome {
    if direction == "mail" {
        match parse_reverse_path(input, opts) {
            Ok((ReversePath::Null, n)) => {
                assert_eq!(n, 2);
                Outcome::Null
            }
            Ok((ReversePath::Mailbox(m), n)) => Outcome::Ok(m, n),
            Err(e) => Outcome::Err(kind_name(e.kind), e.offset),
        }
    } else {
        match parse_forward_path(input, opts) {
            Ok((ForwardPath::Postmaster, n)) => {
                assert_eq!(n, 12);
                Outcome::Postmaster
            }
            Ok((ForwardPath::Mailbox(m), n)) => Outcome::Ok(m, n),
            Err(e) => Outcome::Err(kind_name(e.kind), e.offset),
        }
    }
}

#[test]
fn rfc5321_vectors() {
    let cases = data::lines("rfc5321_paths.txt");
    assert!(cases.len() > 60);
    for (line, text) in cases {
        let f: Vec<&str> = text.split('\t').collect();
        let opts = PathOptions::with_smtputf8(f[1] == "utf8");
        let input = data::expand(f[2]);
        let expected = match f[3] {
            "null" => Outcome::Null,
            "postmaster" => Outcome::Postmaster,
            "ok" => Outcome::Ok(
                Mailbox::new(data::expand_str(f[4]), Domain::new(data::expand_str(f[5]))),
                f[6].parse().unwrap(),
            ),
            "err" => {
                let kind = ["syntax", "local", "domain", "path", "utf8"]
                    .into_iter()
                    .find(|k| *k == f[4])
                    .unwrap_or_else(|| panic!("line {line}: bad kind"));
                Outcome::Err(kind, f[5].parse().unwrap())
            }
            other => panic!("line {line}: bad expectation {other}"),
        };
        let got = run(f[0], opts, &input);
        assert_eq!(got, expected, "rfc5321_paths.txt line {line}: {text}");
        // The domain's spelling is kept as written (only the trailing dot goes).
        if let (Outcome::Ok(g, _), Outcome::Ok(e, _)) = (&got, &expected) {
            assert_eq!(g.domain().as_str(), e.domain().as_str(), "line {line}");
        }
    }
}

#[test]
fn mailbox_without_brackets_for_lenient_callers() {
    let (m, n) = parse_mailbox(b"user@example.com SIZE=1", PathOptions::default()).unwrap();
    assert_eq!(
        (m.local_part(), m.domain().as_str(), n),
        ("user", "example.com", 16)
    );
    assert!(parse_mailbox(b"<user@example.com>", PathOptions::default()).is_err());
}

#[test]
fn to_address_is_qmail_internal_form() {
    let (p, _) = parse_forward_path(b"<\"a b\"@Example.COM.>", PathOptions::default()).unwrap();
    assert_eq!(p.to_address().as_bytes(), b"a b@Example.COM");
    let (r, _) = parse_reverse_path(b"<>", PathOptions::default()).unwrap();
    assert!(r.to_address().is_null());
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?){0,3}",
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255)
            .prop_map(|(a, b, c, d)| format!("[{a}.{b}.{c}.{d}]")),
        any::<[u16; 8]>().prop_map(|g| format!("[IPv6:{}]", std::net::Ipv6Addr::from(g))),
    ]
}

proptest! {
    #[test]
    fn display_then_parse_round_trips(local in "[ -~]{0,30}", domain in domain()) {
        let m = Mailbox::new(local, Domain::new(domain));
        let shown = format!("<{m}>");
        let (p, n) = parse_forward_path(shown.as_bytes(), PathOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
        prop_assert_eq!(n, shown.len());
        prop_assert_eq!(p, ForwardPath::Mailbox(m.clone()));
        let (r, _) = parse_reverse_path(shown.as_bytes(), PathOptions::default()).unwrap();
        prop_assert_eq!(r, ReversePath::Mailbox(m));
    }

    #[test]
    fn display_then_parse_round_trips_utf8(local in "[ -~\u{a0}-\u{2fff}]{0,12}", domain in domain()) {
        let m = Mailbox::new(local, Domain::new(domain));
        let shown = ForwardPath::Mailbox(m.clone()).to_string();
        let (p, _) = parse_forward_path(shown.as_bytes(), PathOptions::with_smtputf8(true))
            .map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
        prop_assert_eq!(p, ForwardPath::Mailbox(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..300), utf8 in any::<bool>()) {
        let opts = PathOptions::with_smtputf8(utf8);
        if let Ok((_, n)) = parse_forward_path(&input, opts) { prop_assert!(n <= input.len()); }
        if let Ok((_, n)) = parse_reverse_path(&input, opts) { prop_assert!(n <= input.len()); }
        if let Ok((_, n)) = parse_mailbox(&input, opts) { prop_assert!(n <= input.len()); }
    }

    #[test]
    fn parsed_paths_display_and_parse_back(input in "<(@[a-z0-9.]{1,6}(,@[a-z]{1,4})*:)?([a-zA-Z0-9.!#+=-]{0,8}|\"[ -~]{0,8}\")@([a-z0-9.-]{1,12}|\\[[0-9.:IPv6a-f]{0,20}\\])>?") {
        for utf8 in [false, true] {
            let opts = PathOptions::with_smtputf8(utf8);
            if let Ok((p, n)) = parse_forward_path(input.as_bytes(), opts) {
                let shown = p.to_string();
                let (again, m) = parse_forward_path(shown.as_bytes(), opts)
                    .map_err(|e| TestCaseError::fail(format!("{input:?} -> {shown:?}: {e}")))?;
                prop_assert_eq!(&again, &p);
                prop_assert_eq!(m, shown.len());
                prop_assert!(n <= input.len());
            }
            let _ = parse_reverse_path(input.as_bytes(), opts);
        }
    }
}
