//! [`Fs`] for [`SimFs`]: every counted operation goes through `State::begin`, which numbers
//! it, records it in the trace, and applies an armed crash or fault.

use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::{DirNode, Node, SimFile, SimFs, State};
use crate::{Access, Fs};

/// `EBADF`: writing through a read-only handle.
const EBADF: i32 = 9;
/// `ENOLCK`: no locks on this file system.
const ENOLCK: i32 = 37;

impl State {
    /// Applies an armed write fault: how many of `len` bytes may be written, and the errno
    /// to fail with after writing them.
    fn write_fault(&mut self, len: usize) -> (usize, Option<i32>) {
        match &mut self.write_budget {
            Some((left, errno)) if (len as u64) > *left => {
                let n = *left as usize;
                *left = 0;
                (n, Some(*errno))
            }
            Some((left, _)) => {
                *left -= len as u64;
                (len, None)
            }
            None => (len, None),
        }
    }

    /// Writes `buf` at `offset` into `file`'s inode (subject to write faults); returns the
    /// end offset of what was written.
    fn write(&mut self, file: &SimFile, buf: &[u8], offset: usize) -> io::Result<usize> {
        if !file.writable {
            return Err(io::Error::from_raw_os_error(EBADF));
        }
        let (take, fault) = self.write_fault(buf.len());
        let data = &mut self.inode_mut(file.ino)?.data;
        let offset = if file.append { data.len() } else { offset };
        let end = offset + take;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset..end].copy_from_slice(&buf[..take]);
        match fault {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(end),
        }
    }

    fn read(&self, file: &SimFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.alive()?;
        let data = &self.inode(file.ino)?.data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let rest = data.get(start..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn sync_inode(&mut self, ino: usize, what: &str) -> io::Result<()> {
        self.begin(format!("{what} inode {ino}"))?;
        self.sync_fault()?;
        let node = self.inode_mut(ino)?;
        node.durable.clone_from(&node.data);
        Ok(())
    }

    /// Checks a link or rename from `from_dir/from` to `to_dir`: the inode moved.
    fn same_device(&self, from_dir: usize, from: &str, to_dir: usize) -> io::Result<usize> {
        let ino = self.file(from_dir, from)?;
        if self.dir(from_dir)?.dev != self.dir(to_dir)?.dev {
            return Err(io::ErrorKind::CrossesDevices.into());
        }
        Ok(ino)
    }
}

impl Fs for SimFs {
    type Dir = usize;
    type File = SimFile;

    fn open_dir(&self, path: &Path) -> io::Result<usize> {
        let st = self.lock();
        st.alive()?;
        st.resolve(0, path)
    }

    fn open_dir_at(&self, dir: &usize, path: &str) -> io::Result<usize> {
        let st = self.lock();
        st.alive()?;
        st.resolve(*dir, Path::new(path))
    }

    fn create_dir(&self, dir: &usize, name: &str) -> io::Result<()> {
        let mut st = self.lock();
        let (parent, leaf) = st.parent(*dir, name)?;
        let what = format!("mkdir {}", st.at(parent, leaf));
        st.begin(what)?;
        if st.dir(parent)?.entries.contains_key(leaf) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let dev = st.dir(parent)?.dev;
        let id = st.dirs.len();
        st.dirs.push(DirNode::new(dev));
        st.dirs[parent]
            .entries
            .insert(leaf.to_owned(), Node::Dir(id));
        Ok(())
    }

    fn create_new(&self, dir: &usize, name: &str) -> io::Result<SimFile> {
        let mut st = self.lock();
        let (parent, leaf) = st.parent(*dir, name)?;
        let what = format!("create {}", st.at(parent, leaf));
        st.begin(what)?;
        if st.dir(parent)?.entries.contains_key(leaf) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = st.new_inode(parent)?;
        st.dirs[parent]
            .entries
            .insert(leaf.to_owned(), Node::File(ino));
        Ok(SimFile {
            ino,
            writable: true,
            append: false,
            pos: 0,
        })
    }

    fn create_unnamed(&self, dir: &usize) -> io::Result<SimFile> {
        let mut st = self.lock();
        if st.no_unnamed {
            st.alive()?;
            return Err(io::ErrorKind::Unsupported.into());
        }
        let what = format!("create unnamed in {}", st.path_of(*dir));
        st.begin(what)?;
        let ino = st.new_inode(*dir)?;
        Ok(SimFile {
            ino,
            writable: true,
            append: false,
            pos: 0,
        })
    }

    fn link_unnamed(&self, file: &SimFile, dir: &usize, name: &str) -> io::Result<()> {
        let mut st = self.lock();
        let (parent, leaf) = st.parent(*dir, name)?;
        let what = format!("link inode {} -> {}", file.ino, st.at(parent, leaf));
        st.begin(what)?;
        if st.inode(file.ino)?.dev != st.dir(parent)?.dev {
            return Err(io::ErrorKind::CrossesDevices.into());
        }
        if st.dir(parent)?.entries.contains_key(leaf) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        st.dirs[parent]
            .entries
            .insert(leaf.to_owned(), Node::File(file.ino));
        Ok(())
    }

    fn open(&self, dir: &usize, name: &str, access: Access) -> io::Result<SimFile> {
        let st = self.lock();
        st.alive()?;
        let (parent, leaf) = st.parent(*dir, name)?;
        Ok(SimFile {
            ino: st.file(parent, leaf)?,
            writable: access == Access::ReadWrite,
            append: false,
            pos: 0,
        })
    }

    fn open_append(&self, dir: &usize, name: &str) -> io::Result<(SimFile, bool)> {
        let mut st = self.lock();
        let (parent, leaf) = st.parent(*dir, name)?;
        let what = format!("open_append {}", st.at(parent, leaf));
        st.begin(what)?;
        let (ino, created) = match st.file(parent, leaf) {
            Ok(ino) => (ino, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let ino = st.new_inode(parent)?;
                st.dirs[parent]
                    .entries
                    .insert(leaf.to_owned(), Node::File(ino));
                (ino, true)
            }
            Err(e) => return Err(e),
        };
        let file = SimFile {
            ino,
            writable: true,
            append: true,
            pos: 0,
        };
        Ok((file, created))
    }

    fn read(&self, file: &mut SimFile, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.lock().read(file, buf, file.pos as u64)?;
        file.pos += n;
        Ok(n)
    }

    fn read_at(&self, file: &SimFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.lock().read(file, buf, offset)
    }

    fn write_all(&self, file: &mut SimFile, buf: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        st.begin(format!("write {} bytes to inode {}", buf.len(), file.ino))?;
        file.pos = st.write(file, buf, file.pos)?;
        Ok(())
    }

    fn write_all_at(&self, file: &SimFile, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.begin(format!(
            "write {} bytes at {offset} to inode {}",
            buf.len(),
            file.ino
        ))?;
        let offset = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        st.write(file, buf, offset).map(drop)
    }

    fn file_len(&self, file: &SimFile) -> io::Result<u64> {
        let st = self.lock();
        st.alive()?;
        Ok(st.inode(file.ino)?.data.len() as u64)
    }

    fn set_len(&self, file: &SimFile, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.begin(format!("truncate inode {} to {len}", file.ino))?;
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        st.inode_mut(file.ino)?.data.resize(len, 0);
        Ok(())
    }

    fn try_lock(&self, _file: &SimFile) -> io::Result<bool> {
        let st = self.lock();
        st.alive()?;
        if st.locks_unavailable {
            return Err(io::Error::from_raw_os_error(ENOLCK));
        }
        Ok(true)
    }

    fn sync_data(&self, file: &SimFile) -> io::Result<()> {
        self.lock().sync_inode(file.ino, "sync_data")
    }

    fn sync_all(&self, file: &SimFile) -> io::Result<()> {
        self.lock().sync_inode(file.ino, "sync_all")
    }

    fn sync_dir(&self, dir: &usize) -> io::Result<()> {
        let mut st = self.lock();
        let what = format!("sync_dir {}", st.path_of(*dir));
        st.begin(what)?;
        st.sync_fault()?;
        let d = st.dir_mut(*dir)?;
        d.durable.clone_from(&d.entries);
        Ok(())
    }

    fn sync_filesystem(&self, dir: &usize) -> io::Result<()> {
        let mut st = self.lock();
        let dev = st.dir(*dir)?.dev;
        st.begin(format!("sync_filesystem {dev}"))?;
        st.sync_fault()?;
        for d in st.dirs.iter_mut().filter(|d| d.dev == dev) {
            d.durable.clone_from(&d.entries);
        }
        for i in st.inodes.iter_mut().filter(|i| i.dev == dev) {
            i.durable.clone_from(&i.data);
        }
        Ok(())
    }

    fn boot_id(&self) -> io::Result<Option<String>> {
        Ok(Some(format!("sim-boot-{}", self.lock().boots)))
    }

    fn device(&self, dir: &usize) -> io::Result<u64> {
        let st = self.lock();
        st.alive()?;
        Ok(u64::from(st.dir(*dir)?.dev))
    }

    fn link(&self, from_dir: &usize, from: &str, to_dir: &usize, to: &str) -> io::Result<()> {
        let mut st = self.lock();
        let (fd, from) = st.parent(*from_dir, from)?;
        let (td, to) = st.parent(*to_dir, to)?;
        let what = format!("link {} -> {}", st.at(fd, from), st.at(td, to));
        st.begin(what)?;
        let ino = st.same_device(fd, from, td)?;
        if st.dir(td)?.entries.contains_key(to) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        st.dirs[td].entries.insert(to.to_owned(), Node::File(ino));
        Ok(())
    }

    fn rename(&self, from_dir: &usize, from: &str, to_dir: &usize, to: &str) -> io::Result<()> {
        let mut st = self.lock();
        let (fd, from) = st.parent(*from_dir, from)?;
        let (td, to) = st.parent(*to_dir, to)?;
        let what = format!("rename {} -> {}", st.at(fd, from), st.at(td, to));
        st.begin(what)?;
        let ino = st.same_device(fd, from, td)?;
        st.dirs[fd].entries.remove(from);
        st.dirs[td].entries.insert(to.to_owned(), Node::File(ino));
        Ok(())
    }

    fn remove_file(&self, dir: &usize, name: &str) -> io::Result<()> {
        let mut st = self.lock();
        let (parent, leaf) = st.parent(*dir, name)?;
        let what = format!("unlink {}", st.at(parent, leaf));
        st.begin(what)?;
        st.file(parent, leaf)?;
        st.dirs[parent].entries.remove(leaf);
        Ok(())
    }

    fn list_dir(&self, dir: &usize) -> io::Result<Vec<String>> {
        let st = self.lock();
        st.alive()?;
        Ok(st.dir(*dir)?.entries.keys().cloned().collect())
    }

    fn accessed(&self, dir: &usize, name: &str) -> io::Result<SystemTime> {
        let st = self.lock();
        st.alive()?;
        let (parent, leaf) = st.parent(*dir, name)?;
        Ok(st.inode(st.file(parent, leaf)?)?.atime)
    }
}
