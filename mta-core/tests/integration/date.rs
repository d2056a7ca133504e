//! Date formatting against Python's datetime (tests/data/dates.txt).

use mta_core::date;

use super::data;

#[test]
fn python_reference_dates() {
    let rows = data::lines("dates.txt");
    assert!(rows.len() > 200);
    for (line, text) in rows {
        let f: Vec<&str> = text.split('\t').collect();
        let t: i64 = f[0].parse().unwrap();
        let off: i32 = f[1].parse().unwrap();
        assert_eq!(date::rfc5322(t, off), f[2], "dates.txt line {line}");
        assert_eq!(date::qmail_date822(t), f[3], "dates.txt line {line}");
        assert_eq!(date::ctime_utc(t), f[4], "dates.txt line {line}");
    }
}
