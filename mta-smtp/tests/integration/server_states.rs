//! Server session behaviour per state that transcripts cannot show: time, EOF, TLS,
//! deferred verdicts, data limits.

use std::time::{Duration, Instant};

use mta_smtp::{
    AbortReason, DataError, DecideError, Event, LineEnding, Reply, ServerSession, Verdict,
};

use crate::common::{Ev, codes, config, run_pieces, run_whole};

const TX: &[u8] = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n";

fn with_body(body: &[u8]) -> Vec<u8> {
    let mut v = TX.to_vec();
    v.extend_from_slice(body);
    v.extend_from_slice(b".\r\nQUIT\r\n");
    v
}

#[test]
fn timeout_in_every_phase() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(10);
    for input in [&b""[..], b"MAIL FROM:<a@b.example>\r\n", b"HELO x\r\nNOOP"] {
        let mut s = ServerSession::new(cfg.clone(), t0);
        s.handle_input(input, t0 + Duration::from_secs(1));
        while let Some(ev) = s.poll_event() {
            if matches!(ev, Event::Mail { .. }) {
                s.decide(Verdict::Accept).unwrap();
            }
        }
        let deadline = s.poll_timeout().unwrap();
        let expect = if input.is_empty() {
            t0
        } else {
            t0 + Duration::from_secs(1)
        };
        assert_eq!(deadline, expect + Duration::from_secs(10));
        s.handle_timeout(deadline.checked_sub(Duration::from_millis(1)).unwrap());
        assert!(!s.is_closed(), "fired early");
        s.handle_timeout(deadline);
        assert_eq!(s.poll_event(), Some(Event::Timeout));
        let mut out = Vec::new();
        assert!(s.poll_transmit(&mut out));
        assert!(out.ends_with(b"421 4.4.2 timeout\r\n"));
        assert!(s.is_closed() && s.poll_timeout().is_none());
    }
}

#[test]
fn no_timeout_while_a_verdict_is_pending() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(config(), t0);
    s.handle_input(b"MAIL FROM:<a@b.example>\r\nNOOP\r\n", t0);
    assert!(matches!(s.poll_event(), Some(Event::Mail { .. })));
    // The client waits for us: no deadline, and the NOOP waits behind the MAIL.
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.poll_event(), None);
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    assert_eq!(out, b"220 mx.test ESMTP\r\n");
    // A later (asynchronous) answer releases the queue, in order.
    s.decide(Verdict::Reject(Reply::new(451, "lookup failed").unwrap()))
        .unwrap();
    assert_eq!(s.poll_event(), None);
    out.clear();
    let _ = s.poll_transmit(&mut out);
    assert_eq!(out, b"451 lookup failed\r\n250 2.0.0 ok\r\n");
    assert!(s.poll_timeout().is_some());
}

#[test]
fn decide_checks_its_arguments() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(config(), t0);
    assert_eq!(s.decide(Verdict::Accept), Err(DecideError::NothingPending));
    s.handle_input(TX, t0);
    assert!(matches!(s.poll_event(), Some(Event::Mail { .. })));
    let ok250 = Reply::new(250, "fine").unwrap();
    let no550 = Reply::new(550, "no").unwrap();
    assert_eq!(
        s.decide(Verdict::Reject(ok250.clone())),
        Err(DecideError::WrongReplyCode)
    );
    assert_eq!(
        s.decide(Verdict::AcceptWith(no550)),
        Err(DecideError::WrongReplyCode)
    );
    s.decide(Verdict::AcceptWith(ok250.clone())).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Rcpt { .. })));
    s.decide(Verdict::Accept).unwrap();
    assert_eq!(s.poll_event(), Some(Event::DataStart));
    // DataStart accepts only 354.
    assert_eq!(
        s.decide(Verdict::AcceptWith(ok250)),
        Err(DecideError::WrongReplyCode)
    );
    s.decide(Verdict::AcceptWith(Reply::new(354, "send it").unwrap()))
        .unwrap();
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    assert!(out.ends_with(b"250 fine\r\n250 2.1.5 ok\r\n354 send it\r\n"));
}

