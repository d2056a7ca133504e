//! Mbox delivery on the real filesystem: locking (flock against ourselves, POSIX fcntl
//! against Python's `mailbox` locking), rollback, tail repair, creation mode, the From_
//! line against Python's `time` module, and a quoting round-trip property.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mta_maildir::{Mbox, MboxStep, ctime_utc, mbox_from_line};
use proptest::prelude::*;

use crate::common::{fast_tempdir, split_mbox};

#[test]
fn new_mbox_is_created_0600_and_entries_end_with_a_blank_line() {
    let dir = fast_tempdir();
    let path = dir.path().join("Mailbox");
    let mbox = Mbox::new(&path);
    assert!(!path.exists(), "Mbox::new does no I/O");
    mbox.deliver(
        b"From a@b Thu Jan 01 00:00:00 1970\n",
        b"Delivered-To: u@x\n",
        &b"Subject: s\n\nbody"[..],
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"From a@b Thu Jan 01 00:00:00 1970\nDelivered-To: u@x\nSubject: s\n\nbody\n\n"
    );
}

#[test]
fn lock_wait_is_bounded_and_a_timeout_changes_nothing() {
    let dir = fast_tempdir();
    let path = dir.path().join("Mailbox");
    std::fs::write(&path, b"From x\n\n").unwrap();
    let holder = std::fs::File::open(&path).unwrap();
    rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let mbox = Mbox::new(&path).with_lock_timeout(Duration::from_millis(150));
    let started = Instant::now();
    let err = mbox.deliver(b"From y\n", b"", &b"hi\n"[..]).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(err.step(), MboxStep::Lock);
    assert!(err.rolled_back());
    assert_eq!(std::fs::read(&path).unwrap(), b"From x\n\n");
    drop(holder);
    mbox.deliver(b"From y\n", b"", &b"hi\n"[..]).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"From x\n\nFrom y\nhi\n\n");
}

#[test]
fn waits_for_pythons_lockf_lock() {
    let dir = fast_tempdir();
    let path = dir.path().join("Mailbox");
    std::fs::write(&path, b"").unwrap();
    let script = "import fcntl, sys, time\n\
                  f = open(sys.argv[1], 'ab')\n\
                  fcntl.lockf(f, fcntl.LOCK_EX)\n\
                  print('locked', flush=True)\n\
                  time.sleep(0.3)\n\
                  f.write(b'From python\\n\\n')\n\
                  f.flush()\n";
    let mut py = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(py.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    Mbox::new(&path)
        .deliver(b"From us\n", b"", &b"x\n"[..])
        .unwrap();
    assert!(py.wait().unwrap().success());
    // Python's entry went first: we waited for its lock rather than interleaving.
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"From python\n\nFrom us\nx\n\n"
    );
}

struct FailAfter(usize);

impl Read for FailAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("boom"));
        }
        let n = self.0.min(buf.len()).min(1000);
        buf[..n].fill(b'z');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn failure_truncates_back_to_the_original_length() {
    let dir = fast_tempdir();
    let path = dir.path().join("Mailbox");
    std::fs::write(&path, b"From old\nkept\n\n").unwrap();
    // 200 KB before the failure, so several buffers were already written to the file.
    let err = Mbox::new(&path)
        .deliver(b"From new\n", b"", FailAfter(200_000))
        .unwrap_err();
    assert_eq!(err.step(), MboxStep::ReadMessage);
    assert!(err.rolled_back());
    assert_eq!(std::fs::read(&path).unwrap(), b"From old\nkept\n\n");
}

#[test]
fn a_cut_short_last_entry_is_closed_before_appending() {
    let dir = fast_tempdir();
    let path = dir.path().join("Mailbox");
    for (old, glue) in [
        (&b"From a\npartial li"[..], &b"\n\n"[..]),
        (b"From a\nline\n", b"\n"),
        (b"From a\n\n", b""),
    ] {
        std::fs::write(&path, old).unwrap();
        Mbox::new(&path)
            .deliver(b"From b\n", b"", &b"new\n"[..])
            .unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [old, glue, b"From b\nnew\n\n"].concat()
        );
        assert_eq!(split_mbox(&std::fs::read(&path).unwrap()).len(), 2);
    }
}

#[test]
fn from_line_date_matches_python_time_module() {
    let stamps: Vec<i64> = (0..40).map(|i| i * 97_654_321 - 1_000_000_000).collect();
    let script = "import sys, time\n\
                  for s in sys.argv[1:]:\n\
                  \x20   print(time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime(int(s))))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .args(stamps.iter().map(ToString::to_string))
        .output()
        .unwrap();
    let want = String::from_utf8(out.stdout).unwrap();
    for (s, w) in stamps.iter().zip(want.lines()) {
        assert_eq!(ctime_utc(*s), w, "{s}");
        assert_eq!(
            mbox_from_line(b"a b\tc", *s),
            format!("From a-b-c {w}\n").into_bytes()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the message, the mbox holds it as one entry that unquotes back to it.
    #[test]
    fn any_message_round_trips(msg in proptest::collection::vec(
        prop::sample::select(b"From >\nx\r".to_vec()), 0..300)) {
        let dir = fast_tempdir();
        let path = dir.path().join("Mailbox");
        Mbox::new(&path).deliver(b"From s@x Thu Jan 01 00:00:00 1970\n", b"", &msg[..]).unwrap();
        Mbox::new(&path).deliver(b"From t@x Thu Jan 01 00:00:00 1970\n", b"", &msg[..]).unwrap();
        let entries = split_mbox(&std::fs::read(&path).unwrap());
        prop_assert_eq!(entries.len(), 2);
        let mut want = msg.clone();
        if want.last().is_some_and(|&b| b != b'\n') {
            want.push(b'\n');
        }
        for (_, body) in entries {
            prop_assert_eq!(&body, &want);
        }
    }
}
