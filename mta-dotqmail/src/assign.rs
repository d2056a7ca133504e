//! `users/assign` (qmail-users.9), read the way qmail-newu compiles it and looked up the
//! way qmail-lspawn reads the compiled form.
//!
//! ```text
//! =local:user:uid:gid:homedir:dash:ext:
//! +prefix:user:uid:gid:homedir:dash:pre:
//! .
//! ```
//!
//! Keys are lowercased. Exact (`=`) entries are tried first; then the longest wildcard
//! (`+`) prefix of the lowercased local part, down to `+:` which matches everything. The
//! extension of a wildcard match is `pre` followed by the rest of the local part in its
//! original case. When a key repeats, the first entry wins (the cdb keeps the first).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::user::{Account, LocalUser};

/// A parsed `users/assign`.
///
/// ```
/// use mta_dotqmail::UsersAssign;
/// let assign = UsersAssign::parse(b"=joe:joe:1001:100:/home/joe:::\n+list-:lists:1002:100:/home/lists:-::\n.\n")?;
/// let hit = assign.lookup(b"list-Announce").expect("wildcard");
/// assert_eq!(hit.account().user(), b"lists");
/// assert_eq!((hit.dash(), hit.ext()), (&b"-"[..], &b"Announce"[..]));
/// assert!(assign.lookup(b"bob").is_none());
/// # Ok::<(), mta_dotqmail::ParseAssignError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct UsersAssign {
    exact: HashMap<Vec<u8>, Entry>,
    wild: HashMap<Vec<u8>, Entry>,
    /// Longest wildcard key, so a lookup tries no longer prefix.
    longest_wild: usize,
}

#[derive(Clone, Debug)]
struct Entry {
    account: Account,
    dash: Vec<u8>,
    ext: Vec<u8>,
}

/// A `users/assign` line that qmail-newu would refuse (it reports "bad format").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseAssignError {
    /// 1-based line number (for a missing `.` line: one past the last line).
    pub line: usize,
    /// What is wrong.
    pub kind: ParseAssignErrorKind,
}

/// Why a `users/assign` line is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseAssignErrorKind {
    /// The file ended without the `.` line (or with a line lacking its `\n`).
    MissingEnd,
    /// The line contains a NUL byte.
    Nul,
    /// No `:` after the key, or the line starts with `:`.
    NoKey,
    /// Fewer than six `:`-terminated fields after the key.
    TooFewFields,
    /// The uid or gid field is not a decimal number below 2^32.
    BadId,
}

impl fmt::Display for ParseAssignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ParseAssignErrorKind::MissingEnd => "missing final \".\" line",
            ParseAssignErrorKind::Nul => "NUL byte in line",
            ParseAssignErrorKind::NoKey => "no \":\" after the address key",
            ParseAssignErrorKind::TooFewFields => "fewer than six \":\"-terminated fields",
            ParseAssignErrorKind::BadId => "uid or gid is not a number",
        };
        write!(f, "users/assign line {}: {what}", self.line)
    }
}

impl std::error::Error for ParseAssignError {}

