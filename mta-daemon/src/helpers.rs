//! qmail's helper commands for `.qmail` programs: `preline`, `condredirect`,
//! `bouncesaying`, `except` and `forward`, as names of the `mta` binary.
//!
//! `mta init` (and `serve` at start) fills `DIR/bin` with symbolic links to the `mta`
//! binary under these names, plus `qmail-inject` and `sendmail`; [`crate::cli`] dispatches
//! on the name the binary was invoked by. Programs in `.qmail` files run with
//! `PATH=DIR/bin:/usr/local/bin:/usr/bin:/bin` and `MTA_ROOT=DIR` ([`program_env`]), so
//! `|preline ezmlm-send ...` and `|condredirect ...` lines work unchanged, and the helpers
//! that queue mail find the queue.
//!
//! Behaviour, options and exit codes are those of qmail 1.03's programs (their man pages
//! and sources): 0 success, 99 success and ignore the rest of the `.qmail` file, 100
//! permanent failure, 111 temporary failure (qmail-command.8).
//!
//! | command | what it does |
//! |---|---|
//! | `preline [-dfrDFR] prog [arg...]` | runs `prog` with `$UFLINE`, `$RPLINE`, `$DTLINE` (From_, Return-Path, Delivered-To) in front of the message; exits with `prog`'s code; `-f`/`-r`/`-d` leave a line out |
//! | `condredirect addr prog [arg...]` | runs `prog`; if it exits 0, queues the message (with `$DTLINE`) from `$SENDER` to `addr` and exits 99; 111 stays 111; anything else exits 0 |
//! | `bouncesaying text [prog [arg...]]` | without `prog`, prints `text` and exits 100; with one, bounces the same way only if `prog` exits 0 (111 stays 111, else 0) |
//! | `except prog [arg...]` | runs `prog`: 0 becomes 100, 111 stays, anything else becomes 0 |
//! | `forward addr...` | queues the message (with `$DTLINE`) from `$NEWSENDER` to the addresses; prints `forward: qp N` |
//!
//! As in qmail, a program that cannot be started counts as exiting 111 when the error is
//! temporary and 100 otherwise, and a program killed by a signal is `child crashed`, 111.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::root::Root;

/// Exit code: success, and ignore the rest of the `.qmail` file.
const EXIT_IGNORE_REST: i32 = 99;
/// Exit code: permanent failure.
const EXIT_PERMANENT: i32 = 100;
/// Exit code: temporary failure.
const EXIT_TEMPORARY: i32 = 111;

/// The PATH after `DIR/bin`, qmail's fixed one.
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// qmail's programs for `.qmail` files that `mta` acts as, by the name it is invoked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QmailCommand {
    /// `preline`.
    Preline,
    /// `condredirect`.
    Condredirect,
    /// `bouncesaying`.
    Bouncesaying,
    /// `except`.
    Except,
    /// `forward`.
    Forward,
}

/// The names `DIR/bin` holds as links to `mta`.
pub const LINK_NAMES: &[&str] = &[
    "preline",
    "condredirect",
    "bouncesaying",
    "except",
    "forward",
    "qmail-inject",
    "sendmail",
];

impl QmailCommand {
    /// The helper invoked by `name` (argv\[0\]'s last component), if any.
    pub fn from_name(name: &str) -> Option<QmailCommand> {
        Some(match name {
            "preline" => QmailCommand::Preline,
            "condredirect" => QmailCommand::Condredirect,
            "bouncesaying" => QmailCommand::Bouncesaying,
            "except" => QmailCommand::Except,
            "forward" => QmailCommand::Forward,
            _ => return None,
        })
    }
}

