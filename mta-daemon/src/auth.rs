//! SMTP AUTH for the daemon (design.md "TLS, AUTH and message authentication"): who may
//! log in (`users/passwords`, then `control/checkpassword`), the lockout after
//! `authfailmax` failures, and `mta passwd`.
//!
//! - `users/passwords` is read by the accepting thread, which keeps the daemon's
//!   privileges (so the file may be 0600 root), re-read when it changes; sessions get the
//!   parsed table. Hashes: SHA-512-crypt (`$6$`), bcrypt (`$2b$`, `$2y$`), Argon2id, each
//!   verified by its well-kept crate, which compares in constant time.
//! - The check runs in the session's own thread, unprivileged: a slow hash (Argon2id's
//!   default parameters cost tens of milliseconds) holds up only that client.
//! - `control/checkpassword` runs a program with qmail's checkpassword interface for logins
//!   not in the file: `LOGIN NUL PASSWORD NUL TIMESTAMP NUL` on descriptor 3, exit 0
//!   accepts. It runs as the SMTP sessions' account, with a 10 s limit.
//! - Passwords never reach a log line or an error text.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use mta_core::control::Passwords;

use crate::watched::Watched;

/// `users/passwords`, parsed and kept current ([`Watched`]).
pub(crate) type PasswordStore = Watched<Arc<Passwords>>;

/// The password store for `path`.
pub(crate) fn password_store(path: PathBuf) -> PasswordStore {
    Watched::new(path, |p| match Passwords::load(p) {
        Ok(Some(t)) => Ok(Arc::new(t)),
        Ok(None) => Err("no such file".to_owned()),
        Err(e) => Err(e.to_string()),
    })
}

/// True when `password` matches `hash` (crypt form). Unknown or malformed hashes never
/// match.
pub(crate) fn verify_hash(hash: &str, password: &[u8]) -> bool {
    if hash.starts_with("$argon2") {
        return PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password, &parsed)
                .is_ok()
        });
    }
    if hash.starts_with("$2b$") || hash.starts_with("$2y$") || hash.starts_with("$2a$") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    if hash.starts_with("$6$") {
        return std::str::from_utf8(password)
            .is_ok_and(|p| sha_crypt::sha512_check(p, hash).is_ok());
    }
    false
}

/// An Argon2id hash of `password` with the crate's default parameters (RFC 9106's second
/// recommendation: m=19456 KiB, t=2, p=1) and a 16-byte salt from the system's random
/// source, for `mta passwd`.
///
/// # Errors
/// The random source could not be read.
pub(crate) fn hash_password(password: &[u8]) -> io::Result<String> {
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| io::Error::other(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| io::Error::other(e.to_string()))
}

/// How long a checkpassword program may run.
const CHECKPASSWORD_LIMIT: Duration = Duration::from_secs(10);

/// Runs `program` with qmail's checkpassword interface: `login\0password\0timestamp\0` on
/// descriptor 3, `/bin/true` as the program it would run on success. `Ok(true)`: exit 0.
///
/// # Errors
/// The program could not be started, or ran past its 10 s limit (then it is killed).
pub(crate) fn checkpassword(program: &str, login: &str, password: &[u8]) -> io::Result<bool> {
    // Descriptor 3 without unsafe code: a shell duplicates the data pipe (stdin) onto it.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("exec \"$0\" /bin/true 3<&0 0</dev/null")
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut data = Vec::with_capacity(login.len() + password.len() + 16);
    data.extend_from_slice(login.as_bytes());
    data.push(0);
    data.extend_from_slice(password);
    data.push(0);
    data.extend_from_slice(crate::log::unix_now().to_string().as_bytes());
    data.push(0);
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading gets a broken pipe: its exit code decides.
        let _ = stdin.write_all(&data);
    }
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if started.elapsed() > CHECKPASSWORD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "checkpassword ran too long",
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How far back failures count, and how long a lockout lasts.
const FAIL_WINDOW: Duration = Duration::from_mins(10);

/// Failed AUTHs per client address (`authfailmax`): at the limit within 10 minutes, AUTH
/// from that address is refused for 10 minutes.
#[derive(Debug, Default)]
pub(crate) struct FailTracker {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// Addresses tracked at most; the oldest entries go first when it is full.
const MAX_TRACKED: usize = 65_536;

impl FailTracker {
    /// True when `ip` is locked out at `now`.
    pub(crate) fn locked(&self, ip: IpAddr, now: Instant, max: u64) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(list) = map.get_mut(&ip) else {
            return false;
        };
        while list
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > FAIL_WINDOW)
        {
            list.pop_front();
        }
        if list.is_empty() {
            map.remove(&ip);
            return false;
        }
        max > 0 && list.len() as u64 >= max
    }

    /// Records a failure of `ip` at `now`.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.clear();
        }
        let list = map.entry(ip).or_default();
        list.push_back(now);
        // A locked-out address keeps failing: keep its newest failures only.
        while list.len() > 1000 {
            list.pop_front();
        }
    }
}

