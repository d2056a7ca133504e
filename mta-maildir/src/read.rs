//! Reading a maildir: listing `new/` and `cur/`, info flags, moving to `cur/`, and `tmp/`
//! cleanup (maildir(5), qmail-reference §2.8).

use std::io;
use std::time::{Duration, SystemTime};

use crate::durable::{self, Access, Fs};
use crate::error::MaildirError;
use crate::flags::Flags;
use crate::maildir::Maildir;

/// maildir(5): readers may delete `tmp/` files not accessed for 36 hours.
pub const TMP_MAX_AGE: Duration = Duration::from_hours(36);

/// Which of the two reader-visible sub-directories a message is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subdir {
    /// `new/`: delivered, not yet seen by a reader.
    New,
    /// `cur/`: seen by a reader; the name carries `:2,` info flags.
    Cur,
}

impl Subdir {
    /// The directory name, `"new"` or `"cur"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Cur => "cur",
        }
    }
}

/// A message's entry in `new/` or `cur/`: where it is and its file name, not its bytes
/// (read those with [`Maildir::read`]).
///
/// Called `Message` before 0.1.1; the name clashed with mta-dotqmail's `Message`, the
/// bytes being delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    subdir: Subdir,
    file_name: String,
}

impl Entry {
    /// Where the message is.
    pub fn subdir(&self) -> Subdir {
        self.subdir
    }

    /// The file name in its sub-directory.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The unique part of the name: everything before the first `:`.
    pub fn id(&self) -> &str {
        self.file_name.split(':').next().unwrap_or_default()
    }

    /// The info flags (`:2,<flags>`); empty for messages in `new/` or with other info.
    pub fn flags(&self) -> Flags {
        match self.file_name.split_once(":2,") {
            Some((_, f)) => Flags::from_letters(f),
            None => Flags::new(),
        }
    }
}

/// The old name of [`Entry`].
#[deprecated(
    since = "0.1.1",
    note = "renamed to `Entry` (mta-dotqmail's `Message` is the bytes)"
)]
pub type Message = Entry;

impl<F: Fs> Maildir<F> {
    /// The messages in `sub`, sorted by name; names starting with `.` are skipped
    /// (maildir(5)), as are names that are not UTF-8.
    ///
    /// # Errors
    /// [`MaildirError::Io`] when the directory cannot be opened or listed.
    pub fn list(&self, sub: Subdir) -> Result<Vec<Entry>, MaildirError> {
        let path = self.path().join(sub.as_str());
        let dir = self
            .open_sub(sub.as_str())
            .map_err(|e| MaildirError::io("open", &path, e))?;
        let mut names = self
            .fs()
            .list_dir(&dir)
            .map_err(|e| MaildirError::io("list", &path, e))?;
        names.retain(|n| !n.starts_with('.'));
        names.sort();
        Ok(names
            .into_iter()
            .map(|file_name| Entry {
                subdir: sub,
                file_name,
            })
            .collect())
    }

    /// The messages in `new/` then those in `cur/`.
    ///
    /// # Errors
    /// As [`list`](Self::list).
    pub fn messages(&self) -> Result<Vec<Entry>, MaildirError> {
        let mut all = self.list(Subdir::New)?;
        all.extend(self.list(Subdir::Cur)?);
        Ok(all)
    }

    /// The message with unique part `id`, wherever it is.
    ///
    /// # Errors
    /// As [`list`](Self::list).
    pub fn find(&self, id: &str) -> Result<Option<Entry>, MaildirError> {
        Ok(self.messages()?.into_iter().find(|m| m.id() == id))
    }

