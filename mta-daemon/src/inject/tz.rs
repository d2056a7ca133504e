//! The local UTC offset for the `Date:` field qmail-inject adds, from `TZ` as the C library
//! reads it, with [`jiff`] doing the parsing: a zoneinfo name or `:name` (the system tzdb),
//! a `/path` to a TZif file, or a POSIX rule such as `CET-1CEST,M3.5.0,M10.5.0/3`; without
//! `TZ`, `/etc/localtime`. Anything unreadable gives `+0000`, which is still a correct
//! RFC 5322 date, only in UTC.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The local offset from UTC in seconds (east positive) at `unix_secs`, following `tz` (the
/// `TZ` variable's value, if set).
pub(crate) fn local_offset(tz: Option<&[u8]>, unix_secs: i64) -> i32 {
    let Ok(at) = Timestamp::from_second(unix_secs) else {
        return 0;
    };
    zone(tz).map_or(0, |z| z.to_offset(at).seconds())
}

fn zone(tz: Option<&[u8]>) -> Option<TimeZone> {
    let from_file = |p: &str| {
        let data = std::fs::read(p).ok()?;
        TimeZone::tzif(p, &data).ok()
    };
    let Some(tz) = tz else {
        return from_file("/etc/localtime");
    };
    let tz = String::from_utf8_lossy(tz);
    let name = tz.strip_prefix(':').unwrap_or(&tz);
    let file = if name.is_empty() || name.contains("..") {
        None
    } else if name.starts_with('/') {
        from_file(name)
    } else {
        jiff::tz::db().get(name).ok()
    };
    file.or_else(|| TimeZone::posix(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-07-01 12:00:00 UTC and 2026-01-15 12:00:00 UTC.
    const JULY: i64 = 1_782_907_200;
    const JANUARY: i64 = 1_768_478_400;
    // 2026 EU change: last Sunday of March is the 29th, 01:00 UTC.
    const EU_CHANGE: i64 = 1_774_746_000;

    #[test]
    fn posix_rules() {
        let at = |tz: &str, t| local_offset(Some(tz.as_bytes()), t);
        assert_eq!(at("CET-1CEST,M3.5.0,M10.5.0/3", JULY), 7200);
        assert_eq!(at("CET-1CEST,M3.5.0,M10.5.0/3", JANUARY), 3600);
        assert_eq!(at("CET-1CEST,M3.5.0,M10.5.0/3", EU_CHANGE - 1), 3600);
        assert_eq!(at("CET-1CEST,M3.5.0,M10.5.0/3", EU_CHANGE), 7200);
        assert_eq!(at("EST5EDT,M3.2.0,M11.1.0", JULY), -4 * 3600);
        assert_eq!(at("EST5EDT,M3.2.0,M11.1.0", JANUARY), -5 * 3600);
        assert_eq!(at("AEST-10AEDT,M10.1.0,M4.1.0/3", JULY), 10 * 3600);
        assert_eq!(at("AEST-10AEDT,M10.1.0,M4.1.0/3", JANUARY), 11 * 3600);
        assert_eq!(at("<+0530>-5:30", JULY), 19_800);
        assert_eq!(at("UTC0", JULY), 0);
        assert_eq!(at("garbage", JULY), 0);
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
        if std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            assert_eq!(local_offset(Some(b"Europe/Berlin"), JULY), 7200);
            assert_eq!(local_offset(Some(b":Europe/Berlin"), JANUARY), 3600);
            assert_eq!(local_offset(Some(b"America/New_York"), JULY), -14_400);
            assert_eq!(
                local_offset(Some(b"/usr/share/zoneinfo/Europe/Berlin"), JULY),
                7200
            );
        }
    }
}
