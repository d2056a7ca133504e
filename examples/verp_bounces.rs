//! Map mailing-list bounces back to subscribers with mta-verp.
//!
//! With VERP each subscriber's copy goes out with its own envelope sender
//! (`list-bob=example.net@lists.example.org`), so the bounce's envelope recipient names the
//! subscriber. Without it, the bounce itself is read (qmail's QSBMF here; RFC 3464 DSNs and
//! Exim's X-Failed-Recipients work the same way).
//!
//! ```text
//! cargo run --example verp_bounces
//! ```

use mta::core::Address;
use mta::verp::{Verp, parse_bounce};

const QSBMF_BOUNCE: &[u8] = b"From: MAILER-DAEMON@mx.example.net\n\
Subject: failure notice\n\
\n\
Hi. This is the qmail-send program at mx.example.net.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\
\n\
<carol@example.net>:\n\
Sorry, no mailbox here by that name. (#5.1.1)\n\
\n\
--- Below this line is a copy of the message.\n\
\n\
Subject: list traffic\n";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let list = Address::from("list@lists.example.org");

    // Sending: one envelope sender per subscriber.
    let bob = Address::from("bob@example.net");
    let sender = Verp::QMAIL.encode(&list, &bob)?;
    println!("bob's copy goes out from {sender}");
    assert_eq!(
        sender,
        Address::from("list-bob=example.net@lists.example.org")
    );

    // A bounce arrives for that address: the subscriber comes from the address alone.
    let subscriber = Verp::QMAIL.decode(&list, &sender)?;
    println!("bounce to {sender} -> unsubscribe {subscriber}");
    assert_eq!(subscriber, bob);

    // Without VERP: read the bounce.
    let bounce = parse_bounce(QSBMF_BOUNCE)?;
    let failed: Vec<String> = bounce
        .failures()
        .map(|r| r.subscriber().to_string())
        .collect();
    for r in bounce.failures() {
        println!("failed: {} ({})", r.subscriber(), r.reason.trim());
    }
    assert_eq!(failed, ["carol@example.net"]);
    println!("ok");
    Ok(())
}
