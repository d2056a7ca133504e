//! Client session: against our own server in memory, and against scripted servers for
//! each of qmail-remote's outcome rules.

use std::time::{Duration, Instant};

use mta_core::{Address, DeliveryResult, Envelope};
use mta_smtp::{ClientConfig, ClientEvent, ClientSession, ServerSession, TlsPolicy};

use crate::common::{Run, config, drain};

fn ccfg() -> ClientConfig {
    ClientConfig::new("client.test", "192.0.2.1")
}

/// Client against our ServerSession with the common test policy.
fn against_server(env: Envelope, message: &[u8]) -> (Vec<DeliveryResult>, Run, usize) {
    let now = Instant::now();
    let mut server = ServerSession::new(config(), now);
    let mut client = ClientSession::new(ccfg(), env, now);
    let mut run = Run::default();
    let mut partial = Vec::new();
    let mut wire = Vec::new();
    let mut client_writes = 0;
    for _ in 0..100 {
        if client.is_finished() {
            break;
        }
        let before = run.out.len();
        drain(&mut server, &mut run, &mut partial);
        if run.out.len() > before {
            client.handle_input(&run.out[before..], now);
        }
        while let Some(ev) = client.poll_event() {
            if ev == ClientEvent::SendBody {
                for piece in message.chunks(7) {
                    client.send_body(piece);
                }
                client.finish_body(now);
            }
        }
        if client.poll_transmit(&mut wire) {
            client_writes += 1;
            server.handle_input(&wire, now);
            wire.clear();
        }
    }
    assert!(client.is_finished());
    (client.results(), run, client_writes)
}

#[test]
fn pipelined_delivery_to_our_server() {
    let env = Envelope::new(
        "sender@example.org",
        [
            "ok1@example.com",
            "rejectme@example.com",
            "deferme@example.com",
            "ok2@example.com",
        ],
    );
    let (results, run, writes) = against_server(
        env,
        b"Subject: x\n\n.dot\nbare\rcr\r\nstored crlf\nno final newline",
    );
    let letters: String = results.iter().map(DeliveryResult::letter).collect();
    assert_eq!(letters, "KDZK");
    assert!(
        results[0]
            .text()
            .starts_with("192.0.2.1 accepted message.\nRemote host said: 250 2.0.0 ok 1")
    );
    assert_eq!(
        results[1],
        DeliveryResult::Failed {
            text: "192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user"
                .into(),
            status: Some("5.1.1".parse().unwrap()),
        }
    );
    assert_eq!(
        run.accepted,
        vec![b"Subject: x\n\n.dot\nbare\ncr\nstored crlf\nno final newline\n".to_vec()]
    );
    // EHLO; MAIL+4 RCPT+DATA in one write; body; QUIT.
    assert_eq!(writes, 4, "MAIL, RCPTs and DATA were not pipelined");
}

/// A scripted server: replies in order, one per command line, and one after the body.
fn scripted(cfg: ClientConfig, env: Envelope, replies: &[&str]) -> (Vec<DeliveryResult>, String) {
    let now = Instant::now();
    let mut client = ClientSession::new(cfg, env, now);
    let mut replies = replies.iter();
    let mut sent = String::new();
    let mut pending = String::new();
    let mut in_body = false;
    client.handle_input(replies.next().unwrap().as_bytes(), now);
    let mut wire = Vec::new();
    for _ in 0..100 {
        while let Some(ev) = client.poll_event() {
            match ev {
                ClientEvent::SendBody => {
                    in_body = true;
                    client.send_body(b"hello\n");
                    client.finish_body(now);
                }
                ClientEvent::StartTls => client.tls_established(now),
                _ => {}
            }
        }
        if client.is_finished() {
            let _ = client.poll_transmit(&mut wire);
            sent.push_str(&String::from_utf8_lossy(&wire));
            break;
        }
        if !client.poll_transmit(&mut wire) {
            // Nothing to send: the script ran dry; the server hangs up.
            client.handle_eof();
            continue;
        }
        let text = String::from_utf8_lossy(&wire).into_owned();
        wire.clear();
        sent.push_str(&text);
        pending.push_str(&text);
        while let Some(i) = pending.find("\r\n") {
            let line: String = pending.drain(..i + 2).collect();
            if in_body {
                if line == ".\r\n" {
                    in_body = false;
                } else {
                    continue;
                }
            }
            match replies.next() {
                Some(r) => client.handle_input(r.as_bytes(), now),
                None => client.handle_eof(),
            }
            while let Some(ev) = client.poll_event() {
                if ev == ClientEvent::SendBody {
                    in_body = true;
                    client.send_body(b"hello\n");
                    client.finish_body(now);
                }
                if ev == ClientEvent::StartTls {
                    client.tls_established(now);
                }
            }
        }
    }
    assert!(client.is_finished());
    (client.results(), sent)
}

