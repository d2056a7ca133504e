//! mta-core on its own: an SMTP envelope from `MAIL FROM`/`RCPT TO` arguments, the
//! recipients of a message's To: field, and the trace lines an SMTP server adds.
//!
//! ```text
//! cargo run -p mta-core --example parse_message
//! ```

use mta_core::address_list::{ParseOptions, parse_address_list};
use mta_core::header::{self, ReceivedSmtp, received_smtp};
use mta_core::path::{PathOptions, parse_forward_path, parse_reverse_path};
use mta_core::{Envelope, date};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The envelope, from the arguments of MAIL FROM and RCPT TO (RFC 5321 §4.1.2).
    let (sender, _) = parse_reverse_path(b"<alice@example.com>", PathOptions::default())?;
    let (rcpt, _) = parse_forward_path(b"<Bob@Example.ORG>", PathOptions::default())?;
    let envelope = Envelope::new(sender.to_address(), [rcpt.to_address()]);
    println!("envelope: {} -> {:?}", envelope.sender, envelope.recipients);
    assert_eq!(envelope.sender.to_string(), "alice@example.com");

    // The message: header fields, and the addresses its To: names (RFC 5322 §3.4).
    let message = b"To: Bob <Bob@Example.ORG>, team: carol@example.org;\nSubject: hi\n\nbody\n";
    let mut fields = header::fields(message);
    let to = fields.next().ok_or("no To: field")?;
    assert!(to.is("to"));
    let list = parse_address_list(to.value(), &ParseOptions::strict())?;
    let named: Vec<String> = list
        .mailboxes()
        .map(|m| m.to_address().to_string())
        .collect();
    println!("To: names {named:?}");
    assert_eq!(named, ["Bob@Example.ORG", "carol@example.org"]);

    // The Received: line an SMTP server puts in front (qmail-smtpd's shape).
    let now = date::qmail_date822(1_795_925_285);
    let mut trace = ReceivedSmtp::new("client.example.com", "192.0.2.7", "mx.example.org", &now);
    trace.helo = Some("client.example.com");
    let line = String::from_utf8(received_smtp(&trace))?;
    print!("{line}");
    assert_eq!(
        line,
        "Received: from client.example.com (192.0.2.7)\n  by mx.example.org with SMTP; 29 Nov 2026 04:08:05 -0000\n"
    );
    println!("ok");
    Ok(())
}
