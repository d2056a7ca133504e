//! SMTP smuggling (CVE-2023-51764/5/6, CERT VU#302671): every non-CRLF end-of-data
//! variant must neither end the message early nor start a second message.

use crate::common::{Ev, codes, config, run_bytewise, run_whole};
use mta_smtp::{AbortReason, DataError};

const VARIANTS: [&[u8]; 6] = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
];

fn attack(variant: &[u8]) -> Vec<u8> {
    let mut v = b"EHLO attacker.example\r\nMAIL FROM:<a@attacker.example>\r\n\
RCPT TO:<victim@example.com>\r\nDATA\r\nSubject: real\r\n\r\nreal body"
        .to_vec();
    v.extend_from_slice(variant);
    v.extend_from_slice(
        b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\
Subject: smuggled\r\n\r\nsmuggled body\r\n.\r\nQUIT\r\n",
    );
    v
}

#[test]
fn never_two_messages_never_truncated() {
    for variant in VARIANTS {
        for run in [
            run_whole(config(), &attack(variant)),
            run_bytewise(config(), &attack(variant)),
        ] {
            // No message was accepted: not the truncated first, not the smuggled second.
            assert!(
                run.accepted.is_empty(),
                "{variant:?}: accepted {:?}",
                run.accepted
            );
            assert!(
                !run.events.iter().any(|e| matches!(e, Ev::DataEnd(_))),
                "{variant:?}: DataEnd reached the application"
            );
            // Exactly one DATA transaction; the smuggled MAIL was never a command.
            let mails = run
                .events
                .iter()
                .filter(|e| matches!(e, Ev::Mail(_)))
                .count();
            assert_eq!(mails, 1, "{variant:?}");
            let rejected: Vec<_> = run
                .events
                .iter()
                .filter_map(|e| match e {
                    Ev::Rejected(r) => Some(*r),
                    _ => None,
                })
                .collect();
            assert_eq!(rejected.len(), 1, "{variant:?}");
            let out = run.out_text();
            if rejected[0] == DataError::BareLineEnding {
                // qmail's answer, after the real end, then the session ends.
                assert!(
                    out.ends_with("451 4.6.0 See https://cr.yp.to/docs/smtplf.html.\r\n"),
                    "{out}"
                );
                assert_eq!(
                    run.events.last(),
                    Some(&Ev::Aborted(AbortReason::BareLineEnding))
                );
            } else {
                // The NUL variant: refused, and the QUIT after the real end is obeyed.
                assert_eq!(rejected[0], DataError::Nul, "{variant:?}");
                assert_eq!(codes(&run.out).last(), Some(&221));
            }
        }
    }
}

#[test]
fn the_real_end_is_crlf_dot_crlf_only() {
    let mut input = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n".to_vec();
    input.extend_from_slice(b"line\r\n.\r\nNOOP\r\n");
    let run = run_whole(config(), &input);
    assert_eq!(run.accepted, vec![b"line\n".to_vec()]);
    assert_eq!(codes(&run.out), [220, 250, 250, 354, 250, 250]);
}

#[test]
fn bare_cr_inside_a_line_fails_the_message() {
    let input = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\na\rb\r\n.\r\n";
    let run = run_whole(config(), input);
    assert!(run.accepted.is_empty());
    assert!(
        run.events
            .contains(&Ev::Rejected(DataError::BareLineEnding))
    );
}
