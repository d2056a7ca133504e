//! `mta sendmail`: qmail's sendmail wrapper (`sendmail.c`, qmail-reference §7.2), also used
//! when the binary is invoked as `sendmail`.
//!
//! The wrapper runs qmail-inject with `-a` (recipients from the arguments only), or `-H`
//! with `-t` (header recipients plus arguments), and `-f SENDER` when given. Flags:
//!
//! | flag | effect |
//! |---|---|
//! | `-t` | header recipients too (`-H`) |
//! | `-f S` | envelope sender; also `QMAILUSER`/`QMAILHOST` from `S`, and the name and host variables unset (netqmail) |
//! | `-F NAME` | full name (`MAILNAME`) |
//! | `-bm` | the default |
//! | `-bp` | the queue listing (qmail-qread) |
//! | `-bs` | SMTP on stdin/stdout (qmail-smtpd) |
//! | `-i`, `-oX`, `-v`, `-m`, `-x`, `-eX`, `-pX`, `-BX`, `-E[X]`, `-J[X]` | ignored |
//! | `-q`, other `-b`, anything else | usage error, exit 100 |
//!
//! Values of `-f`, `-F`, `-o`, `-e`, `-p`, `-B` and `-b` may be glued to the flag (`-fjoe`)
//! or be the next argument; `--` ends the flags.
//!
//! One deliberate difference from netqmail: there `-f` unsets `MAILNAME` after `-F` set it,
//! so `sendmail -f a@b -F Name` lost the name; here `-F` is applied after `-f`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

use crate::inject::{self, Env, Fatal, Options, Strategy};
use crate::root::Root;

const USAGE: &str = "usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]";

/// What a sendmail command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue the message on stdin (qmail-inject).
    Inject {
        /// `-t`: header recipients as well as the arguments.
        header_recipients: bool,
        /// `-f SENDER`.
        sender: Option<Vec<u8>>,
        /// `-F NAME`.
        full_name: Option<Vec<u8>>,
        /// The recipient arguments.
        recipients: Vec<Vec<u8>>,
    },
    /// `-bp`: list the queue.
    ListQueue,
    /// `-bs`: speak SMTP on stdin and stdout.
    Smtp,
}

/// Parses the sendmail wrapper's flags (getopt `vimte:f:p:o:B:F:EJxb:`).
///
/// # Errors
/// The usage text (exit 100) for `-q`, a `-b` mode other than `m`, `p` and `s`, an unknown
/// flag or a missing value.
pub fn parse(args: &[OsString]) -> Result<Action, String> {
    let mut header_recipients = false;
    let mut sender = None;
    let mut full_name = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        i += 1;
        if a == b"--" {
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            i -= 1;
            break;
        }
        let mut j = 1;
        while j < a.len() {
            let flag = a[j];
            j += 1;
            match flag {
                b't' => header_recipients = true,
                b'v' | b'i' | b'm' | b'x' => {}
                // An optional value glued to the flag: skip the rest of the word.
                b'E' | b'J' => break,
                b'e' | b'f' | b'p' | b'o' | b'B' | b'F' | b'b' => {
                    let value = if j < a.len() {
                        a[j..].to_vec()
                    } else {
                        let v = args.get(i).ok_or_else(|| USAGE.to_owned())?;
                        i += 1;
                        v.as_bytes().to_vec()
                    };
                    match flag {
                        b'f' => sender = Some(value),
                        b'F' => full_name = Some(value),
                        b'b' => match value.first() {
                            Some(b'm') => {}
                            Some(b'p') => return Ok(Action::ListQueue),
                            Some(b's') => return Ok(Action::Smtp),
                            _ => return Err(USAGE.to_owned()),
                        },
                        _ => {}
                    }
                    break;
                }
                _ => return Err(USAGE.to_owned()),
            }
        }
    }
    Ok(Action::Inject {
        header_recipients,
        sender,
        full_name,
        recipients: args[i..].iter().map(|a| a.as_bytes().to_vec()).collect(),
    })
}

/// netqmail's `do_sender`: `-f S` also makes `S` the From address, dropping the name and
/// host variables that would otherwise override it.
fn apply_sender(env: &mut Env, sender: &[u8]) {
    for v in ["QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"] {
        env.set(v, None);
    }
    match sender.iter().rposition(|&b| b == b'@') {
        Some(at) => {
            env.set("QMAILHOST", Some(sender[at + 1..].to_vec()));
            env.set("QMAILUSER", Some(sender[..at].to_vec()));
        }
        None => env.set("QMAILUSER", Some(sender.to_vec())),
    }
}

