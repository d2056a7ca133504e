//! "No such `.qmail` file" answered from one listing of the directory.
//!
//! qmail-local tries several `.qmail` names per delivery (`.qmail-ext`, then each
//! `-default` from the longest to `.qmail-default`, then `.qmail-ext-owner`), and every
//! name tried and not found is one failed `open` or `stat`: a path walk and a negative
//! directory lookup in the kernel. A run of deliveries to many extensions of one user
//! (a list's thousands of `user-N` addresses) repeats that for a new name each time, so a
//! cache of answers by path never hits. [`AbsentNames`] instead lists a directory once it
//! has had [`AbsentNames::LIST_AFTER`] misses and from then on rules out every `.qmail`
//! name the listing does not hold, without a system call. A name the listing does hold is
//! still opened and checked by the caller as before: the listing only ever says "absent".
//!
//! The answers are as old as the listing; the owner of this value decides how long that
//! may be (a worker keeps one for a batch of deliveries, the SMTP recipient check for a
//! second).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Directory listings of `.qmail` names, taken after repeated misses.
#[derive(Debug, Default)]
pub struct AbsentNames {
    /// By the directory's path bytes (hashing a `Path` walks its components).
    dirs: HashMap<Vec<u8>, Dir>,
}

#[derive(Debug)]
enum Dir {
    /// Names looked up and not found so far.
    Misses(usize),
    /// The `.qmail` names it held when listed (ASCII-lowercased).
    Listed(HashSet<Vec<u8>>),
    /// Not listable (unreadable, too big, or names a case-insensitive lookup could
    /// confuse): every lookup goes to the file system.
    Unlisted,
}

impl AbsentNames {
    /// Misses in one directory before it is listed. One address costs at most a few
    /// (`.qmail-a-b-c`, `-a-b-default`, `-a-default`, `-default`, then `-owner`), and a
    /// listing costs more than a few lookups, so only a directory asked about for several
    /// addresses is listed: thousands of homes with one address each never are.
    pub const LIST_AFTER: usize = 8;

    /// Directory entries read at most; a directory with more is not listed.
    pub const MAX_ENTRIES: usize = 4096;

    /// Nothing listed yet.
    pub fn new() -> Self {
        AbsentNames::default()
    }

    /// Whether `path` is known not to exist: its name starts with `.qmail` and the listing
    /// of its directory does not hold it. `false` means "ask the file system".
    pub fn rules_out(&self, path: &Path) -> bool {
        let Some((dir, name)) = split(path) else {
            return false;
        };
        match self.dirs.get(dir.as_os_str().as_bytes()) {
            Some(Dir::Listed(names)) => !names.contains(&name.to_ascii_lowercase()),
            _ => false,
        }
    }

    /// Records that the file system said `path` does not exist; the directory's
    /// [`LIST_AFTER`](AbsentNames::LIST_AFTER)th such miss lists it.
    pub fn missed(&mut self, path: &Path) {
        let Some((dir, _)) = split(path) else {
            return;
        };
        let entry = self
            .dirs
            .entry(dir.as_os_str().as_bytes().to_vec())
            .or_insert(Dir::Misses(0));
        if let Dir::Misses(n) = entry {
            *n += 1;
            if *n >= Self::LIST_AFTER {
                *entry = match list(dir) {
                    Ok(Some(names)) => Dir::Listed(names),
                    Ok(None) | Err(_) => Dir::Unlisted,
                };
            }
        }
    }

    /// Forgets every listing (the caller's answers have grown too old).
    pub fn clear(&mut self) {
        self.dirs.clear();
    }
}

/// The directory and file name of a `.qmail` candidate path, split at its last `/` (a
/// byte search: `Path::parent` and `file_name` parse components, and this runs for every
/// lookup). A path without a `/` or ending in one is never a candidate here.
fn split(path: &Path) -> Option<(&Path, &[u8])> {
    let bytes = path.as_os_str().as_bytes();
    let slash = bytes.iter().rposition(|&b| b == b'/')?;
    let name = &bytes[slash + 1..];
    let dir = if slash == 0 {
        &bytes[..1]
    } else {
        &bytes[..slash]
    };
    (name.len() >= 6 && name[..6].eq_ignore_ascii_case(b".qmail"))
        .then(|| (Path::new(std::ffi::OsStr::from_bytes(dir)), name))
}