fn env2() -> Envelope {
    Envelope::new("s@example.org", ["a@example.com", "b@example.com"])
}

const EHLO_PLAIN: &str = "250-mx\r\n250 8BITMIME\r\n";

#[test]
fn without_pipelining_one_command_per_reply() {
    let (r, sent) = scripted(
        ccfg(),
        env2(),
        &[
            "220 mx\r\n",
            EHLO_PLAIN,
            "250 ok\r\n",
            "250 ok\r\n",
            "550 no\r\n",
            "354 go\r\n",
            "250 queued\r\n",
        ],
    );
    assert_eq!(
        r.iter().map(DeliveryResult::letter).collect::<String>(),
        "KD"
    );
    assert_eq!(
        sent,
        "EHLO client.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\n\
RCPT TO:<b@example.com>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n"
    );
}

#[test]
fn helo_fallback() {
    let (r, sent) = scripted(
        ccfg(),
        env2(),
        &[
            "220 mx\r\n",
            "502 what\r\n",
            "250 hi\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert!(r.iter().all(DeliveryResult::is_delivered));
    assert!(
        sent.starts_with("EHLO client.test\r\nHELO client.test\r\nMAIL FROM:<s@example.org>\r\n")
    );
}

#[test]
fn greeting_and_helo_failures_are_temporary() {
    let (r, sent) = scripted(ccfg(), env2(), &["554 go away\r\n"]);
    assert_eq!(sent, "QUIT\r\n");
    assert_eq!(
        r[0],
        DeliveryResult::Deferred {
            text: "Connected to 192.0.2.1 but greeting failed.\nRemote host said: 554 go away"
                .into(),
            status: None,
        }
    );
    let (r, _) = scripted(ccfg(), env2(), &["220 mx\r\n", "550 no\r\n", "550 no\r\n"]);
    assert!(
        r[1].text()
            .starts_with("Connected to 192.0.2.1 but my name was rejected.")
    );
    assert_eq!(r[1].letter(), 'Z');
}

#[test]
fn mail_refused() {
    let (r, _) = scripted(
        ccfg(),
        env2(),
        &["220 mx\r\n", EHLO_PLAIN, "553 5.7.1 bad sender\r\n"],
    );
    assert_eq!(
        r.iter().map(DeliveryResult::letter).collect::<String>(),
        "DD"
    );
    assert!(
        r[0].text()
            .starts_with("Connected to 192.0.2.1 but sender was rejected.")
    );
    let (r, _) = scripted(ccfg(), env2(), &["220 mx\r\n", EHLO_PLAIN, "451 later\r\n"]);
    assert_eq!(
        r.iter().map(DeliveryResult::letter).collect::<String>(),
        "ZZ"
    );
}

#[test]
fn data_and_final_reply_rules() {
    let base = [
        "220 mx\r\n",
        EHLO_PLAIN,
        "250 ok\r\n",
        "250 ok\r\n",
        "550 no\r\n",
    ];
    for (tail, want) in [
        (&["554 no data\r\n"][..], "DD"),
        (&["451 no data\r\n"][..], "ZD"),
        (&["354 go\r\n", "552 5.3.4 too big\r\n"][..], "DD"),
        (&["354 go\r\n", "451 4.3.0 disk full\r\n"][..], "ZD"),
        (&["354 go\r\n", "250 ok\r\n"][..], "KD"),
        (&["354 go\r\n", "399 odd\r\n"][..], "ZD"),
    ] {
        let script: Vec<&str> = base.iter().chain(tail).copied().collect();
        let (r, _) = scripted(ccfg(), env2(), &script);
        assert_eq!(
            r.iter().map(DeliveryResult::letter).collect::<String>(),
            want,
            "{tail:?}"
        );
    }
}

#[test]
fn connection_lost_after_the_dot_is_a_possible_duplicate() {
    let (r, _) = scripted(
        ccfg(),
        env2(),
        &[
            "220 mx\r\n",
            EHLO_PLAIN,
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
        ],
    );
    assert_eq!(
        r[0],
        DeliveryResult::Deferred {
            text: "Connected to 192.0.2.1 but connection died. Possible duplicate!".into(),
            status: Some("4.4.2".parse().unwrap()),
        }
    );
    let (r, _) = scripted(ccfg(), env2(), &["220 mx\r\n", EHLO_PLAIN, "250 ok\r\n"]);
    assert_eq!(r[0].text(), "Connected to 192.0.2.1 but connection died.");
}

#[test]
fn no_recipient_accepted_after_pipelined_data() {
    // RFC 2920 §3.1: the server said 354 anyway; the client sends an empty message.
    let (r, sent) = scripted(
        ccfg(),
        env2(),
        &[
            "220 mx\r\n",
            "250-mx\r\n250 PIPELINING\r\n",
            "250 ok\r\n",
            "550 a\r\n",
            "550 b\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert_eq!(
        r.iter().map(DeliveryResult::letter).collect::<String>(),
        "DD"
    );
    assert!(sent.ends_with("DATA\r\n.\r\nQUIT\r\n"), "{sent}");
}

#[test]
fn starttls_flow_and_leftover_abort() {
    let mut cfg = ccfg();
    cfg.tls = TlsPolicy::Opportunistic;
    let offer = "250-mx\r\n250 STARTTLS\r\n";
    let (r, sent) = scripted(
        cfg.clone(),
        env2(),
        &[
            "220 mx\r\n",
            offer,
            "220 go\r\n",
            EHLO_PLAIN,
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert!(r.iter().all(DeliveryResult::is_delivered), "{r:?}");
    assert!(sent.starts_with("EHLO client.test\r\nSTARTTLS\r\nEHLO client.test\r\nMAIL"));
    // CVE-2011-0411, client side: bytes behind the 220 are discarded, never taken as the
    // reply to the EHLO sent after the handshake (here they would have accepted it and
    // every later command).
    let (r, sent) = scripted(
        cfg.clone(),
        env2(),
        &[
            "220 mx\r\n",
            offer,
            "220 go\r\n250-injected\r\n250 PIPELINING\r\n",
            "554 no EHLO for you\r\n",
            "250 helo ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert!(r.iter().all(DeliveryResult::is_delivered), "{r:?}");
    assert!(
        sent.starts_with(
            "EHLO client.test\r\nSTARTTLS\r\nEHLO client.test\r\nHELO client.test\r\nMAIL"
        ),
        "the injected EHLO reply was used: {sent}"
    );
    // Required but not offered: deferred, nothing sent in clear.
    cfg.tls = TlsPolicy::Required;
    let (r, sent) = scripted(cfg, env2(), &["220 mx\r\n", EHLO_PLAIN]);
    assert_eq!(r[0].letter(), 'Z');
    assert_eq!(sent, "EHLO client.test\r\nQUIT\r\n");
}

#[test]
fn envelope_injection_is_refused() {
    let env = Envelope {
        sender: Address::from("s@example.org"),
        recipients: vec![
            Address::from_bytes(b"a@example.com>\r\nRCPT TO:<evil@x.example".to_vec()),
            Address::from("b@example.com"),
            Address::from_bytes(b"c\x00@example.com".to_vec()),
        ],
    };
    let (r, sent) = scripted(
        ccfg(),
        env,
        &[
            "220 mx\r\n",
            EHLO_PLAIN,
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert_eq!(
        r.iter().map(DeliveryResult::letter).collect::<String>(),
        "DKD"
    );
    assert!(!sent.contains("evil") && !sent.contains('\0'));
    let env = Envelope::new(
        Address::from_bytes(b"s@x\nDATA".to_vec()),
        ["b@example.com"],
    );
    let (r, sent) = scripted(ccfg(), env, &["220 mx\r\n", EHLO_PLAIN]);
    assert_eq!(r[0].letter(), 'D');
    assert_eq!(sent, "EHLO client.test\r\nQUIT\r\n");
}

#[test]
fn bad_and_endless_replies_defer() {
    let (r, _) = scripted(ccfg(), env2(), &["220 mx\r\n", "garbage\r\n"]);
    assert_eq!(r[0].letter(), 'Z');
    let endless = "250-x\r\n".repeat(20_000);
    let (r, _) = scripted(ccfg(), env2(), &["220 mx\r\n", &endless]);
    assert_eq!(r[0].letter(), 'Z');
    assert!(r[0].text().contains("too long"));
}

#[test]
fn smtputf8_and_size_checks() {
    // Only the UTF-8 recipient fails when the server lacks SMTPUTF8; the other is sent.
    let mixed = Envelope::new(
        "s@example.org",
        ["m\u{fc}ller@example.com", "b@example.com"],
    );
    let (r, sent) = scripted(
        ccfg(),
        mixed,
        &[
            "220 mx\r\n",
            EHLO_PLAIN,
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert_eq!(
        r.iter().map(DeliveryResult::letter).collect::<String>(),
        "DK"
    );
    assert_eq!(
        r[0].clone(),
        DeliveryResult::Failed {
            text: "192.0.2.1 does not support SMTPUTF8, which this address needs.".into(),
            status: Some("5.6.7".parse().unwrap()),
        }
    );
    assert!(!sent.contains("SMTPUTF8") && !sent.contains("ller"));
    // A UTF-8 sender fails everything.
    let env8 = Envelope::new("j\u{f6}rg@example.org", ["b@example.com"]);
    let (r, _) = scripted(ccfg(), env8, &["220 mx\r\n", EHLO_PLAIN]);
    assert_eq!(r[0].letter(), 'D');
    let env = Envelope::new("s@example.org", ["m\u{fc}ller@example.com"]);
    let (r, sent) = scripted(
        ccfg(),
        env,
        &[
            "220 mx\r\n",
            "250-mx\r\n250 SMTPUTF8\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert_eq!(r[0].letter(), 'K');
    assert!(sent.contains("MAIL FROM:<s@example.org> SMTPUTF8\r\n"));
    let mut cfg = ccfg();
    cfg.message_size = Some(5000);
    let (r, _) = scripted(
        cfg.clone(),
        env2(),
        &["220 mx\r\n", "250-mx\r\n250 SIZE 4000\r\n"],
    );
    assert_eq!(r[0].letter(), 'D');
    let (_, sent) = scripted(
        cfg,
        env2(),
        &["220 mx\r\n", "250-mx\r\n250 SIZE 0\r\n", "451 x\r\n"],
    );
    assert!(sent.contains("MAIL FROM:<s@example.org> SIZE=5000\r\n"));
}

#[test]
fn reply_timeout() {
    let t0 = Instant::now();
    let mut cfg = ccfg();
    cfg.timeout = Duration::from_secs(30);
    let mut c = ClientSession::new(cfg, env2(), t0);
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    c.handle_timeout(t0 + Duration::from_secs(29));
    assert!(!c.is_finished());
    c.handle_timeout(t0 + Duration::from_secs(30));
    assert!(c.is_finished());
    assert_eq!(c.poll_event(), Some(ClientEvent::Finished));
    assert!(c.results().iter().all(|r| r.letter() == 'Z'));
}

#[test]
fn reply_timeout_runs_from_the_end_of_the_body() {
    let t0 = Instant::now();
    let mut cfg = ccfg();
    cfg.timeout = Duration::from_secs(30);
    let env = Envelope::new("s@example.org", ["a@example.com"]);
    let mut c = ClientSession::new(cfg, env, t0);
    let mut sink = Vec::new();
    for reply in [
        "220 mx\r\n",
        "250-mx\r\n250 PIPELINING\r\n",
        "250 ok\r\n250 ok\r\n354 go\r\n",
    ] {
        c.handle_input(reply.as_bytes(), t0);
        let _ = c.poll_transmit(&mut sink);
    }
    assert_eq!(c.poll_event(), Some(ClientEvent::SendBody));
    // While the caller streams the body there is no reply timeout.
    assert_eq!(c.poll_timeout(), None);
    let later = t0 + Duration::from_secs(100);
    c.send_body(b"big message\n");
    c.finish_body(later);
    assert_eq!(c.poll_timeout(), Some(later + Duration::from_secs(30)));
    c.handle_timeout(later + Duration::from_secs(30));
    assert_eq!(
        c.results()[0].text(),
        "Connected to 192.0.2.1 but connection died. Possible duplicate!"
    );
}

/// Every dialogue ends with QUIT, and the client waits for its reply (or the close) so
/// the server has read the QUIT before the connection goes.
#[test]
fn quit_is_sent_and_its_reply_awaited() {
    let now = Instant::now();
    let env = Envelope::new("s@example.org", ["a@example.com"]);
    let mut c = ClientSession::new(ccfg(), env, now);
    let mut wire = Vec::new();
    for reply in [
        "220 mx\r\n",
        "250-mx\r\n250 PIPELINING\r\n",
        "250 ok\r\n250 ok\r\n354 go\r\n",
    ] {
        c.handle_input(reply.as_bytes(), now);
        while let Some(ev) = c.poll_event() {
            if ev == ClientEvent::SendBody {
                c.send_body(b"hi\n");
                c.finish_body(now);
            }
        }
    }
    c.handle_input(b"250 queued\r\n", now);
    let _ = c.poll_transmit(&mut wire);
    assert!(String::from_utf8_lossy(&wire).ends_with(".\r\nQUIT\r\n"));
    assert!(
        c.results()[0].is_delivered(),
        "results are final before the 221"
    );
    assert!(!c.is_finished(), "finished before the QUIT was answered");
    assert!(c.poll_timeout().is_some());
    c.handle_input(b"221 bye\r\n", now);
    assert!(c.is_finished());
    assert_eq!(c.poll_event(), Some(ClientEvent::Finished));
    // A server that closes instead of answering ends it too; so does the timeout.
    let env = Envelope::new("s@example.org", ["a@example.com"]);
    let mut c = ClientSession::new(ccfg(), env, now);
    c.handle_input(b"554 go away\r\n", now);
    assert!(!c.is_finished());
    c.handle_eof();
    assert!(c.is_finished());
    assert_eq!(c.results()[0].letter(), 'Z');
}

/// The client logs in with AUTH PLAIN after STARTTLS, LOGIN when PLAIN is not offered, and
/// never sends credentials outside TLS.
#[test]
fn client_auth_plain_login_and_never_in_clear() {
    let mut cfg = ccfg();
    cfg.tls = TlsPolicy::Required;
    cfg.auth = Some(mta_smtp::ClientAuth {
        login: "joe".into(),
        password: mta_smtp::Secret::new(b"secret".to_vec()),
    });
    let tls_offer = "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n";
    let after = "250-mx\r\n250 AUTH PLAIN LOGIN\r\n";
    let (r, sent) = scripted(
        cfg.clone(),
        env2(),
        &[
            "220 mx\r\n",
            tls_offer,
            "220 go\r\n",
            after,
            "235 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert!(r.iter().all(DeliveryResult::is_delivered), "{r:?}");
    assert!(
        sent.contains("EHLO client.test\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nMAIL FROM:"),
        "{sent}"
    );
    // LOGIN when PLAIN is not offered.
    let after_login = "250-mx\r\n250 AUTH LOGIN\r\n";
    let (r, sent) = scripted(
        cfg.clone(),
        env2(),
        &[
            "220 mx\r\n",
            tls_offer,
            "220 go\r\n",
            after_login,
            "334 VXNlcm5hbWU6\r\n",
            "334 UGFzc3dvcmQ6\r\n",
            "235 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert!(r.iter().all(DeliveryResult::is_delivered), "{r:?}");
    assert!(
        sent.contains("AUTH LOGIN\r\nam9l\r\nc2VjcmV0\r\nMAIL"),
        "{sent}"
    );
    // A refused login defers, with the server's words.
    let (r, _) = scripted(
        cfg.clone(),
        env2(),
        &[
            "220 mx\r\n",
            tls_offer,
            "220 go\r\n",
            after,
            "535 5.7.8 no\r\n",
        ],
    );
    assert_eq!(r[0].letter(), 'Z');
    assert!(r[0].text().contains("refused my AUTH"), "{r:?}");
    // Without TLS: no credentials on the wire.
    cfg.tls = TlsPolicy::Opportunistic;
    let (r, sent) = scripted(cfg, env2(), &["220 mx\r\n", after]);
    assert_eq!(r[0].letter(), 'Z');
    assert!(!sent.contains("AUTH"), "{sent}");
    assert!(r[0].text().contains("without TLS"), "{r:?}");
}

/// `reuse_connection`: two messages over one connection, no QUIT in between, then `close`.
#[test]
fn reused_connection_carries_two_messages() {
    let now = Instant::now();
    let mut server = ServerSession::new(config(), now);
    let mut cfg = ccfg();
    cfg.reuse_connection = true;
    let first = Envelope::new("a@example.org", ["b@example.com"]);
    let second = Envelope::new("c@example.org", ["rejectme@example.com", "d@example.com"]);
    let mut client = ClientSession::new(cfg, first, now);
    let (mut run, mut partial, mut wire) = (Run::default(), Vec::new(), Vec::new());
    let mut results = Vec::new();
    let mut idle_events = 0;
    for _ in 0..200 {
        let before = run.out.len();
        drain(&mut server, &mut run, &mut partial);
        if run.out.len() > before {
            client.handle_input(&run.out[before..], now);
        }
        while let Some(ev) = client.poll_event() {
            match ev {
                ClientEvent::SendBody => {
                    client.send_body(b"hi\n");
                    client.finish_body(now);
                }
                ClientEvent::Idle => idle_events += 1,
                _ => {}
            }
        }
        if client.is_idle() {
            assert!(client.is_finished());
            results.push(client.results());
            if results.len() == 1 {
                assert!(client.next_message(second.clone(), now));
            } else {
                client.close(now);
                assert!(!client.next_message(second.clone(), now));
            }
        }
        if client.poll_transmit(&mut wire) {
            server.handle_input(&wire, now);
            wire.clear();
        }
        if client.is_finished() && !client.is_idle() && server.is_closed() {
            break;
        }
    }
    assert_eq!(idle_events, 2);
    assert_eq!(results.len(), 2);
    assert!(results[0][0].is_delivered(), "{results:?}");
    assert!(matches!(results[1][0], DeliveryResult::Failed { .. }));
    assert!(results[1][1].is_delivered(), "{results:?}");
    assert_eq!(run.accepted, vec![b"hi\n".to_vec(), b"hi\n".to_vec()]);
    let text = run.out_text();
    assert_eq!(text.matches("221 ").count(), 1, "{text}");
    assert!(server.is_closed());
}
