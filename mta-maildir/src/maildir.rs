//! [`Maildir`]: creating, opening and delivering into a maildir (qmail-reference §2.8).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::durable::{self, Fs, OsFs};
use crate::error::{DeliverError, DeliverStep, MaildirError};
use crate::name::{DeliveredName, unique_name};

/// The three sub-directories every maildir has (maildir(5)).
pub(crate) const SUBDIRS: [&str; 3] = ["tmp", "new", "cur"];

/// A maildir: a directory holding `tmp/`, `new/` and `cur/` on one filesystem.
///
/// A `Maildir` is a path plus the filesystem it lives on ([`OsFs`] unless a test passes
/// [`PowerLossFs`](crate::sim::PowerLossFs)); it holds no open descriptors, so thousands of
/// them can be kept for a mailing-list fan-out ([`deliver_many`](crate::deliver_many)).
#[derive(Debug, Clone)]
pub struct Maildir<F: Fs = OsFs> {
    fs: F,
    path: PathBuf,
}

impl Maildir {
    /// Creates the maildir at `path` (and its `tmp/`, `new/`, `cur/`) if missing, on the real
    /// filesystem, and makes those directory entries durable. Existing directories are kept.
    ///
    /// # Errors
    /// [`MaildirError::Io`] when a directory cannot be created, opened or synced (the parent
    /// of `path` must exist).
    pub fn create(path: impl AsRef<Path>) -> Result<Self, MaildirError> {
        Self::create_in(OsFs::new(), path)
    }

    /// Opens an existing maildir on the real filesystem, checking that `tmp/`, `new/` and
    /// `cur/` exist.
    ///
    /// # Errors
    /// [`MaildirError::NotMaildir`] when one of the three is missing, [`MaildirError::Io`]
    /// when `path` cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MaildirError> {
        Self::open_in(OsFs::new(), path)
    }

    /// A maildir at `path` on the real filesystem, taken on trust: nothing is opened or
    /// checked until a [`deliver`](Maildir::deliver), which then reports a missing `tmp/`
    /// or `new/` as [`DeliverStep::OpenDir`](crate::DeliverStep::OpenDir), as qmail-local
    /// finds out only when it gets there. For a delivery agent that opens a maildir per
    /// message, this saves [`open`](Maildir::open)'s four directory opens.
    pub fn at(path: impl AsRef<Path>) -> Self {
        Self::at_in(OsFs::new(), path)
    }
}

impl<F: Fs> Maildir<F> {
    /// [`Maildir::create`] on the filesystem `fs`.
    ///
    /// # Errors
    /// As [`Maildir::create`].
    pub fn create_in(fs: F, path: impl AsRef<Path>) -> Result<Self, MaildirError> {
        let path = path.as_ref().to_path_buf();
        let (parent, leaf) = split_path(&path)?;
        let parent_dir = fs
            .open_dir(&parent)
            .map_err(|e| MaildirError::io("open directory", &parent, e))?;
        if let Some(leaf) = &leaf {
            make_dir_if_missing(&fs, &parent_dir, leaf)
                .map_err(|e| MaildirError::io("create directory", &path, e))?;
        }
        let root = fs
            .open_dir(&path)
            .map_err(|e| MaildirError::io("open directory", &path, e))?;
        for sub in SUBDIRS {
            make_dir_if_missing(&fs, &root, sub)
                .map_err(|e| MaildirError::io("create directory", path.join(sub), e))?;
        }
        durable::sync_dir(&fs, &root).map_err(|e| MaildirError::io("fsync", &path, e))?;
        if leaf.is_some() {
            durable::sync_dir(&fs, &parent_dir)
                .map_err(|e| MaildirError::io("fsync", &parent, e))?;
        }
        Ok(Self { fs, path })
    }