/// Creates `DIR/bin` with a symbolic link to the running `mta` binary for each of
/// [`LINK_NAMES`]; existing entries are left alone. Returns the links it created.
///
/// # Errors
/// The binary's path cannot be found, or the directory or a link cannot be created.
pub fn install_links(root: &Root) -> io::Result<Vec<PathBuf>> {
    let exe = std::env::current_exe()?;
    let bin = root.dir().join("bin");
    std::fs::create_dir_all(&bin)?;
    let mut created = Vec::new();
    for name in LINK_NAMES {
        let link = bin.join(name);
        match std::os::unix::fs::symlink(&exe, &link) {
            Ok(()) => created.push(link),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

static PROGRAM_ENV: OnceLock<Vec<(OsString, OsString)>> = OnceLock::new();

/// Sets the root whose `bin` directory programs find first on PATH (`serve` calls it once at
/// start with an absolute path; later calls are ignored).
pub fn set_program_root(dir: &Path) {
    // Already set means set by an earlier call, which stays in force (documented above).
    let _ = PROGRAM_ENV.set(env_for(Some(dir.as_os_str())));
}

/// The environment `.qmail` programs start from: `PATH=DIR/bin:/usr/local/bin:/usr/bin:/bin`
/// and `MTA_ROOT=DIR`. In a delivery worker process (which `serve` starts with `MTA_ROOT`
/// set), DIR comes from the environment; with no root known, PATH is qmail's fixed one.
pub fn program_env() -> Vec<(OsString, OsString)> {
    PROGRAM_ENV
        .get_or_init(|| env_for(std::env::var_os("MTA_ROOT").as_deref()))
        .clone()
}

fn env_for(dir: Option<&OsStr>) -> Vec<(OsString, OsString)> {
    match dir.filter(|d| !d.is_empty()) {
        Some(dir) => {
            let mut path = Path::new(dir).join("bin").into_os_string();
            path.push(":");
            path.push(SYSTEM_PATH);
            vec![("PATH".into(), path), ("MTA_ROOT".into(), dir.to_owned())]
        }
        None => vec![("PATH".into(), SYSTEM_PATH.into())],
    }
}

/// Runs `command` with `args` (after argv\[0\]) on this process's stdin, environment and
/// `root`; returns the exit code.
pub fn main(command: QmailCommand, root: &Root, args: &[OsString]) -> i32 {
    let result = match command {
        QmailCommand::Preline => preline(args),
        QmailCommand::Condredirect => condredirect(root, args),
        QmailCommand::Bouncesaying => bouncesaying(args),
        QmailCommand::Except => except(args),
        QmailCommand::Forward => forward(root, args),
    };
    match result {
        Ok(code) => code,
        Err(Exit { code, text }) => {
            // Nothing more can be done if stderr itself fails; the exit code still tells.
            let _ = writeln!(io::stderr(), "{text}");
            code
        }
    }
}

/// How a helper ends with a line on stderr: the exit code, and the line (qmail's
/// `strerr_die`, which its helpers also used to end successfully, as `forward: qp N`).
#[derive(Debug)]
struct Exit {
    code: i32,
    text: String,
}

fn die(code: i32, text: impl Into<String>) -> Exit {
    Exit {
        code,
        text: text.into(),
    }
}

fn env_bytes(name: &str) -> Option<Vec<u8>> {
    std::env::var_os(name).map(|v| v.as_bytes().to_vec())
}

/// How a child program ended, as qmail's `wait_exitcode`: its exit code, 111 or 100 when
/// it could not be started (temporary or not), or `Err` when it was killed by a signal.
fn exit_of(status: io::Result<std::process::ExitStatus>, me: &str) -> Result<i32, Exit> {
    match status {
        Ok(st) => st
            .code()
            .ok_or_else(|| die(EXIT_TEMPORARY, format!("{me}: fatal: child crashed"))),
        Err(e) => {
            let code = if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) {
                EXIT_PERMANENT
            } else {
                EXIT_TEMPORARY
            };
            // stderr is the delivery report; if it fails, the exit code still tells.
            let _ = writeln!(io::stderr(), "{me}: unable to run program: {e}");
            Ok(code)
        }
    }
}

/// Runs `args[0]` with the rest, on this process's stdin.
fn run_inheriting(args: &[OsString], me: &str) -> Result<i32, Exit> {
    let (prog, rest) = args
        .split_first()
        .ok_or_else(|| die(EXIT_PERMANENT, format!("{me}: usage: missing program")))?;
    exit_of(Command::new(prog).args(rest).status(), me)
}

/// Runs `args[0]` with the rest, giving it `input` on a pipe. A program that stops reading
/// early just ends the copy (qmail's tools died with 111 there, if the pipe was full).
fn run_feeding(args: &[OsString], input: &[&[u8]], me: &str) -> Result<i32, Exit> {
    let (prog, rest) = args
        .split_first()
        .ok_or_else(|| die(EXIT_PERMANENT, format!("{me}: usage: missing program")))?;
    let mut child = match Command::new(prog).args(rest).stdin(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => return exit_of(Err(e), me),
    };
    if let Some(mut stdin) = child.stdin.take() {
        for part in input {
            match stdin.write_all(part) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                Err(e) => {
                    return Err(die(
                        EXIT_TEMPORARY,
                        format!("{me}: fatal: unable to copy input: {e}"),
                    ));
                }
            }
        }
    }
    exit_of(child.wait(), me)
}

fn read_stdin(me: &str) -> Result<Vec<u8>, Exit> {
    let mut message = Vec::new();
    io::stdin().read_to_end(&mut message).map_err(|e| {
        die(
            EXIT_TEMPORARY,
            format!("{me}: fatal: unable to read input: {e}"),
        )
    })?;
    Ok(message)
}

/// `preline [-dfrDFR] cmd [arg...]` (preline.1).
fn preline(args: &[OsString]) -> Result<i32, Exit> {
    const USAGE: &str = "preline: usage: preline cmd [ arg ... ]";
    let (Some(ufline), Some(rpline), Some(dtline)) = (
        env_bytes("UFLINE"),
        env_bytes("RPLINE"),
        env_bytes("DTLINE"),
    ) else {
        return Err(die(EXIT_PERMANENT, USAGE));
    };
    let (mut uf, mut rp, mut dt) = (true, true, true);
    let mut i = 0;
    while let Some(a) = args.get(i).map(|a| a.as_bytes()) {
        if a == b"--" {
            i += 1;
            break;
        }
        let Some(flags) = a.strip_prefix(b"-").filter(|f| !f.is_empty()) else {
            break;
        };
        for f in flags {
            match f {
                b'f' => uf = false,
                b'r' => rp = false,
                b'd' => dt = false,
                b'F' => uf = true,
                b'R' => rp = true,
                b'D' => dt = true,
                _ => return Err(die(EXIT_PERMANENT, USAGE)),
            }
        }
        i += 1;
    }
    let cmd = args.get(i..).unwrap_or_default();
    if cmd.is_empty() {
        return Err(die(EXIT_PERMANENT, USAGE));
    }
    let message = read_stdin("preline")?;
    let mut input: Vec<&[u8]> = Vec::with_capacity(4);
    for (on, line) in [(uf, &ufline), (rp, &rpline), (dt, &dtline)] {
        if on {
            input.push(line);
        }
    }
    input.push(&message);
    run_feeding(cmd, &input, "preline")
}

/// `condredirect newaddress program [arg...]` (condredirect.1).
fn condredirect(root: &Root, args: &[OsString]) -> Result<i32, Exit> {
    const USAGE: &str = "condredirect: usage: condredirect newaddress program [ arg ... ]";
    let [address, program @ ..] = args else {
        return Err(die(EXIT_PERMANENT, USAGE));
    };
    if program.is_empty() {
        return Err(die(EXIT_PERMANENT, USAGE));
    }
    let message = read_stdin("condredirect")?;
    match run_feeding(program, &[&message], "condredirect")? {
        0 => {}
        EXIT_TEMPORARY => {
            return Err(die(
                EXIT_TEMPORARY,
                "condredirect: fatal: temporary child error",
            ));
        }
        _ => return Ok(0),
    }
    let sender = env_bytes("SENDER")
        .ok_or_else(|| die(EXIT_PERMANENT, "condredirect: fatal: SENDER not set"))?;
    let qp = requeue(root, &sender, &[address.as_bytes().to_vec()], &message)
        .map_err(|(code, text)| die(code, format!("condredirect: fatal: {text}")))?;
    Err(die(EXIT_IGNORE_REST, format!("condredirect: qp {qp}")))
}

/// `bouncesaying error [program [arg...]]` (bouncesaying.1).
fn bouncesaying(args: &[OsString]) -> Result<i32, Exit> {
    let Some((text, program)) = args.split_first() else {
        return Err(die(
            EXIT_PERMANENT,
            "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]",
        ));
    };
    if !program.is_empty() {
        match run_inheriting(program, "bouncesaying")? {
            0 => {}
            EXIT_TEMPORARY => {
                return Err(die(
                    EXIT_TEMPORARY,
                    "bouncesaying: fatal: temporary child error",
                ));
            }
            _ => return Ok(0),
        }
    }
    Err(die(EXIT_PERMANENT, text.to_string_lossy()))
}

/// `except program [arg...]` (except.1).
fn except(args: &[OsString]) -> Result<i32, Exit> {
    if args.is_empty() {
        return Err(die(
            EXIT_PERMANENT,
            "except: usage: except program [ arg ... ]",
        ));
    }
    Ok(match run_inheriting(args, "except")? {
        0 => EXIT_PERMANENT,
        EXIT_TEMPORARY => EXIT_TEMPORARY,
        _ => 0,
    })
}

/// `forward address...` (forward.1).
fn forward(root: &Root, args: &[OsString]) -> Result<i32, Exit> {
    if args.is_empty() {
        return Err(die(
            EXIT_PERMANENT,
            "forward: usage: forward address [ address ... ]",
        ));
    }
    let sender = env_bytes("NEWSENDER")
        .ok_or_else(|| die(EXIT_PERMANENT, "forward: fatal: NEWSENDER not set"))?;
    let message = read_stdin("forward")?;
    let recipients: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let qp = requeue(root, &sender, &recipients, &message)
        .map_err(|(code, text)| die(code, format!("forward: fatal: {text}")))?;
    Err(die(0, format!("forward: qp {qp}")))
}

/// Queues `$DTLINE` + `message` from `sender` to `recipients` (qmail-queue's trace line in
/// front, `invoked by uid U`); returns the qp (our pid, as qmail's was qmail-queue's).
fn requeue(
    root: &Root,
    sender: &[u8],
    recipients: &[Vec<u8>],
    message: &[u8],
) -> Result<u32, (i32, String)> {
    let dtline = env_bytes("DTLINE").ok_or((EXIT_PERMANENT, "DTLINE not set".to_owned()))?;
    let mut bytes = dtline;
    bytes.extend_from_slice(message);
    crate::inject::queue_as_is(root, sender, recipients, bytes)
        .map_err(|e| (e.exit_code(), e.message().to_owned()))?;
    Ok(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_program_env() {
        assert_eq!(
            QmailCommand::from_name("preline"),
            Some(QmailCommand::Preline)
        );
        assert_eq!(QmailCommand::from_name("mta"), None);
        let env = env_for(Some(OsStr::new("/var/mta")));
        assert_eq!(
            env,
            vec![
                (
                    "PATH".into(),
                    "/var/mta/bin:/usr/local/bin:/usr/bin:/bin".into()
                ),
                ("MTA_ROOT".into(), "/var/mta".into())
            ]
        );
        assert_eq!(env_for(None), vec![("PATH".into(), SYSTEM_PATH.into())]);
    }
}
