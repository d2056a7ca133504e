//! A short-lived cache of `.qmail` lookups for SMTP-time recipient checks.
//!
//! Refusing unknown users at RCPT (no backscatter) costs a users/assign lookup and a
//! `.qmail` search per recipient: several `open` attempts each. A list of thousands of
//! recipients repeats the same few files (`.qmail-default` of the same user), so the file
//! system answers are kept for [`TTL`]. A list's thousands of `user-N` addresses ask for a
//! new name each time (`.qmail-N`, not there), which no answer by path can save: a home in
//! which several names were not found is listed once per [`TTL`] instead, and names it does
//! not hold are refused from memory (mta-dotqmail's `AbsentNames`). Only the RCPT check
//! uses this cache: delivery looks at the files again (at most a worker's batch old), so
//! an edited `.qmail` takes effect within a second for RCPT.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use mta_dotqmail::{AbsentNames, FileLookup, FileStatus, SystemExecutor};

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(1);

/// Entries kept at most; the cache is emptied when it grows past this.
const MAX_ENTRIES: usize = 65_536;

#[derive(Clone, Copy)]
enum Answer {
    Probe(Option<FileStatus>),
    Exists(bool),
}

/// The shared cache (one per daemon).
#[derive(Default)]
pub struct LookupCache {
    /// By [`key`]: the path's bytes and the kind of question.
    entries: Mutex<HashMap<Vec<u8>, (Instant, Answer)>>,
    /// Directory listings, and when the oldest was taken (all are dropped after [`TTL`]).
    absent: Mutex<(Option<Instant>, AbsentNames)>,
}

/// The cache's key for a question about `path`: its bytes (hashing a `Path` walks its
/// components) and one byte for which question (a path holds no NUL, so no key of one
/// path is a key of another).
fn key(path: &Path, exists: bool) -> Vec<u8> {
    let bytes = path.as_os_str().as_bytes();
    let mut key = Vec::with_capacity(bytes.len() + 1);
    key.extend_from_slice(bytes);
    key.push(u8::from(exists));
    key
}

impl std::fmt::Debug for LookupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupCache").finish_non_exhaustive()
    }
}

impl LookupCache {
    /// A [`FileLookup`] that answers from the cache when it can.
    pub fn lookup(&self) -> CachedLookup<'_> {
        CachedLookup {
            cache: self,
            fs: SystemExecutor::new(),
        }
    }

    fn get(&self, path: &Path, exists: bool) -> Option<Answer> {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, a) = map.get(&key(path, exists))?;
        (at.elapsed() < TTL).then_some(*a)
    }

    /// Whether a listing taken less than [`TTL`] ago rules `path` out.
    fn ruled_out(&self, path: &Path) -> bool {
        let mut absent = self.absent.lock().unwrap_or_else(PoisonError::into_inner);
        if absent.0.is_some_and(|at| at.elapsed() >= TTL) {
            *absent = (None, AbsentNames::new());
        }
        absent.1.rules_out(path)
    }

    /// The file system said `path` is not there (may list its directory).
    fn missed(&self, path: &Path) {
        let mut absent = self.absent.lock().unwrap_or_else(PoisonError::into_inner);
        absent.0.get_or_insert_with(Instant::now);
        absent.1.missed(path);
    }

    fn put(&self, path: &Path, exists: bool, answer: Answer) {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key(path, exists), (Instant::now(), answer));
    }
}

/// The cached view handed to mta-dotqmail's `check_address`.
pub struct CachedLookup<'a> {
    cache: &'a LookupCache,
    fs: SystemExecutor,
}

impl FileLookup for CachedLookup<'_> {
    fn probe(&mut self, path: &Path) -> io::Result<Option<FileStatus>> {
        if let Some(Answer::Probe(a)) = self.cache.get(path, false) {
            return Ok(a);
        }
        if self.cache.ruled_out(path) {
            return Ok(None);
        }
        let a = self.fs.probe(path)?;
        if a.is_none() {
            self.cache.missed(path);
        }
        self.cache.put(path, false, Answer::Probe(a));
        Ok(a)
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        if let Some(Answer::Exists(a)) = self.cache.get(path, true) {
            return Ok(a);
        }
        if self.cache.ruled_out(path) {
            return Ok(false);
        }
        let a = self.fs.exists(path)?;
        if !a {
            self.cache.missed(path);
        }
        self.cache.put(path, true, Answer::Exists(a));
        Ok(a)
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        self.fs.read(path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_reused_then_expire() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(".qmail-default");
        let cache = LookupCache::default();
        assert!(cache.lookup().probe(&p).unwrap().is_none());
        std::fs::write(&p, "# x\n").unwrap();
        // Within the TTL the old answer stands...
        assert!(cache.lookup().probe(&p).unwrap().is_none());
        // ...and after it the file is seen.
        cache
            .entries
            .lock()
            .unwrap()
            .values_mut()
            .for_each(|(at, _)| *at = Instant::now().checked_sub(TTL * 2).unwrap());
        assert!(cache.lookup().probe(&p).unwrap().is_some());
        assert!(cache.lookup().exists(&p).unwrap());
    }

    #[test]
    fn a_home_listed_after_its_misses_answers_for_a_second() {
        let t = tempfile::tempdir().unwrap();
        let cache = LookupCache::default();
        let name = |i: usize| t.path().join(format!(".qmail-{i}"));
        assert!(cache.lookup().probe(&name(1)).unwrap().is_none());
        for i in 2..=AbsentNames::LIST_AFTER {
            assert!(!cache.lookup().exists(&name(i)).unwrap());
        }
        let name = |i: usize| name(i + 1000);
        // Listed now: a file made since is not seen by a name not asked before...
        std::fs::write(name(3), "# x\n").unwrap();
        assert!(cache.lookup().probe(&name(3)).unwrap().is_none());
        // ...until the listing is a second old.
        let aged = Instant::now().checked_sub(TTL * 2).unwrap();
        cache.absent.lock().unwrap().0 = Some(aged);
        assert!(cache.lookup().probe(&name(3)).unwrap().is_some());
    }
}
