//! Test vectors shared by every server driver: mta-smtp's blocking `serve`
//! (tests/integration/driver_vectors.rs) and mta-smtp-tokio's async server (its
//! tests/integration/vectors.rs includes this file by path), so both are held to the same
//! transcripts, byte for byte.
//!
//! - [`transcripts`]: tests/data/transcripts/*.txt (the format is described in
//!   tests/integration/transcripts.rs), embedded with `include_str!` so the path works
//!   from any crate;
//! - [`Recorder`]: the one test policy (the rules of tests/integration/common.rs), which
//!   each driver's handler calls;
//! - [`reference`]: what the sans-IO session itself answers to a transcript with that
//!   policy: replies and accepted messages a driver must reproduce;
//! - [`smuggling_attack`] and [`check_smuggling`]: the SMTP smuggling variants.

#![allow(dead_code, unreachable_pub)]

use std::time::Instant;

use mta_core::path::{ForwardPath, ReversePath};
use mta_smtp::{Event, Reply, ServerConfig, ServerSession, Verdict};

/// One transcript: its settings, the client's bytes, and the server's expected replies.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub name: &'static str,
    pub settings: Vec<(String, String)>,
    pub input: Vec<u8>,
    pub replies: String,
}

impl Transcript {
    /// The server configuration: `mx.test` plus the transcript's `!` settings.
    pub fn config(&self) -> ServerConfig {
        let mut cfg = ServerConfig::new("mx.test");
        for (k, v) in &self.settings {
            match k.as_str() {
                "max_recipients" => cfg.max_recipients = v.parse().unwrap(),
                "max_errors" => cfg.max_errors = v.parse().unwrap(),
                "databytes" => cfg.set_databytes(v.parse().unwrap()),
                "offer_starttls" => cfg.offer_starttls = v == "true",
                "max_command_line" => cfg.max_command_line = v.parse().unwrap(),
                _ => panic!("{}: unknown setting {k}", self.name),
            }
        }
        cfg
    }
}

const FILES: [(&str, &str); 14] = [
    (
        "01_rfc5321_d1",
        include_str!("../data/transcripts/01_rfc5321_d1.txt"),
    ),
    (
        "02_state_errors",
        include_str!("../data/transcripts/02_state_errors.txt"),
    ),
    (
        "03_syntax",
        include_str!("../data/transcripts/03_syntax.txt"),
    ),
    (
        "04_lenient",
        include_str!("../data/transcripts/04_lenient.txt"),
    ),
    (
        "05_misc_commands",
        include_str!("../data/transcripts/05_misc_commands.txt"),
    ),
    (
        "06_policy",
        include_str!("../data/transcripts/06_policy.txt"),
    ),
    (
        "07_limits",
        include_str!("../data/transcripts/07_limits.txt"),
    ),
    (
        "08_bare_lf_commands",
        include_str!("../data/transcripts/08_bare_lf_commands.txt"),
    ),
    (
        "09_smtputf8",
        include_str!("../data/transcripts/09_smtputf8.txt"),
    ),
    (
        "10_starttls_offer",
        include_str!("../data/transcripts/10_starttls_offer.txt"),
    ),
    (
        "11_too_many_errors",
        include_str!("../data/transcripts/11_too_many_errors.txt"),
    ),
    (
        "12_long_command",
        include_str!("../data/transcripts/12_long_command.txt"),
    ),
    (
        "13_rfc5321_d2",
        include_str!("../data/transcripts/13_rfc5321_d2.txt"),
    ),
    (
        "14_rfc5321_d4",
        include_str!("../data/transcripts/14_rfc5321_d4.txt"),
    ),
];

