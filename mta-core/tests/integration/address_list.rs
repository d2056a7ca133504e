//! RFC 5322 header addresses: the cases in `tests/data/rfc5322_addresses.txt` (RFC 5322
//! Appendix A and more) and property tests.

use mta_core::address_list::{
    AddressErrorKind, AddressItem, AddressList, Group, HeaderMailbox, ParseOptions, QmailRewrite,
    parse_address_list, parse_header_mailbox, parse_mailbox_list,
};
use proptest::prelude::*;

use super::data;

struct Case {
    line: usize,
    name: String,
    parse: String,
    input: Vec<u8>,
    render: Option<String>,
    addresses: Option<String>,
    error: Option<String>,
    mail_parser_differs: bool,
}

fn cases() -> Vec<Case> {
    let text = data::read("rfc5322_addresses.txt");
    let mut cases = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, l)) = lines.next() {
        let Some(name) = l.strip_prefix("=== ") else {
            continue;
        };
        let mut c = Case {
            line: i + 1,
            name: name.to_owned(),
            parse: String::new(),
            input: Vec::new(),
            render: None,
            addresses: None,
            error: None,
            mail_parser_differs: false,
        };
        let mut input: Option<Vec<&str>> = None;
        while let Some((_, l)) = lines.peek() {
            if l.starts_with("=== ") {
                break;
            }
            let (_, l) = lines.next().unwrap();
            if let Some(v) = l.strip_prefix("parse: ") {
                v.clone_into(&mut c.parse);
            } else if l == "input:" {
                input = Some(Vec::new());
            } else if let Some(v) = l.strip_prefix("render: ") {
                c.render = Some(v.to_owned());
                input = None;
            } else if let Some(v) = l.strip_prefix("addresses:") {
                c.addresses = Some(v.trim().to_owned());
                input = None;
            } else if l.starts_with("mail-parser: differs") {
                c.mail_parser_differs = true;
                input = None;
            } else if let Some(v) = l.strip_prefix("error: ") {
                c.error = Some(v.to_owned());
                input = None;
            } else if let Some(lines) = &mut input {
                lines.push(l);
            }
            if let Some(lines) = &input {
                c.input = data::expand(&lines.join("\r\n"));
            }
        }
        cases.push(c);
    }
    cases
}

fn qmail() -> ParseOptions {
    ParseOptions::qmail_inject(
        QmailRewrite::new("host", "example.org", "plus.example")
            .with_percent_hack(vec!["relay.example".into()]),
    )
}

fn kind_name(k: AddressErrorKind) -> &'static str {
    match k {
        AddressErrorKind::Syntax(_) => "syntax",
        AddressErrorKind::Empty => "empty",
        AddressErrorKind::UnterminatedQuotedString => "unterminated-quoted-string",
        AddressErrorKind::UnterminatedComment => "unterminated-comment",
        AddressErrorKind::UnterminatedDomainLiteral => "unterminated-domain-literal",
        AddressErrorKind::UnbalancedParen => "unbalanced-paren",
        AddressErrorKind::UnbalancedBracket => "unbalanced-bracket",
        AddressErrorKind::InvalidCharacter => "invalid-character",
        AddressErrorKind::BareLineBreak => "bare-line-break",
        AddressErrorKind::InvalidUtf8 => "invalid-utf8",
        AddressErrorKind::HeaderName => "header-name",
        _ => "other",
    }
}

fn parse_as(
    kind: &str,
    input: &[u8],
) -> Result<AddressList, mta_core::address_list::ParseAddressError> {
    let strict = ParseOptions::strict();
    match kind {
        "address-list" => parse_address_list(input, &strict),
        "mailbox-list" => parse_mailbox_list(input, &strict)
            .map(|v| AddressList::new(v.into_iter().map(AddressItem::Mailbox).collect())),
        "mailbox" => parse_header_mailbox(input, &strict)
            .map(|m| AddressList::new(vec![AddressItem::Mailbox(m)])),
        "qmail" => parse_address_list(input, &qmail()),
        other => panic!("unknown parse kind {other}"),
    }
}