#[test]
fn data_start_refused_ends_the_transaction() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(config(), t0);
    s.handle_input(TX, t0);
    s.handle_input(b"RCPT TO:<x@y.example>\r\n", t0);
    for _ in 0..2 {
        assert!(s.poll_event().is_some());
        s.decide(Verdict::Accept).unwrap();
    }
    assert_eq!(s.poll_event(), Some(Event::DataStart));
    s.reject(451, "qqt failure").unwrap();
    assert_eq!(s.poll_event(), None);
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    assert!(
        out.ends_with(b"451 qqt failure\r\n503 5.5.1 MAIL first\r\n"),
        "{out:?}"
    );
}

#[test]
fn eof_processes_buffered_input_first() {
    let run = run_pieces(config(), [&b"NOOP\r\nHELO x\r\nMAIL"[..]], true);
    assert_eq!(codes(&run.out), [220, 250, 250]);
    assert_eq!(
        run.events,
        [
            Ev::Helo("x".into()),
            Ev::Aborted(AbortReason::ConnectionClosed)
        ]
    );
    // EOF inside DATA: no DataEnd, the application hears the session died.
    let mut input = TX.to_vec();
    input.extend_from_slice(b"half a message\r\n");
    let run = run_pieces(config(), [&input[..]], true);
    assert!(run.accepted.is_empty());
    assert_eq!(
        run.events.last(),
        Some(&Ev::Aborted(AbortReason::ConnectionClosed))
    );
}

#[test]
fn starttls_handshake_resets_state() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.offer_starttls = true;
    let mut s = ServerSession::new(cfg, t0);
    s.handle_input(
        b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nSTARTTLS\r\nRCPT TO:<x@y.example>\r\n",
        t0,
    );
    assert!(matches!(s.poll_event(), Some(Event::Ehlo { .. })));
    assert!(matches!(s.poll_event(), Some(Event::Mail { .. })));
    s.decide(Verdict::Accept).unwrap();
    assert_eq!(s.poll_event(), Some(Event::StartTls));
    // During the handshake nothing is read, and there is no timeout to run.
    s.handle_input(b"RCPT TO:<z@y.example>\r\n", t0);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.poll_timeout(), None);
    s.tls_established(t0);
    assert!(s.is_tls() && s.client_name().is_none());
    // The transaction from before TLS is gone (RFC 3207 §4.2) and STARTTLS is no longer
    // offered or accepted.
    s.handle_input(b"RCPT TO:<x@y.example>\r\nEHLO c\r\nSTARTTLS\r\n", t0);
    assert!(matches!(s.poll_event(), Some(Event::Ehlo { .. })));
    assert_eq!(s.poll_event(), None);
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    let text = String::from_utf8(out).unwrap();
    let after = text
        .split("220 2.0.0 ready to start TLS\r\n")
        .nth(1)
        .unwrap();
    assert!(after.starts_with("503 5.5.1 MAIL first\r\n250-mx.test\r\n"));
    assert!(!after.contains("STARTTLS"));
    assert!(after.ends_with("503 5.5.1 TLS already active\r\n"));
}

#[test]
fn tls_failure_aborts() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.offer_starttls = true;
    let mut s = ServerSession::new(cfg, t0);
    s.handle_input(b"STARTTLS\r\n", t0);
    assert_eq!(s.poll_event(), Some(Event::StartTls));
    s.tls_failed();
    assert_eq!(s.poll_event(), Some(Event::Aborted(AbortReason::TlsFailed)));
    assert!(s.is_closed());
}

#[test]
fn hop_count_refuses_loops_at_100() {
    let mut body = Vec::new();
    for i in 0..99 {
        body.extend_from_slice(format!("Received: hop {i}\r\n").as_bytes());
    }
    let ok = run_whole(config(), &with_body(&[&body[..], b"\r\nx\r\n"].concat()));
    assert_eq!(ok.accepted.len(), 1);
    body.extend_from_slice(b"Delivered-To: one more\r\n\r\n");
    let looping = run_whole(config(), &with_body(&body));
    assert!(looping.accepted.is_empty());
    assert!(
        looping
            .events
            .contains(&Ev::Rejected(DataError::TooManyHops))
    );
    assert!(
        looping
            .out_text()
            .contains("554 5.4.6 too many hops, this message is looping\r\n")
    );
    // max_hops None: counted and reported, not refused.
    let mut cfg = config();
    cfg.max_hops = None;
    let counted = run_whole(cfg, &with_body(&body));
    assert!(
        counted
            .events
            .iter()
            .any(|e| matches!(e, Ev::DataEnd(s) if s.hops == 100))
    );
}

