//! A short-lived cache of `.qmail` lookups for SMTP-time recipient checks.
//!
//! Refusing unknown users at RCPT (no backscatter) costs a users/assign lookup and a
//! `.qmail` search per recipient: several `open` attempts each. A list of thousands of
//! recipients repeats the same few files (`.qmail-default` of the same user), so the file
//! system answers are kept for [`TTL`]. Only the RCPT check uses this cache: delivery
//! always looks at the files themselves, so an edited `.qmail` takes effect at once for
//! delivery and within a second for RCPT.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use mta_dotqmail::{FileLookup, FileStatus, SystemExecutor};

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
    entries: Mutex<HashMap<(PathBuf, bool), (Instant, Answer)>>,
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
        let (at, a) = map.get(&(path.to_path_buf(), exists))?;
        (at.elapsed() < TTL).then_some(*a)
    }

    fn put(&self, path: &Path, exists: bool, answer: Answer) {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert((path.to_path_buf(), exists), (Instant::now(), answer));
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
        let a = self.fs.probe(path)?;
        self.cache.put(path, false, Answer::Probe(a));
        Ok(a)
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        if let Some(Answer::Exists(a)) = self.cache.get(path, true) {
            return Ok(a);
        }
        let a = self.fs.exists(path)?;
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
}
