//! Shared helpers: test directories, data files, generated messages, child processes,
//! an mbox splitter and the hex decoding used to read the Python scripts' output.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mta_maildir::{Maildir, Mbox, mbox_from_line};

/// Environment variable that turns the `common::child_worker` test into a child process.
pub(crate) const CHILD_ENV: &str = "MTA_MAILDIR_TEST_CHILD";

pub(crate) fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The sample messages under tests/data/messages, sorted by file name.
pub(crate) fn sample_messages() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(data_dir().join("messages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A temporary directory on tmpfs when there is one with room to spare (fast fsync; CI
/// containers often have a 64 MB /dev/shm), else the default.
pub(crate) fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let roomy = rustix::fs::statvfs(shm).is_ok_and(|s| s.f_bavail * s.f_frsize > 512 << 20);
    if roomy && let Ok(d) = tempfile::tempdir_in(shm) {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// A reproducible pseudo-random sequence (xorshift64*), seeded per run from the OS.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Self {
        let seed = RandomState::new().build_hasher().finish() | 1;
        eprintln!("rng seed {seed}");
        Self(seed)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// A self-describing message: its id and length can be read back from its first line, so a
/// file found on disk can be checked for completeness. Bodies include `From ` lines (to
/// exercise mbox quoting) and no final newline for odd ids.
pub(crate) fn generated_message(tag: &str, id: u64, approx_len: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut line = 0u64;
    while body.len() < approx_len {
        if line % 7 == 3 {
            body.extend_from_slice(format!("From line {line} of {tag}-{id}\n").as_bytes());
        } else {
            body.extend_from_slice(
                format!(
                    "{tag}-{id} line {line} {}\n",
                    "x".repeat((line % 50) as usize)
                )
                .as_bytes(),
            );
        }
        line += 1;
    }
    if id % 2 == 1 {
        body.pop();
    }
    let mut msg = format!(
        "X-Test-Id: {tag}-{id} {}\nSubject: test {id}\n\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(&body);
    msg
}

/// The id (`tag-n`) a generated message declares, if its first line is intact.
pub(crate) fn message_id(data: &[u8]) -> Option<String> {
    let first = data
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"X-Test-Id: "))?;
    let text = std::str::from_utf8(&first[11..]).ok()?;
    Some(text.split(' ').next()?.to_owned())
}

/// Regenerates the message a generated id/length pair stands for.
pub(crate) fn expected_for(id: &str, approx_len: usize) -> Vec<u8> {
    let (tag, n) = id.rsplit_once('-').unwrap();
    generated_message(tag, n.parse().unwrap(), approx_len)
}

/// A reader that hands out `chunk` bytes per read, so a delivery makes many write calls.
pub(crate) struct Chunked<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(self.chunk).min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// mboxrd-quotes `msg` as mbox delivery should, adding the final newline it may lack.
pub(crate) fn mboxrd_quote(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in msg.split_inclusive(|&b| b == b'\n') {
        let rest = &line[line.iter().take_while(|&&b| b == b'>').count()..];
        if rest.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if out.last().is_some_and(|&b| b != b'\n') {
        out.push(b'\n');
    }
    out
}

/// Splits an mbox into entries at lines starting with `From `; each entry is returned
/// without its From_ line and without the blank separator line, unquoted (one `>` removed
/// from `^>+From `).
pub(crate) fn split_mbox(data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            entries.push((line.to_vec(), Vec::new()));
            continue;
        }
        let Some((_, body)) = entries.last_mut() else {
            panic!("mbox does not start with From_")
        };
        let rest = &line[line.iter().take_while(|&&b| b == b'>').count()..];
        if line.starts_with(b">") && rest.starts_with(b"From ") {
            body.extend_from_slice(&line[1..]);
        } else {
            body.extend_from_slice(line);
        }
    }
    for (_, body) in &mut entries {
        if body.ends_with(b"\n") {
            body.pop();
        }
    }
    entries
}

pub(crate) fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs one of the Python scripts under tests/data/python and returns its stdout lines.
pub(crate) fn python(script: &str, args: &[&Path]) -> Vec<String> {
    let out = Command::new("python3")
        .arg(data_dir().join("python").join(script))
        .args(args)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Starts this test binary again as a child running `child_worker` with `args`.
pub(crate) fn spawn_child(args: &[String]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "common::child_worker",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, args.join("\u{1f}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Size of the messages the kill tests deliver; large enough that a delivery makes many
/// write calls and the kill lands inside one often.
pub(crate) const KILL_MESSAGE_LEN: usize = 96 * 1024;

/// The child side of the kill and concurrency tests; a no-op in a normal test run.
///
/// Modes (arguments joined with U+001F in the environment variable):
/// - `maildir-loop DIR TAG`: deliver generated messages forever, printing `DONE name id`.
/// - `mbox-loop FILE TAG`: the same into an mbox, printing `DONE - id`.
/// - `fanout-loop TAG DIR...`: batched deliveries to all DIRs, printing `DONE i/name id`
///   for the i-th DIR.
/// - `burst MAILDIR MBOX TAG COUNT LEN`: deliver COUNT messages to both and exit.
#[test]
fn child_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args: Vec<&str> = spec.split('\u{1f}').collect();
    match args[0] {
        "maildir-loop" => {
            let md = Maildir::open(args[1]).unwrap();
            for n in 0.. {
                let msg = generated_message(args[2], n, KILL_MESSAGE_LEN);
                let name = md
                    .deliver(
                        b"",
                        Chunked {
                            data: &msg,
                            chunk: 4096,
                        },
                    )
                    .unwrap();
                println!("DONE {name} {}-{n}", args[2]);
            }
        }
        "mbox-loop" => {
            let mbox = Mbox::new(args[1]);
            for n in 0.. {
                let msg = generated_message(args[2], n, KILL_MESSAGE_LEN);
                let from = mbox_from_line(b"kill@example.org", 0);
                mbox.deliver(
                    &from,
                    b"",
                    Chunked {
                        data: &msg,
                        chunk: 4096,
                    },
                )
                .unwrap();
                println!("DONE - {}-{n}", args[2]);
            }
        }
        "fanout-loop" => {
            let mds: Vec<Maildir> = args[2..]
                .iter()
                .map(|p| Maildir::open(p).unwrap())
                .collect();
            let refs: Vec<&Maildir> = mds.iter().collect();
            for n in 0.. {
                let msg = generated_message(args[1], n, KILL_MESSAGE_LEN);
                let results = mta_maildir::deliver_many(
                    &refs,
                    b"",
                    Chunked {
                        data: &msg,
                        chunk: 4096,
                    },
                );
                for (i, r) in results.into_iter().enumerate() {
                    println!("DONE {i}/{} {}-{n}", r.unwrap(), args[1]);
                }
            }
        }
        "burst" => {
            let md = Maildir::open(args[1]).unwrap();
            let mbox = Mbox::new(args[2]);
            let count: u64 = args[4].parse().unwrap();
            let len: usize = args[5].parse().unwrap();
            for n in 0..count {
                let msg = generated_message(args[3], n, len);
                md.deliver(b"", &msg[..]).unwrap();
                mbox.deliver(&mbox_from_line(args[3].as_bytes(), 0), b"", &msg[..])
                    .unwrap();
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}
