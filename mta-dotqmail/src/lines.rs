//! The header lines and environment qmail-local builds for one delivery: `DTLINE`,
//! `RPLINE`, `UFLINE` (qmail-local.c `main`, quote.c `quote2`, myctime.c) and the
//! `HOST2`..`HOST4` / `EXT2`..`EXT4` splits.
//!
//! All of these are pure functions of the recipient, the sender and the time, so they are
//! tested byte for byte without running anything. The trace lines, `quote2` and the date
//! come from [`mta_core::header`], [`mta_core::date`] and [`mta_maildir::mbox_from_line`]
//! (one copy of each qmail rule in the workspace); the functions here adapt them to
//! qmail-local's byte-slice arguments.

use std::io::{self, BufRead, BufReader};

use mta_core::Address;
use mta_core::date::ctime_utc;
use mta_core::header;

/// `Delivered-To: L@D\n` with every `\n` inside the address replaced by `_`
/// (qmail-local.c: `dtline`). This is the line the loop check looks for and the first line
/// of every maildir, mbox and forwarded copy. Delegates to
/// [`mta_core::header::delivered_to_line`].
pub fn delivered_to_line(local: &[u8], domain: &[u8]) -> Vec<u8> {
    let mut address = Vec::with_capacity(local.len() + 1 + domain.len());
    address.extend_from_slice(local);
    address.push(b'@');
    address.extend_from_slice(domain);
    header::delivered_to_line(&Address::from_bytes(address))
}

/// `Return-Path: <Q>\n` where Q is the sender with its local part quoted as qmail's
/// `quote2` does (RFC 821 quoting only where needed) and every `\n` replaced by `_`.
/// Delegates to [`mta_core::header::return_path_line`].
pub fn return_path_line(sender: &[u8]) -> Vec<u8> {
    header::return_path_line(&Address::from(sender))
}

/// qmail's `UFLINE`: `From S Www Mmm DD HH:MM:SS YYYY\n`, S being the sender with space,
/// tab and `\n` turned into `-`, or `MAILER-DAEMON` for the empty sender; the date is UTC
/// with a zero-padded day (myctime.c). This is also the mbox `From ` line: delegates to
/// [`mta_maildir::mbox_from_line`].
pub fn ufline(sender: &[u8], unix_secs: i64) -> Vec<u8> {
    mta_maildir::mbox_from_line(sender, unix_secs)
}

/// myctime.c: `Www Mmm DD HH:MM:SS YYYY\n` in UTC, day zero-padded:
/// [`mta_core::date::ctime_utc`] with qmail's trailing `\n`.
pub fn myctime(unix_secs: i64) -> String {
    let mut s = ctime_utc(unix_secs);
    s.push('\n');
    s
}

/// quote.c `quote2`: quote the part before the last `@` when RFC 821 requires it; the
/// empty sender stays empty. Bytes above 127 force quoting, as in qmail. Delegates to
/// [`mta_core::header::quote2`].
pub fn quote2(address: &[u8]) -> Vec<u8> {
    header::quote2(address)
}

/// `HOST2`, `HOST3`, `HOST4`: the domain cut before its last, second-to-last and
/// third-to-last `.`; once the dots run out the value stays at what was left.
pub fn host_parts(domain: &[u8]) -> [&[u8]; 3] {
    let cut = |s: &[u8]| -> usize { s.iter().rposition(|&b| b == b'.').unwrap_or(s.len()) };
    let h2 = &domain[..cut(domain)];
    let h3 = &h2[..cut(h2)];
    let h4 = &h3[..cut(h3)];
    [h2, h3, h4]
}

/// `EXT2`, `EXT3`, `EXT4`: the extension after its first, second and third `-`, empty
/// when there are not that many dashes.
pub fn ext_parts(ext: &[u8]) -> [&[u8]; 3] {
    let skip = |s: &[u8]| -> usize {
        match s.iter().position(|&b| b == b'-') {
            Some(i) => i + 1,
            None => s.len(),
        }
    };
    let e2 = &ext[skip(ext)..];
    let e3 = &e2[skip(e2)..];
    let e4 = &e3[skip(e3)..];
    [e2, e3, e4]
}

