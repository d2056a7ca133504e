//! A file parsed once and parsed again when it changes: `control/servercert.pem`,
//! `users/passwords`. The accepting thread, which keeps the daemon's privileges, asks for
//! the current value per connection (one `stat`), so root-only files work and a renewed
//! certificate or a new password takes effect with the next connection, no restart. A
//! file that fails to parse keeps the previous value and is logged once per change.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::log;

/// What identifies one version of a file: inode, size, modification time, and change time
/// (a file made readable by a chmod or chgrp is read again).
type Stamp = (u64, u64, i64, i64, i64, i64);

/// The parsed value of the file at a path, kept current. `T` is cheap to clone (an
/// `Arc`).
pub(crate) struct Watched<T> {
    path: PathBuf,
    parse: fn(&Path) -> Result<T, String>,
    current: Mutex<(Option<Stamp>, Option<T>)>,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Watched<T> {
    /// Watches `path` (which may not exist), parsed by `parse`.
    pub(crate) fn new(path: PathBuf, parse: fn(&Path) -> Result<T, String>) -> Watched<T> {
        Watched {
            path,
            parse,
            current: Mutex::new((None, None)),
        }
    }

    /// The value now: parsed again if the file changed since the last call; `None` when
    /// there is no file (or it never parsed).
    pub(crate) fn current(&self) -> Option<T> {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| {
            let (mt, mn, ct, cn) = (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
            (m.ino(), m.len(), mt, mn, ct, cn)
        });
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if cur.0 != stamp {
            cur.0 = stamp;
            match stamp {
                None => {
                    if cur.1.take().is_some() {
                        log::line(&format!("status: {} removed", self.path.display()));
                    }
                }
                Some(_) => match (self.parse)(&self.path) {
                    Ok(value) => {
                        log::line(&format!("status: {} loaded", self.path.display()));
                        cur.1 = Some(value);
                    }
                    Err(e) => log::line(&format!(
                        "warning: {}: {}; keeping the previous version",
                        self.path.display(),
                        log::safe(e.as_bytes())
                    )),
                },
            }
        }
        cur.1.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn number(p: &Path) -> Result<u32, String> {
        let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
        text.trim()
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())
    }

    #[test]
    fn reparsed_on_change_kept_on_error_dropped_on_removal() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("n");
        let w = Watched::new(p.clone(), number);
        assert!(w.current().is_none());
        std::fs::write(&p, "1\n").unwrap();
        assert_eq!(w.current(), Some(1));
        std::fs::write(&p, "22\n").unwrap();
        assert_eq!(w.current(), Some(22));
        std::fs::write(&p, "not a number\n").unwrap();
        assert_eq!(w.current(), Some(22), "a broken file keeps the last value");
        std::fs::remove_file(&p).unwrap();
        assert!(w.current().is_none());
    }
}
