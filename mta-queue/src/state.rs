//! The queue's layout on disk, the state of a message as derived from which of its files
//! exist, and recovery (a `match` on that state).

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::durable::{self, Access, Fs};
use crate::id::LAYOUT_1_IDS_PER_DIR;
use crate::{MessageId, QueueError};

/// File holding the layout version and how `mess/` is split ([`Split`]), written once when
/// the queue is made.
pub(crate) const LAYOUT: &str = "layout";
const LAYOUT_NEW: &str = "layout.new";
pub(crate) const TMP: &str = "tmp";
pub(crate) const MESS: &str = "mess";
/// Where queues made before issue 22's ninth step kept the files of removed messages; now
/// only emptied by recovery (see [`FREE_PREFIX`]).
pub(crate) const FREE: &str = "free";
/// The name a removed message's file takes in its own `mess/<n>/` directory while it waits
/// for reuse by a later enqueue: `free.<id>`, which no id parses as, so scans pass it by.
/// Renaming within the directory the removal changes anyway leaves every other directory,
/// and the inode of a shared `free/`, untouched by a commit round's sync.
pub(crate) const FREE_PREFIX: &str = "free.";

/// How `mess/` is divided: `dirs` subdirectories `mess/0` .. `mess/<dirs - 1>`, which take
/// runs of `ids_per_dir` consecutive ids in turn ([`MessageId::split_dir_with`]).
///
/// Recorded in the `layout` file. Version 1 (`mta-queue 1`, `split N`) is runs of 16, as
/// every queue made before version 2 has. Version 2 adds `run R`. A queue with runs of 16
/// is still written as version 1, so a build that knows only version 1 can open it; one
/// with other runs is version 2, which such a build refuses (it would look for messages in
/// the wrong directories) instead of misreading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) dirs: u32,
    pub(crate) ids_per_dir: u32,
}

impl Split {
    /// The subdirectory of `mess/` that holds `id`.
    pub(crate) fn dir_of(self, id: MessageId) -> u32 {
        id.split_dir_with(self.dirs, self.ids_per_dir)
    }

    /// The `layout` file's text for this split.
    fn layout_text(self) -> String {
        if self.ids_per_dir == LAYOUT_1_IDS_PER_DIR {
            format!("mta-queue 1\nsplit {}\n", self.dirs)
        } else {
            format!(
                "mta-queue 2\nsplit {}\nrun {}\n",
                self.dirs, self.ids_per_dir
            )
        }
    }

    /// Parses a `layout` file's text; `None` when it is neither version.
    fn parse_layout(text: &str) -> Option<Split> {
        let number = |line: Option<&str>, key: &str| {
            line.and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix(' '))
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|&n| n > 0)
        };
        let mut lines = text.lines();
        let version = lines.next()?;
        let dirs = number(lines.next(), "split")?;
        let ids_per_dir = match version {
            "mta-queue 1" => LAYOUT_1_IDS_PER_DIR,
            "mta-queue 2" => number(lines.next(), "run")?,
            _ => return None,
        };
        Some(Split { dirs, ids_per_dir })
    }
}

/// Where a message's files live.
#[derive(Clone, Debug)]
pub(crate) struct Paths {
    pub(crate) tmp: String,
    pub(crate) dir: String,
    pub(crate) mess: String,
}

impl Paths {
    pub(crate) fn of(id: MessageId, split: Split) -> Self {
        let dir = format!("{MESS}/{}", split.dir_of(id));
        Paths {
            tmp: format!("{TMP}/{id}"),
            mess: format!("{dir}/{id}"),
            dir,
        }
    }

    /// The name the message's file takes when it is removed and kept for reuse:
    /// `mess/<n>/free.<id>`, beside its `mess/` name.
    pub(crate) fn free(&self, id: MessageId) -> String {
        format!("{}/{FREE_PREFIX}{id}", self.dir)
    }
}

/// A message's state, derived only from which of its two names exist (qmail INTERNALS).
///
/// | state                   | `tmp/<id>` | `mess/<n>/<id>` |
/// |-------------------------|------------|-----------------|
/// | `Absent`                | -          | -               |
/// | `Receiving`             | +          | -               |
/// | `CommittedWithStaleTmp` | +          | +               |
/// | `Committed`             | -          | +               |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MessageState {
    /// Never enqueued, or removed.
    Absent,
    /// Bytes being received, or an enqueue interrupted before its commit: never acknowledged.
    Receiving,
    /// Committed; the rename's removal of the `tmp/` name was not made durable before a crash.
    CommittedWithStaleTmp,
    /// Committed: the message is queued.
    Committed,
}