    /// The message's bytes, exactly as stored.
    ///
    /// # Errors
    /// [`MaildirError::Io`] when the file cannot be opened or read (for example because
    /// another reader moved it).
    pub fn read(&self, msg: &Entry) -> Result<Vec<u8>, MaildirError> {
        let path = self.path().join(msg.subdir.as_str()).join(&msg.file_name);
        let io_err = |e| MaildirError::io("read", &path, e);
        let dir = self.open_sub(msg.subdir.as_str()).map_err(io_err)?;
        let mut file = self
            .fs()
            .open(&dir, &msg.file_name, Access::Read)
            .map_err(io_err)?;
        let mut data = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.fs().read(&mut file, &mut buf).map_err(io_err)?;
            if n == 0 {
                return Ok(data);
            }
            data.extend_from_slice(&buf[..n]);
        }
    }

    /// Moves `msg` to `cur/<id>:2,<flags>` (or renames it there with new flags if it is
    /// already in `cur/`), durably, and returns its new entry.
    ///
    /// # Errors
    /// [`MaildirError::Io`] when the rename or a directory sync fails.
    pub fn set_flags(&self, msg: &Entry, flags: &Flags) -> Result<Entry, MaildirError> {
        let to_name = format!("{}:2,{}", msg.id(), flags);
        let from_path = self.path().join(msg.subdir.as_str()).join(&msg.file_name);
        let io_err = |e| MaildirError::io("move", &from_path, e);
        let from = self.open_sub(msg.subdir.as_str()).map_err(io_err)?;
        let to = self.open_sub("cur").map_err(io_err)?;
        if msg.subdir != Subdir::Cur || msg.file_name != to_name {
            durable::rename_synced(self.fs(), &from, &msg.file_name, &to, &to_name)
                .map_err(io_err)?;
        }
        Ok(Entry {
            subdir: Subdir::Cur,
            file_name: to_name,
        })
    }

    /// Moves a message from `new/` to `cur/` with the given flags: what a reader does when
    /// it first sees a message. Same as [`set_flags`](Self::set_flags).
    ///
    /// # Errors
    /// As [`set_flags`](Self::set_flags).
    pub fn move_to_cur(&self, msg: &Entry, flags: &Flags) -> Result<Entry, MaildirError> {
        self.set_flags(msg, flags)
    }

    /// Removes a message.
    ///
    /// # Errors
    /// [`MaildirError::Io`] when the unlink or the directory sync fails.
    pub fn remove(&self, msg: &Entry) -> Result<(), MaildirError> {
        let path = self.path().join(msg.subdir.as_str()).join(&msg.file_name);
        let io_err = |e| MaildirError::io("remove", &path, e);
        let dir = self.open_sub(msg.subdir.as_str()).map_err(io_err)?;
        durable::remove_unsynced(self.fs(), &dir, &msg.file_name).map_err(io_err)?;
        durable::sync_dir(self.fs(), &dir).map_err(io_err)
    }

    /// Deletes files in `tmp/` last accessed more than [`TMP_MAX_AGE`] (36 hours) before
    /// `now`, and returns how many. A delivery in progress is never that old (qmail's
    /// delivery alarm is 24 hours), so this only removes leftovers of crashed deliveries.
    ///
    /// # Errors
    /// [`MaildirError::Io`] when `tmp/` cannot be listed or a stale file cannot be removed
    /// (files that vanish meanwhile are skipped).
    pub fn clean_tmp(&self, now: SystemTime) -> Result<usize, MaildirError> {
        let path = self.path().join("tmp");
        let io_err = |e| MaildirError::io("clean", &path, e);
        let dir = self.open_sub("tmp").map_err(io_err)?;
        let mut removed = 0;
        for name in self.fs().list_dir(&dir).map_err(io_err)? {
            let accessed = match self.fs().accessed(&dir, &name) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e)),
            };
            if now
                .duration_since(accessed)
                .is_ok_and(|age| age > TMP_MAX_AGE)
            {
                match durable::remove_unsynced(self.fs(), &dir, &name) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_id_and_flags() {
        let m = Entry {
            subdir: Subdir::Cur,
            file_name: "123.M1P2.host:2,SF".into(),
        };
        assert_eq!(m.id(), "123.M1P2.host");
        assert_eq!(m.flags().as_str(), "FS");
        let n = Entry {
            subdir: Subdir::New,
            file_name: "123.x".into(),
        };
        assert_eq!((n.id(), n.flags().as_str()), ("123.x", ""));
    }
}
