//! Shared helpers: a deterministic RNG, message generators, and the invariant checks.

use std::io::Read;
use std::path::PathBuf;

use mta_core::{Address, Envelope};
use mta_queue::{Fs, MessageId, Queue, Status};

/// splitmix64: small, deterministic, good enough to pick test cases.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// The message (envelope and bytes) generated from `seed`: hostile bytes in every address,
/// sizes from empty to past the 64 KiB write chunk.
pub fn message(seed: u64) -> (Envelope, Vec<u8>) {
    let mut r = Rng(seed);
    let sender_len = if r.below(5) == 0 {
        0
    } else {
        1 + r.below(40) as usize
    };
    let sender = r.bytes(sender_len);
    let n = 1 + r.below(5) as usize;
    let recipients: Vec<Address> = (0..n)
        .map(|i| {
            let mut a = format!("rcpt{i}\r\n\0@").into_bytes();
            let extra = r.below(20) as usize;
            a.extend(r.bytes(extra));
            Address::from_bytes(a)
        })
        .collect();
    let len = match r.below(10) {
        0 => 0,
        1 => 70_000 + r.below(50_000) as usize,
        _ => r.below(4000) as usize,
    };
    (
        Envelope {
            sender: Address::from_bytes(sender),
            recipients,
        },
        r.bytes(len),
    )
}

pub fn read_body<F: Fs>(q: &Queue<F>, id: MessageId) -> Vec<u8> {
    let mut reader = q.open_message(id).unwrap();
    let mut body = Vec::new();
    reader.read_to_end(&mut body).unwrap();
    assert_eq!(body.len() as u64, reader.len());
    body
}

/// Asserts message `id` holds exactly the message generated from `seed`.
pub fn assert_message<F: Fs>(q: &Queue<F>, id: MessageId, seed: u64) {
    let (env, body) = message(seed);
    let info = q.info(id).unwrap();
    assert_eq!(info.envelope, env, "envelope of {id}");
    assert_eq!(info.body_len, body.len() as u64);
    assert!(read_body(q, id) == body, "body of {id}");
}

/// A status chosen from `seed`, for marks.
pub fn status(seed: u64) -> Status {
    let mut r = Rng(seed);
    match r.below(4) {
        0 => Status::Delivered,
        1 => {
            let n = r.below(60) as usize;
            Status::Failed(r.bytes(n))
        }
        2 => Status::Deferred {
            attempts: r.below(50) as u32,
            next_attempt: std::time::UNIX_EPOCH
                + std::time::Duration::new(r.below(1 << 40), r.below(1_000_000_000) as u32),
            reason: (0..r.below(40)).map(|_| r.below(256) as u8).collect(),
        },
        _ => Status::Pending,
    }
}

/// A scratch directory, on tmpfs when there is one (the SIGKILL tests need no real disk:
/// the page cache survives a killed process), else in the system temp dir.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new()
            .prefix("mta-queue-")
            .tempdir_in(&shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// Every name under `dir/mess/<n>/`, and whether it is a free name (`free.<id>`: a removed
/// message's file kept for reuse) rather than a queued message's.
pub fn mess_entries(dir: &std::path::Path) -> Vec<(std::path::PathBuf, bool)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir.join("mess")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let free = f.file_name().to_str().unwrap().starts_with("free.");
            out.push((f.path(), free));
        }
    }
    out
}

/// The removed messages' files kept for reuse in the queue at `dir` (their free names).
pub fn free_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    mess_entries(dir)
        .into_iter()
        .filter_map(|(path, free)| free.then_some(path))
        .collect()
}