impl MessageState {
    pub(crate) fn derive(tmp_exists: bool, mess_exists: bool) -> Self {
        match (tmp_exists, mess_exists) {
            (false, false) => MessageState::Absent,
            (true, false) => MessageState::Receiving,
            (true, true) => MessageState::CommittedWithStaleTmp,
            (false, true) => MessageState::Committed,
        }
    }
}

fn exists<F: Fs>(fs: &F, root: &F::Dir, path: &str) -> Result<bool, QueueError> {
    match fs.open(root, path, Access::Read) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(QueueError::io("open", path, e)),
    }
}

/// Creates whatever part of the layout is missing and returns the split (the one on disk
/// wins over `wanted`, since existing messages are filed by it).
pub(crate) fn ensure_layout<F: Fs>(
    fs: &F,
    root: &F::Dir,
    wanted: Split,
) -> Result<Split, QueueError> {
    let split = match read_layout(fs, root)? {
        Some(split) => split,
        None => Split {
            dirs: wanted.dirs.max(1),
            ids_per_dir: wanted.ids_per_dir.max(1),
        },
    };
    let top = [TMP.to_owned(), MESS.to_owned(), FREE.to_owned()];
    durable::create_dirs_synced(fs, root, "", &top).map_err(|e| QueueError::io("mkdir", "", e))?;
    let subdirs: Vec<String> = (0..split.dirs).map(|n| n.to_string()).collect();
    durable::create_dirs_synced(fs, root, MESS, &subdirs)
        .map_err(|e| QueueError::io("mkdir", MESS, e))?;
    if read_layout(fs, root)?.is_none() {
        // Written last, so its presence means every directory above is durable.
        durable::discard(fs, root, LAYOUT_NEW)
            .map_err(|e| QueueError::io("unlink", LAYOUT_NEW, e))?;
        let f = fs
            .create_new(root, LAYOUT_NEW)
            .map_err(|e| QueueError::io("create", LAYOUT_NEW, e))?;
        let text = split.layout_text();
        durable::write_at_synced(fs, &f, 0, text.as_bytes())
            .map_err(|e| QueueError::io("write", LAYOUT_NEW, e))?;
        durable::publish_by_move(fs, root, LAYOUT_NEW, LAYOUT, "")
            .map_err(|e| QueueError::io("rename", LAYOUT, e))?;
    }
    Ok(split)
}

/// The split of an existing queue, for read-only opening.
pub(crate) fn read_split<F: Fs>(fs: &F, root: &F::Dir) -> Result<Split, QueueError> {
    read_layout(fs, root)?.ok_or_else(|| {
        QueueError::io(
            "open",
            LAYOUT,
            io::Error::new(io::ErrorKind::NotFound, "not an mta-queue directory"),
        )
    })
}

fn read_layout<F: Fs>(fs: &F, root: &F::Dir) -> Result<Option<Split>, QueueError> {
    let f = match fs.open(root, LAYOUT, Access::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(QueueError::io("open", LAYOUT, e)),
    };
    let mut buf = [0u8; 64];
    let n = fs
        .read_at(&f, &mut buf, 0)
        .map_err(|e| QueueError::io("read", LAYOUT, e))?;
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    Split::parse_layout(text).map(Some).ok_or_else(|| {
        QueueError::io(
            "parse",
            LAYOUT,
            io::Error::new(io::ErrorKind::InvalidData, "bad layout file"),
        )
    })
}

