//! Date formatting for mail headers and mbox lines: pure arithmetic, no clock, no time zone
//! database. The caller passes the time (seconds since the Unix epoch) and, for local time,
//! its UTC offset.
//!
//! - [`rfc5322`]: RFC 5322 §3.3 `date-time` with a numeric zone, for `Date:` fields.
//! - [`qmail_date822`]: qmail's `date822fmt` (UTC, ` -0000`), for `Received:` lines.
//! - [`ctime_utc`]: qmail's `myctime` (UTC), for mbox `From ` lines.
//!
//! ```
//! use mta_core::date;
//! assert_eq!(date::rfc5322(1_795_925_285, 0), "Sun, 29 Nov 2026 04:08:05 +0000");
//! assert_eq!(date::rfc5322(1_795_925_285, -12_600), "Sun, 29 Nov 2026 00:38:05 -0330");
//! assert_eq!(date::qmail_date822(1_795_925_285), "29 Nov 2026 04:08:05 -0000");
//! assert_eq!(date::ctime_utc(1_795_925_285), "Sun Nov 29 04:08:05 2026");
//! ```

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The largest offset RFC 5322 §3.3 `zone = ("+" / "-") 4DIGIT` can write: 99:59.
const MAX_OFFSET: i32 = 99 * 3600 + 59 * 60;

/// A broken-down civil time (proleptic Gregorian calendar).
#[derive(Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday
    weekday: usize,
}

impl Civil {
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as usize,
        }
    }

    fn month_name(&self) -> &'static str {
        MONTHS[(self.month - 1) as usize]
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day) in the
/// proleptic Gregorian calendar, for callers that format dates of their own (log stamps).
///
/// ```
/// assert_eq!(mta_core::date::civil_from_days(0), (1970, 1, 1));
/// assert_eq!(mta_core::date::civil_from_days(11_016), (2000, 2, 29));
/// ```
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 5322 §3.3 `date-time` in local time with a numeric zone, for a `Date:` field:
/// `Sun, 29 Nov 2026 04:08:05 +0000`.
///
/// ```text
/// date-time = [ day-of-week "," ] date time [CFWS]
/// date      = day month year          ; day = 1*2DIGIT, written without padding
/// time      = time-of-day zone        ; zone = ( "+" / "-" ) 4DIGIT
/// ```
///
/// The local time shown is `unix_secs + utc_offset_secs`. The zone can only say whole
/// minutes, so seconds in the offset are dropped (towards zero) before it is applied, and
/// offsets beyond ±99:59 are clamped, so the output always matches the grammar.
pub fn rfc5322(unix_secs: i64, utc_offset_secs: i32) -> String {
    let offset = utc_offset_secs.clamp(-MAX_OFFSET, MAX_OFFSET) / 60 * 60;
    let t = Civil::from_unix(unix_secs.saturating_add(i64::from(offset)));
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    format!(
        "{}, {} {} {:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        DAYS[t.weekday],
        t.day,
        t.month_name(),
        t.year,
        t.hour,
        t.minute,
        t.second,
        abs / 3600,
        abs / 60 % 60,
    )
}

/// qmail's `date822fmt`: `29 Nov 2026 04:08:05 -0000` (UTC, day not zero-padded, time
/// fields two digits, zone ` -0000`: RFC 5322 §3.3 "-0000" for "no information about the
/// local zone"). Used in qmail's `Received:` lines and `Date:` fields it adds.
pub fn qmail_date822(unix_secs: i64) -> String {
    let t = Civil::from_unix(unix_secs);
    format!(
        "{} {} {} {:02}:{:02}:{:02} -0000",
        t.day,
        t.month_name(),
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// `YYYYMMDDHHMMSS` in UTC, as qmail-inject writes in the Message-ID it adds (`newfield.c`).
///
/// ```
/// assert_eq!(mta_core::date::utc_stamp(1_795_925_285), "20261129040805");
/// assert_eq!(mta_core::date::utc_stamp(951_782_400), "20000229000000");
/// ```
pub fn utc_stamp(unix_secs: i64) -> String {
    let t = Civil::from_unix(unix_secs);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `YYYY-MM-DD HH:MM:SS.uuuuuu` in UTC: a log line's time stamp (`micros` is written as
/// given, six digits).
///
/// ```
/// assert_eq!(mta_core::date::log_stamp(1_795_925_285, 42), "2026-11-29 04:08:05.000042");
/// ```
pub fn log_stamp(unix_secs: i64, micros: u32) -> String {
    let t = Civil::from_unix(unix_secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{micros:06}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// qmail's `myctime`: `Sun Nov 29 04:08:05 2026` in UTC with the day zero-padded, as
/// qmail-local writes in the mbox `From ` line (UFLINE, qmail-reference §2.5).
pub fn ctime_utc(unix_secs: i64) -> String {
    let t = Civil::from_unix(unix_secs);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} {}",
        DAYS[t.weekday],
        t.month_name(),
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days from 1970-01-01 by counting whole years and months: an independent check of
    /// `civil_from_days`.
    fn days_from_civil_slow(y: i64, m: u32, d: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut days = 0i64;
        if y >= 1970 {
            for yy in 1970..y {
                days += if leap(yy) { 366 } else { 365 };
            }
        } else {
            for yy in y..1970 {
                days -= if leap(yy) { 366 } else { 365 };
            }
        }
        let ml = [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        for len in &ml[..(m - 1) as usize] {
            days += len;
        }
        days + i64::from(d) - 1
    }

    #[test]
    fn civil_matches_slow_count() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil_slow(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn known_dates() {
        assert_eq!(rfc5322(0, 0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(qmail_date822(0), "1 Jan 1970 00:00:00 -0000");
        assert_eq!(ctime_utc(0), "Thu Jan 01 00:00:00 1970");
        // RFC 5322 Appendix A.1.1: "Fri, 21 Nov 1997 09:55:06 -0600"
        assert_eq!(
            rfc5322(880_127_706, -6 * 3600),
            "Fri, 21 Nov 1997 09:55:06 -0600"
        );
        // Appendix A.5: "Thu, 13 Feb 1969 23:32:54 -0330"
        assert_eq!(
            rfc5322(-27_723_426, -12_600),
            "Thu, 13 Feb 1969 23:32:54 -0330"
        );
        assert_eq!(
            rfc5322(951_782_400, 3600),
            "Tue, 29 Feb 2000 01:00:00 +0100"
        );
        assert_eq!(ctime_utc(1_000_000_000), "Sun Sep 09 01:46:40 2001");
    }

    #[test]
    fn odd_offsets_stay_in_grammar() {
        assert_eq!(rfc5322(0, 45), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322(0, -75), "Wed, 31 Dec 1969 23:59:00 -0001");
        assert!(rfc5322(0, i32::MAX).ends_with("+9959"));
        assert!(rfc5322(0, i32::MIN).ends_with("-9959"));
        let _ = rfc5322(i64::MAX, i32::MAX);
        let _ = rfc5322(i64::MIN, i32::MIN);
        let _ = qmail_date822(i64::MIN);
        let _ = ctime_utc(i64::MAX);
    }
}
