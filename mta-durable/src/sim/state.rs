//! The simulator's state: numbering and refusing operations, resolving paths to
//! directory and inode numbers, and rebooting into a crash image.

use std::io;
use std::path::{Component, Path};

use super::{DirNode, Inode, Node, State};

pub(super) fn lost_power() -> io::Error {
    io::Error::other("simulated crash: the machine is gone")
}

impl State {
    /// Counts one state-changing operation (`what`, for the trace) and decides whether it
    /// may run: refused once the crash point is passed, failed with `EIO` if armed so.
    pub(super) fn begin(&mut self, what: String) -> io::Result<()> {
        self.alive()?;
        if self.crash_after.is_some_and(|n| self.ops >= n) {
            self.crashed = true;
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

    /// Fails every operation, counted or not, once the crash happened.
    pub(super) fn alive(&self) -> io::Result<()> {
        if self.crashed {
            Err(lost_power())
        } else {
            Ok(())
        }
    }

    /// Applies an armed sync fault ([`SimFs::fail_syncs_after`]).
    pub(super) fn sync_fault(&mut self) -> io::Result<()> {
        if let Some((left, errno)) = &mut self.sync_budget {
            if *left == 0 {
                return Err(io::Error::from_raw_os_error(*errno));
            }
            *left -= 1;
        }
        Ok(())
    }

    /// The directory at `path`, starting at `from` (or at `/` for an absolute path).
    pub(super) fn resolve(&self, from: usize, path: &Path) -> io::Result<usize> {
        let mut dir = from;
        for c in path.components() {
            match c {
                Component::RootDir => dir = 0,
                Component::CurDir => {}
                Component::Normal(n) => {
                    let n = n.to_str().ok_or(io::ErrorKind::InvalidInput)?;
                    match self.dir(dir)?.entries.get(n) {
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

    /// Splits `name` (relative to directory `from`) into its parent directory and last
    /// component.
    pub(super) fn parent<'n>(&self, from: usize, name: &'n str) -> io::Result<(usize, &'n str)> {
        match name.rsplit_once('/') {
            Some((dir, leaf)) => Ok((self.resolve(from, Path::new(dir))?, leaf)),
            None => Ok((from, name)),
        }
    }

    pub(super) fn dir(&self, dir: usize) -> io::Result<&DirNode> {
        self.dirs.get(dir).ok_or_else(stale_handle)
    }

    pub(super) fn dir_mut(&mut self, dir: usize) -> io::Result<&mut DirNode> {
        self.dirs.get_mut(dir).ok_or_else(stale_handle)
    }

    pub(super) fn inode(&self, ino: usize) -> io::Result<&Inode> {
        self.inodes.get(ino).ok_or_else(stale_handle)
    }

    pub(super) fn inode_mut(&mut self, ino: usize) -> io::Result<&mut Inode> {
        self.inodes.get_mut(ino).ok_or_else(stale_handle)
    }

    /// The inode of file `name` in `dir`.
    pub(super) fn file(&self, dir: usize, name: &str) -> io::Result<usize> {
        match self.dir(dir)?.entries.get(name) {
            Some(Node::File(i)) => Ok(*i),
            Some(Node::Dir(_)) => Err(io::ErrorKind::IsADirectory.into()),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    pub(super) fn new_inode(&mut self, dir: usize) -> io::Result<usize> {
        let dev = self.dir(dir)?.dev;
        self.inodes.push(Inode {
            dev,
            data: Vec::new(),
            durable: Vec::new(),
            atime: self.now,
        });
        Ok(self.inodes.len() - 1)
    }

    /// The absolute path of directory `dir`, for the trace.
    pub(super) fn path_of(&self, dir: usize) -> String {
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
        if walk(self, 0, dir, &mut parts) {
            format!("/{}", parts.join("/"))
        } else {
            format!("<dir {dir}>")
        }
    }

    /// The absolute path of `dir/name`, for the trace.
    pub(super) fn at(&self, dir: usize, name: &str) -> String {
        let p = self.path_of(dir);
        if p == "/" {
            format!("/{name}")
        } else {
            format!("{p}/{name}")
        }
    }

    /// This state as a freshly booted disk: everything durable, nothing armed.
    pub(super) fn rebooted(mut self) -> State {
        self.ops = 0;
        self.crash_after = None;
        self.crashed = false;
        self.fail_op = None;
        self.write_budget = None;
        self.sync_budget = None;
        self.trace.clear();
        for d in &mut self.dirs {
            d.durable.clone_from(&d.entries);
        }
        for i in &mut self.inodes {
            i.durable.clone_from(&i.data);
        }
        self
    }
}

fn stale_handle() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a handle of this SimFs")
}

/// The durable bytes plus the first half of any unsynced bytes appended after them.
pub(super) fn torn(node: &Inode) -> Vec<u8> {
    let d = &node.durable;
    if node.data.len() > d.len() && node.data.starts_with(d) {
        let extra = node.data.len() - d.len();
        node.data[..d.len() + extra / 2].to_vec()
    } else {
        d.clone()
    }
}
