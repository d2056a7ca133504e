//! [`SimFs`]: an in-memory [`Fs`](crate::Fs) that models what survives power loss.
//!
//! A test aid shipped with the library (as smoltcp ships its fault injector), so crates
//! built on [`Fs`](crate::Fs) and their users can prove the order of their fsyncs.
//!
//! **The model.** Every file keeps its current bytes and the bytes at its last
//! [`sync_data`](crate::Fs::sync_data) or [`sync_all`](crate::Fs::sync_all); every
//! directory keeps its current names and the names at its last
//! [`sync_dir`](crate::Fs::sync_dir). File data and directory entries are independent:
//! syncing a file does not make its name durable, and syncing a directory does not make the
//! data of the files it names durable (a created, linked, renamed or removed name survives
//! only once its directory is synced, the rule ext4 and XFS actually give).
//! [`sync_filesystem`](crate::Fs::sync_filesystem) makes everything on one simulated file
//! system durable ([`mount`](SimFs::mount) creates more than one).
//!
//! **After a crash.** [`restart`](SimFs::restart) builds the file system the next boot (or
//! the next process) sees: only synced data and names ([`Restart::PowerLoss`]), that plus a
//! torn half of unsynced appends ([`Restart::TornAppend`]), or everything written
//! ([`Restart::ProcessCrash`]). [`crash_images`](SimFs::crash_images) enumerates more of the
//! states a real file system may come back in: each directory changed since its last sync
//! comes back either as synced or with all its changes, and file data either as synced or
//! with all writes. Each directory is treated independently, which is stricter than
//! journalling file systems for `rename` (they keep both halves or neither).
//!
//! **Crash points and faults.** State-changing operations are numbered from 1 in the order
//! they run (creating, writing, truncating, syncing, linking, renaming, removing, opening
//! for append). [`crash_after`](SimFs::crash_after)`(n)` lets operation `n` be the last one
//! to run: the next fails without effect, and so does every operation after it, reads
//! included, as if the machine stopped there. [`fail_op`](SimFs::fail_op) makes one
//! operation fail with `EIO`; [`fail_writes_after`](SimFs::fail_writes_after) and
//! [`fail_syncs_after`](SimFs::fail_syncs_after) make writes or syncs fail with a chosen
//! errno (ENOSPC, EIO, ...) while the process lives on. [`trace`](SimFs::trace) lists what
//! ran.
//!
//! ```
//! use std::path::Path;
//! use mta_durable::Fs;
//! use mta_durable::sim::{Restart, SimFs};
//! let fs = SimFs::new();
//! let root = fs.open_dir(Path::new("/"))?;
//! let mut f = fs.create_new(&root, "x")?;
//! fs.write_all(&mut f, b"hello")?;
//! fs.sync_all(&f)?;
//! // The data is durable, but the name is not: power loss takes the file.
//! assert!(!fs.restart(Restart::PowerLoss).exists("x"));
//! fs.sync_dir(&root)?;
//! assert_eq!(fs.restart(Restart::PowerLoss).read_file("x"), Some(b"hello".to_vec()));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

mod ops;
mod state;

use state::torn;

/// What survives a restart of the simulated machine ([`SimFs::restart`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restart {
    /// Power loss: only synced data and synced names survive.
    PowerLoss,
    /// Power loss during a write: synced state survives, plus the first half of any
    /// unsynced bytes appended past a file's durable contents (a torn append).
    TornAppend,
    /// The process was killed but the machine kept running: everything it wrote survives
    /// (the page cache is not lost), as with SIGKILL.
    ProcessCrash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(usize),
    Dir(usize),
}

#[derive(Debug, Clone)]
struct DirNode {
    entries: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
    dev: u32,
}

impl DirNode {
    fn new(dev: u32) -> Self {
        DirNode {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            dev,
        }
    }
}

#[derive(Debug, Clone)]
struct Inode {
    dev: u32,
    data: Vec<u8>,
    durable: Vec<u8>,
    atime: SystemTime,
}

#[derive(Debug, Clone)]
struct State {
    dirs: Vec<DirNode>,
    inodes: Vec<Inode>,
    ops: u64,
    crash_after: Option<u64>,
    crashed: bool,
    fail_op: Option<u64>,
    write_budget: Option<(u64, i32)>,
    sync_budget: Option<(u64, i32)>,
    trace: Vec<String>,
    now: SystemTime,
    devs: u32,
    locks_unavailable: bool,
    /// [`Fs::create_unnamed`](crate::Fs::create_unnamed) answers `Unsupported`.
    no_unnamed: bool,
    /// Machine restarts so far ([`Fs::boot_id`](crate::Fs::boot_id)): a power loss counts
    /// one, a process crash none.
    boots: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            dirs: vec![DirNode::new(0)],
            inodes: Vec::new(),
            ops: 0,
            crash_after: None,
            crashed: false,
            fail_op: None,
            write_budget: None,
            sync_budget: None,
            trace: Vec::new(),
            now: SystemTime::UNIX_EPOCH,
            devs: 0,
            locks_unavailable: false,
            no_unnamed: false,
            boots: 0,
        }
    }
}

