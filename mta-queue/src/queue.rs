//! [`Queue`]: open/recover, scan, read, mark, remove. Enqueueing is in `incoming.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::durable::{self, Access, Fs};
use crate::format::{self, HEADER_LEN, Header};
use crate::group::{Batcher, Outcome};
use crate::rounds::{RoundOps, Rounds};
use crate::state::{self, Paths, Split};
use crate::{MessageId, MessageInfo, OsFs, QueueError, Status};

/// Most operations one group-commit leader performs in one batch (bounds a leader's latency).
const MAX_BATCH: usize = 256;

/// How durable operations are committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitMode {
    /// Concurrent enqueues share whole-file-system syncs (`syncfs`), in rounds: each
    /// round links the messages written since the last one into `mess/` and then syncs
    /// once, which makes their data and their names durable together (the default). A lone
    /// enqueue costs one sync, where [`Grouped`](Self::Grouped) costs two; N concurrent
    /// ones share one cache flush per round. While commits are concurrent, a round waits
    /// for as many as recent rounds had in view, but no longer than recent syncs took
    /// (1 to 20 ms after the previous round started): on a slow disk every sync writes the
    /// same bitmaps, directory and inode table blocks again, so fewer, fuller rounds write
    /// less per message. Marks are grouped as under `Grouped`.
    ///
    /// A power loss during a round's sync can leave a name whose data did not all reach
    /// the disk (never acknowledged); the first [`Queue::open`] after the machine restarts
    /// finds such files by their checksums and removes them
    /// ([`Queue::torn_at_open`]), which costs one read of every queued message then.
    ///
    /// `syncfs` also writes back unrelated dirty data of the queue's file system (put the
    /// queue on a file system of its own, or with the mail it delivers, when other
    /// programs write much there), and Linux reports write-back errors from it only since
    /// 5.8. Where the [`Fs`] has no `syncfs`, enqueues fall back to `Grouped`.
    Filesystem,
    /// Concurrent enqueues, and concurrent marks of one message, share directory and file
    /// fsyncs: each enqueue `fdatasync`s its file, then the directory fsyncs of concurrent
    /// enqueues are shared. A lone caller is never delayed.
    Grouped,
    /// Every operation does its own fsyncs (for comparison in benchmarks).
    PerMessage,
}

/// Options for [`Queue::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    split: u32,
    ids_per_dir: u32,
    commit: CommitMode,
    recycle: usize,
}

/// Default for [`QueueOptions::ids_per_dir`].
const IDS_PER_DIR: u32 = 256;

/// Default for [`QueueOptions::recycle`].
const RECYCLE: usize = 1024;

/// Removals kept for reuse between two syncs of the directories they were made in.
const RECYCLE_BATCH: usize = 32;

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            split: 512,
            ids_per_dir: IDS_PER_DIR,
            commit: CommitMode::Filesystem,
            recycle: RECYCLE,
        }
    }
}

impl QueueOptions {
    /// Number of hashed subdirectories of `mess/` (qmail's `conf-split`; default 512, so
    /// 100,000 messages make about 200 entries per directory). Used only when the queue is
    /// created: an existing queue keeps the count recorded in its `layout` file.
    #[must_use]
    pub fn split(mut self, split: u32) -> Self {
        self.split = split.max(1);
        self
    }

    /// How many consecutive ids share a subdirectory of `mess/` before the next one takes
    /// over (default 256; queues made before this option existed have 16). Used only when
    /// the queue is created, and recorded in its `layout` file like [`split`](Self::split).
    ///
    /// Each directory a commit links into or a removal unlinks from has its block and its
    /// inode written by the next sync. With 16, a stream of messages kept about eight
    /// directories changing at once (those of the ids being committed, and of older ones
    /// being removed); on a disk whose writes are rationed that was a tenth of its writes.
    /// 256 ids fit in two directory blocks, so a busy queue changes two or three directories
    /// at a time, and the directories still fill evenly over 512 splits.
    #[must_use]
    pub fn ids_per_dir(mut self, ids: u32) -> Self {
        self.ids_per_dir = ids.max(1);
        self
    }

    /// How operations are committed (default [`CommitMode::Filesystem`]).
    #[must_use]
    pub fn commit(mut self, mode: CommitMode) -> Self {
        self.commit = mode;
        self
    }

