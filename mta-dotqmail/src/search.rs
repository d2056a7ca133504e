//! The `.qmail` file search of qmail-local (`qmesearch`, `qmeexists`, `qmeox`).
//!
//! `safeext` is the extension lowercased with every `.` turned into `:` (so `../` cannot
//! leave the home directory). The candidates are `.qmail<dash><safeext>`, then for every
//! cut point `i` from the end of `safeext` down to 0 where `i == 0` or
//! `safeext[i-1] == '-'`: `.qmail<dash><safeext[..i]>default`. With `dash = "-"` and
//! `ext = "a-b-c"`: `.qmail-a-b-c`, `.qmail-a-b-default`, `.qmail-a-default`,
//! `.qmail-default`.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::exec::{FileKind, FileLookup};
use crate::interp::DeliveryOptions;
use crate::user::LocalUser;

/// `ext` lowercased (ASCII) with `.` replaced by `:`.
pub fn safe_ext(ext: &[u8]) -> Vec<u8> {
    ext.iter()
        .map(|&b| {
            if b == b'.' {
                b':'
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect()
}

/// One file name the search tries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The file name, relative to the home directory.
    pub name: Vec<u8>,
    /// When this file matches, `DEFAULT` is `ext[at..]`; `None` leaves `DEFAULT` unset.
    pub default_at: Option<usize>,
}

/// The candidate names in qmail-local's order, without touching the filesystem.
///
/// ```
/// use mta_dotqmail::candidates;
/// let names: Vec<String> = candidates(b"-", b"Foo.Bar-x")
///     .into_iter()
///     .map(|c| String::from_utf8(c.name).unwrap())
///     .collect();
/// assert_eq!(names, [".qmail-foo:bar-x", ".qmail-foo:bar-default", ".qmail-default"]);
/// ```
pub fn candidates(dash: &[u8], ext: &[u8]) -> Vec<Candidate> {
    let safe = safe_ext(ext);
    let base = |part: &[u8], suffix: &[u8]| {
        let mut name = Vec::with_capacity(6 + dash.len() + part.len() + suffix.len());
        name.extend_from_slice(b".qmail");
        name.extend_from_slice(dash);
        name.extend_from_slice(part);
        name.extend_from_slice(suffix);
        name
    };
    let mut out = vec![Candidate {
        name: base(&safe, b""),
        default_at: safe.ends_with(b"default").then(|| safe.len() - 7),
    }];
    for i in (0..=safe.len()).rev() {
        if i == 0 || safe[i - 1] == b'-' {
            out.push(Candidate {
                name: base(&safe[..i], b"default"),
                default_at: Some(i),
            });
        }
    }
    out
}

/// The `.qmail` file the search chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// File name relative to the home directory, e.g. `.qmail-foo-default`.
    pub name: Vec<u8>,
    /// Full path.
    pub path: PathBuf,
    /// The `DEFAULT` value when the name ends in `default`.
    pub default: Option<Vec<u8>>,
    /// The owner-execute bit is set: forward-only mode.
    pub forward_only: bool,
}

/// Why the search could not finish. Both defer the delivery.
#[derive(Debug)]
#[non_exhaustive]
pub enum SearchError {
    /// Opening a candidate failed with something other than "does not exist"
    /// (`Unable to open <name>: <error>. (#4.3.0)`).
    Open {
        /// The candidate's file name.
        name: Vec<u8>,
        /// The error.
        error: io::Error,
    },
    /// The chosen file is writable by the group or others, per the configured mask
    /// (`Uh-oh: .qmail file is writable. (#4.7.0)`).
    Writable {
        /// The file name.
        name: Vec<u8>,
    },
}

impl SearchError {
    /// qmail-local's report text.
    pub fn report(&self) -> String {
        match self {
            SearchError::Open { name, error } => format!(
                "Unable to open {}: {}. (#4.3.0)",
                String::from_utf8_lossy(name),
                crate::system::error_text(error)
            ),
            SearchError::Writable { .. } => "Uh-oh: .qmail file is writable. (#4.7.0)".into(),
        }
    }
}

/// Runs the search in `home`: the first candidate that opens and is a regular file wins
/// (anything else counts as absent). `writable_mask` is qmail's conf-patrn (`0o022`
/// refuses group- and world-writable files).
///
/// # Errors
/// [`SearchError`] as described there.
pub fn search<F: FileLookup + ?Sized>(
    fs: &mut F,
    home: &Path,
    dash: &[u8],
    ext: &[u8],
    writable_mask: u32,
) -> Result<Option<Found>, SearchError> {
    for candidate in candidates(dash, ext) {
        let path = home.join(OsStr::from_bytes(&candidate.name));
        let status = match fs.probe(&path) {
            Ok(Some(s)) if s.kind == FileKind::Regular => s,
            Ok(_) => continue,
            Err(error) => {
                return Err(SearchError::Open {
                    name: candidate.name,
                    error,
                });
            }
        };
        if status.mode & writable_mask != 0 {
            return Err(SearchError::Writable {
                name: candidate.name,
            });
        }
        return Ok(Some(Found {
            default: candidate
                .default_at
                .and_then(|at| ext.get(at..))
                .map(<[u8]>::to_vec),
            name: candidate.name,
            path,
            forward_only: status.mode & 0o100 != 0,
        }));
    }
    Ok(None)
}

/// qmail-local's `qmeox`: does `.qmail<dash><safeext><suffix>` exist (any type)?
///
/// # Errors
/// A transient stat error, reported as [`SearchError::Open`].
pub fn owner_file_exists<F: FileLookup + ?Sized>(
    fs: &mut F,
    home: &Path,
    dash: &[u8],
    ext: &[u8],
    suffix: &[u8],
) -> Result<bool, SearchError> {
    let mut name = b".qmail".to_vec();
    name.extend_from_slice(dash);
    name.extend_from_slice(&safe_ext(ext));
    name.extend_from_slice(suffix);
    fs.exists(&home.join(OsStr::from_bytes(&name)))
        .map_err(|error| SearchError::Open { name, error })
}

/// What applies to an address, for an SMTP `RCPT` check without delivering.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mailbox {
    /// This `.qmail` file would be read.
    File(Found),
    /// No file, empty dash: the default delivery applies.
    DefaultDelivery,
    /// No file and a non-empty dash: qmail-local would bounce (`#5.1.1`).
    NotFound,
}