impl UsersAssign {
    /// Parses the text form, with qmail-newu's rules: lines up to the first line starting
    /// with `.`, each `K key:` + six `:`-terminated fields (anything after the sixth colon
    /// is ignored). A line starting with `+` is a wildcard; any other first byte (normally
    /// `=`) makes an exact entry and is skipped, as qmail-newu skips it.
    ///
    /// # Errors
    /// [`ParseAssignError`] with the line number, for every case qmail-newu calls "bad
    /// format", plus a non-numeric uid or gid (qmail would silently read it as 0, i.e. root,
    /// and then refuse the delivery).
    pub fn parse(text: &[u8]) -> Result<Self, ParseAssignError> {
        let mut out = UsersAssign::default();
        let mut rest = text;
        let mut number = 0;
        loop {
            number += 1;
            let (line, terminated) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let line = &rest[..i];
                    rest = &rest[i + 1..];
                    (line, true)
                }
                None => (std::mem::take(&mut rest), false),
            };
            if line.first() == Some(&b'.') {
                return Ok(out);
            }
            let err = |kind| ParseAssignError { line: number, kind };
            if !terminated {
                return Err(err(ParseAssignErrorKind::MissingEnd));
            }
            if line.contains(&0) {
                return Err(err(ParseAssignErrorKind::Nul));
            }
            let colon = match line.iter().position(|&b| b == b':') {
                Some(0) | None => return Err(err(ParseAssignErrorKind::NoKey)),
                Some(i) => i,
            };
            let key = line[1..colon].to_ascii_lowercase();
            let mut fields = line[colon + 1..].split(|&b| b == b':');
            let mut take = || fields.next();
            let parts: Vec<&[u8]> = (0..6).filter_map(|_| take()).collect();
            // Six fields each need their terminating colon: the seventh split piece must exist.
            if parts.len() < 6 || take().is_none() {
                return Err(err(ParseAssignErrorKind::TooFewFields));
            }
            // lenient (stricter, in fact): qmail-newu stores any uid text and qmail-lspawn
            // reads a non-number as 0, i.e. root, then refuses to deliver. Refusing the
            // file here names the line instead (test: `errors_have_line_numbers`).
            let uid = parse_id(parts[1]).ok_or_else(|| err(ParseAssignErrorKind::BadId))?;
            let gid = parse_id(parts[2]).ok_or_else(|| err(ParseAssignErrorKind::BadId))?;
            let entry = Entry {
                account: Account::new(parts[0], uid, gid, parts[3]),
                dash: parts[4].to_vec(),
                ext: parts[5].to_vec(),
            };
            let map = if line[0] == b'+' {
                out.longest_wild = out.longest_wild.max(key.len());
                &mut out.wild
            } else {
                &mut out.exact
            };
            map.entry(key).or_insert(entry);
        }
    }

    /// Number of exact and wildcard entries.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wild.len()
    }

    /// True when the file had no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// qmail-lspawn's lookup for local part `local` (original case): the exact entry for
    /// the lowercased key, else the longest wildcard prefix; `None` when neither matches
    /// (qmail then asks qmail-getpw, see [`crate::SystemUsers`]).
    pub fn lookup(&self, local: &[u8]) -> Option<LocalUser> {
        let lower = local.to_ascii_lowercase();
        if let Some(e) = self.exact.get(&lower) {
            return Some(LocalUser::new(e.account.clone(), &e.dash, e.ext.clone()));
        }
        // lenient: qmail-lspawn only tries wildcard prefixes whose last byte, in the case
        // written in users/assign, is some wildcard's last byte; against the lowercased
        // address that makes a prefix ending in an upper-case letter (`+fooX:`) never
        // match. Here every wildcard matches, case-insensitively (test:
        // `wildcard_ending_in_upper_case`).
        let longest = self.longest_wild.min(lower.len());
        for len in (0..=longest).rev() {
            if let Some(e) = self.wild.get(&lower[..len]) {
                let mut ext = e.ext.clone();
                ext.extend_from_slice(&local[len..]);
                return Some(LocalUser::new(e.account.clone(), &e.dash, ext));
            }
        }
        None
    }
}

/// `users/assign` on disk, re-read when it changes (qmail needed `qmail-newu` for that).
///
/// [`refresh`](AssignFile::refresh) compares size, mtime and inode with the last read and
/// parses again only when one differs. A missing file means "no table" (qmail without
/// `users/cdb` asks qmail-getpw). A file that fails to parse leaves the previous table in
/// use, as a failed `qmail-newu` leaves the old `users/cdb`, and the error is returned so
/// the caller can report it.
#[derive(Debug)]
pub struct AssignFile {
    path: PathBuf,
    stamp: Option<(u64, i64, i64, u64, u64)>,
    current: Option<UsersAssign>,
}

/// Reading `users/assign` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadAssignError {
    /// The file exists but could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file does not parse.
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: ParseAssignError,
    },
}

impl fmt::Display for LoadAssignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadAssignError::Io { path, .. } => write!(f, "unable to read {}", path.display()),
            LoadAssignError::Parse { path, source } => {
                let line = source.line;
                write!(f, "{}:{line}: ", path.display())?;
                let text = source.to_string();
                f.write_str(text.split_once(": ").map_or(&text[..], |(_, t)| t))
            }
        }
    }
}

impl std::error::Error for LoadAssignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadAssignError::Io { source, .. } => Some(source),
            LoadAssignError::Parse { source, .. } => Some(source),
        }
    }
}

impl AssignFile {
    /// Watches `path` (normally `users/assign`); nothing is read until
    /// [`refresh`](Self::refresh).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AssignFile {
            path: path.into(),
            stamp: None,
            current: None,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table in use, `None` when there is no file.
    pub fn current(&self) -> Option<&UsersAssign> {
        self.current.as_ref()
    }

