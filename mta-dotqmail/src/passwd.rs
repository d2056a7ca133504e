//! The system-user fallback: qmail-getpw's rules over a passwd(5) file.
//!
//! qmail-getpw tries the prefixes of the local part that end at its end or just before a
//! `-`, longest first, each shorter than 32 bytes and lowercased. A prefix is a user when
//! passwd has it, its uid is not 0, and its home directory exists and is owned by that
//! uid. A match on the whole local part gives dash `""` and ext `""`; a match before a
//! `-` gives dash `-` and the text after it (original case) as ext. No match: the caller
//! falls back to the alias user.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::user::{Account, LocalUser};

/// qmail-getpw's `GETPW_USERLEN`: user names tried are shorter than this.
pub const GETPW_USERLEN: usize = 32;

/// A source of system users consulted after users/assign (qmail-getpw).
pub trait SystemUsers {
    /// Finds the user, dash and ext for `local` (original case), or `None` so the caller
    /// uses the alias user.
    ///
    /// # Errors
    /// A temporary failure (passwd unreadable, a transient error on the home directory):
    /// the delivery is deferred.
    fn getpw(&self, local: &[u8]) -> io::Result<Option<LocalUser>>;
}

/// One passwd(5) entry, the fields qmail uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: Vec<u8>,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: Vec<u8>,
}

/// Parses passwd(5) text `name:passwd:uid:gid:gecos:dir:shell`; malformed lines (and NIS
/// `+`/`-` lines) are skipped, as getpwnam skips them.
pub fn parse_passwd(text: &[u8]) -> Vec<PasswdEntry> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
            if f.len() < 7 || f[0].is_empty() || matches!(f[0][0], b'+' | b'-' | b'#') {
                return None;
            }
            let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<u32>().ok();
            Some(PasswdEntry {
                name: f[0].to_vec(),
                uid: num(f[2])?,
                gid: num(f[3])?,
                home: f[5].to_vec(),
            })
        })
        .collect()
}

/// qmail-getpw's search, pure: `lookup` is getpwnam (first entry with that exact name),
/// `home_owner` stats a home directory (`Ok(None)` when it does not exist or a
/// non-transient error occurred, `Err` for a transient one).
///
/// # Errors
/// Whatever `home_owner` returns as `Err` (qmail-getpw's `QLX_NFS`).
pub fn getpw_search<'a>(
    local: &[u8],
    lookup: impl Fn(&[u8]) -> Option<&'a PasswdEntry>,
    home_owner: impl Fn(&Path) -> io::Result<Option<u32>>,
) -> io::Result<Option<LocalUser>> {
    let mut end = local.len();
    loop {
        if end < GETPW_USERLEN && (end == local.len() || local[end] == b'-') {
            let name = local[..end].to_ascii_lowercase();
            if let Some(pw) = lookup(&name).filter(|pw| pw.uid != 0) {
                let home = path_from_bytes(&pw.home);
                if home_owner(&home)? == Some(pw.uid) {
                    let account = Account::new(pw.name.clone(), pw.uid, pw.gid, &pw.home);
                    return Ok(Some(if end == local.len() {
                        LocalUser::new(account, b"", Vec::new())
                    } else {
                        LocalUser::new(account, b"-", &local[end + 1..])
                    }));
                }
            }
        }
        if end == 0 {
            return Ok(None);
        }
        end -= 1;
    }
}

fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

/// [`SystemUsers`] over a passwd file (normally `/etc/passwd`), read at every lookup so
/// edits take effect at once, with home directories checked on the real filesystem.
#[derive(Clone, Debug)]
pub struct PasswdFile {
    path: PathBuf,
}

impl PasswdFile {
    /// Uses the passwd file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PasswdFile { path: path.into() }
    }
}

impl SystemUsers for PasswdFile {
    fn getpw(&self, local: &[u8]) -> io::Result<Option<LocalUser>> {
        let text = std::fs::read(&self.path)?;
        let entries = parse_passwd(&text);
        getpw_search(
            local,
            |name| entries.iter().find(|e| e.name == name),
            |home| match std::fs::metadata(home) {
                Ok(m) => Ok(Some(m.uid())),
                Err(e) if crate::system::is_transient(&e) => Err(e),
                Err(_) => Ok(None),
            },
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n\
joe:x:1001:100:Joe:/home/joe:/bin/sh\n\
joe-list:x:1002:100::/home/joe-list:/bin/sh\n\
Upper:x:1003:100::/home/upper:/bin/sh\n\
nohome:x:1004:100::/nonexistent:/bin/sh\n\
wrongowner:x:1005:100::/home/joe:/bin/sh\n\
bad line\n\
+nis::::::\n";

    fn run(local: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let entries = parse_passwd(PASSWD);
        getpw_search(
            local,
            |n| entries.iter().find(|e| e.name == n),
            |home| {
                Ok(match home.to_str() {
                    Some("/root") => Some(0),
                    Some("/home/joe") => Some(1001),
                    Some("/home/joe-list") => Some(1002),
                    Some("/home/upper") => Some(1003),
                    _ => None,
                })
            },
        )
        .unwrap()
        .map(|u| {
            (
                u.account().user().to_vec(),
                u.dash().to_vec(),
                u.ext().to_vec(),
            )
        })
    }

    #[test]
    fn qmail_getpw_rules() {
        let t = |u: &str, d: &str, e: &str| Some((u.into(), d.into(), e.into()));
        assert_eq!(parse_passwd(PASSWD).len(), 6);
        assert_eq!(run(b"joe"), t("joe", "", ""));
        assert_eq!(run(b"JOE"), t("joe", "", ""));
        assert_eq!(run(b"Joe-Foo-Bar"), t("joe", "-", "Foo-Bar"));
        assert_eq!(run(b"joe-list-x"), t("joe-list", "-", "x"));
        assert_eq!(run(b"joe-"), t("joe", "-", ""));
        assert_eq!(run(b"root"), None, "uid 0 never receives mail");
        assert_eq!(run(b"upper"), None, "upper-case passwd names never match");
        assert_eq!(run(b"nohome"), None);
        assert_eq!(run(b"wrongowner"), None, "home must be owned by the user");
        assert_eq!(run(b"joefoo"), None, "prefixes end only at a dash");
        let long = [b"joe-".as_slice(), &[b'x'; 40]].concat();
        assert_eq!(run(&long), t("joe", "-", &"x".repeat(40)));
        let long_user = [&[b'j'; 32][..], b"-x"].concat();
        assert_eq!(run(&long_user), None);
    }

    #[test]
    fn transient_home_error_propagates() {
        let entries = parse_passwd(PASSWD);
        let r = getpw_search(
            b"joe",
            |n| entries.iter().find(|e| e.name == n),
            |_| Err(io::Error::other("stale nfs handle")),
        );
        assert!(r.is_err());
    }
}
