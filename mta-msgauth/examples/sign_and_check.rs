//! Signs a message with a fresh Ed25519 key, then checks it the way a receiving MTA would,
//! against a tiny DNS server on loopback that publishes the key, an SPF record and a DMARC
//! record. Prints the Authentication-Results field and fails unless everything passes.
//!
//! `cargo run -p mta-msgauth --example sign_and_check`

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use mta_msgauth::{
    BlockingVerifier, DkimResult, DmarcResult, KeyKind, KeyStore, Signer, SpfResult,
    VerifierConfig, dns_name, generate_key, remove_auth_results, write_key,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The key directory, as control/dkim would be.
    let dir = std::env::temp_dir().join(format!("msgauth-example-{}", std::process::id()));
    let key = generate_key(KeyKind::Ed25519)?;
    write_key(&dir, "example.com", "s1", &key)?;

    // Sign.
    let message = b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n\
                    Subject: signed\r\nAuthentication-Results: mx.example.org; dkim=pass\r\n\
                    \r\nHello Bob.\r\n";
    let mut signed = Signer::new(KeyStore::new(&dir)).sign(message)?;
    signed.extend_from_slice(message);
    std::fs::remove_dir_all(&dir)?;

    // Publish the records and check as mx.example.org, receiving from 127.0.0.1.
    let mut zone = HashMap::new();
    zone.insert(dns_name("example.com", "s1"), key.dns_record());
    zone.insert(
        "example.com".to_string(),
        "v=spf1 ip4:127.0.0.1 -all".to_string(),
    );
    zone.insert(
        "_dmarc.example.com".to_string(),
        "v=DMARC1; p=reject".to_string(),
    );
    let dns = serve_txt(zone)?;
    let verifier = BlockingVerifier::new(
        VerifierConfig::new(vec![dns])
            .query_timeout(Duration::from_secs(2))
            .hostname("mx.example.org"),
    )?;
    let client = IpAddr::from([127, 0, 0, 1]);
    let spf = verifier.check_spf(client, "client.example.com", "alice@example.com");
    let results = verifier.check_message(&spf, &signed);

    let mut delivered = results.header("mx.example.org").into_bytes();
    delivered.extend_from_slice(&remove_auth_results(&signed, "mx.example.org"));
    print!("{}", String::from_utf8_lossy(&delivered));

    let ok = results.spf().result() == SpfResult::Pass
        && results
            .dkim()
            .iter()
            .all(|d| d.result() == DkimResult::Pass)
        && results.dmarc().result() == DmarcResult::Pass
        && !String::from_utf8_lossy(&delivered).contains("; dkim=pass\r\n");
    if !ok {
        return Err("expected spf, dkim and dmarc to pass and the forged field to go".into());
    }
    Ok(())
}

/// A minimal DNS server on 127.0.0.1 (UDP only) answering TXT queries from `zone` and
/// NXDOMAIN to anything else; it runs until the program ends.
fn serve_txt(zone: HashMap<String, String>) -> std::io::Result<SocketAddr> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let addr = sock.local_addr()?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if let Some(reply) = answer(&buf[..n], &zone) {
                // a lost reply is retried by the resolver
                let _ = sock.send_to(&reply, from);
            }
        }
    });
    Ok(addr)
}

/// The reply to one query (RFC 1035 §4.1), or `None` for anything malformed.
fn answer(q: &[u8], zone: &HashMap<String, String>) -> Option<Vec<u8>> {
    // the question: labels, then QTYPE and QCLASS
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*q.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question = q.get(12..i + 4)?;
    let text = zone.get(&labels.join(".")).filter(|_| qtype == 16);
    let known = zone.contains_key(&labels.join("."));

    let mut r = Vec::with_capacity(512);
    r.extend_from_slice(q.get(..2)?); // id
    r.extend_from_slice(&[0x81, if known { 0x80 } else { 0x83 }]); // QR RD RA, rcode
    r.extend_from_slice(&[0, 1, 0, u8::from(text.is_some()), 0, 0, 0, 0]);
    r.extend_from_slice(question);
    if let Some(text) = text {
        let mut rdata = Vec::new();
        for chunk in text.as_bytes().chunks(255) {
            rdata.push(chunk.len() as u8);
            rdata.extend_from_slice(chunk);
        }
        r.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 1, 44]); // name, TXT, IN, TTL 300
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    Some(r)
}