#[test]
fn databytes_enforced_while_streaming() {
    let mut cfg = config();
    cfg.set_databytes(10);
    let ok = run_whole(cfg.clone(), &with_body(b"123456789\r\n"));
    assert_eq!(ok.accepted, vec![b"123456789\n".to_vec()]);
    let big = run_whole(cfg, &with_body(b"1234567890\r\n"));
    assert!(big.accepted.is_empty());
    assert!(big.out_text().contains(
        "552 5.3.4 sorry, that message size exceeds my databytes limit\r\n221 mx.test\r\n"
    ));
}

#[test]
fn long_data_line_refused_after_the_end() {
    let mut cfg = config();
    cfg.max_data_line = 1000;
    let line = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
    assert_eq!(run_whole(cfg.clone(), &with_body(&line)).accepted.len(), 1);
    let long = [vec![b'x'; 999], b"\r\n".to_vec()].concat();
    let run = run_whole(cfg, &with_body(&long));
    assert!(run.events.contains(&Ev::Rejected(DataError::LineTooLong)));
    assert_eq!(codes(&run.out).last(), Some(&221), "session goes on");
}

#[test]
fn crlf_line_ending_option() {
    let mut cfg = config();
    cfg.line_ending = LineEnding::Crlf;
    let run = run_whole(cfg, &with_body(b"a\r\n..b\r\n"));
    assert_eq!(run.accepted, vec![b"a\r\n.b\r\n".to_vec()]);
}

#[test]
fn back_pressure_while_waiting() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(config(), t0);
    s.handle_input(b"MAIL FROM:<a@b.example>\r\n", t0);
    assert!(s.poll_event().is_some());
    assert!(s.wants_input());
    s.handle_input(&vec![b'x'; 300 * 1024], t0);
    assert!(!s.wants_input());
}

#[test]
fn data_end_verdict_only_after_the_event_is_seen() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(config(), t0);
    s.handle_input(&with_body(b"body\r\n"), t0);
    for _ in 0..3 {
        assert!(s.poll_event().is_some());
        s.decide(Verdict::Accept).unwrap();
    }
    assert_eq!(s.poll_event(), Some(Event::DataChunk(b"body\n")));
    // The chunk was the last of the message, but DataEnd has not been handed out yet: a
    // premature verdict cannot accept a message the application has not seen end.
    assert_eq!(s.decide(Verdict::Accept), Err(DecideError::NothingPending));
    assert!(matches!(s.poll_event(), Some(Event::DataEnd(_))));
    s.decide(Verdict::Accept).unwrap();
    assert_eq!(s.poll_event(), Some(Event::Quit));
}

#[test]
fn refuse_and_shutdown() {
    let t0 = Instant::now();
    let busy = Reply::new(421, "mx.test too many connections").unwrap();
    let mut s = ServerSession::refuse(config(), &busy, t0);
    let mut out = Vec::new();
    assert!(s.poll_transmit(&mut out));
    assert_eq!(out, b"421 mx.test too many connections\r\n");
    assert!(s.is_closed() && s.poll_event().is_none());

    // Shutdown in the middle of a message: pending replies first, then the 421; the
    // application learns the transaction is void.
    let mut s = ServerSession::new(config(), t0);
    s.handle_input(TX, t0);
    for _ in 0..3 {
        assert!(s.poll_event().is_some());
        s.decide(Verdict::Accept).unwrap();
    }
    s.handle_input(b"partial message\r\n", t0);
    assert!(matches!(s.poll_event(), Some(Event::DataChunk(_))));
    s.shutdown(
        &Reply::new(421, "shutting down")
            .unwrap()
            .with_status("4.3.2".parse().unwrap()),
    );
    assert_eq!(s.poll_event(), Some(Event::Aborted(AbortReason::Shutdown)));
    out.clear();
    let _ = s.poll_transmit(&mut out);
    assert!(out.ends_with(b"354 go ahead\r\n421 4.3.2 shutting down\r\n"));
    s.handle_input(b".\r\nMAIL FROM:<x@y.example>\r\n", t0);
    assert_eq!(s.poll_event(), None);
    assert!(s.is_closed());
}