/// `\r`, `\n`, `\xNN` and `\\` escapes of the transcript format.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                    i += 2;
                }
                other => panic!("bad escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Every transcript, in file order.
pub fn transcripts() -> Vec<Transcript> {
    FILES
        .iter()
        .map(|(name, text)| {
            let mut t = Transcript {
                name,
                settings: Vec::new(),
                input: Vec::new(),
                replies: String::new(),
            };
            for line in text.lines() {
                if let Some(l) = line.strip_prefix("> ") {
                    t.input.extend(unescape(l));
                    t.input.extend_from_slice(b"\r\n");
                } else if let Some(l) = line.strip_prefix('<') {
                    t.replies.push_str(l.strip_prefix(' ').unwrap_or(l));
                    t.replies.push_str("\r\n");
                } else if let Some(l) = line.strip_prefix("! ") {
                    let (k, v) = l.split_once(' ').unwrap();
                    t.settings.push((k.to_owned(), v.to_owned()));
                }
            }
            t
        })
        .collect()
}

/// The shared test policy and what it saw: senders `bad@...` get 553, recipients
/// `reject...` 550 5.1.1 and `defer...` 451; a message starting `Subject: fail` gets 451
/// after DATA; everything else is accepted, the n-th message with `250 2.0.0 ok <n>`.
#[derive(Debug, Default)]
pub struct Recorder {
    pub message: Vec<u8>,
    pub accepted: Vec<Vec<u8>>,
    pub mails: usize,
    pub data_ends: usize,
}

impl Recorder {
    pub fn mail(&mut self, path: &ReversePath) -> Verdict {
        self.mails += 1;
        if path.to_address().to_string_lossy().starts_with("bad@") {
            Verdict::Reject(
                Reply::new(553, "sorry, your envelope sender is in my badmailfrom list").unwrap(),
            )
        } else {
            Verdict::Accept
        }
    }

    pub fn rcpt(path: &ForwardPath) -> Verdict {
        let a = path.to_address().to_string_lossy();
        if a.starts_with("reject") {
            Verdict::Reject(
                Reply::new(550, "no such user")
                    .unwrap()
                    .with_status("5.1.1".parse().unwrap()),
            )
        } else if a.starts_with("defer") {
            Verdict::Reject(Reply::new(451, "try later").unwrap())
        } else {
            Verdict::Accept
        }
    }

    pub fn data_start(&mut self) -> Verdict {
        self.message.clear();
        Verdict::Accept
    }

    pub fn chunk(&mut self, chunk: &[u8]) {
        self.message.extend_from_slice(chunk);
    }

    pub fn data_end(&mut self) -> Verdict {
        self.data_ends += 1;
        if self.message.starts_with(b"Subject: fail") {
            self.message.clear();
            return Verdict::Reject(Reply::new(451, "qq write error or disk full").unwrap());
        }
        self.accepted.push(std::mem::take(&mut self.message));
        let text = format!("ok {}", self.accepted.len());
        Verdict::AcceptWith(
            Reply::new(250, &text)
                .unwrap()
                .with_status("2.0.0".parse().unwrap()),
        )
    }

    pub fn data_rejected(&mut self) {
        self.message.clear();
    }
}

/// The sans-IO session's own answer to `input` (whole, then EOF) under [`Recorder`]:
/// the replies and the accepted messages.
pub fn reference(config: ServerConfig, input: &[u8]) -> (String, Vec<Vec<u8>>) {
    let now = Instant::now();
    let mut s = ServerSession::new(config, now);
    let mut rec = Recorder::default();
    let mut out = Vec::new();
    s.handle_input(input, now);
    s.handle_eof();
    while let Some(ev) = s.poll_event() {
        let v = match ev {
            Event::Mail { path, .. } => Some(rec.mail(&path)),
            Event::Rcpt { path, .. } => Some(Recorder::rcpt(&path)),
            Event::DataStart => Some(rec.data_start()),
            Event::DataChunk(c) => {
                rec.chunk(c);
                None
            }
            Event::DataEnd(_) => Some(rec.data_end()),
            Event::DataRejected(_) => {
                rec.data_rejected();
                None
            }
            Event::StartTls => {
                // No TLS here, as in a driver without a TLS setup.
                let _ = s.poll_transmit(&mut out);
                s.tls_failed();
                None
            }
            _ => None,
        };
        if let Some(v) = v {
            s.decide(v).unwrap();
        }
    }
    let _ = s.poll_transmit(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), rec.accepted)
}

/// SMTP smuggling (CVE-2023-51764/5/6): end-of-data variants that are not `CRLF.CRLF`.
pub const SMUGGLING_VARIANTS: [&[u8]; 6] = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
];

/// A message ended with `variant`, followed by a smuggled second transaction and QUIT.
pub fn smuggling_attack(variant: &[u8]) -> Vec<u8> {
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

/// What a driver must show after [`smuggling_attack`]: no message accepted, exactly one
/// MAIL seen by the policy, and qmail's 451 (or for NUL the 554 and the QUIT obeyed).
pub fn check_smuggling(variant: &[u8], replies: &str, rec: &Recorder) {
    assert!(
        rec.accepted.is_empty(),
        "{variant:?}: accepted {:?}",
        rec.accepted
    );
    assert_eq!(rec.data_ends, 0, "{variant:?}: the message reached its end");
    assert_eq!(rec.mails, 1, "{variant:?}: the smuggled MAIL was a command");
    if variant.contains(&0) {
        assert!(
            replies.contains("554 5.6.0 message contains NUL\r\n"),
            "{replies}"
        );
        assert!(replies.ends_with("221 mx.test\r\n"), "{replies}");
    } else {
        assert!(
            replies.ends_with("451 4.6.0 See https://cr.yp.to/docs/smtplf.html.\r\n"),
            "{variant:?}: {replies}"
        );
    }
}
