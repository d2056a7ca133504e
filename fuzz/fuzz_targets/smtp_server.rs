//! Fuzz the SMTP server session with arbitrary byte streams.
//!
//! Half the inputs are mapped onto an SMTP-like alphabet (verbs, paths, CR, LF, dots) so
//! the session reaches DATA and beyond. The session is run twice, once on the whole input
//! and once split at points the input chooses, with verdicts also chosen by the input;
//! both runs must give the same events and the same reply bytes.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mta_smtp::{Event, Reply, ServerConfig, ServerSession, Verdict};

const TOKENS: [&[u8]; 32] = [
    b"EHLO x\r\n", b"HELO y\r\n", b"MAIL FROM:<a@b.example>", b"MAIL FROM:<>", b"RCPT TO:<c@d.example>",
    b"RCPT TO:<Postmaster>", b"DATA\r\n", b"RSET\r\n", b"QUIT\r\n", b"STARTTLS\r\n", b"NOOP",
    b" SIZE=100", b" BODY=8BITMIME", b" SMTPUTF8", b"\r\n", b"\n", b"\r", b".", b"..", b"\x00",
    b"Received: x\r\n", b"Subject: s\r\n\r\nbody", b"\r\n.\r\n", b"\xc3\xa9",
    // The AUTH exchange (RFC 4954): mechanisms, base64 responses, cancel, empty response.
    b"AUTH PLAIN", b"AUTH LOGIN", b" AGpvZQBzZWNyZXQ=", b"am9l\r\n", b"*\r\n", b"=\r\n",
    b" AUTH=<>", b"AUTH CRAM-MD5\r\n",
];

fn run(input: &[u8], cuts: &[usize], verdicts: &[u8]) -> (Vec<String>, Vec<u8>) {
    let now = Instant::now();
    let mut cfg = ServerConfig::new("fuzz.example");
    cfg.offer_starttls = verdicts.first().is_some_and(|v| v & 1 == 1);
    cfg.offer_auth = verdicts.get(1).is_some_and(|v| v & 1 == 1);
    cfg.auth_requires_tls = verdicts.get(2).is_some_and(|v| v & 1 == 1);
    cfg.require_auth = verdicts.get(2).is_some_and(|v| v & 4 == 4);
    cfg.max_message_size = 4096;
    cfg.max_command_line = 256;
    let mut s = ServerSession::new(cfg, now);
    let mut events: Vec<String> = Vec::new();
    let mut chunk: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut decisions = 0usize;
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(start, input.len());
        s.handle_input(&input[start..cut], now);
        start = cut;
        loop {
            let ev = match s.poll_event() {
                None => break,
                Some(ev) => ev,
            };
            let needs = matches!(
                ev,
                Event::Mail { .. }
                    | Event::Rcpt { .. }
                    | Event::DataStart
                    | Event::DataEnd(_)
                    | Event::Auth(_)
            );
            match &ev {
                // Merge chunks: their sizes depend on the split.
                Event::DataChunk(c) => chunk.extend_from_slice(c),
                other => {
                    if !chunk.is_empty() {
                        events.push(format!("chunk {chunk:?}"));
                        chunk.clear();
                    }
                    events.push(format!("{other:?}"));
                }
            }
            if matches!(ev, Event::StartTls) {
                s.tls_established(now);
            }
            if needs {
                let v = verdicts.get(decisions % verdicts.len().max(1)).copied().unwrap_or(0);
                decisions += 1;
                let verdict = if v & 2 == 0 {
                    Verdict::Accept
                } else {
                    Verdict::Reject(Reply::new(550, "no").expect("valid reply"))
                };
                s.decide(verdict).expect("a verdict was pending");
            }
        }
        let _ = s.poll_transmit(&mut out);
    }
    if !chunk.is_empty() {
        events.push(format!("chunk {chunk:?}"));
    }
    (events, out)
}

/// Input pipelined after STARTTLS is discarded (CVE-2011-0411), so how much of it arrived
/// with the STARTTLS line legitimately changes what follows: compare up to the handshake.
fn until_tls((mut events, mut out): (Vec<String>, Vec<u8>)) -> (Vec<String>, Vec<u8>) {
    if let Some(i) = events.iter().position(|e| e == "StartTls") {
        events.truncate(i + 1);
        let ready = b"220 2.0.0 ready to start TLS\r\n";
        if let Some(j) = out.windows(ready.len()).position(|w| w == ready) {
            out.truncate(j + ready.len());
        }
    }
    (events, out)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (head, rest) = data.split_at(2);
    let input: Vec<u8> = if head[0] & 1 == 1 {
        rest.iter().flat_map(|&b| TOKENS[b as usize % TOKENS.len()].iter().copied()).collect()
    } else {
        rest.to_vec()
    };
    let cuts: Vec<usize> = rest.iter().take(8).map(|&b| b as usize * input.len() / 256).collect();
    let mut sorted = cuts.clone();
    sorted.sort_unstable();
    let verdicts = [head[1], head[1] >> 2, head[1] >> 4];
    let whole = until_tls(run(&input, &[], &verdicts));
    let split = until_tls(run(&input, &sorted, &verdicts));
    assert_eq!(whole, split, "split changed the session");
});
