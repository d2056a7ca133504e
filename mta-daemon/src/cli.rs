//! Command-line parsing: raw arguments into a [`Command`] (ripgrep's two-stage shape: parse
//! flags here, resolve settings where each command runs).
//!
//! The interface is fixed by design.md:
//!
//! ```text
//! mta [--root DIR] init [--hostname NAME]
//! mta [--root DIR] serve
//! mta [--root DIR] inject [-f SENDER] [-t] [-n] [-a|-h|-H|-A] [RCPT...]
//! mta [--root DIR] sendmail [sendmail flags]      (also when invoked as `sendmail`/`mailq`)
//! mta [--root DIR] queue stat|list|flush
//! mta [--root DIR] check
//! ```

use std::ffi::OsString;
use std::path::PathBuf;

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `--root DIR`, if given (else `$MTA_ROOT`, else `./mta-root`).
    pub root: Option<PathBuf>,
    /// What to do.
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `init [--hostname NAME]`.
    Init {
        /// The host name to write into `me`, `locals` and `rcpthosts`.
        hostname: Option<String>,
    },
    /// `serve`.
    Serve,
    /// `inject ...` (qmail-inject flags).
    Inject(Vec<OsString>),
    /// `sendmail ...` (the sendmail wrapper's flags).
    Sendmail(Vec<OsString>),
    /// `mailq` (argv0): same as `queue list`.
    Mailq,
    /// `queue stat|list|flush`.
    Queue(QueueCommand),
    /// `check`.
    Check,
    /// `passwd LOGIN`: the password on stdin, its Argon2id hash into users/passwords.
    Passwd(String),
    /// `dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N]`: a DKIM key into
    /// `control/dkim/DOMAIN/SELECTOR.pem`, and the DNS TXT record to publish.
    DkimKeygen {
        /// The signing domain (`d=`).
        domain: String,
        /// The selector (`s=`).
        selector: String,
        /// RSA (with its size) or Ed25519.
        kind: mta_msgauth::KeyKind,
    },
    /// `local-worker` (internal): the per-user local delivery process lspawn starts when
    /// `serve` runs as root.
    LocalWorker,
    /// `serve-role ROLE [--privileged]` (internal): one of the processes the `serve`
    /// master starts (`queue`, `lspawn`, `smtpd`); `--privileged` when the master is root.
    ServeRole {
        /// The role's name.
        role: String,
        /// The master runs as root (the accounts of design.md apply).
        privileged: bool,
    },
    /// One of qmail's helper commands (argv\[0\] `preline`, `condredirect`, ...), with its
    /// arguments.
    Helper(crate::helpers::QmailCommand, Vec<OsString>),
    /// `--help` text for the named command (or the overview).
    Help(&'static str),
}

/// `mta queue` subcommands.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum QueueCommand {
    /// qmail-qstat.
    Stat,
    /// qmail-qread's listing, or with `--json` the JSON array; and `show`, `delete`,
    /// `hold`, `release`, `flush`: the control protocol's requests.
    Control(mta_sched::control::Request),
}

/// Parses `mta queue ...`'s arguments.
fn queue_command(args: &[OsString]) -> Option<QueueCommand> {
    use mta_sched::control::{Request, Selection};
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ids = |rest: &[String]| -> Option<Vec<mta_queue::MessageId>> {
        if rest.is_empty() {
            return None;
        }
        rest.iter().map(|a| a.parse().ok()).collect()
    };
    let (verb, rest) = args.split_first()?;
    let request = match (verb.as_str(), rest) {
        ("stat", []) => return Some(QueueCommand::Stat),
        ("list", []) => Request::List { json: false },
        ("list", [j]) if j == "--json" => Request::List { json: true },
        ("flush", []) => Request::Flush,
        ("show", [id]) => Request::Show(id.parse().ok()?),
        ("delete", [f, a]) if f == "--from" => {
            Request::Delete(Selection::From(a.clone().into_bytes()))
        }
        ("delete", [t, a]) if t == "--to" => Request::Delete(Selection::To(a.clone().into_bytes())),
        ("delete", rest) => Request::Delete(Selection::Ids(ids(rest)?)),
        ("hold", rest) => Request::Hold(ids(rest)?),
        ("release", rest) => Request::Release(ids(rest)?),
        _ => return None,
    };
    Some(QueueCommand::Control(request))
}