/// A client dripping a command line one byte a second never gets more time: the deadline
/// counts from the previous reply, not from the last byte (design.md "Limits").
#[test]
fn dripping_a_line_does_not_extend_the_deadline() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(10);
    let mut s = ServerSession::new(cfg, t0);
    s.handle_input(b"HELO x\r\n", t0 + Duration::from_secs(2));
    assert!(matches!(s.poll_event(), Some(Event::Helo { .. })));
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(12));
    for (i, b) in b"MAIL FROM:<a@b.example>".iter().enumerate() {
        let at = t0 + Duration::from_secs(3 + i as u64 / 3);
        s.handle_input(&[*b], at);
        assert_eq!(s.poll_event(), None);
        assert_eq!(
            s.poll_timeout(),
            Some(deadline),
            "byte {i} moved the deadline"
        );
        s.handle_timeout(at);
        if at >= deadline {
            break;
        }
    }
    s.handle_timeout(deadline);
    assert_eq!(s.poll_event(), Some(Event::Timeout));
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    assert!(out.ends_with(b"421 4.4.2 timeout\r\n"), "{out:?}");
    assert!(s.is_closed());
}

/// DATA gets the timeout as grace, then must average `min_data_rate` bytes a second.
#[test]
fn data_must_keep_its_minimum_rate() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(10);
    cfg.min_data_rate = 100;
    let mut s = ServerSession::new(cfg.clone(), t0);
    s.handle_input(TX, t0);
    for _ in 0..3 {
        assert!(s.poll_event().is_some());
        s.decide(Verdict::Accept).unwrap();
    }
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    // 500 bytes earn 5 s beyond the grace, whenever they come.
    s.handle_input(&[b'a'; 498], t0 + Duration::from_secs(8));
    s.handle_input(b"\r\n", t0 + Duration::from_secs(9));
    while let Some(ev) = s.poll_event() {
        assert!(matches!(ev, Event::DataChunk(_)), "{ev:?}");
    }
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(15)));
    s.handle_timeout(t0 + Duration::from_secs(15));
    assert_eq!(s.poll_event(), Some(Event::Timeout));
    assert!(s.is_closed());

    // A fast message ends well, and the next command gets a fresh timeout.
    let mut s = ServerSession::new(cfg, t0);
    s.handle_input(&with_body(b"hi\r\n"), t0);
    let mut events = 0;
    while let Some(ev) = s.poll_event() {
        events += 1;
        if matches!(ev, Event::Quit) {
            break;
        }
        if !matches!(ev, Event::DataChunk(_)) {
            s.decide(Verdict::Accept).unwrap();
        }
    }
    assert!(events >= 5);
    assert!(s.is_closed());
}

/// Refused RCPTs (the application's verdict) count toward `max_errors`: an address
/// harvester is cut off after a few guesses.
#[test]
fn refused_commands_count_toward_max_errors() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.max_errors = 3;
    let mut s = ServerSession::new(cfg, t0);
    let mut input = b"MAIL FROM:<a@b.example>\r\n".to_vec();
    for i in 0..10 {
        input.extend_from_slice(format!("RCPT TO:<guess{i}@d.example>\r\n").as_bytes());
    }
    s.handle_input(&input, t0);
    assert!(matches!(s.poll_event(), Some(Event::Mail { .. })));
    s.decide(Verdict::Accept).unwrap();
    let mut refused = 0;
    let mut aborted = None;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Rcpt { .. } => {
                refused += 1;
                s.reject(550, "5.1.1 no such user").unwrap();
            }
            Event::Aborted(r) => aborted = Some(r),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, 3);
    assert_eq!(aborted, Some(AbortReason::TooManyErrors));
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    assert!(out.ends_with(b"550 5.1.1 no such user\r\n421 4.7.0 too many errors\r\n"));
    assert!(s.is_closed());
}

