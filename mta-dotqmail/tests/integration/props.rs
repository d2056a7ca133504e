//! Property tests: `.qmail` and users/assign text written from values parse back to the
//! same values; arbitrary bytes never panic the parsers or the search-name generator.

use std::fmt::Write;

use mta_dotqmail::{Instruction, UsersAssign, candidates, parse};
use proptest::prelude::*;

/// Argument bytes qmail keeps verbatim: no NUL, no newline, not ending in space or tab.
fn arg() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no NUL or LF", |b| *b != 0 && *b != b'\n'),
        0..40,
    )
    .prop_filter("no trailing blank", |v| {
        !matches!(v.last(), Some(b' ' | b'\t'))
    })
}

fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        Just(Instruction::Comment),
        Just(Instruction::ForwardOnly),
        arg().prop_map(Instruction::Program),
        arg().prop_map(Instruction::Forward),
        arg().prop_map(|mut a| {
            a.insert(0, b'/');
            if a.last() == Some(&b'/') {
                a.push(b'x');
            }
            Instruction::Mbox(a)
        }),
        arg().prop_map(|mut a| {
            a.insert(0, b'.');
            a.push(b'/');
            Instruction::Maildir(a)
        }),
    ]
}

/// The line that means `i` (forwards always with `&`, so any first byte is allowed).
fn format(i: &Instruction) -> Vec<u8> {
    match i {
        Instruction::Comment => b"# comment".to_vec(),
        Instruction::ForwardOnly => b"+list".to_vec(),
        Instruction::Program(a) => [&b"|"[..], a].concat(),
        Instruction::Forward(a) => [&b"&"[..], a].concat(),
        Instruction::Mbox(a) | Instruction::Maildir(a) => a.clone(),
        other => panic!("not generated: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn qmail_text_round_trips(list in proptest::collection::vec(instruction(), 1..12), trailing in any::<bool>()) {
        let mut text = Vec::new();
        for (n, i) in list.iter().enumerate() {
            text.extend_from_slice(&format(i));
            if n + 1 < list.len() || trailing {
                text.push(b'\n');
            }
        }
        let parsed: Vec<Instruction> = parse(&text).unwrap().into_iter().map(|l| l.instruction).collect();
        prop_assert_eq!(parsed, list);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(lines) = parse(&bytes) {
            let newlines = bytes.split(|&b| b == b'\n').count() - 1;
            let expected = if bytes.is_empty() || bytes.ends_with(b"\n") { newlines } else { newlines + 1 };
            prop_assert_eq!(lines.len(), expected);
        }
        let _ = UsersAssign::parse(&bytes);
        let names = candidates(b"-", &bytes);
        prop_assert_eq!(names.len(), 2 + bytes.split(|&b| b == b'-').count() - 1);
    }

    #[test]
    fn assign_round_trips(entries in proptest::collection::vec(
        ("[a-zA-Z0-9._-]{1,12}", "[a-z]{1,8}", 1u32..60000, 1u32..60000, "/[a-z/]{1,20}", "-?", "[a-zA-Z0-9-]{0,8}"),
        1..20,
    )) {
        let mut text = String::new();
        for (key, user, uid, gid, home, dash, ext) in &entries {
            writeln!(text, "={key}:{user}:{uid}:{gid}:{home}:{dash}:{ext}:").unwrap();
        }
        text.push_str(".\n");
        let assign = UsersAssign::parse(text.as_bytes()).unwrap();
        for (key, ..) in &entries {
            // The first entry for a key (case-insensitively) wins.
            let first = entries.iter().find(|e| e.0.eq_ignore_ascii_case(key)).unwrap();
            let u = assign.lookup(key.to_ascii_uppercase().as_bytes()).unwrap();
            prop_assert_eq!(u.account().user(), first.1.as_bytes());
            prop_assert_eq!((u.account().uid(), u.account().gid()), (first.2, first.3));
            prop_assert_eq!(u.account().home().to_str().unwrap(), first.4.as_str());
            prop_assert_eq!((u.dash(), u.ext()), (first.5.as_bytes(), first.6.as_bytes()));
        }
    }
}
