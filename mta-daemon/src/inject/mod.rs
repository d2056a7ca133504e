//! `mta inject`: qmail-inject (qmail-reference §7.1). Reads a message on stdin, fixes up its
//! header, works out the envelope, and queues it.
//!
//! - **Header** ([`mta_core::header::inject`]): the header ends at the first empty line or the first line that
//!   is not a field; `From ` lines become `MBOX-Line:`; Bcc, Resent-Bcc, Return-Path and
//!   Content-Length are removed (From and Message-ID too with `QMAILINJECT` `f` / `i`).
//! - **Added fields**, in front and only when missing: `Date` (local time, RFC 5322),
//!   `Message-ID` (`<YYYYMMDDHHMMSS.pid.qmail@idhost>`, UTC), `From`, and
//!   `Cc: recipient list not shown: ;` when there is no To and no Cc; `Mail-Followup-To` from
//!   `QMAILMFTFILE`. A message with any Resent- field gets the Resent- versions instead.
//! - **Addresses** in sender and recipient fields, `-f` and argument recipients are
//!   rewritten (defaulthost, plusdomain, defaultdomain) and the rewritten fields are refolded
//!   at 80 columns, by [`mta_core::address_list::token822`].
//! - **Envelope**: sender from `-f`, else the first Return-Path field, else
//!   `QMAILSUSER@QMAILSHOST` (with the `m`/`r` VERP suffixes); recipients from the arguments
//!   and/or the header (`-a`, `-h`/`-t`, `-H`, `-A`).
//! - **Queueing** (`deliver.rs`): the header is read and fixed up first, then the body is
//!   streamed (never held whole in memory) into `root.queue()` with LF line ends, behind the
//!   `Received: (qmail PID invoked by uid UID); DATE` line qmail-queue added; then the
//!   trigger is pulled. Unless the caller owns `DIR/queue` and no running `mta serve` holds
//!   it, the message goes durably into the [`pickup`] directory instead, which the queue
//!   process imports (any local user may send mail this way). `-n` prints
//!   `Return-Path: <sender>` and the message instead.
//!
//! Exit codes as qmail-inject: 0 queued (or printed), 100 permanent (usage, parse errors,
//! an address qmail-queue would refuse), 111 temporary (missing root, unreadable control
//! files, I/O, queue trouble).
//!
//! Deliberate differences from qmail-inject 1.03:
//! - `Date:` is local time with a numeric zone (RFC 5322 §3.3); qmail wrote UTC as `-0000`.
//! - CRLF line ends in the input become LF (the queue stores LF; sendmail callers such as
//!   PHP's `mail()` often send CRLF).
//! - Header recipients go into the envelope left to right (qmail's right-to-left walk put
//!   each field's addresses in reverse), and `Mail-Followup-To` lists To then Cc in header
//!   order.
//! - An empty address (`<>` in a recipient field) is not made an envelope recipient.

mod compose;
mod config;
pub(crate) mod deliver;
mod env;
pub mod pickup;
#[cfg(test)]
mod tests;
mod tz;

use std::ffi::OsString;
use std::io::{BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;

pub(crate) use compose::is_null_sender;
pub use env::{Env, VARIABLES};

use mta_core::header::inject as header;

use crate::root::Root;

/// How qmail-inject picks envelope recipients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// `-a`: the arguments only.
    Args,
    /// `-h` (and `mta inject -t`): the header only; arguments are ignored.
    Header,
    /// `-H`: the header and the arguments.
    Both,
    /// `-A` (the default): the arguments if there are any, else the header.
    Default,
}

/// Parsed qmail-inject flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// Where recipients come from.
    pub(crate) strategy: Strategy,
    /// `-N` (true, the default) queues; `-n` prints.
    pub(crate) queue: bool,
    /// `-f SENDER`, as given.
    pub(crate) sender: Option<Vec<u8>>,
    /// Recipient arguments, as given.
    pub(crate) recipients: Vec<Vec<u8>>,
}

/// A fatal error: its message and whether it is permanent (exit 100) or temporary (111).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fatal {
    /// Exit 100.
    Permanent(String),
    /// Exit 111.
    Temporary(String),
}

impl Fatal {
    /// qmail's exit code for this error.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Fatal::Permanent(_) => 100,
            Fatal::Temporary(_) => 111,
        }
    }

    /// The message for stderr.
    pub(crate) fn message(&self) -> &str {
        match self {
            Fatal::Permanent(m) | Fatal::Temporary(m) => m,
        }
    }
}

const USAGE: &str = "usage: mta inject [-nNaAhHt] [-f SENDER] [--] [RCPT...]";

