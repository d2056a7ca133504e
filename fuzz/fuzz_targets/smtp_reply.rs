//! Fuzz the reply parser and the client session that consumes replies.
//!
//! The parser must never panic, must keep its bounds, and must give the same replies
//! whether the input arrives whole or split. The same bytes are then fed as a server's
//! replies to a client session, which must finish with one result per recipient.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mta_core::Envelope;
use mta_smtp::{
    ClientConfig, ClientEvent, ClientSession, MAX_REPLY_TEXT, ReplyParser, ReplyStatus,
};

fn parse(input: &[u8], cut: usize) -> Vec<Result<(u16, Vec<String>), ()>> {
    let mut p = ReplyParser::new();
    let mut out = Vec::new();
    for part in [&input[..cut], &input[cut..]] {
        let mut rest = part;
        while !rest.is_empty() {
            match p.feed(rest) {
                Ok(ReplyStatus::Complete(r, n)) => {
                    assert!(n > 0 && n <= rest.len());
                    assert!(r.lines().iter().map(String::len).sum::<usize>() <= MAX_REPLY_TEXT * 3);
                    out.push(Ok((r.code(), r.lines().to_vec())));
                    rest = &rest[n..];
                }
                Ok(ReplyStatus::Partial) => break,
                Err(_) => {
                    out.push(Err(()));
                    // The parser reset itself; the rest of this line is garbage.
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => rest = &rest[i + 1..],
                        None => break,
                    }
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = data[0] as usize * data.len() / 256;
    let _ = parse(data, cut);

    let now = Instant::now();
    let env = Envelope::new("a@example.org", ["b@example.com", "c@example.com"]);
    let mut c = ClientSession::new(ClientConfig::new("fuzz.example", "peer"), env, now);
    let mut out = Vec::new();
    for chunk in data.chunks(1 + data[0] as usize % 64) {
        c.handle_input(chunk, now);
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::SendBody => {
                    c.send_body(b"x\n.\n");
                    c.finish_body(now);
                }
                ClientEvent::StartTls => c.tls_established(now),
                _ => {}
            }
        }
        let _ = c.poll_transmit(&mut out);
        // Nothing we send may carry a bare CR or LF.
        for (i, w) in out.windows(2).enumerate() {
            assert!(!(w[0] == b'\r' && w[1] != b'\n'), "bare CR at {i}");
            assert!(!(w[0] != b'\r' && w[1] == b'\n'), "bare LF at {}", i + 1);
        }
    }
    c.handle_eof();
    assert!(c.is_finished());
    assert_eq!(c.results().len(), 2);
});
