//! The local UTC offset, for the `Date:` field qmail-inject adds, found without `unsafe`
//! (no `localtime_r`): from `TZ` (a POSIX rule such as `CET-1CEST,M3.5.0,M10.5.0/3`, or a
//! zoneinfo name or `:path`), else from `/etc/localtime`. Zoneinfo files are read as TZif
//! (RFC 8536): the last transition at or before the time gives the offset, and past the last
//! transition the file's footer rule applies. Anything unreadable gives `+0000`, which is
//! still a correct RFC 5322 date, only in UTC.

use std::path::{Path, PathBuf};

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The local offset from UTC in seconds (east positive) at `unix_secs`, following `tz` (the
/// `TZ` variable's value, if set).
pub(crate) fn local_offset(tz: Option<&[u8]>, unix_secs: i64) -> i32 {
    let from_file = |p: &Path| {
        std::fs::read(p)
            .ok()
            .and_then(|b| tzif_offset(&b, unix_secs))
    };
    match tz {
        None => from_file(Path::new("/etc/localtime")),
        Some(t) => {
            let t = String::from_utf8_lossy(t);
            let name = t.strip_prefix(':').unwrap_or(&t);
            let path = if name.starts_with('/') {
                PathBuf::from(name)
            } else {
                Path::new(ZONEINFO).join(name)
            };
            let file = if name.is_empty() || name.contains("..") {
                None
            } else {
                from_file(&path)
            };
            file.or_else(|| PosixRule::parse(name).map(|r| r.offset_at(unix_secs)))
        }
    }
    .unwrap_or(0)
}

fn be32(b: &[u8], at: usize) -> Option<i64> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(i64::from(i32::from_be_bytes(s)))
}

fn be64(b: &[u8], at: usize) -> Option<i64> {
    let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(i64::from_be_bytes(s))
}

/// The offset a TZif file gives for `t` (RFC 8536 §3).
fn tzif_offset(b: &[u8], t: i64) -> Option<i32> {
    if b.get(..4)? != b"TZif" {
        return None;
    }
    let counts = |at: usize| -> Option<[usize; 6]> {
        let mut c = [0usize; 6];
        for (i, v) in c.iter_mut().enumerate() {
            *v = usize::try_from(be32(b, at + 20 + 4 * i)?).ok()?;
        }
        Some(c)
    };
    // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
    let [ut, st, leap, time, typ, chr] = counts(0)?;
    let (base, tsize, [ut, st, leap, time, typ, chr]) = if *b.get(4)? >= b'2' {
        let v1 = 44 + time * 5 + typ * 6 + chr + leap * 8 + st + ut;
        (v1 + 44, 8, counts(v1)?)
    } else {
        (44, 4, [ut, st, leap, time, typ, chr])
    };
    let read_time = |i: usize| {
        if tsize == 8 {
            be64(b, base + 8 * i)
        } else {
            be32(b, base + 4 * i)
        }
    };
    let idx_at = base + time * tsize;
    let types_at = idx_at + time;
    let utoff = |ty: usize| -> Option<i32> { i32::try_from(be32(b, types_at + 6 * ty)?).ok() };
    let mut last = None;
    for i in 0..time {
        if read_time(i)? <= t {
            last = Some(i);
        } else {
            break;
        }
    }
    if tsize == 8 && (time == 0 || last == Some(time - 1)) {
        let footer_at = types_at + typ * 6 + chr + leap * 12 + st + ut;
        let footer = b.get(footer_at + 1..)?;
        let end = footer.iter().position(|&c| c == b'\n')?;
        if let Some(r) = std::str::from_utf8(&footer[..end])
            .ok()
            .and_then(PosixRule::parse)
        {
            return Some(r.offset_at(t));
        }
    }
    match last {
        Some(i) => utoff(usize::from(*b.get(idx_at + i)?)),
        None => utoff(0),
    }
}

/// A POSIX `TZ` rule: `std offset [dst [offset] [,start[/time],end[/time]]]`.
#[derive(Debug, PartialEq, Eq)]
struct PosixRule {
    /// Standard offset, seconds east of UTC.
    std: i32,
    /// Daylight offset and the start and end rules, if there is daylight time.
    dst: Option<(i32, DateRule, DateRule)>,
}