/// Overall usage text.
pub const USAGE: &str = "\
usage: mta [--root DIR] COMMAND [ARGS]

commands:
  init [--hostname NAME]   create DIR (idempotent; never overwrites a file)
  serve                    SMTP + queue + deliveries; SIGTERM/SIGINT stop it cleanly,
                           SIGHUP rereads the configuration, SIGALRM flushes
  inject [-f SENDER] [-t] [RCPT...]
                           queue the message on stdin (qmail-inject)
  sendmail [FLAGS]         drop-in sendmail (also when invoked as `sendmail`)
  queue stat|list|flush    qmail-qstat / qmail-qread output; flush retries now
  queue list --json | show ID | delete ID... | hold ID... | release ID...
                           the queue, also while serve runs (see `queue --help`)
  check                    validate control files, users/assign, users/passwords, keys
  passwd LOGIN             read a password on stdin, store its hash in users/passwords
  dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N]
                           write a DKIM key, print the DNS TXT record to publish

DIR defaults to $MTA_ROOT, else ./mta-root. `mta COMMAND --help` for more.
";

const HELP_INIT: &str = "\
usage: mta [--root DIR] init [--hostname NAME]

Creates DIR/control (me, locals, rcpthosts containing NAME and localhost, databytes,
listen, relayclients), DIR/users/assign, DIR/alias (with Maildir/ and a .qmail-default
delivering to it), DIR/queue and DIR/bin (preline, condredirect, bouncesaying, except,
forward, qmail-inject and sendmail as links to mta). Existing files are never overwritten.
NAME defaults to the machine's host name.
";

const HELP_SERVE: &str = "\
usage: mta [--root DIR] serve

Runs SMTP on every control/listen address (default 127.0.0.1:2525), the scheduler and the
local and remote delivery pools in one process. Logs one line per event on stderr in
qmail-send's vocabulary. Creates DIR with `init` first if it does not exist.
SIGTERM/SIGINT stop accepting, finish in-flight work and exit 0. SIGHUP rereads control/
and users/assign (a file with an error keeps the old settings); SIGALRM retries every
deferred delivery now, as `queue flush`.
";

const HELP_INJECT: &str = "\
usage: mta [--root DIR] inject [-nNaAhHt] [-f SENDER] [--] [RCPT...]

Reads a message on stdin, adds Date, Message-ID and From when missing (qmail-inject),
removes Bcc, and queues it. Recipients: -a arguments only, -h header only, -H both,
-A (default) arguments if any, else header; -t is -h. -n prints instead of queueing.
Exit: 0 queued, 100 permanent error, 111 temporary error.
";

const HELP_SENDMAIL: &str = "\
usage: mta [--root DIR] sendmail [-t] [-f SENDER] [-F NAME] [-i] [-oi] [-bs] [-bp] [RCPT...]

qmail's sendmail wrapper: -t takes recipients from the header, -f sets the envelope sender,
-F the full name, -bs speaks SMTP on stdin/stdout, -bp lists the queue. -i, -oi and the
other -o, -v, -m, -x, -e, -p, -B, -E, -J flags are ignored; -q and other -b are refused.
";

const HELP_QUEUE: &str = "\
usage: mta [--root DIR] queue stat|list [--json]|flush
       mta [--root DIR] queue show ID
       mta [--root DIR] queue delete ID... | --from ADDR | --to ADDR
       mta [--root DIR] queue hold ID... | release ID...

stat     qmail-qstat's two lines
list     qmail-qread's listing: date, id, size, sender, then each recipient; --json prints
         one JSON array: id, sender, size, received, held, recipients (address, state,
         attempts, next_retry, last_error)