#[test]
fn rfc5322_cases() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for c in cases {
        let ctx = format!("rfc5322_addresses.txt line {} ({})", c.line, c.name);
        let got = parse_as(&c.parse, &c.input);
        if let Some(e) = &c.error {
            let (kind, offset) = e.split_once(' ').unwrap();
            let err = got.expect_err(&ctx);
            assert_eq!(
                (kind_name(err.kind), err.offset),
                (kind, offset.parse().unwrap()),
                "{ctx}: {err}"
            );
            continue;
        }
        let list = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let shown = list.to_string();
        assert_eq!(Some(&shown), c.render.as_ref(), "{ctx}");
        let addrs: Vec<String> = list
            .mailboxes()
            .map(|m| {
                let a = m.to_address();
                if a.is_null() {
                    "<>".into()
                } else {
                    a.to_string_lossy()
                }
            })
            .collect();
        assert_eq!(Some(addrs.join(" ")), c.addresses, "{ctx}");
        if !shown.contains("<>") {
            let again = parse_as(
                if c.parse == "qmail" {
                    "address-list"
                } else {
                    &c.parse
                },
                shown.as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{ctx}: reparse of {shown:?}: {e}"));
            assert_eq!(again, list, "{ctx}: reparse");
        }
    }
}

#[test]
fn deep_nesting_is_linear_and_safe() {
    for depth in [100_000usize, 1_000_000] {
        let mut s = b"a@b.test ".to_vec();
        s.extend(std::iter::repeat_n(b'(', depth));
        s.extend(std::iter::repeat_n(b')', depth));
        let list = parse_address_list(&s, &ParseOptions::strict()).unwrap();
        let AddressItem::Mailbox(m) = &list.items()[0] else {
            panic!()
        };
        assert_eq!(m.comments()[0].len(), 2 * (depth - 1));
        // Unbalanced: reported at the outermost '('.
        s.pop();
        let e = parse_address_list(&s, &ParseOptions::strict()).unwrap_err();
        assert_eq!(
            (e.kind, e.offset),
            (AddressErrorKind::UnterminatedComment, 9)
        );
    }
}

#[test]
fn long_inputs_parse() {
    // 20k addresses, 100k-character quoted names, 100k-word phrase: all in one pass each.
    let many: String = (0..20_000)
        .map(|i| format!("u{i}@h{i}.test"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        parse_address_list(many.as_bytes(), &ParseOptions::strict())
            .unwrap()
            .items()
            .len(),
        20_000
    );
    let long_name = format!("\"{}\" <a@b.test>", "x\\\"".repeat(50_000));
    assert!(parse_address_list(long_name.as_bytes(), &ParseOptions::strict()).is_ok());
    let phrase = format!("{} <a@b.test>", "w ".repeat(100_000));
    assert!(parse_address_list(phrase.as_bytes(), &ParseOptions::strict()).is_ok());
    let dots = format!("{}a@b.test", "a.".repeat(100_000));
    assert!(parse_address_list(dots.as_bytes(), &ParseOptions::strict()).is_ok());
    let commas = ",".repeat(200_000);
    assert_eq!(
        parse_address_list(commas.as_bytes(), &ParseOptions::strict())
            .unwrap_err()
            .kind,
        AddressErrorKind::Empty
    );
}

#[test]
fn folding() {
    let list: AddressList = AddressList::new(
        (0..10)
            .map(|i| {
                AddressItem::Mailbox(
                    HeaderMailbox::new(format!("user{i}"), "example.com")
                        .with_name(format!("User Number {i}")),
                )
            })
            .collect(),
    );
    let folded = list.to_folded(4);
    for line in folded.split('\n') {
        assert!(line.len() <= 78, "{line}");
    }
    assert!(folded.contains(",\n "));
    let unfolded = folded.replace('\n', "\r\n");
    assert_eq!(
        parse_address_list(unfolded.as_bytes(), &ParseOptions::strict()).unwrap(),
        list
    );
}

fn text() -> impl Strategy<Value = String> {
    // Printable ASCII, some whitespace and controls, and non-ASCII.
    "[ -~\t\u{1}\u{7f}é名]{0,12}"
}

fn local() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}(\\.[a-z0-9]{1,5}){0,2}",
        text()
    ]
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,8}(\\.[a-z0-9-]{1,8}){0,3}",
        // Any content: the renderer escapes what FWS would otherwise change.
        "\\[[ -Z^-~\t\\\\\\[\\]]{0,10}\\]",
    ]
}