    /// Re-reads the file if it changed since the last call; `Ok(true)` when the table in
    /// use changed.
    ///
    /// # Errors
    /// [`LoadAssignError`] when the file cannot be read or parsed; the previous table
    /// stays in use.
    pub fn refresh(&mut self) -> Result<bool, LoadAssignError> {
        let io_err = |source| LoadAssignError::Io {
            path: self.path.clone(),
            source,
        };
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let changed = self.current.is_some() || self.stamp.is_some();
                self.stamp = None;
                self.current = None;
                return Ok(changed);
            }
            Err(e) => return Err(io_err(e)),
        };
        let stamp = (
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino(),
            meta.dev(),
        );
        if self.stamp == Some(stamp) {
            return Ok(false);
        }
        let text = std::fs::read(&self.path).map_err(io_err)?;
        let table = UsersAssign::parse(&text).map_err(|source| LoadAssignError::Parse {
            path: self.path.clone(),
            source,
        })?;
        self.stamp = Some(stamp);
        self.current = Some(table);
        Ok(true)
    }
}

/// Strict decimal id below 2^32.
fn parse_id(field: &[u8]) -> Option<u32> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ASSIGN: &[u8] = b"=joe:joe:1001:100:/home/joe:::\n\
=Joe:dup:9:9:/x:::\n\
=root:root:0:0:/root:::\n\
+list-:lists:1002:100:/home/lists:-:l-:\n\
+list-big-:big:1003:100:/home/big:-::extra:ignored\n\
+:catch:1004:100:/home/catch:-::\n\
.\n\
=after:dot:1:1:/x:::\n";

    fn hit(a: &UsersAssign, local: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let u = a.lookup(local).expect("match");
        (
            u.account().user().to_vec(),
            u.dash().to_vec(),
            u.ext().to_vec(),
        )
    }

    #[test]
    fn exact_then_longest_wildcard() {
        let a = UsersAssign::parse(ASSIGN).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(
            hit(&a, b"JOE"),
            (b"joe".to_vec(), b"".to_vec(), b"".to_vec())
        );
        assert_eq!(
            hit(&a, b"list-Foo"),
            (b"lists".to_vec(), b"-".to_vec(), b"l-Foo".to_vec())
        );
        assert_eq!(
            hit(&a, b"LIST-BIG-X"),
            (b"big".to_vec(), b"-".to_vec(), b"X".to_vec())
        );
        assert_eq!(
            hit(&a, b"list-big"),
            (b"lists".to_vec(), b"-".to_vec(), b"l-big".to_vec())
        );
        assert_eq!(
            hit(&a, b"someone"),
            (b"catch".to_vec(), b"-".to_vec(), b"someone".to_vec())
        );
        assert_eq!(
            hit(&a, b"after"),
            (b"catch".to_vec(), b"-".to_vec(), b"after".to_vec())
        );
        let joe = a.lookup(b"joe").unwrap();
        assert_eq!((joe.account().uid(), joe.account().gid()), (1001, 100));
        assert_eq!(joe.account().home(), std::path::Path::new("/home/joe"));
    }

    #[test]
    fn wildcard_ending_in_upper_case() {
        let a = UsersAssign::parse(b"+listX:l:1:1:/l:-::\n.\n").unwrap();
        assert_eq!(
            hit(&a, b"listx-y"),
            (b"l".to_vec(), b"-".to_vec(), b"-y".to_vec())
        );
    }

    #[test]
    fn errors_have_line_numbers() {
        let cases: &[(&[u8], usize, ParseAssignErrorKind)] = &[
            (b"", 1, ParseAssignErrorKind::MissingEnd),
            (b"=a:a:1:1:/a:::\n", 2, ParseAssignErrorKind::MissingEnd),
            (b"=a:a:1:1:/a:::", 1, ParseAssignErrorKind::MissingEnd),
            (b"=a:a:1:1:/a:::\n\n.\n", 2, ParseAssignErrorKind::NoKey),
            (b":a:1:1:/a:::\n.\n", 1, ParseAssignErrorKind::NoKey),
            (b"=a:a:1:1:/a::\n.\n", 1, ParseAssignErrorKind::TooFewFields),
            (b"=a:a:x:1:/a:::\n.\n", 1, ParseAssignErrorKind::BadId),
            (
                b"=a:a:1:99999999999:/a:::\n.\n",
                1,
                ParseAssignErrorKind::BadId,
            ),
            (b"=a\0:a:1:1:/a:::\n.\n", 1, ParseAssignErrorKind::Nul),
        ];
        for (text, line, kind) in cases {
            let e = UsersAssign::parse(text).unwrap_err();
            assert_eq!(
                (e.line, e.kind),
                (*line, *kind),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        assert!(UsersAssign::parse(b".\n").unwrap().is_empty());
        assert!(UsersAssign::parse(b".").unwrap().is_empty());
    }
}
