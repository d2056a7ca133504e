//! [`PowerLossFs`]: an in-memory [`Fs`](crate::Fs) that models what survives power loss.
//!
//! A test aid shipped with the library (as smoltcp ships its fault injector), so the
//! crate's own tests and callers' tests can prove the order of fsyncs.
//!
//! The model keeps, for every file, its current bytes and the bytes at its last
//! [`sync_file`](crate::Fs::sync_file); and for every directory, its current entries and
//! the entries at its last [`sync_dir`](crate::Fs::sync_dir). File data and directory
//! entries are independent: syncing a file does not make its name durable, and syncing a
//! directory does not make the data of the files it names durable.
//! [`sync_filesystem`](crate::Fs::sync_filesystem) makes everything on one simulated
//! filesystem durable ([`mount`](PowerLossFs::mount) creates more than one).
//!
//! After a simulated crash, [`crash_images`](PowerLossFs::crash_images) enumerates the
//! states a real filesystem may come back in: each directory that changed since its last
//! sync comes back either as synced or with all its changes, and file data either as synced
//! or with all writes. Each directory is treated independently, which is stricter than
//! journalling filesystems for `rename` (they keep both halves or neither), so tests of the
//! rename path should not rely on this model.
//!
//! Operations are numbered from 1 in the order they run.
//! [`crash_after`](PowerLossFs::crash_after) makes every operation after the n-th fail, as
//! if the machine stopped there; [`fail_op`](PowerLossFs::fail_op) makes only one operation
//! fail with `EIO` so error paths can be checked. [`trace`](PowerLossFs::trace) lists what
//! ran.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

mod ops;

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
    fail_op: Option<u64>,
    trace: Vec<String>,
    now: SystemTime,
    devs: u32,
    locks_unavailable: bool,
}

impl Default for State {
    fn default() -> Self {
        let root = DirNode {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            dev: 0,
        };
        Self {
            dirs: vec![root],
            inodes: Vec::new(),
            ops: 0,
            crash_after: None,
            fail_op: None,
            trace: Vec::new(),
            now: SystemTime::UNIX_EPOCH,
            devs: 0,
            locks_unavailable: false,
        }
    }
}

/// An open file of a [`PowerLossFs`].
#[derive(Debug)]
pub struct SimFile {
    ino: usize,
    append: bool,
    pos: usize,
}

/// The in-memory power-loss model; cloning shares the same filesystem.
#[derive(Debug, Clone, Default)]
pub struct PowerLossFs {
    state: Arc<Mutex<State>>,
}

fn lost_power() -> io::Error {
    io::Error::other("simulated power loss")
}

impl State {
    fn crashed(&self) -> bool {
        self.crash_after.is_some_and(|n| self.ops >= n)
    }

    /// Counts one operation and decides whether it may run.
    fn begin(&mut self, what: String) -> io::Result<()> {
        if self.crashed() {
            return Err(lost_power());
        }
        self.ops += 1;
        if self.fail_op == Some(self.ops) {
            self.trace.push(format!("{what} (failed)"));
            return Err(io::Error::from_raw_os_error(5));
        }
        self.trace.push(what);
        Ok(())
    }