/// Recovery after a crash: brings every message found in `tmp/` to a clean state, removes
/// every free name (`mess/<n>/free.<id>`, and whatever an older build left in `free/`),
/// then returns the first id safe to hand out (above every id on disk and above the clock).
///
/// Free names are removed because they are only trusted within one process lifetime: a
/// reused file is committed by linking its free name to its new `mess/` name and unlinking
/// the free name unsynced, so after a power loss an old free name can point at a live
/// message. Only the name goes (the file lives on under its other name, if any); no file
/// found under a free name is ever reused after an open.
pub(crate) fn recover<F: Fs>(fs: &F, root: &F::Dir, split: Split) -> Result<u64, QueueError> {
    for name in list_dir(fs, root, FREE)? {
        let path = durable::join(FREE, &name);
        durable::discard(fs, root, &path).map_err(|e| QueueError::io("unlink", path.clone(), e))?;
    }
    let mut highest = 0u64;
    let mut discarded = false;
    for name in list_dir(fs, root, TMP)? {
        let path = durable::join(TMP, &name);
        let Ok(id) = name.parse::<MessageId>() else {
            // Not a name we make; tmp/ is ours, so it goes.
            durable::discard(fs, root, &path)
                .map_err(|e| QueueError::io("unlink", path.clone(), e))?;
            discarded = true;
            continue;
        };
        highest = highest.max(id.as_u64());
        let paths = Paths::of(id, split);
        match MessageState::derive(true, exists(fs, root, &paths.mess)?) {
            MessageState::Receiving | MessageState::CommittedWithStaleTmp => {
                // Never acknowledged, or a second name for a committed file: either way
                // the tmp/ name goes and the committed file (if any) is untouched.
                durable::discard(fs, root, &paths.tmp)
                    .map_err(|e| QueueError::io("unlink", paths.tmp, e))?;
                discarded = true;
            }
            MessageState::Committed | MessageState::Absent => {}
        }
    }
    if discarded {
        durable::sync_dir_at(fs, root, TMP).map_err(|e| QueueError::io("sync", TMP, e))?;
    }
    for id in scan_dirs(fs, root, split, true)? {
        highest = highest.max(id.as_u64());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    Ok(highest.saturating_add(1).max(now))
}

/// The names in directory `path` of the queue.
fn list_dir<F: Fs>(fs: &F, root: &F::Dir, path: &str) -> Result<Vec<String>, QueueError> {
    fs.open_dir_at(root, path)
        .and_then(|dir| fs.list_dir(&dir))
        .map_err(|e| QueueError::io("list", path, e))
}

/// Every committed message: the names under `mess/<n>/` (free names are passed by).
pub(crate) fn scan<F: Fs>(
    fs: &F,
    root: &F::Dir,
    split: Split,
) -> Result<Vec<MessageId>, QueueError> {
    scan_dirs(fs, root, split, false)
}

/// [`scan`], removing the free names it meets when `discard_free` (recovery's one pass).
fn scan_dirs<F: Fs>(
    fs: &F,
    root: &F::Dir,
    split: Split,
    discard_free: bool,
) -> Result<Vec<MessageId>, QueueError> {
    let mut ids = Vec::new();
    for n in 0..split.dirs {
        let dir = format!("{MESS}/{n}");
        let names = list_dir(fs, root, &dir)?;
        if discard_free {
            for name in names.iter().filter(|name| name.starts_with(FREE_PREFIX)) {
                let path = durable::join(&dir, name);
                durable::discard(fs, root, &path)
                    .map_err(|e| QueueError::io("unlink", path.clone(), e))?;
            }
        }
        ids.extend(
            names
                .iter()
                .filter_map(|name| name.parse::<MessageId>().ok())
                .filter(|id| split.dir_of(*id) == n),
        );
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_text_round_trips_and_runs_of_16_stay_version_1() {
        for (dirs, ids_per_dir) in [(512, 16), (512, 256), (1, 1), (4, 4096)] {
            let split = Split { dirs, ids_per_dir };
            let text = split.layout_text();
            assert_eq!(Split::parse_layout(&text), Some(split), "{text:?}");
            assert_eq!(
                text.starts_with("mta-queue 1\n"),
                ids_per_dir == 16,
                "{text:?}"
            );
        }
        assert_eq!(
            Split::parse_layout("mta-queue 1\nsplit 23\n"),
            Some(Split {
                dirs: 23,
                ids_per_dir: 16
            })
        );
        for bad in [
            "",
            "mta-queue 1\n",
            "mta-queue 1\nsplit x\n",
            "mta-queue 2\nsplit 4\nrun\n",
        ] {
            assert_eq!(Split::parse_layout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn state_table() {
        assert_eq!(MessageState::derive(false, false), MessageState::Absent);
        assert_eq!(MessageState::derive(true, false), MessageState::Receiving);
        assert_eq!(
            MessageState::derive(true, true),
            MessageState::CommittedWithStaleTmp
        );
        assert_eq!(MessageState::derive(false, true), MessageState::Committed);
    }
}
