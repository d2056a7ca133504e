//! RFC 2920 PIPELINING: a whole transaction in one buffer, one byte at a time, and split
//! at every boundary, gives the same events and the same replies.

use proptest::prelude::*;

use crate::common::{Ev, codes, config, run_bytewise, run_pieces, run_whole};

const TRANSACTION: &[u8] = b"EHLO client.example\r\n\
MAIL FROM:<alice@example.org> SIZE=120 BODY=8BITMIME\r\n\
RCPT TO:<bob@example.com>\r\n\
RCPT TO:<rejectcarol@example.com>\r\n\
RCPT TO:<dave@example.com>\r\n\
DATA\r\n\
Received: from a by b; 1 Jan 2026\r\n\
Subject: pipelined\r\n\
\r\n\
..leading dot\r\n\
body \xc3\xa9\r\n\
.\r\n\
MAIL FROM:<>\r\n\
RCPT TO:<postmaster@example.com>\r\n\
DATA\r\n\
bounce\r\n\
.\r\n\
QUIT\r\n";

#[test]
fn whole_buffer() {
    let run = run_whole(config(), TRANSACTION);
    assert_eq!(
        codes(&run.out),
        [
            220, 250, 250, 250, 550, 250, 354, 250, 250, 250, 354, 250, 221
        ]
    );
    assert_eq!(run.accepted.len(), 2);
    assert_eq!(
        run.accepted[0],
        b"Received: from a by b; 1 Jan 2026\nSubject: pipelined\n\n.leading dot\nbody \xc3\xa9\n"
    );
    assert_eq!(run.accepted[1], b"bounce\n");
    let ends: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Ev::DataEnd(s) => Some((s.size, s.hops)),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [(75, 1), (7, 0)]);
    assert_eq!(run.events.last(), Some(&Ev::Quit));
}

#[test]
fn one_byte_at_a_time_is_identical() {
    let whole = run_whole(config(), TRANSACTION);
    let bytewise = run_bytewise(config(), TRANSACTION);
    assert_eq!(bytewise.out, whole.out);
    assert_eq!(bytewise.events, whole.events);
    assert_eq!(bytewise.accepted, whole.accepted);
}

#[test]
fn replies_come_out_in_one_batch() {
    // Everything is answered before the driver writes: one write for the whole batch.
    let run = run_whole(config(), TRANSACTION);
    let text = run.out_text();
    assert!(text.starts_with("220 mx.test ESMTP\r\n250-mx.test\r\n"));
    assert!(text.ends_with("250 2.0.0 ok 2\r\n221 mx.test\r\n"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Split the transaction into three pieces at any two points: same result.
    #[test]
    fn split_at_every_boundary(a in 0usize..=TRANSACTION.len(), b in 0usize..=TRANSACTION.len()) {
        let (a, b) = (a.min(b), a.max(b));
        let whole = run_whole(config(), TRANSACTION);
        let split = run_pieces(config(), [&TRANSACTION[..a], &TRANSACTION[a..b], &TRANSACTION[b..]], false);
        prop_assert_eq!(split.out, whole.out);
        prop_assert_eq!(split.events, whole.events);
    }
}

#[test]
fn every_single_split_point() {
    let whole = run_whole(config(), TRANSACTION);
    for i in 0..=TRANSACTION.len() {
        let split = run_pieces(config(), [&TRANSACTION[..i], &TRANSACTION[i..]], false);
        assert_eq!(split.out, whole.out, "split at {i}");
        assert_eq!(split.events, whole.events, "split at {i}");
    }
}

const TOKENS: [&[u8]; 22] = [
    b"EHLO x\r\n",
    b"HELO y\r\n",
    b"MAIL FROM:<a@b.example>",
    b"MAIL FROM:<bad@b.example>",
    b"RCPT TO:<c@d.example>",
    b"RCPT TO:<rejectme@d.example>",
    b"DATA\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b" SIZE=100",
    b" BODY=8BITMIME",
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"..",
    b"\x00",
    b"Received: x\r\n",
    b"Subject: fail\r\n",
    b"body line\r\n",
    b"\r\n.\r\n",
    b"QUIT\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random SMTP-like streams (commands, bodies, stray CR/LF/NUL, dots): any split gives
    /// the same events and replies as the whole stream, and a message is only ever
    /// accepted after a DataEnd.
    #[test]
    fn random_streams_split_anywhere(
        picks in proptest::collection::vec(0usize..TOKENS.len(), 0..80),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let input: Vec<u8> = picks.iter().flat_map(|&i| TOKENS[i].iter().copied()).collect();
        let (a, b) = (a.index(input.len() + 1), b.index(input.len() + 1));
        let (a, b) = (a.min(b), a.max(b));
        let whole = run_whole(config(), &input);
        let split = run_pieces(config(), [&input[..a], &input[a..b], &input[b..]], false);
        prop_assert_eq!(&split.out, &whole.out);
        prop_assert_eq!(&split.events, &whole.events);
        let ends = whole.events.iter().filter(|e| matches!(e, Ev::DataEnd(_))).count();
        prop_assert!(whole.accepted.len() <= ends);
    }
}
