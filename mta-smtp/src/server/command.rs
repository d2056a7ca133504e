//! Command-line parsing (RFC 5321 §4.1.1), one complete framed line at a time.
//!
//! Like qmail-smtpd's `commands.c`, the verb is everything up to the first space, matched
//! case-insensitively as a whole word, and the argument is the rest with leading spaces
//! skipped. MAIL and RCPT arguments go through `mta_core::path` and the nom parsers below.

use mta_core::path::{
    ForwardPath, Mailbox, PathOptions, ReversePath, parse_forward_path, parse_reverse_path,
};
use nom::IResult;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::combinator::opt;
use nom::sequence::preceded;

use crate::server::{BodyType, MailParams};

/// A command verb with its argument (leading spaces removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    Helo(&'a [u8]),
    Ehlo(&'a [u8]),
    Mail(&'a [u8]),
    Rcpt(&'a [u8]),
    Data(&'a [u8]),
    Rset,
    Noop,
    Vrfy,
    Help,
    Quit,
    StartTls(&'a [u8]),
    Auth(&'a [u8]),
    Unknown,
}

/// Splits a line (without CRLF) into verb and argument and recognises the verb.
pub(crate) fn parse_command(line: &[u8]) -> Command<'_> {
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, &b""[..]),
    };
    let arg = &arg[arg.iter().take_while(|&&b| b == b' ').count()..];
    let is = |w: &[u8]| verb.eq_ignore_ascii_case(w);
    if is(b"helo") {
        Command::Helo(arg)
    } else if is(b"ehlo") {
        Command::Ehlo(arg)
    } else if is(b"mail") {
        Command::Mail(arg)
    } else if is(b"rcpt") {
        Command::Rcpt(arg)
    } else if is(b"data") {
        Command::Data(arg)
    } else if is(b"rset") {
        Command::Rset
    } else if is(b"noop") {
        Command::Noop
    } else if is(b"vrfy") {
        Command::Vrfy
    } else if is(b"help") {
        Command::Help
    } else if is(b"quit") {
        Command::Quit
    } else if is(b"starttls") {
        Command::StartTls(arg)
    } else if is(b"auth") {
        Command::Auth(arg)
    } else {
        Command::Unknown
    }
}

/// Why a MAIL or RCPT argument was refused; each maps to one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArgError {
    /// No `FROM:`/`TO:`, or junk after the path: `501 5.5.4`.
    Syntax,
    /// The path does not parse: qmail's `555 5.5.4 syntax error`.
    Address,
    /// A parameter this server does not know (RFC 5321 §4.1.1.11): `555 5.5.4`.
    UnknownParam,
    /// A known parameter with a bad or repeated value: `501 5.5.4`.
    BadParam,
    /// `SIZE=` over the limit (RFC 1870 §6.1): `552 5.3.4`.
    TooBig,
    /// A UTF-8 path without `SMTPUTF8` (RFC 6531 §3.3): `553 5.6.7`.
    Utf8NotAllowed,
}

/// One `esmtp-param`: keyword and optional value.
type Param<'a> = (&'a [u8], Option<&'a [u8]>);

/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`
fn esmtp_keyword(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let (rest, kw) = take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-')(i)?;
    if kw[0] == b'-' {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::AlphaNumeric,
        )));
    }
    Ok((rest, kw))
}

/// `esmtp-value = 1*(%d33-60 / %d62-126)`, plus UTF-8 octets (RFC 6531 §3.3).
fn esmtp_value(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| (33..=126).contains(&b) && b != b'=' || b >= 0x80)(i)
}

/// `esmtp-param = esmtp-keyword ["=" esmtp-value]`
fn esmtp_param(i: &[u8]) -> IResult<&[u8], Param<'_>> {
    let (i, kw) = esmtp_keyword(i)?;
    let (i, v) = opt(preceded(tag(&b"="[..]), esmtp_value))(i)?;
    Ok((i, (kw, v)))
}

/// `Mail-parameters = esmtp-param *(SP esmtp-param)`, after the path's SP.
/// lenient: runs of spaces and trailing spaces are accepted (Outlook-era clients).
fn esmtp_params(mut i: &[u8]) -> Result<Vec<Param<'_>>, ArgError> {
    let mut out = Vec::new();
    loop {
        let (rest, _) = take_while::<_, _, nom::error::Error<&[u8]>>(|b| b == b' ')(i)
            .map_err(|_| ArgError::Syntax)?;
        if rest.is_empty() {
            return Ok(out);
        }
        if rest.len() == i.len() && !out.is_empty() {
            return Err(ArgError::Syntax);
        }
        let (rest, p) = esmtp_param(rest).map_err(|_| ArgError::Syntax)?;
        if !(rest.is_empty() || rest[0] == b' ') {
            return Err(ArgError::Syntax);
        }
        out.push(p);
        i = rest;
    }
}

/// Strips `FROM:`/`TO:` case-insensitively, then spaces.
/// lenient: `MAIL FROM: <a@b>` (space after the colon), sent by many old clients.
fn strip_keyword<'a>(arg: &'a [u8], kw: &[u8]) -> Result<&'a [u8], ArgError> {
    if arg.len() < kw.len() || !arg[..kw.len()].eq_ignore_ascii_case(kw) {
        return Err(ArgError::Syntax);
    }
    let rest = &arg[kw.len()..];
    Ok(&rest[rest.iter().take_while(|&&b| b == b' ').count()..])
}

/// Runs `parse` on the path at the start of `arg`; returns the path and the rest.
/// lenient: a path without angle brackets (`MAIL FROM:user@host`), which qmail-smtpd took
/// up to the first space; it is parsed as if bracketed.
fn with_path<P>(
    arg: &[u8],
    parse: impl Fn(&[u8]) -> Option<(P, usize)>,
) -> Result<(P, &[u8]), ArgError> {
    if arg.first() == Some(&b'<') {
        let (p, n) = parse(arg).ok_or(ArgError::Address)?;
        return Ok((p, &arg[n..]));
    }
    let end = arg.iter().position(|&b| b == b' ').unwrap_or(arg.len());
    if end == 0 {
        return Err(ArgError::Address);
    }
    let mut bracketed = Vec::with_capacity(end + 2);
    bracketed.push(b'<');
    bracketed.extend_from_slice(&arg[..end]);
    bracketed.push(b'>');
    match parse(&bracketed) {
        Some((p, n)) if n == bracketed.len() => Ok((p, &arg[end..])),
        _ => Err(ArgError::Address),
    }
}

fn utf8_options() -> PathOptions {
    let mut o = PathOptions::default();
    o.smtputf8 = true;
    o
}

fn mailbox_is_ascii(m: &Mailbox) -> bool {
    m.local_part().is_ascii() && m.domain().as_str().is_ascii()
}

/// Parses the argument of MAIL: `"FROM:" Reverse-path [SP Mail-parameters]`.
pub(crate) fn parse_mail(
    arg: &[u8],
    max_size: usize,
    smtputf8_offered: bool,
    auth_offered: bool,
) -> Result<(ReversePath, MailParams), ArgError> {
    let rest = strip_keyword(arg, b"from:")?;
    let (path, rest) = with_path(rest, |b| parse_reverse_path(b, utf8_options()).ok())?;
    if !(rest.is_empty() || rest[0] == b' ') {
        return Err(ArgError::Syntax);
    }
    let mut params = MailParams::default();
    let (mut seen_size, mut seen_body) = (false, false);
    for (kw, value) in esmtp_params(rest)? {
        if kw.eq_ignore_ascii_case(b"size") {
            let v = value.ok_or(ArgError::BadParam)?;
            if seen_size || v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
                return Err(ArgError::BadParam);
            }
            seen_size = true;
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            match n {
                Some(n) if usize::try_from(n).is_ok_and(|n| n <= max_size) => {
                    params.size = Some(n);
                }
                _ => return Err(ArgError::TooBig),
            }
        } else if kw.eq_ignore_ascii_case(b"body") {
            let v = value.ok_or(ArgError::BadParam)?;
            if seen_body {
                return Err(ArgError::BadParam);
            }
            seen_body = true;
            params.body = Some(if v.eq_ignore_ascii_case(b"7bit") {
                BodyType::SevenBit
            } else if v.eq_ignore_ascii_case(b"8bitmime") {
                BodyType::EightBitMime
            } else {
                return Err(ArgError::BadParam);
            });
        } else if kw.eq_ignore_ascii_case(b"auth") && auth_offered {
            // RFC 4954 §5: `AUTH=xtext`; kept as sent, never trusted.
            let v = value.ok_or(ArgError::BadParam)?;
            if params.auth.is_some() {
                return Err(ArgError::BadParam);
            }
            params.auth = Some(String::from_utf8_lossy(v).into_owned());
        } else if kw.eq_ignore_ascii_case(b"smtputf8") && smtputf8_offered {
            if value.is_some() || params.smtputf8 {
                return Err(ArgError::BadParam);
            }
            params.smtputf8 = true;
        } else {
            return Err(ArgError::UnknownParam);
        }
    }
    if let ReversePath::Mailbox(m) = &path
        && !params.smtputf8
        && !mailbox_is_ascii(m)
    {
        return Err(ArgError::Utf8NotAllowed);
    }
    Ok((path, params))
}

/// Parses the argument of RCPT: `"TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
/// Forward-path ) [SP Rcpt-parameters]`. No RCPT parameters are advertised, so any is
/// refused.
pub(crate) fn parse_rcpt(arg: &[u8], smtputf8: bool) -> Result<ForwardPath, ArgError> {
    let rest = strip_keyword(arg, b"to:")?;
    let (path, rest) = with_path(rest, |b| parse_forward_path(b, utf8_options()).ok())?;
    if !(rest.is_empty() || rest[0] == b' ') {
        return Err(ArgError::Syntax);
    }
    if !esmtp_params(rest)?.is_empty() {
        return Err(ArgError::UnknownParam);
    }
    if let ForwardPath::Mailbox(m) = &path
        && !smtputf8
        && !mailbox_is_ascii(m)
    {
        return Err(ArgError::Utf8NotAllowed);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_whole_words_case_insensitive() {
        assert_eq!(parse_command(b"hElO  x y"), Command::Helo(b"x y"));
        assert_eq!(parse_command(b"QUIT"), Command::Quit);
        assert_eq!(parse_command(b"QUITE"), Command::Unknown);
        assert_eq!(parse_command(b"MAIL FROM:<>"), Command::Mail(b"FROM:<>"));
        assert_eq!(parse_command(b""), Command::Unknown);
        assert_eq!(parse_command(b"EXPN x"), Command::Unknown);
        assert_eq!(parse_command(b"StartTLS"), Command::StartTls(b""));
    }

    #[test]
    fn params_grammar() {
        assert_eq!(
            esmtp_params(b" SIZE=10 BODY=8BITMIME").ok(),
            Some(vec![
                (&b"SIZE"[..], Some(&b"10"[..])),
                (&b"BODY"[..], Some(&b"8BITMIME"[..]))
            ])
        );
        assert_eq!(esmtp_params(b"").ok(), Some(vec![]));
        // lenient: doubled and trailing spaces
        assert_eq!(esmtp_params(b"  SMTPUTF8  ").map(|v| v.len()), Ok(1));
        assert_eq!(esmtp_params(b" -X=1"), Err(ArgError::Syntax));
        assert_eq!(esmtp_params(b" X=a=b"), Err(ArgError::Syntax));
        assert_eq!(esmtp_params(b" X="), Err(ArgError::Syntax));
    }

    #[test]
    fn keyword_required() {
        assert_eq!(
            parse_mail(b"TO:<a@b>", 10, true, false),
            Err(ArgError::Syntax)
        );
        assert_eq!(parse_rcpt(b"<a@b>", false), Err(ArgError::Syntax));
        assert_eq!(
            parse_mail(b"FROM:", 10, true, false),
            Err(ArgError::Address)
        );
    }
}