/// Past `max_recipients`, RCPT gets `452 4.5.3` (RFC 5321 §4.5.3.1.10) without an event.
#[test]
fn too_many_recipients_get_452() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.max_recipients = 2;
    let mut s = ServerSession::new(cfg, t0);
    s.handle_input(
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<1@d.example>\r\nRCPT TO:<2@d.example>\r\nRCPT TO:<3@d.example>\r\n",
        t0,
    );
    let (mut rcpts, mut over) = (0, 0);
    while let Some(ev) = s.poll_event() {
        if matches!(ev, Event::TooManyRecipients) {
            over += 1;
            continue;
        }
        if matches!(ev, Event::Rcpt { .. }) {
            rcpts += 1;
        }
        s.decide(Verdict::Accept).unwrap();
    }
    assert_eq!((rcpts, over), (2, 1));
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    assert!(out.ends_with(b"250 2.1.5 ok\r\n452 4.5.3 too many recipients\r\n"));
}

/// RFC 3207 on a submission port: MAIL needs TLS first (`530 5.7.0`); STARTTLS takes no
/// parameter (`501`); after the handshake STARTTLS is neither advertised nor accepted.
#[test]
fn require_tls_and_starttls_rules() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.offer_starttls = true;
    cfg.require_tls = true;
    let mut s = ServerSession::new(cfg.clone(), t0);
    s.handle_input(
        b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nSTARTTLS now\r\nSTARTTLS\r\nMAIL FROM:<x@y>\r\n",
        t0,
    );
    let mut events = Vec::new();
    while let Some(ev) = s.poll_event() {
        let start = matches!(ev, Event::StartTls);
        events.push(format!("{ev:?}"));
        if start {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.contains("250-STARTTLS\r\n") || text.contains("250 STARTTLS\r\n"));
    assert!(
        text.contains("530 5.7.0 must issue a STARTTLS command first\r\n"),
        "{text}"
    );
    assert!(
        text.contains("501 5.5.4 no arguments allowed\r\n"),
        "{text}"
    );
    assert!(text.ends_with("220 2.0.0 ready to start TLS\r\n"), "{text}");
    // The MAIL pipelined behind STARTTLS was discarded, never run.
    assert_eq!(events.last().map(String::as_str), Some("StartTls"));
    s.tls_established(t0);
    assert!(
        s.poll_event().is_none(),
        "plaintext behind STARTTLS survived"
    );
    s.handle_input(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.example>\r\n", t0);
    out.clear();
    while let Some(ev) = s.poll_event() {
        if matches!(ev, Event::Mail { .. }) {
            s.decide(Verdict::Accept).unwrap();
        }
    }
    let _ = s.poll_transmit(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(!text.contains("STARTTLS"), "advertised twice: {text}");
    assert!(text.contains("503 5.5.1 TLS already active\r\n"), "{text}");
    assert!(text.ends_with("250 2.1.0 ok\r\n"), "{text}");
}

/// Implicit TLS (port 465): the session starts encrypted and never offers STARTTLS.
#[test]
fn implicit_tls_never_offers_starttls() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.offer_starttls = true;
    cfg.require_tls = true;
    cfg.implicit_tls = true;
    let mut s = ServerSession::new(cfg, t0);
    assert!(s.is_tls());
    s.handle_input(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.example>\r\n", t0);
    while let Some(ev) = s.poll_event() {
        if matches!(ev, Event::Mail { .. }) {
            s.decide(Verdict::Accept).unwrap();
        }
    }
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        !text.contains("-STARTTLS") && !text.contains(" STARTTLS"),
        "{text}"
    );
    assert!(text.contains("502 5.5.1 unimplemented\r\n"), "{text}");
    assert!(text.ends_with("250 2.1.0 ok\r\n"), "{text}");
}

/// Runs `input` through a session with AUTH offered (inside TLS unless `clear`), deciding
/// every AUTH with `ok(login, password)`; returns the output and the events.
fn auth_run(input: &[u8], clear: bool, ok: impl Fn(&str, &[u8]) -> bool) -> (String, Vec<String>) {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.offer_auth = true;
    cfg.implicit_tls = !clear;
    let mut s = ServerSession::new(cfg, t0);
    s.handle_input(input, t0);
    let mut events = Vec::new();
    while let Some(ev) = s.poll_event() {
        events.push(format!("{ev:?}"));
        match ev {
            Event::Auth(c) => {
                if ok(&c.login, c.password.expose()) {
                    s.decide(Verdict::Accept).unwrap();
                } else {
                    s.reject(535, "5.7.8 authentication credentials invalid")
                        .unwrap();
                }
            }
            Event::Mail { .. } | Event::Rcpt { .. } => s.decide(Verdict::Accept).unwrap(),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), events)
}

fn good(login: &str, pw: &[u8]) -> bool {
    login == "joe" && pw == b"secret"
}

/// RFC 4954, rule by rule.
#[test]
fn auth_plain_and_login_follow_rfc_4954() {
    // PLAIN with an initial response ("\0joe\0secret"), then AUTH again: 503.
    let (out, events) = auth_run(
        b"EHLO c\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\n",
        false,
        good,
    );
    assert!(
        out.contains("250-AUTH PLAIN LOGIN\r\n") || out.contains("250 AUTH PLAIN LOGIN\r\n"),
        "{out}"
    );
    assert!(
        out.contains("235 2.7.0 authentication successful\r\n503 5.5.1 already authenticated\r\n"),
        "{out}"
    );
    assert!(
        !events.iter().any(|e| e.contains("secret")),
        "password in Debug: {events:?}"
    );
    // PLAIN without an initial response: an empty 334, then the response.
    let (out, _) = auth_run(b"AUTH PLAIN\r\nAGpvZQBzZWNyZXQ=\r\n", false, good);
    assert!(
        out.ends_with("334 \r\n235 2.7.0 authentication successful\r\n"),
        "{out}"
    );
    // LOGIN: Username:, Password: (base64), then the verdict; a wrong password gets 535.
    let (out, _) = auth_run(b"AUTH LOGIN\r\nam9l\r\nd3Jvbmc=\r\n", false, good);
    assert!(
        out.ends_with("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8 authentication credentials invalid\r\n"),
        "{out}"
    );
    // LOGIN with the user name as initial response.
    let (out, _) = auth_run(b"AUTH LOGIN am9l\r\nc2VjcmV0\r\n", false, good);
    assert!(
        out.ends_with("334 UGFzc3dvcmQ6\r\n235 2.7.0 authentication successful\r\n"),
        "{out}"
    );
    // `*` cancels with 501; bad base64 is 501 5.5.2; an unknown mechanism 504 5.5.4.
    let (out, _) = auth_run(
        b"AUTH LOGIN\r\n*\r\nAUTH PLAIN !!!\r\nAUTH CRAM-MD5\r\n",
        false,
        good,
    );
    assert!(
        out.contains("334 VXNlcm5hbWU6\r\n501 5.7.0 authentication cancelled\r\n"),
        "{out}"
    );
    assert!(
        out.contains("501 5.5.2 cannot decode response\r\n"),
        "{out}"
    );
    assert!(
        out.ends_with("504 5.5.4 unrecognized authentication type\r\n"),
        "{out}"
    );
    // `=` is an empty initial response: PLAIN needs its NULs, so that is malformed.
    let (out, _) = auth_run(b"AUTH PLAIN =\r\n", false, good);
    assert!(
        out.ends_with("501 5.5.2 malformed authentication response\r\n"),
        "{out}"
    );
    // Inside a transaction: 503.
    let (out, _) = auth_run(
        b"MAIL FROM:<a@b.example>\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\n",
        false,
        good,
    );
    assert!(
        out.ends_with("503 5.5.1 AUTH not allowed during a mail transaction\r\n"),
        "{out}"
    );
    // MAIL ... AUTH=<> is accepted when AUTH is offered.
    let (out, events) = auth_run(b"MAIL FROM:<a@b.example> AUTH=<>\r\n", false, good);
    assert!(out.ends_with("250 2.1.0 ok\r\n"), "{out}");
    assert!(events[0].contains("auth: Some(\"<>\")"), "{events:?}");
}

#[test]
fn auth_is_offered_only_inside_tls_and_can_be_required() {
    // Not in TLS: not advertised, refused.
    let (out, _) = auth_run(b"EHLO c\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\n", true, good);
    assert!(!out.contains("AUTH PLAIN LOGIN"), "{out}");
    assert!(out.ends_with("503 5.5.1 AUTH not available\r\n"), "{out}");
    // Required before MAIL.
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.offer_auth = true;
    cfg.implicit_tls = true;
    cfg.require_auth = true;
    let mut s = ServerSession::new(cfg, t0);
    s.handle_input(
        b"MAIL FROM:<a@b.example>\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nMAIL FROM:<a@b.example>\r\n",
        t0,
    );
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Auth(c) => {
                assert_eq!(c.login, "joe");
                s.decide(Verdict::Accept).unwrap();
            }
            Event::Mail { .. } => s.decide(Verdict::Accept).unwrap(),
            _ => {}
        }
    }
    assert_eq!(s.authenticated(), Some("joe"));
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains("530 5.7.0 authentication required\r\n235 2.7.0"),
        "{out}"
    );
    assert!(out.ends_with("250 2.1.0 ok\r\n"), "{out}");
}

