//! Reads a bounce on stdin and prints the failed subscriber(s), one per line.
//!
//! ```sh
//! verp_bounce [--list LIST@HOST] [--rcpt ENVELOPE-RECIPIENT] [--plus] < bounce.eml
//! ```
//!
//! With VERP (`--list` and the bounce's envelope recipient, from `--rcpt`, the
//! `RECIPIENT` variable qmail-style `.qmail` programs get, or the message's `Delivered-To`
//! field), the subscriber comes from the envelope recipient alone. Otherwise the bounce itself is read (RFC 3464 DSN, qmail QSBMF
//! or Exim's X-Failed-Recipients). The reasons go to stderr.
//!
//! Exit status: 0 when a subscriber was found, 1 when the input is not a bounce (or names
//! no failed recipient), 2 on a usage error, 111 when stdin cannot be read.
//!
//! Try it on a sample:
//!
//! ```sh
//! cargo run -p mta-verp --example verp_bounce -- --list list-owner@lists.example.org \
//!     --rcpt list-owner-bob=example.net@lists.example.org < mta-verp/tests/data/dsn/postfix.eml
//! ```

use std::io::Read;
use std::process::ExitCode;

use mta_core::Address;
use mta_verp::{Verp, envelope_recipient, parse_bounce};

fn main() -> ExitCode {
    let mut list = None;
    let mut rcpt = std::env::var_os("RECIPIENT").map(std::ffi::OsString::into_encoded_bytes);
    let mut verp = Verp::QMAIL;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--list") => list = args.next().map(std::ffi::OsString::into_encoded_bytes),
            Some("--rcpt") => rcpt = args.next().map(std::ffi::OsString::into_encoded_bytes),
            Some("--plus") => verp = Verp::PLUS,
            _ => {
                eprintln!("usage: verp_bounce [--list LIST@HOST] [--rcpt RCPT] [--plus] < bounce");
                return ExitCode::from(2);
            }
        }
    }

    let mut message = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut message) {
        eprintln!("verp_bounce: cannot read stdin: {e}");
        return ExitCode::from(111);
    }

    let parsed = parse_bounce(&message);
    if let Ok(p) = &parsed {
        for r in p.failures() {
            let status = r.status.map(|s| s.to_string()).unwrap_or_default();
            let reason = r.reason.lines().next().unwrap_or("");
            eprintln!("{}: {status} {reason}", r.recipient);
        }
    }

    // The envelope recipient: --rcpt, else $RECIPIENT, else the message's own
    // Delivered-To / X-Original-To / Envelope-to header field.
    let rcpt = rcpt
        .map(Address::from)
        .or_else(|| envelope_recipient(&message));
    if let (Some(list), Some(rcpt)) = (list, rcpt) {
        match verp.decode(&Address::from(list), &rcpt) {
            Ok(subscriber) => {
                println!("{subscriber}");
                return ExitCode::SUCCESS;
            }
            Err(e) => eprintln!("verp_bounce: envelope recipient: {e}; reading the bounce"),
        }
    }

    match parsed {
        Ok(p) if p.failures().next().is_some() => {
            for r in p.failures() {
                println!("{}", r.subscriber());
            }
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("verp_bounce: the report names no failed recipient");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("verp_bounce: {e}");
            ExitCode::from(1)
        }
    }
}