show     one message: envelope, each recipient's state, and its header
delete   remove messages without a bounce (by id, by sender, or by unfinished recipient)
hold     stop deliveries of a message (not even flush tries it; it does not expire)
release  resume them
flush    retry every deferred delivery now and forget downed hosts (qmail's SIGALRM + tcpok)

While `mta serve` runs these go through its control socket (DIR/queue/control; root or the
queue's account); without a server they work on the queue directly.
";

const HELP_DKIM: &str = "\
usage: mta [--root DIR] dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N]

Writes a new DKIM signing key to DIR/control/dkim/DOMAIN/SELECTOR.pem (mode 0600; RSA 2048
bits unless --bits or --ed25519) and prints the TXT record to publish at
SELECTOR._domainkey.DOMAIN. Mail that leaves by remote delivery with a From: address in
DOMAIN (or below it) is signed with every key of the domain, from the next message on, when
it was sent by a local user, an authenticated client or a relay client. An existing key is
never overwritten: rotate by adding a selector, publishing it, then removing the old file.
";

const HELP_CHECK: &str = "\
usage: mta [--root DIR] check

Validates DIR/control, DIR/users/assign, DIR/users/passwords and the TLS key files;
prints FILE:LINE: error lines (and warnings) on stderr and exits 1 on any error, 0 when
everything parses.
";

const HELP_PASSWD: &str = "\
usage: mta [--root DIR] passwd LOGIN

Reads a password (the first line of stdin) and stores its Argon2id hash for LOGIN in
DIR/users/passwords (mode 0600), keeping the login's SENDERS and every other line.
Logins in that file may use SMTP AUTH (PLAIN or LOGIN, inside TLS).
";

/// A usage error: the message for stderr (exit code 1).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Parses `argv` (including argv\[0\]).
///
/// # Errors
/// [`UsageError`] for unknown commands or flags.
pub fn parse(argv: &[OsString]) -> Result<Invocation, UsageError> {
    let argv0 = argv
        .first()
        .map(|a| {
            PathBuf::from(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let rest = argv.get(1..).unwrap_or_default();
    if let Some(command) = by_program_name(&argv0, rest) {
        return Ok(Invocation {
            root: None,
            command,
        });
    }
    let mut root = None;
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].to_string_lossy();
        if a == "--root" {
            let dir = rest
                .get(i + 1)
                .ok_or_else(|| UsageError("--root needs a directory".into()))?;
            root = Some(PathBuf::from(dir));
            i += 2;
        } else if let Some(dir) = a.strip_prefix("--root=") {
            root = Some(PathBuf::from(dir));
            i += 1;
        } else if a == "--help" || a == "-h" || a == "help" {
            return Ok(Invocation {
                root,
                command: Command::Help(USAGE),
            });
        } else {
            break;
        }
    }
    let Some(name) = rest.get(i) else {
        return Err(UsageError(USAGE.to_owned()));
    };
    let args = &rest[i + 1..];
    let wants_help = args.iter().any(|a| a == "--help");
    let name = name.to_string_lossy();
    let command = match name.as_ref() {
        "init" if wants_help => Command::Help(HELP_INIT),
        "init" => parse_init(args)?,
        "serve" if wants_help => Command::Help(HELP_SERVE),
        "serve" if args.is_empty() => Command::Serve,
        "inject" if wants_help => Command::Help(HELP_INJECT),
        "inject" => Command::Inject(args.to_vec()),
        "sendmail" if wants_help => Command::Help(HELP_SENDMAIL),
        "sendmail" => Command::Sendmail(args.to_vec()),
        "queue" if wants_help => Command::Help(HELP_QUEUE),
        "queue" => {
            Command::Queue(queue_command(args).ok_or_else(|| UsageError(HELP_QUEUE.to_owned()))?)
        }
        "local-worker" if args.is_empty() => Command::LocalWorker,
        "serve-role" => match args {
            [role] => Command::ServeRole {
                role: role.to_string_lossy().into_owned(),
                privileged: false,
            },
            [role, flag] if flag == "--privileged" => Command::ServeRole {
                role: role.to_string_lossy().into_owned(),
                privileged: true,
            },
            _ => return Err(UsageError(HELP_SERVE.to_owned())),
        },
        "check" if wants_help => Command::Help(HELP_CHECK),
        "passwd" if wants_help => Command::Help(HELP_PASSWD),
        "passwd" => match args {
            [login] => Command::Passwd(login.to_string_lossy().into_owned()),
            _ => return Err(UsageError(HELP_PASSWD.to_owned())),
        },
        "check" if args.is_empty() => Command::Check,
        "dkim" if wants_help => Command::Help(HELP_DKIM),
        "dkim" => parse_dkim(args)?,
        other => {
            return Err(UsageError(format!(
                "mta: unknown command or arguments: {other}\n{USAGE}"
            )));
        }
    };
    Ok(Invocation { root, command })
}

/// The command a program name stands for (`sendmail`, `qmail-inject`, `mailq`, qmail's
/// helpers), when `mta` is run through a link with that name.
fn by_program_name(argv0: &str, rest: &[OsString]) -> Option<Command> {
    match argv0 {
        "sendmail" => Some(Command::Sendmail(rest.to_vec())),
        "qmail-inject" => Some(Command::Inject(rest.to_vec())),
        "mailq" => Some(Command::Mailq),
        _ => crate::helpers::QmailCommand::from_name(argv0)
            .map(|helper| Command::Helper(helper, rest.to_vec())),
    }
}

/// `dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N]`.
fn parse_dkim(args: &[OsString]) -> Result<Command, UsageError> {
    let usage = || UsageError(HELP_DKIM.to_owned());
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let [verb, domain, selector, options @ ..] = &args[..] else {
        return Err(usage());
    };
    if verb != "keygen" {
        return Err(usage());
    }
    let mut kind = mta_msgauth::KeyKind::Rsa { bits: 2048 };
    let mut i = 0;
    while i < options.len() {
        match options[i].as_str() {
            "--ed25519" => kind = mta_msgauth::KeyKind::Ed25519,
            "--bits" => {
                let bits = options
                    .get(i + 1)
                    .and_then(|b| b.parse().ok())
                    .ok_or_else(usage)?;
                kind = mta_msgauth::KeyKind::Rsa { bits };
                i += 1;
            }
            _ => return Err(usage()),
        }
        i += 1;
    }
    Ok(Command::DkimKeygen {
        domain: domain.clone(),
        selector: selector.clone(),
        kind,
    })
}

fn parse_init(args: &[OsString]) -> Result<Command, UsageError> {
    let mut hostname = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--hostname" {
            let h = args
                .get(i + 1)
                .ok_or_else(|| UsageError("--hostname needs a name".into()))?;
            hostname = Some(h.to_string_lossy().into_owned());
            i += 2;
        } else if let Some(h) = a.strip_prefix("--hostname=") {
            hostname = Some(h.to_owned());
            i += 1;
        } else {
            return Err(UsageError(HELP_INIT.to_owned()));
        }
    }
    Ok(Command::Init { hostname })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, UsageError> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn commands() {
        assert_eq!(p(&["mta", "serve"]).unwrap().command, Command::Serve);
        let inv = p(&["mta", "--root", "/x", "queue", "stat"]).unwrap();
        assert_eq!(inv.root, Some(PathBuf::from("/x")));
        assert_eq!(inv.command, Command::Queue(QueueCommand::Stat));
        assert_eq!(
            p(&["mta", "init", "--hostname", "mx.example"])
                .unwrap()
                .command,
            Command::Init {
                hostname: Some("mx.example".into())
            }
        );
        assert!(matches!(
            p(&["/usr/sbin/sendmail", "-t"]).unwrap().command,
            Command::Sendmail(_)
        ));
        assert!(matches!(
            p(&["mta", "check", "--help"]).unwrap().command,
            Command::Help(_)
        ));
        assert!(matches!(
            p(&["/var/mta/bin/preline", "-d", "cat"]).unwrap().command,
            Command::Helper(crate::helpers::QmailCommand::Preline, _)
        ));
        assert!(matches!(
            p(&["qmail-inject", "-f", "a@b"]).unwrap().command,
            Command::Inject(_)
        ));
        assert!(p(&["mta", "frobnicate"]).is_err());
        assert!(p(&["mta"]).is_err());
        assert!(p(&["mta", "queue", "purge"]).is_err());
    }
}