/// Scans the header (lines up to the first line of at most one byte, or a last line without
/// `\n`) for a line equal to `needle` (which ends in `\n`), with bounded memory.
pub(crate) fn header_has_line(reader: impl io::Read, needle: &[u8]) -> io::Result<bool> {
    let mut reader = BufReader::new(reader);
    let mut line: Vec<u8> = Vec::with_capacity(needle.len() + 1);
    let mut len = 0usize;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(false); // EOF: a last line without `\n` ends the scan
        }
        let (chunk, newline) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = (needle.len() + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        len += chunk.len();
        let consumed = chunk.len();
        reader.consume(consumed);
        if newline {
            if len <= 1 {
                return Ok(false);
            }
            if line == needle {
                return Ok(true);
            }
            line.clear();
            len = 0;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dtline_replaces_newlines() {
        assert_eq!(
            delivered_to_line(b"a\nb", b"x.org"),
            b"Delivered-To: a_b@x.org\n"
        );
    }

    #[test]
    fn quote2_cases() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"joe@example.com", b"joe@example.com"),
            (b"joe smith@example.com", b"\"joe smith\"@example.com"),
            (b".joe@x", b"\".joe\"@x"),
            (b"jo..e@x", b"\"jo..e\"@x"),
            (b"a\"b@x", b"\"a\\\"b\"@x"),
            (b"#@[]", b"#@[]"),
            (b"noat", b"noat"),
            (b"@x", b"\"\"@x"),
            (b"a@b@c", b"\"a@b\"@c"),
            (b"\xffu@x", b"\"\xffu\"@x"),
        ];
        for (input, want) in cases {
            assert_eq!(quote2(input), *want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn rpline_newline() {
        assert_eq!(return_path_line(b"a\nb@x"), b"Return-Path: <\"a\\_b\"@x>\n");
        assert_eq!(return_path_line(b""), b"Return-Path: <>\n");
    }

    #[test]
    fn ctime_known_dates() {
        assert_eq!(myctime(0), "Thu Jan 01 00:00:00 1970\n");
        // 2026-11-29 04:08:05 UTC is a Sunday.
        assert_eq!(myctime(1_795_925_285), "Sun Nov 29 04:08:05 2026\n");
        assert_eq!(myctime(951_782_400), "Tue Feb 29 00:00:00 2000\n");
        assert_eq!(myctime(-1), "Wed Dec 31 23:59:59 1969\n");
    }

    #[test]
    fn ufline_escapes() {
        assert_eq!(
            ufline(b"", 0),
            b"From MAILER-DAEMON Thu Jan 01 00:00:00 1970\n"
        );
        assert_eq!(
            ufline(b"a b\tc\nd@x", 0),
            b"From a-b-c-d@x Thu Jan 01 00:00:00 1970\n"
        );
    }

    #[test]
    fn host_and_ext_parts() {
        assert_eq!(
            host_parts(b"a.b.c.d.e"),
            [&b"a.b.c.d"[..], b"a.b.c", b"a.b"]
        );
        assert_eq!(host_parts(b"a.b"), [&b"a"[..], b"a", b"a"]);
        assert_eq!(host_parts(b"local"), [&b"local"[..], b"local", b"local"]);
        assert_eq!(ext_parts(b"a-b-c-d"), [&b"b-c-d"[..], b"c-d", b"d"]);
        assert_eq!(ext_parts(b"a-b"), [&b"b"[..], b"", b""]);
        assert_eq!(ext_parts(b""), [&b""[..], b"", b""]);
        assert_eq!(ext_parts(b"--"), [&b"-"[..], b"", b""]);
    }

    #[test]
    fn header_scan() {
        let dt = b"Delivered-To: a@b\n";
        assert!(header_has_line(&b"X: 1\nDelivered-To: a@b\n\nbody"[..], dt).unwrap());
        assert!(!header_has_line(&b"X: 1\n\nDelivered-To: a@b\n"[..], dt).unwrap());
        assert!(!header_has_line(&b"Delivered-To: A@b\n"[..], dt).unwrap());
        assert!(!header_has_line(&b"Delivered-To: a@b"[..], dt).unwrap());
        assert!(!header_has_line(&b"Delivered-To: a@bc\n"[..], dt).unwrap());
        // A CRLF blank line is two bytes: qmail keeps scanning past it.
        assert!(header_has_line(&b"X: 1\r\n\r\nDelivered-To: a@b\n"[..], dt).unwrap());
        let long = [vec![b'x'; 100_000], b"\n".to_vec(), dt.to_vec()].concat();
        assert!(header_has_line(&long[..], dt).unwrap());
    }
}