/// Runs only the `.qmail` search for `user` (qmail-local steps 5 and 6), for SMTP-time
/// recipient checks.
///
/// # Errors
/// [`SearchError`]: a temporary error or a writable `.qmail` (answer 4xx).
pub fn find_mailbox<F: FileLookup + ?Sized>(
    fs: &mut F,
    user: &LocalUser,
    options: &DeliveryOptions,
) -> Result<Mailbox, SearchError> {
    let home = user.account().home();
    Ok(
        match search(fs, home, user.dash(), user.ext(), options.writable_mask)? {
            Some(found) => Mailbox::File(found),
            None if user.dash().is_empty() => Mailbox::DefaultDelivery,
            None => Mailbox::NotFound,
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(dash: &[u8], ext: &[u8]) -> Vec<String> {
        candidates(dash, ext)
            .into_iter()
            .map(|c| String::from_utf8(c.name).unwrap())
            .collect()
    }

    #[test]
    fn qmail_local_comment_table() {
        // The table in qmail-local.c above qmesearch.
        assert_eq!(names(b"", b""), [".qmail", ".qmaildefault"]);
        assert_eq!(names(b"-", b""), [".qmail-", ".qmail-default"]);
        assert_eq!(names(b"-", b"a"), [".qmail-a", ".qmail-default"]);
        assert_eq!(
            names(b"-", b"a-"),
            [".qmail-a-", ".qmail-a-default", ".qmail-default"]
        );
        assert_eq!(
            names(b"-", b"a-b"),
            [".qmail-a-b", ".qmail-a-default", ".qmail-default"]
        );
        assert_eq!(
            names(b"-", b"a-b-"),
            [
                ".qmail-a-b-",
                ".qmail-a-b-default",
                ".qmail-a-default",
                ".qmail-default"
            ]
        );
    }

    #[test]
    fn default_positions() {
        let c = candidates(b"-", b"Foo-Default");
        assert_eq!(
            c[0].default_at,
            Some(4),
            "exact name ending in default sets DEFAULT"
        );
        assert_eq!(c[1].default_at, Some(4));
        assert_eq!(c[2].default_at, Some(0));
        assert_eq!(candidates(b"-", b"x")[0].default_at, None);
    }
}