/// The outcome of one login attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// The password is right.
    Ok,
    /// It is not (or the login is unknown).
    Wrong,
    /// It could not be checked now (checkpassword failed to run).
    Unavailable(String),
}

/// Checks `login`/`password`: `users/passwords` first, then the checkpassword program.
pub(crate) fn check(
    passwords: Option<&Passwords>,
    checkpassword_program: Option<&str>,
    login: &str,
    password: &[u8],
) -> Check {
    if let Some(entry) = passwords.and_then(|p| p.get(login)) {
        return if verify_hash(&entry.hash, password) {
            Check::Ok
        } else {
            Check::Wrong
        };
    }
    match checkpassword_program {
        Some(program) => match checkpassword(program, login, password) {
            Ok(true) => Check::Ok,
            Ok(false) => Check::Wrong,
            Err(e) => Check::Unavailable(e.to_string()),
        },
        None => Check::Wrong,
    }
}

/// `mta passwd LOGIN`: reads the password (first line of `input`), stores its Argon2id
/// hash in `users/passwords` (mode 0600, written to a temporary file and renamed), keeping
/// the login's SENDERS and every other line. Returns the exit code.
pub(crate) fn passwd(
    passwords_path: &Path,
    login: &str,
    input: &mut dyn Read,
    err: &mut dyn Write,
) -> i32 {
    let fail = |err: &mut dyn Write, what: String| {
        let _ = writeln!(err, "mta passwd: {what}");
        111
    };
    if login.is_empty() || login.contains([':', ' ', '\n', '\r', '\t']) {
        let _ = writeln!(
            err,
            "mta passwd: a login has no ':', space or control character"
        );
        return 1;
    }
    let mut text = Vec::new();
    if let Err(e) = input.take(4096).read_to_end(&mut text) {
        return fail(err, format!("reading the password: {e}"));
    }
    let password = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let password = password.strip_suffix(b"\r").unwrap_or(password);
    if password.is_empty() {
        let _ = writeln!(err, "mta passwd: an empty password is refused");
        return 1;
    }
    let table = match Passwords::load(passwords_path) {
        Ok(t) => t.unwrap_or_default(),
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return 1;
        }
    };
    let hash = match hash_password(password) {
        Ok(h) => h,
        Err(e) => return fail(err, format!("hashing: {e}")),
    };
    let new_text = table.render_with(login, &hash);
    let tmp = passwords_path.with_extension("new");
    let written = (|| -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        f.write_all(new_text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, passwords_path)
    })();
    match written {
        Ok(()) => 0,
        Err(e) => fail(err, format!("{}: {e}", passwords_path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_of_each_kind_verify() {
        let argon = hash_password(b"pw").unwrap_or_default();
        assert!(argon.starts_with("$argon2id$"));
        assert!(verify_hash(&argon, b"pw"));
        assert!(!verify_hash(&argon, b"pW"));
        let bc = bcrypt::hash("pw", 4).unwrap_or_default();
        assert!(verify_hash(&bc, b"pw") && !verify_hash(&bc, b"x"));
        let params = sha_crypt::Sha512Params::new(5000).unwrap_or_else(|_| unreachable!());
        let sha = sha_crypt::sha512_simple("pw", &params).unwrap_or_default();
        assert!(sha.starts_with("$6$"));
        assert!(verify_hash(&sha, b"pw") && !verify_hash(&sha, b"x"));
        assert!(!verify_hash("$1$md5$notsupported", b"pw"));
        assert!(!verify_hash("garbage", b"pw"));
    }

    #[test]
    fn lockout_after_authfailmax_within_ten_minutes() {
        let t = FailTracker::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap_or_else(|_| unreachable!());
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(!t.locked(ip, t0, 3), "locked after {i}");
            t.failed(ip, t0);
        }
        assert!(t.locked(ip, t0 + Duration::from_mins(1), 3));
        assert!(!t.locked(ip, t0 + FAIL_WINDOW + Duration::from_secs(1), 3));
    }
}
