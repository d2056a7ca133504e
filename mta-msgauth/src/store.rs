//! The key directory (`control/dkim/DOMAIN/SELECTOR.pem`), read on use and re-read when a
//! file or directory changes.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{ErrorKind, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::KeyError;
use crate::keys::{KeyKind, MAX_KEY_FILE, ParsedKey, dns_record};
use crate::names::{KeyFileName, check_dns_name, check_domain_dir, parse_key_file_name};

/// What identifies one version of a file or directory: a change of content shows in the
/// size or modification time, a replacement by rename in the inode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        }
    }
}

/// One loaded key file.
pub(crate) struct LoadedKey {
    pub(crate) selector: String,
    pub(crate) path: PathBuf,
    stamp: Stamp,
    mode: u32,
    pub(crate) key: ParsedKey,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey")
            .field("path", &self.path)
            .field("kind", &self.key.kind)
            .finish_non_exhaustive()
    }
}

/// A signing domain and its keys, sorted by selector.
pub(crate) type SigningKeys = (String, Vec<Arc<LoadedKey>>);

/// The keys of one domain directory, as last read.
struct DomainKeys {
    stamp: Stamp,
    keys: Vec<Arc<LoadedKey>>,
}

/// A DKIM key directory: `DIR/DOMAIN/SELECTOR.pem`, one PKCS#8 PEM file per selector
/// (RSA or Ed25519), domain directories in lower case.
///
/// Keys are read when first needed and kept; each use checks the domain directory and its
/// key files (device, inode, size, modification and change times) and re-reads what changed,
/// so adding, replacing or removing a key takes effect with the next message. Safe to share
/// between threads.
pub struct KeyStore {
    dir: PathBuf,
    domains: Mutex<HashMap<String, DomainKeys>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A key found by [`KeyStore::scan`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The signing domain (`d=`): the directory name.
    pub domain: String,
    /// The selector (`s=`): the file name without `.pem`.
    pub selector: String,
    /// The key file.
    pub path: PathBuf,
    /// Algorithm and size.
    pub kind: KeyKind,
    /// The file's permission bits (a key readable by other accounts deserves a warning).
    pub mode: u32,
    /// The DNS TXT record to publish at [`dns_name`](crate::dns_name)`(domain, selector)`.
    pub dns_record: String,
}

/// Everything [`KeyStore::scan`] found: usable keys and one error per bad file.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct KeyScan {
    /// Usable keys, sorted by domain then selector.
    pub keys: Vec<KeyInfo>,
    /// Problems, each naming its file or directory.
    pub errors: Vec<KeyError>,
}