    fn resolve(&self, path: &Path) -> io::Result<usize> {
        let mut dir = 0;
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => {
                    let n = n.to_str().ok_or(io::ErrorKind::InvalidInput)?;
                    match self.dirs[dir].entries.get(n) {
                        Some(Node::Dir(d)) => dir = *d,
                        Some(Node::File(_)) => return Err(io::ErrorKind::NotADirectory.into()),
                        None => return Err(io::ErrorKind::NotFound.into()),
                    }
                }
                _ => return Err(io::ErrorKind::InvalidInput.into()),
            }
        }
        Ok(dir)
    }

    fn file(&self, dir: usize, name: &str) -> io::Result<usize> {
        match self.dirs[dir].entries.get(name) {
            Some(Node::File(i)) => Ok(*i),
            Some(Node::Dir(_)) => Err(io::ErrorKind::IsADirectory.into()),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn new_inode(&mut self, dir: usize) -> usize {
        let atime = self.now;
        let dev = self.dirs[dir].dev;
        self.inodes.push(Inode {
            dev,
            data: Vec::new(),
            durable: Vec::new(),
            atime,
        });
        self.inodes.len() - 1
    }
}

impl PowerLossFs {
    /// An empty filesystem holding only `/`.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread poisons nothing we rely on: take the state anyway.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            dir = match st.dirs[dir].entries.get(&n) {
                Some(Node::Dir(d)) => *d,
                Some(Node::File(_)) => return Err(io::ErrorKind::NotADirectory.into()),
                None => {
                    let dev = st.dirs[dir].dev;
                    let id = st.dirs.len();
                    st.dirs.push(DirNode {
                        entries: BTreeMap::new(),
                        durable: BTreeMap::new(),
                        dev,
                    });
                    st.dirs[dir].entries.insert(n.clone(), Node::Dir(id));
                    st.dirs[dir].durable.insert(n, Node::Dir(id));
                    id
                }
            };
        }
        Ok(())
    }

    /// Makes the existing directory `path` and everything below it a separate filesystem:
    /// links between it and the rest fail with `EXDEV`. Directories created inside it later
    /// belong to it.
    ///
    /// # Errors
    /// `NotFound` when `path` is not a directory.
    pub fn mount(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let top = st.resolve(path)?;
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

    /// Makes [`try_lock`](crate::Fs::try_lock) fail with `ENOLCK`, as on a filesystem
    /// without working locks. By default every lock is granted at once.
    pub fn set_locks_unavailable(&self, unavailable: bool) {
        self.lock().locks_unavailable = unavailable;
    }

    /// Sets the clock used for access times of new files.
    pub fn set_now(&self, now: SystemTime) {
        self.lock().now = now;
    }

    /// Lets `n` more counted operations run in total (counting from 1 since creation), then
    /// fails every later one, as a machine that lost power after operation `n`.
    pub fn crash_after(&self, n: u64) {
        self.lock().crash_after = Some(n);
    }

    /// Makes operation number `n` (only that one) fail with `EIO`.
    pub fn fail_op(&self, n: u64) {
        self.lock().fail_op = Some(n);
    }

    /// How many counted operations have run (including a failed one).
    pub fn op_count(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the simulated power loss has happened.
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed()
    }

    /// The operations run so far, e.g. `"sync_file /m/tmp/X"`, `"link /m/tmp/X -> /m/new/X"`.
    pub fn trace(&self) -> Vec<String> {
        self.lock().trace.clone()
    }

    /// The current bytes of the file at `path`, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        let dir = st.resolve(path.parent()?).ok()?;
        let ino = st.file(dir, path.file_name()?.to_str()?).ok()?;
        Some(st.inodes[ino].data.clone())
    }

    /// The current names in the directory at `path`, sorted, if it exists.
    pub fn list_dir(&self, path: &Path) -> Option<Vec<String>> {
        let st = self.lock();
        let dir = st.resolve(path).ok()?;
        Some(st.dirs[dir].entries.keys().cloned().collect())
    }

    /// Every state the filesystem may be in after power is restored, each as a fresh
    /// filesystem with everything durable and no crash or fault armed.
    ///
    /// Each directory changed since its last sync comes back synced or with all changes
    /// (every combination when at most 8 changed, else all-synced and all-changed); file
    /// data comes back as last synced or with all writes.
    pub fn crash_images(&self) -> Vec<PowerLossFs> {
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
                img.ops = 0;
                img.crash_after = None;
                img.fail_op = None;
                img.trace.clear();
                for d in &mut img.dirs {
                    d.entries = d.durable.clone();
                }
                for (i, &d) in dirty.iter().enumerate() {
                    if choice[i] {
                        img.dirs[d].entries = st.dirs[d].entries.clone();
                        img.dirs[d].durable = st.dirs[d].entries.clone();
                    }
                }
                for ino in &mut img.inodes {
                    if data_written {
                        ino.durable = ino.data.clone();
                    } else {
                        ino.data = ino.durable.clone();
                    }
                }
                images.push(PowerLossFs {
                    state: Arc::new(Mutex::new(img)),
                });
            }
        }
        images
    }

    fn path_of(st: &State, dir: usize) -> String {
        fn walk(st: &State, from: usize, target: usize, acc: &mut Vec<String>) -> bool {
            if from == target {
                return true;
            }
            for (n, node) in &st.dirs[from].entries {
                if let Node::Dir(d) = node {
                    acc.push(n.clone());
                    if walk(st, *d, target, acc) {
                        return true;
                    }
                    acc.pop();
                }
            }
            false
        }
        let mut parts = Vec::new();
        if walk(st, 0, dir, &mut parts) {
            format!("/{}", parts.join("/"))
        } else {
            format!("<dir {dir}>")
        }
    }

    fn at(st: &State, dir: usize, name: &str) -> String {
        let p = Self::path_of(st, dir);
        if p == "/" {
            format!("/{name}")
        } else {
            format!("{p}/{name}")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::durable::Fs;

    #[test]
    fn links_across_a_mount_fail_with_exdev() {
        let fs = PowerLossFs::new();
        fs.create_dir_all(Path::new("/a")).unwrap();
        fs.create_dir_all(Path::new("/m/b")).unwrap();
        fs.mount(Path::new("/m")).unwrap();
        let a = fs.open_dir(Path::new("/a")).unwrap();
        let m = fs.open_dir(Path::new("/m")).unwrap();
        fs.make_dir(&m, "c").unwrap();
        let b = fs.open_dir(Path::new("/m/b")).unwrap();
        let c = fs.open_dir(Path::new("/m/c")).unwrap();
        fs.create_new(&a, "f").unwrap();
        let exdev = io::ErrorKind::CrossesDevices;
        assert_eq!(fs.link(&a, "f", &b, "f").unwrap_err().kind(), exdev);
        assert_eq!(fs.link(&a, "f", &c, "f").unwrap_err().kind(), exdev);
        fs.link(&a, "f", &a, "g").unwrap();
    }

    #[test]
    fn crash_images_keep_only_synced_state() {
        let fs = PowerLossFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let d = fs.open_dir(Path::new("/d")).unwrap();
        let mut f = fs.create_new(&d, "x").unwrap();
        fs.write_all(&mut f, b"abc").unwrap();
        fs.sync_file(&f).unwrap();
        fs.write_all(&mut f, b"def").unwrap();
        let images = fs.crash_images();
        let seen: Vec<Option<Vec<u8>>> = images
            .iter()
            .map(|i| i.read_file(Path::new("/d/x")))
            .collect();
        assert!(seen.contains(&None)); // name not synced
        assert!(seen.contains(&Some(b"abc".to_vec()))); // data synced up to abc
        assert!(seen.contains(&Some(b"abcdef".to_vec()))); // or everything got out
        fs.sync_dir(&d).unwrap();
        fs.crash_after(fs.op_count());
        assert!(fs.sync_file(&f).is_err());
        assert!(fs.has_crashed());
        assert!(
            fs.crash_images()
                .iter()
                .all(|i| i.read_file(Path::new("/d/x")).is_some())
        );
    }
}
