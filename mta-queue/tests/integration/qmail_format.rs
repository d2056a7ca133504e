//! qmail compatibility against data files: the qmail-queue envelope codec and qmail-send's
//! retry schedule.

use std::time::{Duration, UNIX_EPOCH};

use mta_core::{Address, Envelope};
use mta_queue::qmail;
use mta_queue::retry::{QmailSchedule, RetrySchedule};

const ENVELOPES: &str = include_str!("../data/qmail_envelopes.txt");
const SCHEDULE: &str = include_str!("../data/qmail_retry_schedule.txt");

fn unescape(field: &str) -> Vec<u8> {
    if field == "-" {
        return Vec::new();
    }
    let b = field.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, used) = match b[i + 1] {
            b'0' => (0, 2),
            b'r' => (b'\r', 2),
            b'n' => (b'\n', 2),
            b't' => (b'\t', 2),
            b'\\' => (b'\\', 2),
            b'x' => (u8::from_str_radix(&field[i + 2..i + 4], 16).unwrap(), 4),
            other => panic!("bad escape \\{}", other as char),
        };
        out.push(byte);
        i += used;
    }
    out
}

#[test]
fn envelope_vectors() {
    let mut cases = 0;
    for line in ENVELOPES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let code: i32 = f[0].parse().unwrap();
        let input = unescape(f[1]);
        let result = qmail::decode(&input);
        if code != 0 {
            let err = result.expect_err(line);
            assert_eq!(err.exit_code(), code, "{line}");
            continue;
        }
        let (env, used) = result.unwrap_or_else(|e| panic!("{line}: {e}"));
        let n: usize = f[3].parse().unwrap();
        let recipients: Vec<Address> = f[4..4 + n]
            .iter()
            .map(|r| Address::from_bytes(unescape(r)))
            .collect();
        let expected = Envelope {
            sender: Address::from_bytes(unescape(f[2])),
            recipients,
        };
        assert_eq!(env, expected, "{line}");
        // Export gives back exactly the bytes consumed.
        assert_eq!(qmail::encode(&env).unwrap(), input[..used], "{line}");
        // The streaming reader consumes exactly the envelope.
        let mut cursor = &input[..];
        assert_eq!(qmail::read_from(&mut cursor).unwrap(), expected);
        assert_eq!(cursor, &input[used..]);
        cases += 1;
    }
    assert!(cases >= 7);
}

#[test]
fn retry_schedule_matches_qmail_send() {
    let birth = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut rows = 0;
    for line in SCHEDULE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split(' ').collect();
        let schedule = match f[0] {
            "local" => QmailSchedule::LOCAL,
            "remote" => QmailSchedule::REMOTE,
            other => panic!("channel {other}"),
        };
        let k: u32 = f[1].parse().unwrap();
        let want = Duration::from_secs(f[2].parse().unwrap());
        // Run attempts 0..k on time: each pass starts exactly at the previous result.
        let mut now = birth;
        for attempt in 1..=k {
            now = schedule.next_attempt(birth, now, attempt);
        }
        assert_eq!(now.duration_since(birth).unwrap(), want, "{line}");
        assert_eq!(schedule.on_time_offset(u64::from(k)), want, "{line}");
        rows += 1;
    }
    assert_eq!(rows, 20);
}