/// When a change happens: a day rule and the local time of day in seconds.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum DateRule {
    /// `Jn`: day 1–365, February 29 never counted.
    Julian(i64, i64),
    /// `n`: day 0–365, counting February 29.
    Day(i64, i64),
    /// `Mm.w.d`: day d (0 = Sunday) of week w (5 = last) of month m.
    Month(i64, i64, i64, i64),
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.0 = &self.0[1..];
            true
        } else {
            false
        }
    }
    fn name(&mut self) -> Option<()> {
        if self.eat(b'<') {
            let end = self.0.iter().position(|&c| c == b'>')?;
            self.0 = &self.0[end + 1..];
        } else {
            let n = self
                .0
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            if n < 3 {
                return None;
            }
            self.0 = &self.0[n..];
        }
        Some(())
    }
    fn num(&mut self) -> Option<i64> {
        let n = self.0.iter().take_while(|c| c.is_ascii_digit()).count();
        let v = std::str::from_utf8(&self.0[..n]).ok()?.parse().ok()?;
        self.0 = &self.0[n..];
        Some(v)
    }
    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn hms(&mut self) -> Option<i64> {
        let sign = if self.eat(b'-') {
            -1
        } else {
            self.eat(b'+');
            1
        };
        let mut secs = self.num()? * 3600;
        if self.eat(b':') {
            secs += self.num()? * 60;
            if self.eat(b':') {
                secs += self.num()?;
            }
        }
        Some(sign * secs)
    }
    fn date(&mut self) -> Option<DateRule> {
        let rule = if self.eat(b'J') {
            DateRule::Julian(self.num()?, 0)
        } else if self.eat(b'M') {
            let m = self.num()?;
            self.eat(b'.').then_some(())?;
            let w = self.num()?;
            self.eat(b'.').then_some(())?;
            DateRule::Month(m, w, self.num()?, 0)
        } else {
            DateRule::Day(self.num()?, 0)
        };
        let time = if self.eat(b'/') { self.hms()? } else { 7200 };
        Some(match rule {
            DateRule::Julian(d, _) => DateRule::Julian(d, time),
            DateRule::Day(d, _) => DateRule::Day(d, time),
            DateRule::Month(m, w, d, _) => DateRule::Month(m, w, d, time),
        })
    }
}

impl PosixRule {
    fn parse(s: &str) -> Option<PosixRule> {
        let mut c = Cursor(s.as_bytes());
        c.name()?;
        let std = -i32::try_from(c.hms()?).ok()?;
        if c.0.is_empty() {
            return Some(PosixRule { std, dst: None });
        }
        c.name()?;
        let dst = if matches!(c.peek(), Some(b',') | None) {
            std + 3600
        } else {
            -i32::try_from(c.hms()?).ok()?
        };
        // Without rules, POSIX leaves the dates to the implementation; use the US rules as
        // glibc does.
        let (start, end) = if c.eat(b',') {
            let start = c.date()?;
            c.eat(b',').then_some(())?;
            (start, c.date()?)
        } else {
            (
                DateRule::Month(3, 2, 0, 7200),
                DateRule::Month(11, 1, 0, 7200),
            )
        };
        c.0.is_empty().then_some(PosixRule {
            std,
            dst: Some((dst, start, end)),
        })
    }

    fn offset_at(&self, t: i64) -> i32 {
        let Some((dst, start, end)) = self.dst else {
            return self.std;
        };
        let year = civil_year((t + i64::from(self.std)).div_euclid(86_400));
        let start = rule_local_secs(start, year) - i64::from(self.std);
        let end = rule_local_secs(end, year) - i64::from(dst);
        let in_dst = if start < end {
            start <= t && t < end
        } else {
            !(end <= t && t < start)
        };
        if in_dst { dst } else { self.std }
    }
}

