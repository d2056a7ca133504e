//! The power-loss simulator behind [`crate::sim`]; see there for the model.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Access, Fs};

/// What survives a restart of the simulated machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restart {
    /// Power loss: only synced data and synced names survive.
    PowerLoss,
    /// Power loss during a write: synced state survives, plus the first half of any
    /// unsynced bytes appended past a file's durable length (a torn append).
    TornAppend,
    /// The process was killed but the machine kept running: everything it wrote survives
    /// (the page cache is not lost), as with SIGKILL.
    ProcessCrash,
}

/// An in-memory, power-loss-modelling [`Fs`]. Cloning gives another handle to the same
/// simulated disk.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

/// An open file of a [`SimFs`]: a reference to an inode (still valid after its name is
/// removed, as on Unix).
#[derive(Debug)]
pub struct SimFile {
    ino: u64,
    writable: bool,
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Clone, Debug, Default)]
struct Dir {
    live: BTreeMap<String, Entry>,
    durable: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    dirs: BTreeMap<String, Dir>,
    next_ino: u64,
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    write_budget: Option<(u64, i32)>,
    sync_budget: Option<(u64, i32)>,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the process is gone")
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

impl SimFs {
    /// An empty disk holding only the (durable) queue directory.
    pub fn new() -> Self {
        let mut st = State::default();
        st.dirs.insert(String::new(), Dir::default());
        SimFs {
            state: Arc::new(Mutex::new(st)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many state-changing operations have run (or been refused) so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Lets `n` more state-changing operations (create, write, truncate, sync, rename,
    /// remove, mkdir) succeed; the next one fails without effect and so does every
    /// operation after it, as if the process died there.
    pub fn crash_after(&self, n: u64) {
        let mut st = self.lock();
        st.crash_at = Some(st.ops + n);
    }

    /// True once a crash point has been reached.
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Lets `bytes` more bytes be written; the write that crosses the limit writes what fits
    /// and fails with `errno` (e.g. 28 = ENOSPC, 5 = EIO), and so do later writes, until
    /// [`SimFs::clear_faults`].
    pub fn fail_writes_after(&self, bytes: u64, errno: i32) {
        self.lock().write_budget = Some((bytes, errno));
    }

    /// Lets `n` more `sync_data`/`sync_dir` calls succeed; later ones fail with `errno`
    /// without making anything durable.
    pub fn fail_syncs_after(&self, n: u64, errno: i32) {
        self.lock().sync_budget = Some((n, errno));
    }

    /// Removes injected write and sync faults.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.write_budget = None;
        st.sync_budget = None;
    }

    /// The disk as the next boot (or the next process) sees it, as a new independent
    /// simulator with no crash point or faults.
    #[must_use]
    pub fn restart(&self, how: Restart) -> SimFs {
        let st = self.lock();
        let mut new = State {
            next_ino: st.next_ino,
            ..State::default()
        };
        // Walk from the root through the names that survive.
        let mut stack = vec![String::new()];
        while let Some(path) = stack.pop() {
            let Some(dir) = st.dirs.get(&path) else {
                continue;
            };
            let names = if how == Restart::ProcessCrash {
                &dir.live
            } else {
                &dir.durable
            };
            for (name, entry) in names {
                let child = super::join(&path, name);
                match entry {
                    Entry::Dir => stack.push(child),
                    Entry::File(ino) => {
                        let node = st.inodes.get(ino).cloned().unwrap_or_default();
                        let data = match how {
                            Restart::ProcessCrash => node.data.clone(),
                            Restart::PowerLoss => node.durable.clone(),
                            Restart::TornAppend => torn(&node),
                        };
                        new.inodes.insert(
                            *ino,
                            Inode {
                                durable: data.clone(),
                                data,
                            },
                        );
                    }
                }
            }
            new.dirs.insert(
                path,
                Dir {
                    live: names.clone(),
                    durable: names.clone(),
                },
            );
        }
        SimFs {
            state: Arc::new(Mutex::new(new)),
        }
    }

    /// True if `path` names a file or directory (as the running process sees it).
    pub fn exists(&self, path: &str) -> bool {
        let st = self.lock();
        let (dir, name) = split(path);
        st.dirs.get(dir).is_some_and(|d| d.live.contains_key(name))
    }
}

fn torn(node: &Inode) -> Vec<u8> {
    let d = &node.durable;
    if node.data.len() > d.len() && node.data.starts_with(d) {
        let extra = node.data.len() - d.len();
        node.data[..d.len() + extra / 2].to_vec()
    } else {
        d.clone()
    }
}

impl State {
    /// Counts one state-changing operation; fails if the crash point is reached.
    fn step(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed());
        }
        self.ops += 1;
        if self.crash_at.is_some_and(|at| self.ops > at) {
            self.crashed = true;
            return Err(crashed());
        }
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        if self.crashed { Err(crashed()) } else { Ok(()) }
    }

    fn dir_mut(&mut self, path: &str) -> io::Result<&mut Dir> {
        self.dirs
            .get_mut(path)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn lookup(&self, path: &str) -> io::Result<Entry> {
        let (dir, name) = split(path);
        self.dirs
            .get(dir)
            .and_then(|d| d.live.get(name))
            .copied()
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn sync_fault(&mut self) -> io::Result<()> {
        if let Some((left, errno)) = &mut self.sync_budget {
            if *left == 0 {
                return Err(io::Error::from_raw_os_error(*errno));
            }
            *left -= 1;
        }
        Ok(())
    }
}

impl Fs for SimFs {
    type File = SimFile;

    fn create_dir(&self, path: &str) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        let (parent, name) = split(path);
        let d = st.dir_mut(parent)?;
        if d.live.contains_key(name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        d.live.insert(name.to_owned(), Entry::Dir);
        // A directory's own contents start empty; recreating a lost one starts fresh.
        st.dirs.insert(path.to_owned(), Dir::default());
        Ok(())
    }

    fn create_new(&self, path: &str) -> io::Result<SimFile> {
        let mut st = self.lock();
        st.step()?;
        let (parent, name) = split(path);
        let ino = st.next_ino + 1;
        let d = st.dir_mut(parent)?;
        if d.live.contains_key(name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        d.live.insert(name.to_owned(), Entry::File(ino));
        st.next_ino = ino;
        st.inodes.insert(ino, Inode::default());
        Ok(SimFile {
            ino,
            writable: true,
        })
    }

    fn open(&self, path: &str, access: Access) -> io::Result<SimFile> {
        let st = self.lock();
        st.alive()?;
        match st.lookup(path)? {
            Entry::File(ino) => Ok(SimFile {
                ino,
                writable: access == Access::ReadWrite,
            }),
            Entry::Dir => Err(io::Error::other("is a directory")),
        }
    }

    fn read_at(&self, file: &SimFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = self.lock();
        st.alive()?;
        let data = &st
            .inodes
            .get(&file.ino)
            .ok_or(io::ErrorKind::NotFound)?
            .data;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, file: &SimFile, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        if !file.writable {
            return Err(io::Error::from_raw_os_error(9));
        }
        let (take, fault) = match &mut st.write_budget {
            Some((left, errno)) if (buf.len() as u64) > *left => {
                let n = *left as usize;
                *left = 0;
                (n, Some(*errno))
            }
            Some((left, _)) => {
                *left -= buf.len() as u64;
                (buf.len(), None)
            }
            None => (buf.len(), None),
        };
        let node = st
            .inodes
            .get_mut(&file.ino)
            .ok_or(io::ErrorKind::NotFound)?;
        let off = offset as usize;
        if node.data.len() < off + take {
            node.data.resize(off + take, 0);
        }
        node.data[off..off + take].copy_from_slice(&buf[..take]);
        match fault {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    fn file_len(&self, file: &SimFile) -> io::Result<u64> {
        let st = self.lock();
        st.alive()?;
        Ok(st.inodes.get(&file.ino).map_or(0, |n| n.data.len() as u64))
    }

    fn set_len(&self, file: &SimFile, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        let node = st
            .inodes
            .get_mut(&file.ino)
            .ok_or(io::ErrorKind::NotFound)?;
        node.data.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self, file: &SimFile) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        st.sync_fault()?;
        let node = st
            .inodes
            .get_mut(&file.ino)
            .ok_or(io::ErrorKind::NotFound)?;
        node.durable.clone_from(&node.data);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        let entry = st.lookup(from)?;
        let (to_dir, to_name) = split(to);
        st.dir_mut(to_dir)?;
        let (from_dir, from_name) = split(from);
        st.dir_mut(from_dir)?.live.remove(from_name);
        st.dir_mut(to_dir)?.live.insert(to_name.to_owned(), entry);
        Ok(())
    }

    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        let entry = st.lookup(from)?;
        if entry == Entry::Dir {
            return Err(io::Error::other("is a directory"));
        }
        let (to_dir, to_name) = split(to);
        let dir = st.dir_mut(to_dir)?;
        if dir.live.contains_key(to_name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        dir.live.insert(to_name.to_owned(), entry);
        Ok(())
    }

    fn remove_file(&self, path: &str) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        if st.lookup(path)? == Entry::Dir {
            return Err(io::Error::other("is a directory"));
        }
        let (dir, name) = split(path);
        st.dir_mut(dir)?.live.remove(name);
        Ok(())
    }

    fn sync_dir(&self, path: &str) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        st.sync_fault()?;
        let d = st.dir_mut(path)?;
        d.durable.clone_from(&d.live);
        Ok(())
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let st = self.lock();
        st.alive()?;
        let d = st.dirs.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(d.live.keys().cloned().collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_names_and_data_are_lost_on_power_loss() {
        let fs = SimFs::new();
        fs.create_dir("d").unwrap();
        fs.sync_dir("").unwrap();
        let f = fs.create_new("d/a").unwrap();
        fs.write_all_at(&f, b"hello", 0).unwrap();
        fs.sync_data(&f).unwrap();
        let g = fs.create_new("d/b").unwrap();
        fs.write_all_at(&g, b"lost", 0).unwrap();
        // Name of a durable but never dir-synced file: lost.
        assert!(
            fs.restart(Restart::PowerLoss)
                .list_dir("d")
                .unwrap()
                .is_empty()
        );
        fs.sync_dir("d").unwrap();
        let after = fs.restart(Restart::PowerLoss);
        let (a, b) = (
            after.open("d/a", Access::Read).unwrap(),
            after.open("d/b", Access::Read).unwrap(),
        );
        assert_eq!(after.file_len(&a).unwrap(), 5);
        assert_eq!(after.file_len(&b).unwrap(), 0);
        // A process crash keeps everything written.
        let kept = fs.restart(Restart::ProcessCrash);
        assert_eq!(
            kept.file_len(&kept.open("d/b", Access::Read).unwrap())
                .unwrap(),
            4
        );
    }

    #[test]
    fn rename_is_durable_per_directory() {
        let fs = SimFs::new();
        for d in ["tmp", "new"] {
            fs.create_dir(d).unwrap();
        }
        fs.sync_dir("").unwrap();
        let f = fs.create_new("tmp/x").unwrap();
        fs.sync_data(&f).unwrap();
        fs.sync_dir("tmp").unwrap();
        fs.rename("tmp/x", "new/x").unwrap();
        fs.sync_dir("new").unwrap();
        // The old name's removal was never synced: both names survive.
        let after = fs.restart(Restart::PowerLoss);
        assert!(after.exists("tmp/x") && after.exists("new/x"));
    }

    #[test]
    fn crash_point_stops_everything() {
        let fs = SimFs::new();
        fs.crash_after(1);
        fs.create_dir("a").unwrap();
        assert!(fs.create_dir("b").is_err());
        assert!(fs.list_dir("").is_err());
        assert!(fs.has_crashed());
        assert_eq!(
            fs.restart(Restart::ProcessCrash).list_dir("").unwrap(),
            vec!["a".to_owned()]
        );
    }

    #[test]
    fn write_fault_writes_a_prefix_then_fails() {
        let fs = SimFs::new();
        let f = fs.create_new("f").unwrap();
        fs.fail_writes_after(3, 28);
        let err = fs.write_all_at(&f, b"abcdef", 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert_eq!(fs.file_len(&f).unwrap(), 3);
        fs.clear_faults();
        fs.write_all_at(&f, b"abcdef", 0).unwrap();
    }
}