    /// [`Maildir::open`] on the filesystem `fs`.
    ///
    /// # Errors
    /// As [`Maildir::open`].
    pub fn open_in(fs: F, path: impl AsRef<Path>) -> Result<Self, MaildirError> {
        let path = path.as_ref().to_path_buf();
        fs.open_dir(&path)
            .map_err(|e| MaildirError::io("open directory", &path, e))?;
        for sub in SUBDIRS {
            match fs.open_dir(&path.join(sub)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(MaildirError::NotMaildir { path, missing: sub });
                }
                Err(e) => return Err(MaildirError::io("open directory", path.join(sub), e)),
            }
        }
        Ok(Self { fs, path })
    }

    /// [`Maildir::at`] on the filesystem `fs`.
    pub fn at_in(fs: F, path: impl AsRef<Path>) -> Self {
        Self {
            fs,
            path: path.as_ref().to_path_buf(),
        }
    }

    /// The maildir's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The filesystem this maildir lives on.
    pub fn fs(&self) -> &F {
        &self.fs
    }

    pub(crate) fn open_sub(&self, sub: &str) -> io::Result<F::Dir> {
        self.fs.open_dir(&self.path.join(sub))
    }

    /// Delivers one message: `prefix_headers` (e.g. qmail's `Return-Path:` and
    /// `Delivered-To:` lines) followed by the bytes of `message`, written exactly as given.
    ///
    /// qmail-local's order (qmail-reference §2.8), made durable: create a uniquely named file
    /// in `tmp/` with `O_EXCL`, write, `fsync` the file, hard-link it into `new/` (a name
    /// already in `new/` is never replaced: a fresh name is tried instead), `fsync` `new/`,
    /// then unlink the `tmp/` name. When this returns `Ok` the message is durable in `new/`
    /// under the returned name. A crash at any point leaves either nothing in `new/` or the
    /// complete message; a leftover `tmp/` file is removed by
    /// [`clean_tmp`](Maildir::clean_tmp) after 36 hours.
    ///
    /// As in qmail, failing to unlink the `tmp/` name after the delivery is durable is not
    /// an error. Unlike qmail, the file's `close` result is not checked (Rust's descriptors
    /// cannot report it); the `fsync` before it already reported any write-back error.
    ///
    /// # Errors
    /// [`DeliverError`] naming the step that failed; the `tmp/` file has been removed and
    /// nothing is left in `new/`. Every error is temporary (qmail: exit 111).
    pub fn deliver(
        &self,
        prefix_headers: &[u8],
        message: impl Read,
    ) -> Result<DeliveredName, DeliverError> {
        let fs = &self.fs;
        let tmp = self
            .open_sub("tmp")
            .map_err(|e| DeliverError::new(DeliverStep::OpenDir, e))?;
        let new = self
            .open_sub("new")
            .map_err(|e| DeliverError::new(DeliverStep::OpenDir, e))?;
        let (mut file, tmp_name) = create_unique(fs, &tmp)?;
        let published = durable::write_synced(fs, &mut file, prefix_headers, message)
            .map_err(|(step, e)| DeliverError::new(step, e))
            .and_then(|_| {
                drop(file);
                durable::publish_by_link(fs, &tmp, &tmp_name, &new, unique_name)
                    .map_err(|e| DeliverError::new(DeliverStep::Link, e))
            })
            .and_then(|name| match durable::sync_dir(fs, &new) {
                Ok(()) => Ok(name),
                Err(e) => {
                    // Not known durable, so reported as failed; take the name back so a
                    // retry does not deliver twice. If this removal fails too, the message
                    // is complete in new/ and a retry duplicates it: never a loss.
                    let _ = durable::remove_unsynced(fs, &new, &name);
                    Err(DeliverError::new(DeliverStep::SyncNew, e))
                }
            });
        // Success or failure, the tmp/ name goes (qmail's tryunlinktmp ignores errors too:
        // a leftover is harmless and cleaned after 36 hours).
        let _ = durable::remove_unsynced(fs, &tmp, &tmp_name);
        published.map(DeliveredName::new)
    }

    /// Opens the Maildir++ sub-folder `name` (directory `.name` inside this maildir; nested
    /// folders use `.` as separator, e.g. `Work.Projects` is `.Work.Projects/`).
    ///
    /// # Errors
    /// [`MaildirError::InvalidFolderName`] for an empty name, one starting or ending with
    /// `.`, or containing `/`, `..` or NUL; otherwise as [`Maildir::open`].
    pub fn folder(&self, name: &str) -> Result<Self, MaildirError> {
        check_folder_name(name)?;
        Self::open_in(self.fs.clone(), self.path.join(format!(".{name}")))
    }

    /// Creates (if missing) and opens the Maildir++ sub-folder `name`, including the empty
    /// `maildirfolder` marker file Maildir++ readers look for.
    ///
    /// # Errors
    /// As [`Maildir::folder`] and [`Maildir::create`].
    pub fn create_folder(&self, name: &str) -> Result<Self, MaildirError> {
        check_folder_name(name)?;
        let folder = Self::create_in(self.fs.clone(), self.path.join(format!(".{name}")))?;
        let dir = folder
            .fs
            .open_dir(&folder.path)
            .map_err(|e| MaildirError::io("open directory", &folder.path, e))?;
        match folder.fs.create_new(&dir, "maildirfolder") {
            Ok(_) => durable::sync_dir(&folder.fs, &dir)
                .map_err(|e| MaildirError::io("fsync", &folder.path, e))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(MaildirError::io(
                    "create",
                    folder.path.join("maildirfolder"),
                    e,
                ));
            }
        }
        Ok(folder)
    }

    /// The names of this maildir's Maildir++ sub-folders (without the leading `.`), sorted.
    ///
    /// # Errors
    /// [`MaildirError::Io`] when the maildir directory cannot be listed.
    pub fn folders(&self) -> Result<Vec<String>, MaildirError> {
        let root = self
            .fs
            .open_dir(&self.path)
            .map_err(|e| MaildirError::io("open", &self.path, e))?;
        let mut names: Vec<String> = self
            .fs
            .list_dir(&root)
            .map_err(|e| MaildirError::io("list", &self.path, e))?
            .into_iter()
            .filter_map(|n| n.strip_prefix('.').map(str::to_owned))
            .filter(|n| check_folder_name(n).is_ok() && self.folder(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Creates a file with a fresh unique name in `tmp/`, retrying on `AlreadyExists`.
pub(crate) fn create_unique<F: Fs>(
    fs: &F,
    tmp: &F::Dir,
) -> Result<(F::File, String), DeliverError> {
    let mut last = None;
    for _ in 0..durable::NAME_ATTEMPTS {
        let name = unique_name();
        match fs.create_new(tmp, &name) {
            Ok(file) => return Ok((file, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(DeliverError::new(DeliverStep::CreateTmp, e)),
        }
    }
    let e = last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into());
    Err(DeliverError::new(DeliverStep::CreateTmp, e))
}

fn make_dir_if_missing<F: Fs>(fs: &F, parent: &F::Dir, name: &str) -> io::Result<()> {
    match fs.create_dir(parent, name) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Splits `path` into its parent directory and final component (`None` for `/` or `.`).
fn split_path(path: &Path) -> Result<(PathBuf, Option<String>), MaildirError> {
    let Some(leaf) = path.file_name() else {
        return Ok((path.to_path_buf(), None));
    };
    let leaf = leaf.to_str().ok_or_else(|| {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "maildir name is not UTF-8");
        MaildirError::io("create directory", path, e)
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, Some(leaf.to_owned())))
}

fn check_folder_name(name: &str) -> Result<(), MaildirError> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.ends_with('.')
        || name.contains("..")
        || name.contains(['/', '\0']);
    if bad {
        Err(MaildirError::InvalidFolderName(name.to_owned()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        for ok in ["Sent", "Work.Projects", "a b"] {
            assert!(check_folder_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "x.", "a..b", "a/b", "../x", "a\0"] {
            assert!(check_folder_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn split_paths() {
        let (p, l) = split_path(Path::new("Maildir/")).unwrap();
        assert_eq!((p, l.as_deref()), (PathBuf::from("."), Some("Maildir")));
        let (p, l) = split_path(Path::new("/home/u/Maildir")).unwrap();
        assert_eq!(
            (p, l.as_deref()),
            (PathBuf::from("/home/u"), Some("Maildir"))
        );
        assert_eq!(split_path(Path::new("/")).unwrap().1, None);
    }
}