/// `YYYYMMDDHHMMSS` in UTC, as in qmail's Message-ID (`newfield.c`).
pub(crate) fn utc_stamp(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let y = civil_year(days);
    let mut m = 1;
    while m < 12 && days_from_civil(y, m + 1, 1) <= days {
        m += 1;
    }
    let d = days - days_from_civil(y, m, 1) + 1;
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_year(days: i64) -> i64 {
    let mut y = 1970 + days.div_euclid(366);
    while days_from_civil(y + 1, 1, 1) <= days {
        y += 1;
    }
    y
}

/// Seconds since the epoch, in local wall-clock terms, of a rule's change in `year`.
fn rule_local_secs(rule: DateRule, year: i64) -> i64 {
    let jan1 = days_from_civil(year, 1, 1);
    let (day, time) = match rule {
        DateRule::Julian(n, time) => {
            let leap_shift = i64::from(is_leap(year) && n >= 60);
            (jan1 + n - 1 + leap_shift, time)
        }
        DateRule::Day(n, time) => (jan1 + n, time),
        DateRule::Month(m, w, d, time) => {
            let first = days_from_civil(year, m, 1);
            // 1970-01-01 was a Thursday (weekday 4).
            let first_wday = (first + 4).rem_euclid(7);
            let mut day = first + (d - first_wday).rem_euclid(7) + (w - 1) * 7;
            let next_month = if m == 12 {
                days_from_civil(year + 1, 1, 1)
            } else {
                days_from_civil(year, m + 1, 1)
            };
            while day >= next_month {
                day -= 7;
            }
            (day, time)
        }
    };
    day * 86_400 + time
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // 2026-07-01 12:00:00 UTC and 2026-01-15 12:00:00 UTC.
    const JULY: i64 = 1_782_907_200;
    const JANUARY: i64 = 1_768_478_400;

    #[test]
    fn posix_rules() {
        let berlin = PosixRule::parse("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(berlin.offset_at(JULY), 7200);
        assert_eq!(berlin.offset_at(JANUARY), 3600);
        let ny = PosixRule::parse("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(ny.offset_at(JULY), -4 * 3600);
        assert_eq!(ny.offset_at(JANUARY), -5 * 3600);
        let sydney = PosixRule::parse("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!(sydney.offset_at(JULY), 10 * 3600);
        assert_eq!(sydney.offset_at(JANUARY), 11 * 3600);
        assert_eq!(
            PosixRule::parse("<+0530>-5:30").unwrap().offset_at(JULY),
            19_800
        );
        assert_eq!(PosixRule::parse("UTC0").unwrap().offset_at(JULY), 0);
        assert_eq!(PosixRule::parse("garbage"), None);
        // 2026 EU change: last Sunday of March is the 29th, 01:00 UTC.
        let change = days_from_civil(2026, 3, 29) * 86_400 + 3600;
        assert_eq!(berlin.offset_at(change - 1), 3600);
        assert_eq!(berlin.offset_at(change), 7200);
    }

    #[test]
    fn tz_variable_forms() {
        assert_eq!(
            local_offset(Some(b"EST5EDT,M3.2.0,M11.1.0"), JANUARY),
            -18_000
        );
        assert_eq!(local_offset(Some(b":nonexistent/zone"), JANUARY), 0);
        assert_eq!(local_offset(Some(b""), JANUARY), 0);
        // With the zoneinfo database installed, a zone name resolves through its TZif file.
        if Path::new(ZONEINFO).join("Europe/Berlin").exists() {
            assert_eq!(local_offset(Some(b"Europe/Berlin"), JULY), 7200);
            assert_eq!(local_offset(Some(b":Europe/Berlin"), JANUARY), 3600);
            assert_eq!(local_offset(Some(b"America/New_York"), JULY), -14_400);
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 1, 1), 20_454);
        assert_eq!(civil_year(20_454), 2026);
        assert_eq!(civil_year(20_453), 2025);
        assert_eq!(utc_stamp(1_795_925_285), "20261129040805");
        assert_eq!(utc_stamp(0), "19700101000000");
        assert_eq!(utc_stamp(951_782_400), "20000229000000");
    }
}