/// `mta sendmail`: qmail's sendmail wrapper. `-bp` lists the queue on `stdout`, `-bs` speaks
/// SMTP on `stdin`/`stdout`; otherwise the message on `stdin` is queued as qmail-inject
/// queues it.
///
/// Returns the exit code: 0 done, 100 usage error or permanent failure, 111 temporary
/// failure (including a missing root).
pub fn main(
    root: &Root,
    args: &[OsString],
    env: &Env,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let action = match parse(args) {
        Ok(a) => a,
        Err(usage) => {
            // Nothing more can be done if stderr itself fails; the exit code still tells.
            let _ = writeln!(stderr, "sendmail: {usage}");
            return 100;
        }
    };
    let result = match action {
        Action::ListQueue => return mailq(root, stdout, stderr),
        Action::Smtp => return smtp(root, stdin, stdout, stderr),
        Action::Inject {
            header_recipients,
            sender,
            full_name,
            recipients,
        } => {
            let mut env = env.clone();
            // The null sender names no From user or host.
            if let Some(s) = &sender
                && !inject::is_null_sender(s)
            {
                apply_sender(&mut env, s);
            }
            if let Some(n) = full_name {
                env.set("MAILNAME", Some(n));
            }
            let opts = Options {
                strategy: if header_recipients {
                    Strategy::Both
                } else {
                    Strategy::Args
                },
                queue: true,
                sender,
                recipients,
            };
            inject::run(root, &opts, &env, stdin, stdout)
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            // As above: a failing stderr cannot be reported anywhere else.
            let _ = writeln!(stderr, "sendmail: fatal: {}", e.message());
            e.exit_code()
        }
    }
}

fn missing_root(root: &Root, stderr: &mut dyn Write) -> Option<i32> {
    if root.exists() {
        return None;
    }
    let e = Fatal::Temporary(format!("no mta root at {}", root.dir().display()));
    // A failing stderr cannot be reported anywhere else.
    let _ = writeln!(stderr, "sendmail: fatal: {}", e.message());
    Some(e.exit_code())
}

/// `-bp`, and the binary invoked as `mailq`: the queue listing (qmail-qread).
pub fn mailq(root: &Root, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    if let Some(code) = missing_root(root, stderr) {
        return code;
    }
    crate::qread::list(root, stdout)
}

/// `-bs`: an SMTP session on stdin/stdout (qmail-smtpd run by the wrapper).
fn smtp(root: &Root, stdin: &mut dyn Read, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    if let Some(code) = missing_root(root, stderr) {
        return code;
    }
    crate::smtpd::serve_stdio(root, stdin, stdout)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Action, String> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    fn inject(t: bool, sender: Option<&str>, name: Option<&str>, rcpts: &[&str]) -> Action {
        Action::Inject {
            header_recipients: t,
            sender: sender.map(|s| s.as_bytes().to_vec()),
            full_name: name.map(|s| s.as_bytes().to_vec()),
            recipients: rcpts.iter().map(|s| s.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn flags_and_values() {
        assert_eq!(p(&["a@b"]).unwrap(), inject(false, None, None, &["a@b"]));
        assert_eq!(
            p(&["-t", "-fs@x", "-F", "N N", "r"]).unwrap(),
            inject(true, Some("s@x"), Some("N N"), &["r"])
        );
        assert_eq!(
            p(&["-ti", "-f", "s@x", "--", "-r"]).unwrap(),
            inject(true, Some("s@x"), None, &["-r"])
        );
        // Ignored flags, with glued or separate values.
        assert_eq!(
            p(&[
                "-oi",
                "-o",
                "em",
                "-v",
                "-m",
                "-x",
                "-eq",
                "-p",
                "x",
                "-B8BITMIME",
                "-Efoo",
                "-J",
                "-bm",
                "r"
            ])
            .unwrap(),
            inject(false, None, None, &["r"])
        );
        assert_eq!(p(&["-bp"]).unwrap(), Action::ListQueue);
        assert_eq!(p(&["-b", "s"]).unwrap(), Action::Smtp);
    }

    #[test]
    fn refused_flags() {
        for bad in [
            &["-q"][..],
            &["-q1h"],
            &["-bd"],
            &["-bi"],
            &["-b"],
            &["-f"],
            &["-Y"],
            &["-t", "-o"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dash_f_sets_user_and_host_and_drops_names() {
        let mut env = Env::for_test(0, 1)
            .with("QMAILNAME", "q")
            .with("NAME", "n")
            .with("MAILHOST", "mh");
        apply_sender(&mut env, b"owner@lists.example");
        assert_eq!(env.var("QMAILUSER"), Some(&b"owner"[..]));
        assert_eq!(env.var("QMAILHOST"), Some(&b"lists.example"[..]));
        assert_eq!(env.first(&["QMAILNAME", "MAILNAME", "NAME"]), None);
        assert_eq!(env.var("MAILHOST"), None);
        apply_sender(&mut env, b"bare");
        assert_eq!(env.var("QMAILUSER"), Some(&b"bare"[..]));
        assert_eq!(env.var("QMAILHOST"), None);
    }

    #[test]
    fn usage_errors_exit_100_and_missing_root_111() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path().join("none"));
        let env = Env::for_test(0, 1);
        let run = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = main(&root, &args, &env, &mut &b""[..], &mut out, &mut err);
            (code, String::from_utf8(err).unwrap())
        };
        let (code, err) = run(&["-q"]);
        assert_eq!(code, 100);
        assert!(err.starts_with("sendmail: usage: sendmail"), "{err}");
        assert_eq!(run(&["r@x"]).0, 111);
        assert_eq!(run(&["-bp"]).0, 111);
        assert_eq!(run(&["-bs"]).0, 111);
    }
}