/// The `.qmail` names in `dir`, ASCII-lowercased (a case-folding directory finds
/// `.qmail-Foo` for `.qmail-foo`; lowercase on both sides keeps "not listed" meaning "not
/// there"); `None` when it holds more than [`AbsentNames::MAX_ENTRIES`] entries or a
/// `.qmail` name with non-ASCII bytes (whose folding this does not reproduce).
fn list(dir: &Path) -> io::Result<Option<HashSet<Vec<u8>>>> {
    use rustix::fs::{Mode, OFlags};
    // O_NOATIME where allowed (the directory's owner: a worker), so a listing does not
    // dirty the directory's inode for an atime update; anyone else lists without it.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::open(dir, flags, Mode::empty())?,
        other => other?,
    };
    let mut names = HashSet::new();
    for (seen, entry) in rustix::fs::Dir::read_from(&fd)?.enumerate() {
        if seen >= AbsentNames::MAX_ENTRIES {
            return Ok(None);
        }
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name.len() >= 6 && name[..6].eq_ignore_ascii_case(b".qmail") {
            if !name.is_ascii() {
                return Ok(None);
            }
            names.insert(name.to_ascii_lowercase());
        }
    }
    Ok(Some(names))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_listed_after_its_misses_and_rules_out_only_unlisted_qmail_names() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(".qmail-default"), "# x\n").unwrap();
        std::fs::write(t.path().join(".qmail-Foo"), "# x\n").unwrap();
        let mut absent = AbsentNames::new();
        for i in 0..AbsentNames::LIST_AFTER - 1 {
            let p = t.path().join(format!(".qmail-x{i}"));
            absent.missed(&p);
            assert!(
                !absent.rules_out(&t.path().join(".qmail-3")),
                "not listed yet"
            );
        }
        absent.missed(&t.path().join(".qmail-2"));
        assert!(absent.rules_out(&t.path().join(".qmail-3")));
        assert!(absent.rules_out(&t.path().join(".qmail-3-owner")));
        assert!(!absent.rules_out(&t.path().join(".qmail-default")));
        // Case-insensitively: a case-folding directory would open .qmail-Foo for either.
        assert!(!absent.rules_out(&t.path().join(".qmail-foo")));
        assert!(!absent.rules_out(&t.path().join(".QMAIL-FOO")));
        // Only .qmail names are ever ruled out, and only by their own directory's listing.
        assert!(!absent.rules_out(&t.path().join("sub/.qmail-3")));
        assert!(!absent.rules_out(Path::new(".qmail-3")));
        assert!(!absent.rules_out(&t.path().join("Maildir")));
        assert!(!absent.rules_out(&t.path().join("other")));
        // A file created after the listing is not seen until the listing is dropped.
        std::fs::write(t.path().join(".qmail-3"), "# x\n").unwrap();
        assert!(absent.rules_out(&t.path().join(".qmail-3")));
        absent.clear();
        assert!(!absent.rules_out(&t.path().join(".qmail-3")));
    }

    #[test]
    fn unlistable_and_oversized_directories_are_never_ruled_on() {
        let mut absent = AbsentNames::new();
        let miss_enough = |absent: &mut AbsentNames, p: &Path| {
            for _ in 0..AbsentNames::LIST_AFTER {
                absent.missed(p);
            }
        };
        let gone = Path::new("/nonexistent-dir-for-test/.qmail-x");
        miss_enough(&mut absent, gone);
        assert!(!absent.rules_out(gone));

        let t = tempfile::tempdir().unwrap();
        for i in 0..=AbsentNames::MAX_ENTRIES {
            std::fs::write(t.path().join(format!("f{i}")), "").unwrap();
        }
        miss_enough(&mut absent, &t.path().join(".qmail-x"));
        assert!(!absent.rules_out(&t.path().join(".qmail-y")));

        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(".qmail-\u{e9}"), "").unwrap();
        miss_enough(&mut absent, &t.path().join(".qmail-x"));
        assert!(!absent.rules_out(&t.path().join(".qmail-y")));
    }
}