    /// How many files of removed messages are kept (under free names, `mess/<n>/free.<id>`)
    /// for reuse by later enqueues (default 1,024; 0 unlinks every removed file, as qmail
    /// does). A file is reused only after its removal from `mess/` was made durable, by the
    /// next commit round's sync, or (without rounds) by removals' directory syncs in batches
    /// of 32 (or of `files`, if smaller).
    ///
    /// Reusing a file instead of creating a new one spares the file system an inode
    /// allocation and release per message, and the commit's `fdatasync` then writes the
    /// data blocks only, with no new directory entry or inode to write. On ext4 without a
    /// journal this matters most: there every inode freed in the last minute is skipped by
    /// the allocator, so a busy queue that unlinks its files makes every later file
    /// creation on that file system scan past thousands of them. PostgreSQL recycles its
    /// WAL segment files for the same reasons. Of the reusable files, the one this process
    /// made first is taken first, so the files in use stay a few neighbouring inodes whose
    /// table blocks a commit round writes once, not one block per message.
    #[must_use]
    pub fn recycle(mut self, files: usize) -> Self {
        self.recycle = files;
        self
    }
}

/// A crash-safe mail queue in one directory. Cheap to clone (a shared handle), `Send` and
/// `Sync`: SMTP sessions and delivery threads can all use it at once.
///
/// See the [crate docs](crate) for the layout and the crash reasoning.
#[derive(Debug)]
pub struct Queue<F: Fs = OsFs> {
    pub(crate) inner: Arc<Inner<F>>,
}

