//! [`Command`]: the public parser for one whole SMTP command line (RFC 5321 §4.1.1), for
//! proxies, filters, tests and fuzzers that want the session's grammar without a session.
//!
//! It runs exactly the parsers [`crate::ServerSession`] uses (same verbs, same leniencies,
//! same MAIL/RCPT grammar), with no server policy applied: every ESMTP parameter this crate
//! knows is accepted, `SIZE=` has no limit and UTF-8 paths need no `SMTPUTF8`.

use std::fmt;

use mta_core::path::{ForwardPath, ReversePath};

use crate::server::command::{self, ArgError};
use crate::server::{MailParams, RcptParams};

/// One SMTP command line, parsed: the verb (matched case-insensitively as a whole word, as
/// qmail-smtpd's `commands.c` did) and its argument.
///
/// ```
/// use mta_smtp::Command;
///
/// let cmd = Command::parse(b"MAIL FROM:<a@example.org> SIZE=1000\r\n")?;
/// let Command::Mail { path, params } = cmd else { unreachable!() };
/// assert_eq!(path.to_string(), "<a@example.org>");
/// assert_eq!(params.size, Some(1000));
/// assert_eq!(Command::parse(b"quit")?, Command::Quit);
/// assert!(Command::parse(b"RCPT TO:<a@@b>").is_err());
/// # Ok::<(), mta_smtp::ParseCommandError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `HELO domain`: the argument as sent (not validated, possibly empty, as in qmail).
    Helo(&'a [u8]),
    /// `EHLO domain`: the argument as sent.
    Ehlo(&'a [u8]),
    /// `MAIL FROM:Reverse-path [SP Mail-parameters]` (§4.1.1.2).
    Mail {
        /// The reverse path (`<>` is [`ReversePath::Null`]).
        path: ReversePath,
        /// `SIZE`, `BODY`, `SMTPUTF8` and `AUTH`.
        params: MailParams,
    },
    /// `RCPT TO:Forward-path` (§4.1.1.3), including `<Postmaster>`.
    Rcpt {
        /// The forward path.
        path: ForwardPath,
        /// Always empty: no RCPT parameter is known.
        params: RcptParams,
    },
    /// `DATA`, with whatever argument was sent (the session refuses one with `501`).
    Data(&'a [u8]),
    /// `RSET`.
    Rset,
    /// `NOOP` (any argument is ignored).
    Noop,
    /// `VRFY` (any argument is ignored; qmail answers `252`).
    Vrfy,
    /// `HELP`.
    Help,
    /// `QUIT`.
    Quit,
    /// `STARTTLS` (RFC 3207), with whatever argument was sent.
    StartTls(&'a [u8]),
    /// `AUTH mechanism [initial-response]` (RFC 4954): the argument as sent.
    Auth(&'a [u8]),
    /// Any other verb (`EXPN`, `TURN`, ...): the whole line; qmail answers `502`.
    Unknown(&'a [u8]),
}

impl<'a> Command<'a> {
    /// Parses one command line. One trailing CRLF (or, leniently, a bare LF) is removed
    /// first; the line must not be longer than the caller's framing allows (the session
    /// caps it at `ServerConfig::max_command_line`, RFC 5321 §4.5.3.1.4: 512 octets).
    ///
    /// # Errors
    /// [`ParseCommandError`] for a CR or NUL inside the line, or a MAIL/RCPT argument that
    /// does not parse; each variant names the reply the session would send.
    pub fn parse(line: &'a [u8]) -> Result<Command<'a>, ParseCommandError> {
        let line = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        if line.iter().any(|&b| b == b'\r' || b == 0) {
            return Err(ParseCommandError::BadChars);
        }
        Ok(match command::parse_command(line) {
            command::Command::Helo(a) => Command::Helo(a),
            command::Command::Ehlo(a) => Command::Ehlo(a),
            command::Command::Mail(a) => {
                let (path, params) = command::parse_mail(a, usize::MAX, true, true)?;
                Command::Mail { path, params }
            }
            command::Command::Rcpt(a) => Command::Rcpt {
                path: command::parse_rcpt(a, true)?,
                params: RcptParams::default(),
            },
            command::Command::Data(a) => Command::Data(a),
            command::Command::Rset => Command::Rset,
            command::Command::Noop => Command::Noop,
            command::Command::Vrfy => Command::Vrfy,
            command::Command::Help => Command::Help,
            command::Command::Quit => Command::Quit,
            command::Command::StartTls(a) => Command::StartTls(a),
            command::Command::Auth(a) => Command::Auth(a),
            command::Command::Unknown => Command::Unknown(line),
        })
    }
}

/// Why [`Command::parse`] refused a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseCommandError {
    /// A CR or NUL inside the line: `501 5.5.2 bare CR or NUL in command`.
    BadChars,
    /// No `FROM:`/`TO:`, or junk after the path: `501 5.5.4 syntax error`.
    Syntax,
    /// The path does not parse (RFC 5321 §4.1.2): qmail's `555 5.5.4 syntax error`.
    Address,
    /// An ESMTP parameter this crate does not know (§4.1.1.11): `555 5.5.4`.
    UnknownParam,
    /// A known parameter with a bad or repeated value: `501 5.5.4 bad parameter`.
    BadParam,
}

impl From<ArgError> for ParseCommandError {
    fn from(e: ArgError) -> Self {
        match e {
            ArgError::Syntax => ParseCommandError::Syntax,
            ArgError::Address => ParseCommandError::Address,
            ArgError::UnknownParam => ParseCommandError::UnknownParam,
            // Neither limit applies here (no SIZE cap, SMTPUTF8 not required): a value the
            // session would refuse by policy is still a bad value for this parser.
            ArgError::BadParam | ArgError::TooBig | ArgError::Utf8NotAllowed => {
                ParseCommandError::BadParam
            }
        }
    }
}

impl fmt::Display for ParseCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseCommandError::BadChars => "bare cr or nul in command",
            ParseCommandError::Syntax => "command syntax error",
            ParseCommandError::Address => "bad address in command",
            ParseCommandError::UnknownParam => "unknown esmtp parameter",
            ParseCommandError::BadParam => "bad esmtp parameter value",
        })
    }
}

impl std::error::Error for ParseCommandError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_line_ends() {
        assert_eq!(
            Command::parse(b"EHLO client.example\r\n"),
            Ok(Command::Ehlo(b"client.example"))
        );
        assert_eq!(Command::parse(b"helo x\n"), Ok(Command::Helo(b"x")));
        assert_eq!(Command::parse(b"DATA"), Ok(Command::Data(b"")));
        assert_eq!(
            Command::parse(b"EXPN list"),
            Ok(Command::Unknown(b"EXPN list"))
        );
        assert_eq!(
            Command::parse(b"NOOP\r\r\n"),
            Err(ParseCommandError::BadChars)
        );
        assert_eq!(Command::parse(b"NO\0OP"), Err(ParseCommandError::BadChars));
    }

    #[test]
    fn mail_and_rcpt_use_the_session_grammar() {
        let Ok(Command::Mail { path, params }) =
            Command::parse(b"MAIL FROM:<>  BODY=8BITMIME SMTPUTF8")
        else {
            panic!("MAIL should parse");
        };
        assert_eq!(path, ReversePath::Null);
        assert!(params.smtputf8);
        // lenient: no brackets, as qmail-smtpd accepted
        assert!(matches!(
            Command::parse(b"RCPT TO:joe@example.org"),
            Ok(Command::Rcpt { .. })
        ));
        assert_eq!(
            Command::parse(b"RCPT TO:<Postmaster>"),
            Ok(Command::Rcpt {
                path: ForwardPath::Postmaster,
                params: RcptParams::default()
            })
        );
        assert_eq!(
            Command::parse(b"MAIL <a@b>"),
            Err(ParseCommandError::Syntax)
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@>"),
            Err(ParseCommandError::Address)
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@b> X=1"),
            Err(ParseCommandError::UnknownParam)
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@b> SIZE=x"),
            Err(ParseCommandError::BadParam)
        );
        assert_eq!(
            Command::parse(b"RCPT TO:<a@b> NOTIFY=NEVER"),
            Err(ParseCommandError::UnknownParam)
        );
    }
}