/// Parses qmail-inject's flags (`getopt` "aAhHnNf:", plus `-t` for `-h`): flags may be
/// grouped (`-nH`), `-f` takes the rest of its word or the next argument, `--` ends them.
///
/// # Errors
/// [`Fatal::Permanent`] with the usage text for an unknown flag or a missing `-f` value.
pub(crate) fn parse_options(args: &[OsString]) -> Result<Options, Fatal> {
    let mut opts = Options {
        strategy: Strategy::Default,
        queue: true,
        sender: None,
        recipients: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_bytes();
        i += 1;
        if word == b"--" {
            break;
        }
        if word.len() < 2 || word[0] != b'-' {
            i -= 1;
            break;
        }
        let mut j = 1;
        while j < word.len() {
            match word[j] {
                b'a' => opts.strategy = Strategy::Args,
                b'A' => opts.strategy = Strategy::Default,
                b'h' | b't' => opts.strategy = Strategy::Header,
                b'H' => opts.strategy = Strategy::Both,
                b'n' => opts.queue = false,
                b'N' => opts.queue = true,
                b'f' => {
                    if j + 1 < word.len() {
                        opts.sender = Some(word[j + 1..].to_vec());
                    } else {
                        let value = args.get(i).ok_or_else(|| {
                            Fatal::Permanent(format!("-f needs a sender\n{USAGE}"))
                        })?;
                        opts.sender = Some(value.as_bytes().to_vec());
                        i += 1;
                    }
                    break;
                }
                c => {
                    return Err(Fatal::Permanent(format!(
                        "unknown flag -{}\n{USAGE}",
                        char::from(c)
                    )));
                }
            }
            j += 1;
        }
    }
    opts.recipients = args[i..].iter().map(|a| a.as_bytes().to_vec()).collect();
    Ok(opts)
}

/// `mta inject`: qmail-inject. Reads the message from `stdin` and queues it under `root`
/// (or prints it with `-n`); diagnostics go to `stderr` as `mta inject: fatal: ...`.
///
/// Returns the exit code: 0 done, 100 permanent error (usage, unparsable address or
/// header, queue refusal), 111 temporary error (missing root, I/O, queue trouble).
pub fn main(
    root: &Root,
    args: &[OsString],
    env: &Env,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    match parse_options(args).and_then(|o| run(root, &o, env, stdin, stdout)) {
        Ok(()) => 0,
        Err(e) => {
            // Nothing more can be done if stderr itself fails; the exit code still tells.
            let _ = writeln!(stderr, "mta inject: fatal: {}", e.message());
            e.exit_code()
        }
    }
}

/// Queues `message` unchanged from `sender` to `recipients`, behind qmail-queue's trace
/// line (`invoked by uid U`), as qmail's `forward` and `condredirect` called qmail-queue.
///
/// # Errors
/// [`Fatal`] as for [`main`]'s queueing.
pub(crate) fn queue_as_is(
    root: &Root,
    sender: &[u8],
    recipients: &[Vec<u8>],
    message: Vec<u8>,
) -> Result<(), Fatal> {
    if !root.exists() {
        return Err(Fatal::Temporary(format!(
            "no mta root at {}",
            root.dir().display()
        )));
    }
    let prepared = compose::Prepared {
        envelope: mta_core::Envelope::new(
            mta_core::Address::from_bytes(sender.to_vec()),
            recipients
                .iter()
                .map(|r| mta_core::Address::from_bytes(r.clone())),
        ),
        head: message,
    };
    deliver::enqueue(root, &Env::from_process(), &prepared, &b""[..])
}

/// Runs qmail-inject with parsed options (shared with [`crate::sendmail`]).
///
/// # Errors
/// [`Fatal`] as described on [`main`].
pub(crate) fn run(
    root: &Root,
    opts: &Options,
    env: &Env,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<(), Fatal> {
    if !root.exists() {
        return Err(Fatal::Temporary(format!(
            "no mta root at {} (run `mta --root {} init` first)",
            root.dir().display(),
            root.dir().display()
        )));
    }
    let settings = compose::Settings::load(&root.control(), env)?;
    let mut input = BufReader::with_capacity(64 * 1024, stdin);
    let head = header::read_header(&mut input)
        .map_err(|e| Fatal::Temporary(format!("read error: {e}")))?;
    let prepared = compose::prepare(opts, env, &settings, head)?;
    let body = header::Body::new(input);
    if opts.queue {
        deliver::enqueue(root, env, &prepared, body)
    } else {
        deliver::print(&prepared, body, stdout)
    }
}