fn mailbox() -> impl Strategy<Value = HeaderMailbox> {
    (
        proptest::option::of(text()),
        local(),
        domain(),
        proptest::collection::vec(text(), 0..2),
    )
        .prop_map(|(name, local, domain, comments)| {
            let mut m = HeaderMailbox::new(local, domain.as_str());
            if let Some(n) = name {
                m = m.with_name(n);
            }
            for c in comments {
                m = m.with_comment(c);
            }
            m
        })
}

fn item() -> impl Strategy<Value = AddressItem> {
    prop_oneof![
        3 => mailbox().prop_map(AddressItem::Mailbox),
        1 => (text(), proptest::collection::vec(mailbox(), 0..3))
            .prop_map(|(n, ms)| AddressItem::Group(Group::new(n, ms))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn render_then_parse_gives_the_value(items in proptest::collection::vec(item(), 1..5)) {
        let list = AddressList::new(items);
        let shown = list.to_string();
        let again = parse_address_list(shown.as_bytes(), &ParseOptions::strict())
            .map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
        prop_assert_eq!(again, list, "{:?}", shown);
    }

    #[test]
    fn parse_render_parse_is_stable(input in "[a-z \"(),.:;<>@\\[\\]\\\\\t]{0,60}") {
        for opts in [ParseOptions::strict(), qmail()] {
            if let Ok(list) = parse_address_list(input.as_bytes(), &opts) {
                let shown = list.to_string();
                if shown.contains("<>") { continue; }
                let again = parse_address_list(shown.as_bytes(), &ParseOptions::strict())
                    .map_err(|e| TestCaseError::fail(format!("{input:?} -> {shown:?}: {e}")))?;
                prop_assert_eq!(&again, &list, "{:?} -> {:?}", input, shown);
                prop_assert_eq!(again.to_string(), shown);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        for opts in [ParseOptions::strict(), qmail()] {
            if let Err(e) = parse_address_list(&input, &opts) {
                prop_assert!(e.offset <= input.len());
            }
            let _ = parse_mailbox_list(&input, &opts);
            let _ = parse_header_mailbox(&input, &opts);
        }
    }
}

/// mail-parser (an independent, best-effort parser) must find the same envelope addresses
/// as ours in every strictly valid case of the data file, except where noted.
#[test]
fn mail_parser_agrees_on_addresses() {
    use mail_parser::parsers::MessageStream;
    let mut compared = 0;
    for c in cases() {
        if c.error.is_some() || c.parse == "qmail" || c.mail_parser_differs {
            continue;
        }
        let ours: Vec<String> = parse_as(&c.parse, &c.input)
            .unwrap()
            .mailboxes()
            .map(|m| m.to_address().to_string_lossy())
            .collect();
        let mut input = c.input.clone();
        input.extend_from_slice(b"\r\n");
        let value = MessageStream::new(&input).parse_address();
        let theirs: Vec<String> = value
            .as_address()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            ours, theirs,
            "rfc5322_addresses.txt line {} ({})",
            c.line, c.name
        );
        compared += 1;
    }
    assert!(compared >= 25, "{compared}");
}

/// The two forms of qmail-inject's rules agree: where the structural parser
/// (`ParseOptions::qmail_inject`) accepts a field, the token-level rewriting that prints
/// fields back as qmail-inject does (`token822`) finds the same envelope addresses.
mod qmail_forms_agree {
    use mta_core::address_list::token822::{rewrite_list, tokenize, unquote};
    use mta_core::address_list::{ParseOptions, QmailRewrite, parse_address_list};
    use proptest::prelude::*;

    fn both(field: &str) -> Option<(Vec<String>, Vec<String>)> {
        let rules = QmailRewrite::new("mx.example.org", "example.org", "plus.example.org");
        let structural: Vec<String> =
            parse_address_list(field.as_bytes(), &ParseOptions::qmail_inject(rules.clone()))
                .ok()?
                .mailboxes()
                .map(|m| m.to_address().to_string_lossy())
                .collect();
        let rw = rules.token_rewriter().ok()?;
        let tokens = tokenize(field.as_bytes()).ok()?;
        let mut tokenwise = Vec::new();
        rewrite_list(&tokens, 0, &mut |a| {
            rw.rewrite(a);
            tokenwise.push(String::from_utf8_lossy(&unquote(a)).into_owned());
        })
        .ok()?;
        tokenwise.reverse();
        tokenwise.retain(|a| !a.is_empty());
        let structural = structural.into_iter().filter(|a| !a.is_empty()).collect();
        Some((structural, tokenwise))
    }

    #[test]
    fn known_fields() {
        for field in [
            "joe, mary@mx, ann@box+, <@r1,@r2:bob@x.org>, lit@[10.0.0.1], e@x.org.",
            "djb fred (Fred)",
            "\"Joe  Q\" <joe@x.org>, (c) ann@y.org (Ann)",
            "grp: c@x.org, d;, after@x.org",
            "joe@, Mixed.Case@Example.ORG",
            "undisclosed-recipients: ;",
        ] {
            let (s, t) = both(field).expect("both accept");
            assert_eq!(s, t, "{field}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn generated_fields(
            items in proptest::collection::vec(
                (
                    r#"([a-z]{1,3}|"[a-z ]{1,3}")(\.[a-z]{1,3}){0,2}"#,
                    proptest::option::of(r"[a-z]{1,3}(\.[a-z]{1,3}){0,2}\+?"),
                    0..4u8,
                    r",| |, ",
                ),
                1..5,
            )
        ) {
            // Each item: local[@domain], bare, in angle brackets with a phrase, with a
            // comment, or as a one-member group.
            let mut field = String::new();
            for (i, (local, domain, shape, sep)) in items.iter().enumerate() {
                // Without a comma, qmail takes the words in front of `<` or `:` into the
                // phrase or group name (`a@b Name <c>` is one address): not compared here.
                if i > 0 {
                    field.push_str(if matches!(shape, 1 | 3) { ", " } else { sep });
                }
                let addr = match domain {
                    Some(d) => format!("{local}@{d}"),
                    None => local.clone(),
                };
                let item = match shape {
                    0 => addr,
                    1 => format!("Name <{addr}>"),
                    2 => format!("{addr} (comment)"),
                    _ => format!("g: {addr};"),
                };
                field.push_str(&item);
            }
            if let Some((s, t)) = both(&field) {
                prop_assert_eq!(s, t, "{}", field);
            }
        }
    }
}

/// Issue 21: a whole `To:` line reported "expected ';' to end the group" (or "group inside
/// a group"); the error now says a header name was passed.
#[test]
fn whole_header_line_gets_a_header_name_hint() {
    let strict = ParseOptions::strict();
    for line in [
        &b"To: a@b.test"[..],
        b"cc: Joe <a@b.test>, c@d.test",
        b"To: team: a@b.test;",
    ] {
        let e = parse_address_list(line, &strict).unwrap_err();
        assert_eq!(
            e.kind,
            AddressErrorKind::HeaderName,
            "{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(&line[e.offset..=e.offset], b":");
        assert!(e.to_string().contains("pass the field body"), "{e}");
    }
    let e = parse_header_mailbox(b"From: a@b.test", &strict).unwrap_err();
    assert_eq!(e.kind, AddressErrorKind::HeaderName);
    let e = parse_mailbox_list(b"From: a@b.test, c@d.test", &strict).unwrap_err();
    assert_eq!(e.kind, AddressErrorKind::HeaderName);
    // A group that happens to be named like a header still parses, and other errors stay.
    assert!(parse_address_list(b"To: a@b.test;", &strict).is_ok());
    let e = parse_address_list(b"Friends: a@b.test", &strict).unwrap_err();
    assert!(matches!(e.kind, AddressErrorKind::Syntax(_)), "{e}");
}