impl<F: Fs> Clone for Queue<F> {
    fn clone(&self) -> Self {
        Queue {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner<F: Fs> {
    pub(crate) fs: F,
    /// The queue directory on `fs`: every path is relative to it.
    pub(crate) root: F::Dir,
    pub(crate) split: Split,
    pub(crate) commit: CommitMode,
    pub(crate) next_id: AtomicU64,
    /// Opened by [`Queue::inspect`]: every write is refused.
    pub(crate) read_only: bool,
    pub(crate) publisher: Batcher<DirOp>,
    /// Enqueues under [`CommitMode::Filesystem`].
    pub(crate) rounds: Rounds<(MessageId, Paths)>,
    /// `syncfs` turned out unsupported: [`CommitMode::Filesystem`] falls back to grouped.
    pub(crate) no_syncfs: AtomicBool,
    marks: Mutex<HashMap<MessageId, Arc<Batcher<MarkOp>>>>,
    /// Marks syncing by `fdatasync` right now (see [`Queue::append_durably`]).
    marks_syncing: AtomicUsize,
    /// Messages whose status log is known to end in a complete record (written by this
    /// process, or checked since open), so a mark can append without reading it first.
    verified: Mutex<HashSet<MessageId>>,
    /// Files under free names that this process gave them (never names found at open).
    pub(crate) free: Mutex<FreeList>,
    /// Most files kept under free names.
    pub(crate) recycle: usize,
    /// A hold marker may exist (see `hold.rs`): removals then drop theirs.
    pub(crate) holds_possible: AtomicBool,
    /// Messages the check after a restart found torn and removed (`verify.rs`).
    torn: Mutex<Vec<crate::verify::Torn>>,
}

/// The files of removed messages, by whether their removal is durable yet.
///
/// A file is reused only once the directory it was renamed out of has been synced since:
/// otherwise a power loss could bring back its old `mess/` name pointing at the same file,
/// now holding the next message's bytes (a live message under a dead message's id).
///
/// Every file this process created gets a **slot**, its creation rank, which travels with
/// it from message to message; the ready file with the lowest slot is reused first. Files
/// made one after another get neighbouring inodes, so the few files in use at a time stay
/// within a few inode table blocks, and a commit round's sync writes those few blocks
/// instead of one per message (on a slow disk every metadata block a sync writes counts).
#[derive(Debug, Default)]
pub(crate) struct FreeList {
    /// Renamed to their free names; their directories not yet synced: `(free name,
    /// directory, slot)`.
    pending: Vec<(String, String, u64)>,
    /// Renamed to their free names under [`CommitMode::Filesystem`]: ready once a commit
    /// round's `syncfs` that started after the removal has succeeded (`(free name,
    /// Rounds::mark, slot)`), so no directory fsync of their own is needed.
    after_round: Vec<(String, u64, u64)>,
    /// Safe to reuse, lowest slot first.
    ready: BinaryHeap<Reverse<(u64, String)>>,
    /// Being made ready by one remover (counted against the cap).
    syncing: usize,
    /// The slot of each message this process committed and has not removed yet (a message
    /// found at open has none, and its file goes after every known one).
    slots: HashMap<MessageId, u64>,
    /// The slot of the next file created.
    next_slot: u64,
}

impl FreeList {
    fn len(&self) -> usize {
        self.pending.len() + self.after_round.len() + self.ready.len() + self.syncing
    }

    /// A slot for a newly created file.
    pub(crate) fn new_slot(&mut self) -> u64 {
        self.next_slot += 1;
        self.next_slot
    }

    /// Records which file message `id` was committed in.
    pub(crate) fn committed(&mut self, id: MessageId, slot: u64) {
        self.slots.insert(id, slot);
    }
}

/// A directory operation batched by the publisher.
#[derive(Debug)]
pub(crate) enum DirOp {
    Publish(MessageId, Paths),
}

/// Encoded status records for one message, and the highest index they name.
#[derive(Debug)]
struct MarkOp {
    records: Vec<u8>,
    max_index: u32,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue<OsFs> {
    /// Opens the queue in `dir`, creating the directory and its layout if missing, and
    /// recovers from any crash: interrupted enqueues are removed, every committed message is
    /// kept.
    ///
    /// # Errors
    /// [`QueueError::Locked`] if another process has it open; [`QueueError::Io`] otherwise.
    pub fn open(dir: impl AsRef<Path>, options: QueueOptions) -> Result<Self, QueueError> {
        let dir = dir.as_ref();
        let fs = OsFs::open(dir).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                QueueError::Locked
            } else {
                QueueError::io("open", dir.display().to_string(), e)
            }
        })?;
        Queue::open_with(fs, options)
    }

    /// Opens an existing queue for reading only, without taking the lock and without
    /// recovery, so a tool can list it while the owning process runs (qmail-qread and
    /// qmail-qstat beside qmail-send). [`Queue::scan`], [`Queue::info`] and
    /// [`Queue::open_message`] work; every write returns [`QueueError::ReadOnly`]. A
    /// message being removed concurrently may show up in `scan` and then be
    /// [`QueueError::NotFound`]. A reader still holding a removed message's file open when
    /// the owner reuses that file (see [`QueueOptions::recycle`]) reads the new message's
    /// bytes: an inspector reads a message promptly after opening it and does not rely on
    /// what it read (the owner itself never removes a message it is reading). After a
    /// power loss and before the owner's first open, it may also list a message whose
    /// commit the power loss tore (`info` then reports it corrupt): only that open checks
    /// and removes them ([`Queue::torn_at_open`]).
    ///
    /// # Errors
    /// [`QueueError::Io`] when the directory or its layout file cannot be read.
    pub fn inspect(dir: impl AsRef<Path>) -> Result<Self, QueueError> {
        let dir = dir.as_ref();
        let fs = OsFs::open_unlocked(dir)
            .map_err(|e| QueueError::io("open", dir.display().to_string(), e))?;
        let root = open_root(&fs)?;
        let split = state::read_split(&fs, &root)?;
        Ok(Queue {
            inner: Arc::new(Inner {
                fs,
                root,
                split,
                commit: CommitMode::Grouped,
                next_id: AtomicU64::new(0),
                read_only: true,
                publisher: Batcher::new(1),
                rounds: Rounds::new(),
                no_syncfs: AtomicBool::new(false),
                marks: Mutex::new(HashMap::new()),
                marks_syncing: AtomicUsize::new(0),
                verified: Mutex::new(HashSet::new()),
                free: Mutex::new(FreeList::default()),
                recycle: 0,
                holds_possible: AtomicBool::new(false),
                torn: Mutex::new(Vec::new()),
            }),
        })
    }
}

impl<F: Fs> Queue<F> {
    /// Opens a queue on any [`Fs`] (e.g. [`SimFs`](crate::sim::SimFs) in crash tests), with
    /// the same creation and recovery as [`Queue::open`]. The queue directory is the base
    /// directory of `fs` (`"."` to [`Fs::open_dir`]): the one given to [`OsFs::open`], the
    /// simulator's `/`.
    ///
    /// # Errors
    /// [`QueueError::Io`] when the layout cannot be created or recovery fails.
    pub fn open_with(fs: F, options: QueueOptions) -> Result<Self, QueueError> {
        let root = open_root(&fs)?;
        let wanted = Split {
            dirs: options.split,
            ids_per_dir: options.ids_per_dir,
        };
        let split = state::ensure_layout(&fs, &root, wanted)?;
        let next = state::recover(&fs, &root, split)?;
        let max_batch = match options.commit {
            CommitMode::Grouped | CommitMode::Filesystem => MAX_BATCH,
            CommitMode::PerMessage => 1,
        };
        let queue = Queue {
            inner: Arc::new(Inner {
                fs,
                root,
                split,
                commit: options.commit,
                next_id: AtomicU64::new(next),
                read_only: false,
                publisher: Batcher::new(max_batch),
                rounds: Rounds::new(),
                no_syncfs: AtomicBool::new(false),
                marks: Mutex::new(HashMap::new()),
                marks_syncing: AtomicUsize::new(0),
                verified: Mutex::new(HashSet::new()),
                free: Mutex::new(FreeList::default()),
                recycle: options.recycle,
                holds_possible: AtomicBool::new(false),
                torn: Mutex::new(Vec::new()),
            }),
        };
        let torn = crate::verify::after_restart(&queue)?;
        *lock(&queue.inner.torn) = torn;
        queue.note_holds_at_open()?;
        Ok(queue)
    }

