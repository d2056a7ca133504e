//! The header lines and environment qmail-local builds for one delivery: `DTLINE`,
//! `RPLINE`, `UFLINE` (qmail-local.c `main`, quote.c `quote2`, myctime.c) and the
//! `HOST2`..`HOST4` / `EXT2`..`EXT4` splits.
//!
//! All of these are pure functions of the recipient, the sender and the time, so they are
//! tested byte for byte without running anything.

use std::io::{self, BufRead, BufReader};

/// `Delivered-To: L@D\n` with every `\n` inside the address replaced by `_`
/// (qmail-local.c: `dtline`). This is the line the loop check looks for and the first line
/// of every maildir, mbox and forwarded copy.
pub fn delivered_to_line(local: &[u8], domain: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(16 + local.len() + domain.len());
    line.extend_from_slice(b"Delivered-To: ");
    line.extend_from_slice(local);
    line.push(b'@');
    line.extend_from_slice(domain);
    for b in &mut line {
        if *b == b'\n' {
            *b = b'_';
        }
    }
    line.push(b'\n');
    line
}

/// `Return-Path: <Q>\n` where Q is the sender with its local part quoted as qmail's
/// `quote2` does (RFC 821 quoting only where needed) and every `\n` replaced by `_`.
pub fn return_path_line(sender: &[u8]) -> Vec<u8> {
    let mut line = b"Return-Path: <".to_vec();
    line.extend_from_slice(&quote2(sender));
    for b in &mut line {
        if *b == b'\n' {
            *b = b'_';
        }
    }
    line.extend_from_slice(b">\n");
    line
}

/// qmail's `UFLINE`: `From S Www Mmm DD HH:MM:SS YYYY\n`, S being the sender with space,
/// tab and `\n` turned into `-`, or `MAILER-DAEMON` for the empty sender; the date is UTC
/// with a zero-padded day (myctime.c). This is also the mbox `From ` line.
pub fn ufline(sender: &[u8], unix_secs: i64) -> Vec<u8> {
    let mut line = b"From ".to_vec();
    if sender.is_empty() {
        line.extend_from_slice(b"MAILER-DAEMON");
    } else {
        line.extend(sender.iter().map(|&b| match b {
            b' ' | b'\t' | b'\n' => b'-',
            other => other,
        }));
    }
    line.push(b' ');
    line.extend_from_slice(myctime(unix_secs).as_bytes());
    line
}

/// myctime.c: `Www Mmm DD HH:MM:SS YYYY\n` in UTC, day zero-padded.
pub fn myctime(unix_secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} {}\n",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        year
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// quote.c `quote2`: quote the part before the last `@` when RFC 821 requires it; the
/// empty sender stays empty. Bytes above 127 force quoting, as in qmail.
pub fn quote2(address: &[u8]) -> Vec<u8> {
    if address.is_empty() {
        return Vec::new();
    }
    match address.iter().rposition(|&b| b == b'@') {
        None => quote(address),
        Some(at) => {
            let mut out = quote(&address[..at]);
            out.extend_from_slice(&address[at..]);
            out
        }
    }
}

/// quote.c `quote`: wrap in double quotes, backslash before CR, LF, `"` and `\`, when
/// the box is empty, has a byte outside qmail's `ok` table, or has a leading, trailing or
/// doubled dot.
fn quote(boxpart: &[u8]) -> Vec<u8> {
    if !quote_needed(boxpart) {
        return boxpart.to_vec();
    }
    let mut out = Vec::with_capacity(boxpart.len() * 2 + 2);
    out.push(b'"');
    for &b in boxpart {
        if matches!(b, b'\r' | b'\n' | b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

fn quote_needed(s: &[u8]) -> bool {
    // quote.c's `ok` table: printable ASCII minus the RFC 821 specials and space.
    fn ok(b: u8) -> bool {
        b.is_ascii_graphic() && !b"\"(),:;<>@[\\]".contains(&b)
    }
    s.is_empty()
        || !s.iter().all(|&b| ok(b))
        || s[0] == b'.'
        || s[s.len() - 1] == b'.'
        || s.windows(2).any(|w| w == b"..")
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