impl KeyStore {
    /// A key store over `dir` (`control/dkim`). Nothing is read yet; a missing directory
    /// means no keys.
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore {
            dir: dir.into(),
            domains: Mutex::new(HashMap::new()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the whole directory, for `mta check` and `mta dkim show`: every usable key and
    /// every problem (a name that is not `DOMAIN/SELECTOR.pem`, an unreadable file, a file
    /// that is not an RSA or Ed25519 private key). Files and directories whose name starts
    /// with `.` are skipped, as are files not ending in `.pem`.
    pub fn scan(&self) -> KeyScan {
        let mut scan = KeyScan::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return scan,
            Err(source) => {
                scan.errors.push(KeyError::Io {
                    path: self.dir.clone(),
                    source,
                });
                return scan;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push(e.file_name()),
                Err(source) => scan.errors.push(KeyError::Io {
                    path: self.dir.clone(),
                    source,
                }),
            }
        }
        names.sort();
        for name in names {
            let path = self.dir.join(&name);
            let Some(domain) = name.to_str() else {
                scan.errors.push(KeyError::BadName {
                    path,
                    reason: "not a domain name",
                });
                continue;
            };
            if domain.starts_with('.') {
                continue;
            }
            if !path.is_dir() {
                scan.errors.push(KeyError::BadName {
                    path,
                    reason: "not a directory (expected DOMAIN/SELECTOR.pem)",
                });
                continue;
            }
            if let Err(reason) = check_domain_dir(domain) {
                scan.errors.push(KeyError::BadName { path, reason });
                continue;
            }
            let (keys, errors) = read_domain_dir(&path, &[]);
            scan.errors.extend(errors);
            scan.keys.extend(keys.iter().map(|k| KeyInfo {
                domain: domain.to_string(),
                selector: k.selector.clone(),
                path: k.path.clone(),
                kind: k.key.kind,
                mode: k.mode,
                dns_record: dns_record(k.key.kind, &k.key.public),
            }));
        }
        scan
    }

    /// The keys for signing mail from `domain`: those of the closest of `domain` and its
    /// parent domains that has a key directory, with that domain; `None` when none has.
    /// `domain` must be lower case.
    pub(crate) fn keys_for(&self, domain: &str) -> Result<Option<SigningKeys>, KeyError> {
        if check_dns_name(domain).is_err() {
            return Ok(None);
        }
        let mut candidate = domain;
        loop {
            if let Some(keys) = self.domain_keys(candidate)? {
                return Ok(Some((candidate.to_string(), keys)));
            }
            match candidate.split_once('.') {
                // stop before a top-level domain: nobody signs as `com`
                Some((_, parent)) if parent.contains('.') => candidate = parent,
                _ => return Ok(None),
            }
        }
    }

    /// The keys of one domain directory, re-read where changed; `None` when the directory
    /// does not exist or holds no key.
    fn domain_keys(&self, domain: &str) -> Result<Option<Vec<Arc<LoadedKey>>>, KeyError> {
        let path = self.dir.join(domain);
        let stamp = match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Stamp::of(&m),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.lock().remove(domain);
                return Ok(None);
            }
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        let cached: Vec<Arc<LoadedKey>> = match self.lock().get(domain) {
            Some(d) if d.stamp == stamp && d.keys.iter().all(|k| unchanged(k)) => {
                return Ok(Some(d.keys.clone()).filter(|k| !k.is_empty()));
            }
            Some(d) => d.keys.clone(),
            None => Vec::new(),
        };
        let (keys, mut errors) = read_domain_dir(&path, &cached);
        if !errors.is_empty() {
            self.lock().remove(domain);
            return Err(errors.swap_remove(0));
        }
        self.lock().insert(
            domain.to_string(),
            DomainKeys {
                stamp,
                keys: keys.clone(),
            },
        );
        Ok(Some(keys).filter(|k| !k.is_empty()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DomainKeys>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is
        // a single insert or remove), so a poisoned lock is still usable.
        self.domains.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a loaded key's file is still the one that was read.
fn unchanged(k: &LoadedKey) -> bool {
    std::fs::metadata(&k.path).is_ok_and(|m| Stamp::of(&m) == k.stamp)
}

/// Reads a domain directory's key files, reusing entries of `cached` whose file is unchanged.
fn read_domain_dir(dir: &Path, cached: &[Arc<LoadedKey>]) -> (Vec<Arc<LoadedKey>>, Vec<KeyError>) {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            errors.push(KeyError::Io {
                path: dir.to_path_buf(),
                source,
            });
            return (keys, errors);
        }
    };
    for entry in entries {
        let name = match entry {
            Ok(e) => e.file_name(),
            Err(source) => {
                errors.push(KeyError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
                continue;
            }
        };
        let path = dir.join(&name);
        let Some(name) = name.to_str() else {
            errors.push(KeyError::BadName {
                path,
                reason: "file name is not UTF-8",
            });
            continue;
        };
        let selector = match parse_key_file_name(name) {
            KeyFileName::Key(s) => s,
            KeyFileName::Hidden | KeyFileName::Other => continue,
            KeyFileName::Bad(reason) => {
                errors.push(KeyError::BadName { path, reason });
                continue;
            }
        };
        if let Some(k) = cached.iter().find(|k| k.path == path && unchanged(k)) {
            keys.push(Arc::clone(k));
            continue;
        }
        match load_key(&path, selector) {
            Ok(k) => keys.push(Arc::new(k)),
            Err(e) => errors.push(e),
        }
    }
    keys.sort_by(|a, b| a.selector.cmp(&b.selector));
    (keys, errors)
}

/// Reads and parses one key file; the stamp is taken from the open file, so it describes
/// the content that was read.
fn load_key(path: &Path, selector: &str) -> Result<LoadedKey, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(KeyError::BadKey {
            path: path.to_path_buf(),
            reason: "not a regular file".to_string(),
        });
    }
    let mut pem = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(io)?;
    if pem.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::BadKey {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_KEY_FILE} bytes"),
        });
    }
    let key = ParsedKey::parse(&pem).map_err(|reason| KeyError::BadKey {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(LoadedKey {
        selector: selector.to_string(),
        path: path.to_path_buf(),
        stamp: Stamp::of(&meta),
        mode: meta.mode() & 0o7777,
        key,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys::{KeyKind, generate_key, write_key};

    #[test]
    fn finds_parent_domain_and_rereads() {
        let d = tempfile::tempdir().unwrap();
        let store = KeyStore::new(d.path());
        assert!(store.keys_for("mail.example.com").unwrap().is_none());
        let k = generate_key(KeyKind::Ed25519).unwrap();
        write_key(d.path(), "example.com", "b", &k).unwrap();
        let (dom, keys) = store.keys_for("mail.example.com").unwrap().unwrap();
        assert_eq!(dom, "example.com");
        assert_eq!(keys.len(), 1);
        // a second key appears
        write_key(d.path(), "example.com", "a", &k).unwrap();
        let (_, keys) = store.keys_for("example.com").unwrap().unwrap();
        let sels: Vec<_> = keys.iter().map(|k| k.selector.as_str()).collect();
        assert_eq!(sels, ["a", "b"]);
        // a key replaced in place (same name, new content) is re-read
        let k2 = generate_key(KeyKind::Ed25519).unwrap();
        std::fs::write(d.path().join("example.com/a.pem"), k2.pem()).unwrap();
        let (_, keys) = store.keys_for("example.com").unwrap().unwrap();
        assert_eq!(
            dns_record(keys[0].key.kind, &keys[0].key.public),
            k2.dns_record()
        );
        // a broken key is an error naming the file
        std::fs::write(d.path().join("example.com/a.pem"), "junk").unwrap();
        let e = store.keys_for("example.com").unwrap_err();
        assert!(e.to_string().contains("example.com/a.pem"), "{e}");
        // removed: no keys
        std::fs::remove_dir_all(d.path().join("example.com")).unwrap();
        assert!(store.keys_for("example.com").unwrap().is_none());
        // never a top-level domain, never a path
        assert!(store.keys_for("com").unwrap().is_none());
        assert!(store.keys_for("../x.y").unwrap().is_none());
    }

    #[test]
    fn scan_reports_each_problem() {
        let d = tempfile::tempdir().unwrap();
        let k = generate_key(KeyKind::Ed25519).unwrap();
        write_key(d.path(), "example.com", "s1", &k).unwrap();
        std::fs::create_dir(d.path().join("Upper.example")).unwrap();
        std::fs::write(d.path().join("stray"), "").unwrap();
        std::fs::create_dir(d.path().join("example.net")).unwrap();
        std::fs::write(d.path().join("example.net/bad sel.pem"), "").unwrap();
        std::fs::write(d.path().join("example.net/s2.pem"), "not a key").unwrap();
        std::fs::write(d.path().join("example.net/README"), "").unwrap();
        let scan = KeyStore::new(d.path()).scan();
        assert_eq!(scan.keys.len(), 1);
        assert_eq!(scan.keys[0].domain, "example.com");
        assert_eq!(scan.keys[0].mode, 0o600);
        assert_eq!(scan.keys[0].dns_record, k.dns_record());
        let errs: Vec<String> = scan.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("Upper.example")));
        assert!(errs.iter().any(|e| e.contains("stray")));
        assert!(errs.iter().any(|e| e.contains("bad sel.pem")));
        assert!(errs.iter().any(|e| e.contains("s2.pem")));
        assert!(
            KeyStore::new(d.path().join("none"))
                .scan()
                .errors
                .is_empty()
        );
    }
}