    /// Makes everything written to the queue's file system before this call durable, by
    /// the next commit round's `syncfs` (shared with concurrent enqueues: one flush for
    /// both). For a program that writes other files on the same file system and would
    /// otherwise sync them itself (the daemon's local deliveries into maildirs next to the
    /// queue); compare [`device`](Queue::device) with theirs first.
    ///
    /// Returns `Ok(false)`, having synced nothing, when the queue does not commit in rounds
    /// ([`CommitMode::Grouped`] or `PerMessage`, or `syncfs` unsupported): the caller then
    /// syncs by itself.
    ///
    /// # Errors
    /// [`QueueError::Io`] when the sync failed (what was written may not be durable).
    pub fn sync_filesystem(&self) -> Result<bool, QueueError> {
        self.sync_in_round(true)
    }

    /// [`sync_filesystem`](Queue::sync_filesystem); `asks: false` for a mark, which must not
    /// make the rounds look busy to the next mark ([`Rounds::quiet_barrier`]).
    fn sync_in_round(&self, asks: bool) -> Result<bool, QueueError> {
        if self.inner.read_only
            || self.inner.commit != CommitMode::Filesystem
            || self.inner.no_syncfs.load(Ordering::Relaxed)
        {
            return Ok(false);
        }
        let synced = if asks {
            self.inner.rounds.barrier(&*self.inner)
        } else {
            self.inner.rounds.quiet_barrier(&*self.inner)
        };
        match synced {
            Ok(()) => Ok(true),
            Err(QueueError::Io { source, .. }) if source.kind() == io::ErrorKind::Unsupported => {
                self.inner.no_syncfs.store(true, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The number of the file system holding the queue (`st_dev`; see
    /// [`Fs::device`](crate::Fs::device)), `None` where the [`Fs`] cannot tell. Files with
    /// the same number are made durable by [`sync_filesystem`](Queue::sync_filesystem).
    pub fn device(&self) -> Option<u64> {
        self.inner.fs.device(&self.inner.root).ok()
    }

    /// The messages this open removed because a power loss had torn them, with the reason:
    /// each was being committed when the machine stopped, and its name reached the disk
    /// without all of its bytes (a commit round makes both durable with one sync; see
    /// [`CommitMode::Filesystem`]). None of them had been acknowledged. The check runs on
    /// the first open after the machine restarted ([`Fs::boot_id`]), reading every
    /// message once; a caller logs these.
    pub fn torn_at_open(&self) -> Vec<(MessageId, &'static str)> {
        lock(&self.inner.torn).clone()
    }

    /// The ids of all committed messages, oldest first: what a restarted scheduler walks
    /// (qmail-send's startup scan of `info/`). Linear in the queue size.
    ///
    /// # Errors
    /// [`QueueError::Io`] if a directory cannot be listed.
    pub fn scan(&self) -> Result<Vec<MessageId>, QueueError> {
        state::scan(&self.inner.fs, &self.inner.root, self.inner.split)
    }

    pub(crate) fn open_file(
        &self,
        id: MessageId,
        access: Access,
    ) -> Result<(F::File, Header, String), QueueError> {
        let path = Paths::of(id, self.inner.split).mess;
        let fs = &self.inner.fs;
        let file = fs
            .open(&self.inner.root, &path, access)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => QueueError::NotFound(id),
                _ => QueueError::io("open", path.clone(), e),
            })?;
        let mut buf = [0u8; HEADER_LEN as usize];
        read_exact_at(fs, &file, &mut buf, 0).map_err(|e| read_failed(id, &path, e))?;
        let header = format::decode_header(&buf).map_err(|e| QueueError::Corrupt {
            id,
            reason: e.describe(),
        })?;
        Ok((file, header, path))
    }

    /// The envelope, birth time, length and every recipient's status of message `id`, in one
    /// read.
    ///
    /// # Errors
    /// [`QueueError::NotFound`], [`QueueError::Corrupt`] or [`QueueError::Io`].
    pub fn info(&self, id: MessageId) -> Result<MessageInfo, QueueError> {
        let (file, header, path) = self.open_file(id, Access::Read)?;
        self.info_of(id, &file, &header, &path)
    }

    /// [`info`](Queue::info) of a message file already opened by
    /// [`open_file`](Queue::open_file).
    pub(crate) fn info_of(
        &self,
        id: MessageId,
        file: &F::File,
        header: &Header,
        path: &str,
    ) -> Result<MessageInfo, QueueError> {
        let fs = &self.inner.fs;
        let start = HEADER_LEN + header.body_len;
        let len = fs
            .file_len(file)
            .map_err(|e| QueueError::io("stat", path, e))?;
        let corrupt = |reason| QueueError::Corrupt { id, reason };
        let tail_len = len
            .checked_sub(start)
            .filter(|&t| t >= u64::from(header.meta_len));
        let tail_len = usize::try_from(tail_len.ok_or(corrupt("shorter than its header says"))?)
            .map_err(|_| corrupt("status log too large"))?;
        let mut tail = vec![0u8; tail_len];
        read_exact_at(fs, file, &mut tail, start).map_err(|e| QueueError::io("read", path, e))?;
        let (meta, log) = tail.split_at(header.meta_len as usize);
        let (birth, envelope, own_id) =
            format::decode_meta(meta, header.nrcpt, header.body_crc.is_some())
                .map_err(|e| corrupt(e.describe()))?;
        // A format 2 file names its message: another id means a reused file whose new
        // contents a power loss took before they reached the disk (`verify.rs`).
        if own_id.is_some_and(|own| own != id.as_u64()) {
            return Err(corrupt("holds another message"));
        }
        let mut statuses = vec![Status::Pending; envelope.recipients.len()];
        for (index, status) in format::decode_statuses(log, header.nrcpt).0 {
            statuses[index as usize] = status;
        }
        Ok(MessageInfo {
            id,
            birth,
            body_len: header.body_len,
            envelope,
            statuses,
        })
    }

    /// The birth time of message `id` (see [`MessageInfo::birth`]).
    ///
    /// # Errors
    /// As [`Queue::info`].
    pub fn birth(&self, id: MessageId) -> Result<SystemTime, QueueError> {
        self.info(id).map(|i| i.birth)
    }

    /// Durably records `status` for recipient `index` of message `id`: when this returns
    /// `Ok`, the status survives a crash or power loss. Concurrent marks of the same message
    /// share one sync (see [`mark_many`](Queue::mark_many)).
    ///
    /// # Errors
    /// [`QueueError::NotFound`], [`QueueError::NoSuchRecipient`], [`QueueError::TooLarge`],
    /// [`QueueError::Corrupt`] or [`QueueError::Io`] (the previous status then stands).
    pub fn mark(&self, id: MessageId, index: u32, status: Status) -> Result<(), QueueError> {
        self.mark_many(id, &[(index, status)])
    }

    /// Durably records several statuses of message `id` with one append and one sync (e.g.
    /// the results of one SMTP transaction to many recipients): a commit round's `syncfs`
    /// with [`CommitMode::Filesystem`] while rounds are running, shared with concurrent
    /// enqueues and marks, else an `fdatasync`. All or none take effect, unless the machine
    /// crashes during the call.
    ///
    /// # Errors
    /// As [`Queue::mark`]; an invalid index fails the whole call before anything is written.
    pub fn mark_many(&self, id: MessageId, marks: &[(u32, Status)]) -> Result<(), QueueError> {
        if self.inner.read_only {
            return Err(QueueError::ReadOnly);
        }
        if marks.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(marks.len() * 16);
        for (index, status) in marks {
            format::encode_status(*index, status, &mut records)
                .map_err(|_| QueueError::TooLarge)?;
        }
        let max_index = marks.iter().map(|m| m.0).max().unwrap_or(0);
        let group = {
            let mut groups = lock(&self.inner.marks);
            let max_batch = if self.inner.commit == CommitMode::PerMessage {
                1
            } else {
                MAX_BATCH
            };
            Arc::clone(
                groups
                    .entry(id)
                    .or_insert_with(|| Arc::new(Batcher::new(max_batch))),
            )
        };
        let outcome = group.submit(MarkOp { records, max_index }, &|ops| {
            self.append_marks(id, ops)
        });
        let mut groups = lock(&self.inner.marks);
        // The map's handle and ours: nobody else is using this group, so it can go.
        if Arc::strong_count(&group) == 2 {
            groups.remove(&id);
        }
        outcome
    }

    /// The group-commit leader's work for marks of one message: one append, one sync.
    fn append_marks(&self, id: MessageId, ops: &[MarkOp]) -> Vec<Outcome> {
        let fail_all = |e: &QueueError| ops.iter().map(|_| Err(e.duplicate())).collect();
        let (file, header, path) = match self.open_file(id, Access::ReadWrite) {
            Ok(x) => x,
            Err(e) => return fail_all(&e),
        };
        let mut records = Vec::new();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(ops.len());
        for op in ops {
            if op.max_index >= header.nrcpt {
                let count = header.nrcpt;
                outcomes.push(Err(QueueError::NoSuchRecipient {
                    id,
                    index: op.max_index,
                    count,
                }));
            } else {
                records.extend_from_slice(&op.records);
                outcomes.push(Ok(()));
            }
        }
        if records.is_empty() {
            return outcomes;
        }
        let result = self
            .log_end(id, &file, &header, &path)
            .and_then(|end| self.append_durably(id, &file, end, &records, &path));
        if let Err(e) = result {
            for o in outcomes.iter_mut().filter(|o| o.is_ok()) {
                *o = Err(e.duplicate());
            }
        }
        outcomes
    }

    /// Appends status records at `end` and makes them durable, by whichever sync is
    /// cheaper now: with [`CommitMode::Filesystem`], while rounds are running
    /// ([`Rounds::busy`]: a round under way or waited for, or asked for by an enqueue or a
    /// local delivery in the last 25 ms) or another mark is syncing, by the next round's
    /// `syncfs`, shared with the enqueues, the local deliveries and the other marks (one
    /// flush for all of them);
    /// otherwise by an `fdatasync` of the file, which on its own is shorter than a round's
    /// `syncfs` (a lone message's marks come one after another: their latency is its
    /// delivery rate). On failure the file is cut back to `end` (best effort) and its tail
    /// is checked again by the next append, as after a crash: a torn record is recognised
    /// by its CRC either way.
    fn append_durably(
        &self,
        id: MessageId,
        file: &F::File,
        end: u64,
        records: &[u8],
        path: &str,
    ) -> Result<(), QueueError> {
        let inner = &self.inner;
        let fs = &inner.fs;
        let result = fs
            .write_all_at(file, records, end)
            .map_err(|e| QueueError::io("append", path, e))
            .and_then(|()| {
                let share = inner.marks_syncing.load(Ordering::SeqCst) > 0 || inner.rounds.busy();
                if share && self.sync_in_round(false)? {
                    return Ok(());
                }
                inner.marks_syncing.fetch_add(1, Ordering::SeqCst);
                let synced = fs.sync_data(file);
                inner.marks_syncing.fetch_sub(1, Ordering::SeqCst);
                synced.map_err(|e| QueueError::io("fdatasync", path, e))
            });
        if result.is_err() {
            let _ = fs.set_len(file, end);
            lock(&inner.verified).remove(&id);
        }
        result
    }

    /// Where the next status record goes: the end of the file, after cutting off a torn
    /// record left by a crash (checked once per message per process).
    fn log_end(
        &self,
        id: MessageId,
        file: &F::File,
        header: &Header,
        path: &str,
    ) -> Result<u64, QueueError> {
        let fs = &self.inner.fs;
        let len = fs
            .file_len(file)
            .map_err(|e| QueueError::io("stat", path, e))?;
        if lock(&self.inner.verified).contains(&id) {
            return Ok(len);
        }
        let start = header.status_offset();
        let log_len = len.checked_sub(start).ok_or(QueueError::Corrupt {
            id,
            reason: "truncated",
        })?;
        let mut log = vec![0u8; usize::try_from(log_len).map_err(|_| QueueError::TooLarge)?];
        read_exact_at(fs, file, &mut log, start).map_err(|e| QueueError::io("read", path, e))?;
        let valid = format::decode_statuses(&log, header.nrcpt).1 as u64;
        if valid < log_len {
            durable::truncate_synced(fs, file, start + valid)
                .map_err(|e| QueueError::io("truncate", path, e))?;
        }
        lock(&self.inner.verified).insert(id);
        Ok(start + valid)
    }

    /// Removes message `id`, once every recipient is [final](Status::is_final) (qmail-send's
    /// "end msg": the caller queues any bounce first). The removal is not synced (see
    /// [`remove_delivered`](Queue::remove_delivered) for what a power loss then does).
    ///
    /// # Errors
    /// [`QueueError::NotFinal`] while a recipient is pending or deferred;
    /// [`QueueError::NotFound`]; [`QueueError::Io`].
    pub fn remove(&self, id: MessageId) -> Result<(), QueueError> {
        if self.inner.read_only {
            return Err(QueueError::ReadOnly);
        }
        if !self.info(id)?.is_complete() {
            return Err(QueueError::NotFinal(id));
        }
        self.unlink_message(id)
    }

    /// Removes message `id` without first recording its recipients' results: for a caller
    /// that has just delivered **every** recipient and so would only mark them all delivered
    /// and then remove (one fsync saved per message). Never use it when a recipient failed:
    /// its bounce needs the recorded failure.
    ///
    /// Removals are not synced, as qmail-send and Postfix's qmgr do not sync theirs: once
    /// this returns the message is gone for every reader and for a process crash, but a
    /// power loss before its directory is next synced (the next commit into that directory
    /// does it) may bring it back with the statuses it had on disk. Its deliveries are then
    /// repeated, exactly as after a crash between a delivery and its [`mark`](Queue::mark):
    /// a duplicate, never a loss.
    ///
    /// # Errors
    /// [`QueueError::ReadOnly`], [`QueueError::NotFound`], [`QueueError::Io`].
    pub fn remove_delivered(&self, id: MessageId) -> Result<(), QueueError> {
        if self.inner.read_only {
            return Err(QueueError::ReadOnly);
        }
        self.unlink_message(id)
    }

    /// The removal shared by [`remove`](Queue::remove) and
    /// [`remove_delivered`](Queue::remove_delivered): the file's name leaves `mess/`, and
    /// the file takes its free name, `mess/<n>/free.<id>`, for reuse (or is unlinked when
    /// [`QueueOptions::recycle`] files are kept already).
    ///
    /// Not synced, as qmail-send and Postfix's qmgr do not sync their removals: a power
    /// loss soon after may bring the message back with every status it had, so a
    /// scheduler finds it finished and removes it again, or repeats its deliveries (a
    /// duplicate, never a loss). Every [`RECYCLE_BATCH`] removals kept for reuse, the
    /// remover syncs the directories they left (a few, as consecutive ids share one), after
    /// which those files may be reused.
    fn unlink_message(&self, id: MessageId) -> Result<(), QueueError> {
        let paths = Paths::of(id, self.inner.split);
        lock(&self.inner.verified).remove(&id);
        self.forget_hold(id);
        let fs = &self.inner.fs;
        let slot = {
            let mut free = lock(&self.inner.free);
            let slot = free.slots.remove(&id).unwrap_or(u64::MAX);
            (free.len() < self.inner.recycle).then_some(slot)
        };
        let Some(slot) = slot else {
            return durable::remove_unsynced(fs, &self.inner.root, &paths.mess)
                .map_err(|e| dir_op_error(id, "unlink", &paths.mess, e));
        };
        // Within one directory, so an atomic rename (no global lock, one system call).
        let name = paths.free(id);
        let root = &self.inner.root;
        fs.rename(root, &paths.mess, root, &name)
            .map_err(|e| dir_op_error(id, "rename", &paths.mess, e))?;
        if self.inner.commit == CommitMode::Filesystem
            && !self.inner.no_syncfs.load(Ordering::Relaxed)
        {
            // The next commit round's syncfs makes this removal durable.
            let mut free = lock(&self.inner.free);
            // Taken under the lock, so marks only grow along the list.
            let mark = self.inner.rounds.mark();
            free.after_round.push((name, mark, slot));
            return Ok(());
        }
        let batch = {
            let mut free = lock(&self.inner.free);
            free.pending.push((name, paths.dir, slot));
            if free.pending.len() >= RECYCLE_BATCH.min(self.inner.recycle) {
                let batch = std::mem::take(&mut free.pending);
                free.syncing += batch.len();
                batch
            } else {
                Vec::new()
            }
        };
        if !batch.is_empty() {
            self.make_ready(batch);
        }
        Ok(())
    }

    /// Syncs the directories `batch`'s files were renamed out of; the files whose directory
    /// synced become reusable. The others keep their free names unused (the next open
    /// removes them).
    fn make_ready(&self, batch: Vec<(String, String, u64)>) {
        let mut synced: Vec<(String, bool)> = Vec::new();
        for (_, dir, _) in &batch {
            if !synced.iter().any(|(d, _)| d == dir) {
                let ok = durable::sync_dir_at(&self.inner.fs, &self.inner.root, dir).is_ok();
                synced.push((dir.clone(), ok));
            }
        }
        let count = batch.len();
        let ok = batch
            .into_iter()
            .filter(|(_, dir, _)| synced.iter().any(|(d, ok)| d == dir && *ok))
            .map(|(name, _, slot)| Reverse((slot, name)));
        let mut free = lock(&self.inner.free);
        free.syncing -= count;
        free.ready.extend(ok);
    }

    /// Unlinks every file waiting under a free name (a full disk needs their space more than
    /// a later enqueue needs their inodes). Returns whether any went.
    pub(crate) fn release_free(&self) -> bool {
        let names: Vec<String> = {
            let mut free = lock(&self.inner.free);
            let mut names: Vec<String> = std::mem::take(&mut free.ready)
                .into_iter()
                .map(|Reverse((_, name))| name)
                .collect();
            names.extend(free.pending.drain(..).map(|(name, ..)| name));
            names.extend(free.after_round.drain(..).map(|(name, ..)| name));
            names
        };
        for name in &names {
            let _ = durable::discard(&self.inner.fs, &self.inner.root, name);
        }
        !names.is_empty()
    }

    /// Runs `op`; if it fails for lack of space and free files were kept, releases them and
    /// runs `op` once more.
    pub(crate) fn retry_when_full<T>(&self, op: impl Fn() -> io::Result<T>) -> io::Result<T> {
        match op() {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                ) && self.release_free() =>
            {
                op()
            }
            other => other,
        }
    }

    /// Takes a reusable file for a new message, the one with the lowest slot (see
    /// [`FreeList`]): its free name (the message's name until the commit moves it to its
    /// `mess/` name), the open file, its old length (the old bytes are overwritten and cut
    /// to length before the commit syncs them) and its slot. `None` when no file is ready
    /// or it cannot be opened (the caller then creates one).
    pub(crate) fn reuse_free(&self) -> Option<(String, F::File, u64, u64)> {
        let Reverse((slot, path)) = {
            let mut free = lock(&self.inner.free);
            let rounds = &self.inner.rounds;
            if free.ready.is_empty()
                && let Some(first) = free.after_round.first()
                && rounds.synced_since(first.1)
            {
                // Marks only grow along the list: take every entry a sync has covered.
                let n = free
                    .after_round
                    .iter()
                    .take_while(|(_, m, _)| rounds.synced_since(*m))
                    .count();
                let synced: Vec<_> = free
                    .after_round
                    .drain(..n)
                    .map(|(name, _, slot)| Reverse((slot, name)))
                    .collect();
                free.ready.extend(synced);
            }
            free.ready.pop()?
        };
        let fs = &self.inner.fs;
        let opened = fs
            .open(&self.inner.root, &path, Access::ReadWrite)
            .and_then(|f| fs.file_len(&f).map(|len| (f, len)));
        // Only a format 2 file is reused: a commit round may name the new message before
        // its bytes reach the disk, and after a power loss the old contents must be told
        // from the new message's by the id they name (`verify.rs`). A format 1 file (a
        // message queued before an upgrade) names no id, so it is not reused.
        let mut magic = [0u8; 8];
        match opened {
            Ok((file, len))
                if read_exact_at(fs, &file, &mut magic, 0).is_ok()
                    && format::is_format2(&magic) =>
            {
                Some((path, file, len, slot))
            }
            _ => {
                let _ = durable::discard(fs, &self.inner.root, &path);
                None
            }
        }
    }
}

fn dir_op_error(id: MessageId, op: &'static str, path: &str, e: io::Error) -> QueueError {
    if e.kind() == io::ErrorKind::NotFound {
        QueueError::NotFound(id)
    } else {
        QueueError::io(op, path, e)
    }
}

impl<F: Fs> Inner<F> {
    /// The group-commit leader's work for publishes: every rename, then one fsync per
    /// distinct directory touched.
    pub(crate) fn run_dir_ops(&self, ops: &[DirOp]) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(ops.len());
        let mut dirs: Vec<&str> = Vec::new();
        for op in ops {
            let (result, paths) = match op {
                DirOp::Publish(id, p) => (
                    durable::move_file(&self.fs, &self.root, &p.tmp, &self.root, &p.mess)
                        .map_err(|e| dir_op_error(*id, "rename", &p.mess, e)),
                    p,
                ),
            };
            if result.is_ok() && !dirs.contains(&paths.dir.as_str()) {
                dirs.push(&paths.dir);
            }
            outcomes.push(result);
        }
        let mut failed: Vec<(&str, io::Error)> = Vec::new();
        for dir in dirs {
            if let Err(e) = durable::sync_dir_at(&self.fs, &self.root, dir) {
                failed.push((dir, e));
            }
        }
        for (op, outcome) in ops.iter().zip(outcomes.iter_mut()) {
            let DirOp::Publish(_, p) = op;
            if let Some((dir, e)) = failed.iter().find(|(d, _)| *d == p.dir)
                && outcome.is_ok()
            {
                *outcome = Err(QueueError::io("sync", *dir, crate::error::copy_io(e)));
            }
        }
        outcomes
    }
}

/// A commit round's steps: move `tmp/` → `mess/`, and `syncfs` of the queue's file system.
impl<F: Fs> RoundOps<(MessageId, Paths)> for Inner<F> {
    fn link(&self, (id, p): &(MessageId, Paths)) -> Outcome {
        durable::move_file(&self.fs, &self.root, &p.tmp, &self.root, &p.mess)
            .map_err(|e| dir_op_error(*id, "rename", &p.mess, e))
    }

    fn sync(&self) -> io::Result<()> {
        durable::sync_filesystem(&self.fs, &self.root)
    }
}

/// Opens the queue directory: the base directory of `fs`.
fn open_root<F: Fs>(fs: &F) -> Result<F::Dir, QueueError> {
    fs.open_dir(Path::new("."))
        .map_err(|e| QueueError::io("open", ".", e))
}

/// Records that message `id`'s status log ends in a complete record (it was just written).
pub(crate) fn mark_verified<F: Fs>(queue: &Queue<F>, id: MessageId) {
    lock(&queue.inner.verified).insert(id);
}

/// A failed read of message `id`'s file at `path`: a file shorter than its header says is
/// [`QueueError::Corrupt`] ("truncated"; after a power loss, a commit the loss tore, see
/// `verify.rs`), anything else an I/O error.
pub(crate) fn read_failed(id: MessageId, path: &str, e: io::Error) -> QueueError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        QueueError::Corrupt {
            id,
            reason: "truncated",
        }
    } else {
        QueueError::io("read", path, e)
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub(crate) fn read_exact_at<F: Fs>(
    fs: &F,
    file: &F::File,
    buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match fs.read_at(file, &mut buf[done..], offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                done += n;
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
