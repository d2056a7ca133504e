//! A tiny qmail-local: delivers the message on stdin for one local recipient and exits
//! with qmail's codes (0 delivered, 100 bounced, 111 deferred), the report on stdout.
//!
//! ```text
//! dotqmail_deliver [--record] [-n] user uid gid homedir local dash ext domain sender defaultdelivery < message
//! ```
//!
//! This is the child the daemon runs as the target user (qmail-lspawn's job): it takes
//! the arguments of [`LocalArgs::to_args`]. With `--record` it writes
//! [`Outcome::to_record`] instead of the plain report so the parent gets the forwards
//! back; without it, forwards are only listed on stderr, since there is no queue here.
//!
//! Try it:
//! ```text
//! mkdir -p /tmp/joe/Maildir/{tmp,new,cur} && chmod 755 /tmp/joe
//! printf 'Subject: hi\n\nhello\n' | cargo run -p mta-dotqmail --example dotqmail_deliver -- \
//!     joe 1000 1000 /tmp/joe joe '' '' example.com sue@example.org './Maildir/'
//! ```

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use mta_dotqmail::{DeliveryOptions, LocalArgs, Message, Outcome, SystemExecutor};

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let record = args.first().is_some_and(|a| a == "--record");
    if record {
        args.remove(0);
    }
    let local = match LocalArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            println!("dotqmail_deliver: {e}");
            return ExitCode::from(100);
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);

    // qmail-local wants a seekable stdin (the queue's message file); a pipe is read into
    // memory instead.
    let stdin = match io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) => return fail(&format!("Unable to read message: {e}. (#4.3.0)")),
    };
    let mut bytes = Vec::new();
    let seekable = (&stdin).seek(SeekFrom::Start(0)).is_ok();
    if !seekable && (&stdin).read_to_end(&mut bytes).is_err() {
        return fail("Unable to read message. (#4.3.0)");
    }
    let message = if seekable {
        Message::File(&stdin)
    } else {
        Message::Bytes(&bytes)
    };

    let outcome = local.run(
        &mut SystemExecutor::new(),
        &DeliveryOptions::default(),
        message,
        now,
    );
    let mut out = io::stdout().lock();
    let written = if record {
        out.write_all(&outcome.to_record())
    } else {
        if let Some(f) = &outcome.forward {
            for r in &f.recipients {
                eprintln!(
                    "dotqmail_deliver: forward to {} from <{}> not enqueued (no queue here)",
                    String::from_utf8_lossy(r),
                    String::from_utf8_lossy(&f.sender)
                );
            }
        }
        out.write_all(&outcome.report)
    };
    if written.and_then(|()| out.flush()).is_err() {
        return ExitCode::from(111);
    }
    exit_code(&outcome)
}

fn exit_code(outcome: &Outcome) -> ExitCode {
    // exit_code() is 0, 100 or 111; the fallback is never taken.
    ExitCode::from(u8::try_from(outcome.exit_code()).unwrap_or(111))
}

fn fail(text: &str) -> ExitCode {
    println!("{text}");
    ExitCode::from(111)
}
