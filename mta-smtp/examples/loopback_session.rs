//! Client and server sessions talking in memory, no sockets: prints the SMTP dialogue and
//! the per-recipient results.
//!
//! ```text
//! cargo run -p mta-smtp --example loopback_session
//! ```

use std::time::Instant;

use mta_core::Envelope;
use mta_smtp::{
    ClientConfig, ClientEvent, ClientSession, Event, Reply, ServerConfig, ServerSession, Verdict,
};

fn show(prefix: &str, bytes: &[u8]) {
    for line in String::from_utf8_lossy(bytes).split_inclusive("\r\n") {
        print!("{prefix} {}", line.replace("\r\n", "\n"));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The example owns the clock; the sessions only ever see `now` as an argument.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut server = ServerSession::new(ServerConfig::new("mx.example.net"), now);
    let envelope = Envelope::new(
        "alice@example.org",
        ["bob@example.net", "nobody@example.net", "carol@example.net"],
    );
    let mut client =
        ClientSession::new(ClientConfig::new("client.example.org", "mx"), envelope, now);
    let message = b"Subject: in memory\n\nHello.\n.A line starting with a dot.\n";
    let mut stored = Vec::new();
    let mut wire = Vec::new();
    while !client.is_finished() {
        if server.poll_transmit(&mut wire) {
            show("S:", &wire);
            client.handle_input(&wire, now);
            wire.clear();
        }
        while let Some(ev) = client.poll_event() {
            if ev == ClientEvent::SendBody {
                client.send_body(message);
                client.finish_body(now);
            }
        }
        if client.poll_transmit(&mut wire) {
            show("C:", &wire);
            server.handle_input(&wire, now);
            wire.clear();
        }
        while let Some(ev) = server.poll_event() {
            let verdict = match ev {
                Event::Rcpt { path, .. } if path.to_address().local_part() == b"nobody" => {
                    Verdict::Reject(Reply::new(550, "no such user")?.with_status("5.1.1".parse()?))
                }
                Event::DataChunk(c) => {
                    stored.extend_from_slice(c);
                    continue;
                }
                Event::DataEnd(summary) => {
                    let text = format!("ok {} bytes queued as 1", summary.size);
                    Verdict::AcceptWith(Reply::new(250, &text)?)
                }
                Event::Mail { .. } | Event::Rcpt { .. } | Event::DataStart => Verdict::Accept,
                _ => continue,
            };
            server.decide(verdict)?;
        }
    }
    println!("\nstored message ({} bytes):", stored.len());
    print!("{}", String::from_utf8_lossy(&stored));
    println!("\nresults:");
    for r in client.results() {
        println!("  {} {}", r.letter(), r.text().replace('\n', " / "));
    }
    Ok(())
}
