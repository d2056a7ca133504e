//! Unique maildir file names.
//!
//! The modern maildir convention (maildir(5) as revised on cr.yp.to, Courier and Dovecot):
//! `<seconds>.M<microseconds>P<pid>Q<counter>R<random>.<hostname>`. Seconds and microseconds
//! come from the clock, the counter makes names unique within one process even when the
//! clock does not move, and the random part (64 bits, from the standard library's per-process
//! random hash keys) guards against a recycled pid in another container on the same host.
//! In the hostname `/` becomes `\057` and `:` becomes `\072`, so the name stays one path
//! component and the `:2,` info suffix stays unambiguous; other bytes outside printable ASCII
//! are escaped the same way (`\ooo`, octal).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The name under which a message was delivered into `new/`.
///
/// Readers move it to `cur/` as `<name>:2,<flags>`; the part before `:` stays the message's
/// unique identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveredName(String);

impl DeliveredName {
    pub(crate) fn new(name: String) -> Self {
        Self(name)
    }

    /// The file name in `new/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DeliveredName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DeliveredName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Escapes a hostname for use in a maildir name: `/` → `\057`, `:` → `\072`, and any byte
/// outside printable ASCII (or `\` itself) → `\ooo`.
pub fn escape_hostname(host: &[u8]) -> String {
    let mut out = String::with_capacity(host.len());
    for &b in host {
        if b == b'/' || b == b':' || b == b'\\' || !(0x21..0x7f).contains(&b) {
            out.push('\\');
            out.extend(
                (0..3)
                    .rev()
                    .map(|i| char::from(b'0' + ((b >> (3 * i)) & 7))),
            );
        } else {
            out.push(char::from(b));
        }
    }
    if out.is_empty() {
        out.push_str("localhost");
    }
    out
}

/// This machine's hostname (`uname` nodename), escaped once per process.
fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| escape_hostname(rustix::system::uname().nodename().to_bytes()))
}

fn random64(counter: u64, nanos: u128) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let mut h = KEYS.get_or_init(RandomState::new).build_hasher();
    h.write_u64(counter);
    h.write_u128(nanos);
    h.finish()
}

/// A fresh unique name for a file in `tmp/` (and later `new/`).
pub(crate) fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = rustix::process::getpid().as_raw_nonzero();
    format!(
        "{}.M{}P{}Q{}R{:016x}.{}",
        now.as_secs(),
        now.subsec_micros(),
        pid,
        counter,
        random64(counter, now.as_nanos()),
        hostname()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hostname_escapes_slash_and_colon() {
        assert_eq!(escape_hostname(b"a/b:c.example"), "a\\057b\\072c.example");
        assert_eq!(escape_hostname(b"h\\x y"), "h\\134x\\040y");
        assert_eq!(escape_hostname(b""), "localhost");
    }

    #[test]
    fn names_are_unique_and_one_component() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(
                !n.contains('/') && !n.contains(':') && !n.starts_with('.'),
                "{n}"
            );
            let parts: Vec<&str> = n.splitn(3, '.').collect();
            assert!(parts[0].parse::<u64>().is_ok(), "{n}");
            assert!(parts[1].starts_with('M') && parts[1].contains('P'), "{n}");
            assert!(parts[1].contains('Q') && parts[1].contains('R'), "{n}");
        }
    }
}
