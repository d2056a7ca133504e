//! A qmail-queue work-alike on top of mta-queue, showing the `F`/`T` codec in use: any
//! program that feeds qmail-queue (qmail-inject, qmail-smtpd, a `QMAILQUEUE` hook user) can
//! feed this queue instead.
//!
//! As qmail-queue.8 says: the message is read from fd 0 to EOF, the envelope from fd 1
//! (`F<sender>\0`, `T<rcpt>\0`..., then an extra `\0`; EOF before it cancels). One line is
//! prepended: `Received: (qmail <pid> invoked by uid <uid>); <date822>`. Exit codes: 0
//! queued, 11 address too long, 53 write error or disk full, 54 read error or cancelled
//! envelope, 91 envelope format error, 81 anything else.
//!
//! ```text
//! cargo run -p mta-queue --example qmail_queue -- QUEUE_DIR < message 1< envelope
//! ```

use std::fs::File;
use std::io::{BufReader, Read};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use mta_queue::{Queue, QueueError, QueueOptions, qmail};

fn store_error(e: &QueueError) -> ExitCode {
    eprintln!("qmail_queue: {e}");
    ExitCode::from(match e {
        QueueError::Io { .. } => 53,
        _ => 81,
    })
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: qmail_queue QUEUE_DIR < message 1< envelope");
        return ExitCode::from(81);
    };
    let queue = match Queue::open(&dir, QueueOptions::default()) {
        Ok(q) => q,
        Err(e) => return store_error(&e),
    };
    let mut incoming = match queue.begin() {
        Ok(i) => i,
        Err(e) => return store_error(&e),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let received = format!(
        "Received: (qmail {} invoked by uid {}); {}\n",
        std::process::id(),
        rustix::process::getuid().as_raw(),
        mta_core::date::qmail_date822(now)
    );
    if let Err(e) = incoming.write(received.as_bytes()) {
        return store_error(&e);
    }
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 65536];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = incoming.write(&buf[..n]) {
                    return store_error(&e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("qmail_queue: reading the message: {e}");
                return ExitCode::from(54);
            }
        }
    }
    // fd 1 is the envelope pipe's read end; /dev/fd/1 opens it without unsafe code.
    let envelope = match File::open("/dev/fd/1") {
        Ok(f) => qmail::read_from(BufReader::new(f)),
        Err(e) => Err(qmail::DecodeQmailEnvelopeError::Io(e)),
    };
    let envelope = match envelope {
        Ok(env) => env,
        Err(e) => {
            // Dropping `incoming` aborts: nothing is queued (qmail-queue's cancel).
            eprintln!("qmail_queue: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match incoming.commit(&envelope) {
        Ok(id) => {
            eprintln!("qmail_queue: queued as {id}");
            ExitCode::SUCCESS
        }
        Err(e) => store_error(&e),
    }
}