/// AUTH lines may be up to 12,288 octets (RFC 4954 §4), longer than command lines.
#[test]
fn auth_lines_up_to_12288_octets() {
    let long = format!("AUTH PLAIN {}\r\n", "A".repeat(12_000));
    let (out, events) = auth_run(long.as_bytes(), false, good);
    assert!(!out.contains("line too long"), "{out}");
    assert!(
        !events.iter().any(|e| e.contains("CommandTooLong")),
        "{events:?}"
    );
    let longer = format!("AUTH PLAIN {}\r\n", "A".repeat(12_300));
    let (out, _) = auth_run(longer.as_bytes(), false, good);
    assert!(out.contains("500 5.5.2 line too long"), "{out}");
}

/// Issue 21: DataEnd carries the transaction's envelope (refused recipients left out, a
/// RSET forgetting the first transaction) and the peer given to `with_peer`; the session's
/// `envelope()` shows the transaction so far.
#[test]
fn data_end_carries_envelope_and_peer() {
    use mta_core::Envelope;
    let input = b"EHLO c\r\nMAIL FROM:<old@x.test>\r\nRCPT TO:<gone@y.test>\r\nRSET\r\n\
        MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<reject@y.test>\r\nRCPT TO:<Postmaster>\r\n\
        DATA\r\nhi\r\n.\r\nQUIT\r\n";
    let run = run_whole(config(), input);
    let ends: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Ev::DataEnd(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(
        ends[0].envelope,
        Envelope::new("", ["a@y.test", "postmaster"])
    );
    assert_eq!(ends[0].peer, None);

    let now = Instant::now();
    let peer = "192.0.2.7:4567".parse().unwrap();
    let mut s = ServerSession::new(config(), now).with_peer(peer);
    assert_eq!(s.peer(), Some(peer));
    assert_eq!(s.envelope(), None);
    s.handle_input(
        b"HELO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n",
        now,
    );
    while let Some(ev) = s.poll_event() {
        if matches!(ev, Event::Mail { .. } | Event::Rcpt { .. }) {
            s.decide(Verdict::Accept).unwrap();
        }
    }
    assert_eq!(s.envelope(), Some(&Envelope::new("a@x.test", ["b@y.test"])));
    s.handle_input(b"DATA\r\n", now);
    while let Some(ev) = s.poll_event() {
        if ev == Event::DataStart {
            s.decide(Verdict::Accept).unwrap();
        }
    }
    s.handle_input(b"x\r\n.\r\n", now);
    let mut summary = None;
    while let Some(ev) = s.poll_event() {
        if let Event::DataEnd(sum) = ev {
            summary = Some(sum);
            break;
        }
    }
    let summary = summary.expect("DataEnd");
    assert_eq!(summary.peer, Some(peer));
    assert_eq!(summary.envelope, Envelope::new("a@x.test", ["b@y.test"]));
}