/// An open file of a [`SimFs`]: a reference to an inode (still valid after its name is
/// removed, as on Unix), with a position for [`Fs::read`](crate::Fs::read) and
/// [`Fs::write_all`](crate::Fs::write_all).
#[derive(Debug)]
pub struct SimFile {
    ino: usize,
    writable: bool,
    append: bool,
    pos: usize,
}

/// The in-memory power-loss model; see the [module docs](self). Cloning gives another
/// handle to the same simulated disk. Directory handles ([`Fs::Dir`](crate::Fs::Dir)) are
/// plain numbers; `/` is the root and the base of relative paths.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl SimFs {
    /// An empty disk holding only `/`, durable.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread poisons nothing we rely on: take the state anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn from_state(st: State) -> SimFs {
        SimFs {
            state: Arc::new(Mutex::new(st)),
        }
    }

    /// Creates `path` and its parents, durably, without counting operations (test setup).
    ///
    /// # Errors
    /// `NotADirectory` when a component is a file.
    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let mut dir = 0;
        for c in path.components() {
            let Component::Normal(n) = c else { continue };
            let n = n.to_str().ok_or(io::ErrorKind::InvalidInput)?.to_owned();
            dir = match st.dir(dir)?.entries.get(&n) {
                Some(Node::Dir(d)) => *d,
                Some(Node::File(_)) => return Err(io::ErrorKind::NotADirectory.into()),
                None => {
                    let dev = st.dir(dir)?.dev;
                    let id = st.dirs.len();
                    st.dirs.push(DirNode::new(dev));
                    let parent = st.dir_mut(dir)?;
                    parent.entries.insert(n.clone(), Node::Dir(id));
                    parent.durable.insert(n, Node::Dir(id));
                    id
                }
            };
        }
        Ok(())
    }

    /// Makes the existing directory `path` and everything below it a separate file system:
    /// links and renames between it and the rest fail with `EXDEV`. Directories created
    /// inside it later belong to it.
    ///
    /// # Errors
    /// `NotFound` when `path` is not a directory.
    pub fn mount(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let top = st.resolve(0, path)?;
        st.devs += 1;
        let dev = st.devs;
        let mut stack = vec![top];
        while let Some(d) = stack.pop() {
            st.dirs[d].dev = dev;
            stack.extend(st.dirs[d].entries.values().filter_map(|n| match n {
                Node::Dir(c) => Some(*c),
                Node::File(_) => None,
            }));
        }
        Ok(())
    }

    /// Makes [`try_lock`](crate::Fs::try_lock) fail with `ENOLCK`, as on a file system
    /// without working locks. By default every lock is granted at once.
    pub fn set_locks_unavailable(&self, unavailable: bool) {
        self.lock().locks_unavailable = unavailable;
    }

    /// Makes [`create_unnamed`](crate::Fs::create_unnamed) answer `Unsupported`, as a file
    /// system without `O_TMPFILE` does, so callers' fallbacks can be tested. By default
    /// unnamed files are supported.
    pub fn set_unnamed_unsupported(&self, unsupported: bool) {
        self.lock().no_unnamed = unsupported;
    }

    /// Sets the clock used for access times of new files.
    pub fn set_now(&self, now: SystemTime) {
        self.lock().now = now;
    }

    /// Lets operations up to number `n` run (counting from 1 since this disk was created or
    /// restarted), then refuses every later operation, as a machine that lost power after
    /// operation `n`. `crash_after(op_count() + k)` lets `k` more run.
    pub fn crash_after(&self, n: u64) {
        self.lock().crash_after = Some(n);
    }

    /// Makes operation number `n` (only that one) fail with `EIO`, without effect.
    pub fn fail_op(&self, n: u64) {
        self.lock().fail_op = Some(n);
    }

    /// Lets `bytes` more bytes be written; the write that crosses the limit writes what fits
    /// and fails with `errno` (e.g. 28 = ENOSPC, 5 = EIO), and so do later writes, until
    /// [`clear_faults`](SimFs::clear_faults).
    pub fn fail_writes_after(&self, bytes: u64, errno: i32) {
        self.lock().write_budget = Some((bytes, errno));
    }

    /// Lets `n` more syncs (of files, directories or the file system) succeed; later ones
    /// fail with `errno` without making anything durable.
    pub fn fail_syncs_after(&self, n: u64, errno: i32) {
        self.lock().sync_budget = Some((n, errno));
    }

    /// Removes injected write and sync faults.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.write_budget = None;
        st.sync_budget = None;
    }

    /// How many counted operations have run (including one failed by
    /// [`fail_op`](SimFs::fail_op); not the one refused at the crash point).
    pub fn op_count(&self) -> u64 {
        self.lock().ops
    }

    /// True once the crash point has been reached (an operation was refused).
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The operations run so far, e.g. `"sync_all inode 3"`, `"link /m/tmp/X -> /m/new/X"`,
    /// with `" (failed)"` after one failed by [`fail_op`](SimFs::fail_op). Labels: `mkdir`,
    /// `create`, `open_append`, `write`, `truncate`, `sync_data`, `sync_all`, `sync_dir`,
    /// `sync_filesystem`, `link`, `rename`, `unlink`.
    pub fn trace(&self) -> Vec<String> {
        self.lock().trace.clone()
    }

    /// True if `path` (absolute, or relative to `/`) names a file or directory, as the
    /// running process sees it.
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        let path = path.as_ref();
        let st = self.lock();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return st.resolve(0, path).is_ok();
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        st.resolve(0, parent)
            .is_ok_and(|d| st.dirs[d].entries.contains_key(name))
    }

    /// The current bytes of the file at `path` (absolute, or relative to `/`), if it exists.
    pub fn read_file(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        let path = path.as_ref();
        let st = self.lock();
        let dir = st.resolve(0, path.parent()?).ok()?;
        let ino = st.file(dir, path.file_name()?.to_str()?).ok()?;
        Some(st.inodes[ino].data.clone())
    }

    /// The current names in the directory at `path` (absolute, or relative to `/`), sorted,
    /// if it exists. (An inspection aid: [`Fs::list_dir`](crate::Fs::list_dir) takes a
    /// directory handle instead.)
    pub fn list_dir(&self, path: impl AsRef<Path>) -> Option<Vec<String>> {
        let st = self.lock();
        let dir = st.resolve(0, path.as_ref()).ok()?;
        Some(st.dirs[dir].entries.keys().cloned().collect())
    }

    /// The disk as the next boot (or the next process) sees it, as a new independent
    /// simulator with everything durable, operations counted from 0 again, and no crash
    /// point or fault armed.
    #[must_use]
    pub fn restart(&self, how: Restart) -> SimFs {
        let mut st = self.lock().clone();
        if how != Restart::ProcessCrash {
            st.boots += 1;
        }
        for d in &mut st.dirs {
            if how != Restart::ProcessCrash {
                d.entries.clone_from(&d.durable);
            }
        }
        for i in &mut st.inodes {
            i.data = match how {
                Restart::ProcessCrash => continue,
                Restart::PowerLoss => i.durable.clone(),
                Restart::TornAppend => torn(i),
            };
        }
        Self::from_state(st.rebooted())
    }

    /// Every state the disk may be in after power is restored, each as a fresh simulator as
    /// [`restart`](SimFs::restart) gives.
    ///
    /// Each directory changed since its last sync comes back synced or with all changes
    /// (every combination when at most 8 changed, else all-synced and all-changed); file
    /// data comes back as last synced or with all writes. The first image is
    /// [`Restart::PowerLoss`]'s.
    pub fn crash_images(&self) -> Vec<SimFs> {
        let st = self.lock();
        let dirty: Vec<usize> = (0..st.dirs.len())
            .filter(|&d| st.dirs[d].entries != st.dirs[d].durable)
            .collect();
        let choices: Vec<Vec<bool>> = if dirty.len() <= 8 {
            (0..1u32 << dirty.len())
                .map(|m| (0..dirty.len()).map(|i| m & (1 << i) != 0).collect())
                .collect()
        } else {
            vec![vec![false; dirty.len()], vec![true; dirty.len()]]
        };
        let mut images = Vec::new();
        for choice in &choices {
            for data_written in [false, true] {
                let mut img = (*st).clone();
                img.boots += 1;
                for d in &mut img.dirs {
                    d.entries.clone_from(&d.durable);
                }
                for (i, &d) in dirty.iter().enumerate() {
                    if choice[i] {
                        img.dirs[d].entries.clone_from(&st.dirs[d].entries);
                    }
                }
                for ino in &mut img.inodes {
                    if !data_written {
                        ino.data.clone_from(&ino.durable);
                    }
                }
                images.push(Self::from_state(img.rebooted()));
            }
        }
        images
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
