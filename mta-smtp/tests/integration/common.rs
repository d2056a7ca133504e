//! Test harness: run a server session over input pieces with a small fixed policy.

use std::time::Instant;

use mta_core::path::{ForwardPath, ReversePath};
use mta_smtp::{
    AbortReason, DataError, DataSummary, Event, Reply, ServerConfig, ServerSession, Verdict,
};

/// Events as owned values, with consecutive chunks merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ev {
    Helo(String),
    Ehlo(String),
    Mail(String),
    Rcpt(String),
    DataStart,
    Data(Vec<u8>),
    DataEnd(DataSummary),
    Rejected(DataError),
    Rset,
    StartTls,
    Quit,
    Timeout,
    Aborted(AbortReason),
}

#[derive(Debug, Default)]
pub(crate) struct Run {
    pub(crate) events: Vec<Ev>,
    pub(crate) out: Vec<u8>,
    /// Messages that got a 250 after DATA.
    pub(crate) accepted: Vec<Vec<u8>>,
}

impl Run {
    pub(crate) fn out_text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

fn addr_r(p: &ReversePath) -> String {
    p.to_address().to_string_lossy()
}

fn addr_f(p: &ForwardPath) -> String {
    p.to_address().to_string_lossy()
}

/// The test policy: senders with local part `bad` get 553; recipients starting with
/// `reject` get 550 5.1.1, `defer` get 451 4.2.2; a message whose first line is
/// `Subject: fail` gets 451 after DATA; everything else is accepted, the message with
/// `250 2.0.0 ok <n>`.
pub(crate) fn drain(s: &mut ServerSession, run: &mut Run, partial: &mut Vec<u8>) {
    loop {
        let verdict = match s.poll_event() {
            None => break,
            Some(Event::Helo { name }) => {
                run.events.push(Ev::Helo(name));
                None
            }
            Some(Event::Ehlo { name }) => {
                run.events.push(Ev::Ehlo(name));
                None
            }
            Some(Event::Mail { path, .. }) => {
                let a = addr_r(&path);
                let v = if a.starts_with("bad@") {
                    Verdict::Reject(
                        Reply::new(553, "sorry, your envelope sender is in my badmailfrom list")
                            .unwrap(),
                    )
                } else {
                    Verdict::Accept
                };
                run.events.push(Ev::Mail(a));
                Some(v)
            }
            Some(Event::Rcpt { path, .. }) => {
                let a = addr_f(&path);
                let v = if a.starts_with("reject") {
                    Verdict::Reject(
                        Reply::new(550, "no such user")
                            .unwrap()
                            .with_status("5.1.1".parse().unwrap()),
                    )
                } else if a.starts_with("defer") {
                    Verdict::Reject(Reply::new(451, "try later").unwrap())
                } else {
                    Verdict::Accept
                };
                run.events.push(Ev::Rcpt(a));
                Some(v)
            }
            Some(Event::DataStart) => {
                partial.clear();
                run.events.push(Ev::DataStart);
                Some(Verdict::Accept)
            }
            Some(Event::DataChunk(c)) => {
                partial.extend_from_slice(c);
                match run.events.last_mut() {
                    Some(Ev::Data(d)) => d.extend_from_slice(c),
                    _ => run.events.push(Ev::Data(c.to_vec())),
                }
                None
            }
            Some(Event::DataEnd(sum)) => {
                run.events.push(Ev::DataEnd(sum));
                if partial.starts_with(b"Subject: fail") {
                    Some(Verdict::Reject(
                        Reply::new(451, "qq write error or disk full").unwrap(),
                    ))
                } else {
                    run.accepted.push(std::mem::take(partial));
                    let text = format!("ok {}", run.accepted.len());
                    Some(Verdict::AcceptWith(
                        Reply::new(250, &text)
                            .unwrap()
                            .with_status("2.0.0".parse().unwrap()),
                    ))
                }
            }
            Some(Event::DataRejected(e)) => {
                run.events.push(Ev::Rejected(e));
                None
            }
            Some(Event::Rset) => {
                run.events.push(Ev::Rset);
                None
            }
            Some(Event::StartTls) => {
                run.events.push(Ev::StartTls);
                None
            }
            Some(Event::Quit) => {
                run.events.push(Ev::Quit);
                None
            }
            Some(Event::Timeout) => {
                run.events.push(Ev::Timeout);
                None
            }
            Some(Event::TooManyRecipients) => None,
            Some(Event::Aborted(r)) => {
                run.events.push(Ev::Aborted(r));
                None
            }
            Some(other) => panic!("unexpected event {other:?}"),
        };
        if let Some(v) = verdict {
            s.decide(v).unwrap();
        }
    }
    let _ = s.poll_transmit(&mut run.out);
}

pub(crate) fn config() -> ServerConfig {
    ServerConfig::new("mx.test")
}

/// Runs a session over `pieces` (each fed separately), then EOF if `eof`.
pub(crate) fn run_pieces<'a>(
    config: ServerConfig,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    eof: bool,
) -> Run {
    let now = Instant::now();
    let mut s = ServerSession::new(config, now);
    let mut run = Run::default();
    let mut partial = Vec::new();
    drain(&mut s, &mut run, &mut partial);
    for p in pieces {
        s.handle_input(p, now);
        drain(&mut s, &mut run, &mut partial);
    }
    if eof {
        s.handle_eof();
        drain(&mut s, &mut run, &mut partial);
    }
    run
}

pub(crate) fn run_whole(config: ServerConfig, input: &[u8]) -> Run {
    run_pieces(config, [input], false)
}

pub(crate) fn run_bytewise(config: ServerConfig, input: &[u8]) -> Run {
    run_pieces(config, input.chunks(1), false)
}

/// The reply codes in a server output, one per reply (last lines only).
pub(crate) fn codes(out: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(out)
        .split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ' || l.len() == 3)
        .map(|l| l[..3].parse().unwrap())
        .collect()
}
