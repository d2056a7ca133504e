//! [`Fs`] for [`PowerLossFs`]: every counted operation goes through `State::begin`, which
//! numbers it, records it in the trace, and applies an armed crash or fault.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::{DirNode, Node, PowerLossFs, SimFile, lost_power};
use crate::durable::Fs;

impl Fs for PowerLossFs {
    type Dir = usize;
    type File = SimFile;

    fn open_dir(&self, path: &Path) -> io::Result<usize> {
        let st = self.lock();
        if st.crashed() {
            return Err(lost_power());
        }
        st.resolve(path)
    }

    fn make_dir(&self, parent: &usize, name: &str) -> io::Result<()> {
        let mut st = self.lock();
        let what = format!("mkdir {}", Self::at(&st, *parent, name));
        st.begin(what)?;
        if st.dirs[*parent].entries.contains_key(name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let dev = st.dirs[*parent].dev;
        let id = st.dirs.len();
        st.dirs.push(DirNode {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            dev,
        });
        st.dirs[*parent]
            .entries
            .insert(name.to_owned(), Node::Dir(id));
        Ok(())
    }

    fn create_new(&self, dir: &usize, name: &str) -> io::Result<SimFile> {
        let mut st = self.lock();
        let what = format!("create {}", Self::at(&st, *dir, name));
        st.begin(what)?;
        if st.dirs[*dir].entries.contains_key(name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = st.new_inode(*dir);
        st.dirs[*dir]
            .entries
            .insert(name.to_owned(), Node::File(ino));
        Ok(SimFile {
            ino,
            append: false,
            pos: 0,
        })
    }

    fn open_append(&self, dir: &usize, name: &str) -> io::Result<(SimFile, bool)> {
        let mut st = self.lock();
        let what = format!("open_append {}", Self::at(&st, *dir, name));
        st.begin(what)?;
        let (ino, created) = match st.file(*dir, name) {
            Ok(ino) => (ino, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let ino = st.new_inode(*dir);
                st.dirs[*dir]
                    .entries
                    .insert(name.to_owned(), Node::File(ino));
                (ino, true)
            }
            Err(e) => return Err(e),
        };
        Ok((
            SimFile {
                ino,
                append: true,
                pos: 0,
            },
            created,
        ))
    }

    fn open_read(&self, dir: &usize, name: &str) -> io::Result<SimFile> {
        let st = self.lock();
        if st.crashed() {
            return Err(lost_power());
        }
        Ok(SimFile {
            ino: st.file(*dir, name)?,
            append: false,
            pos: 0,
        })
    }

    fn read(&self, file: &mut SimFile, buf: &mut [u8]) -> io::Result<usize> {
        let st = self.lock();
        let data = &st.inodes[file.ino].data;
        let rest = data.get(file.pos..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        file.pos += n;
        Ok(n)
    }

    fn read_at(&self, file: &SimFile, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let st = self.lock();
        let data = &st.inodes[file.ino].data;
        let rest = data.get(offset as usize..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn write_all(&self, file: &mut SimFile, data: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        st.begin(format!("write {} bytes to inode {}", data.len(), file.ino))?;
        let buf = &mut st.inodes[file.ino].data;
        if file.append {
            file.pos = buf.len();
        }
        let end = file.pos + data.len();
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[file.pos..end].copy_from_slice(data);
        file.pos = end;
        Ok(())
    }

    fn len(&self, file: &SimFile) -> io::Result<u64> {
        Ok(self.lock().inodes[file.ino].data.len() as u64)
    }

    fn try_lock(&self, _file: &SimFile) -> io::Result<bool> {
        if self.lock().locks_unavailable {
            return Err(io::Error::from_raw_os_error(37)); // ENOLCK
        }
        Ok(true)
    }

    fn set_len(&self, file: &SimFile, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.begin(format!("truncate inode {} to {len}", file.ino))?;
        st.inodes[file.ino].data.resize(len as usize, 0);
        Ok(())
    }

    fn sync_file(&self, file: &SimFile) -> io::Result<()> {
        let mut st = self.lock();
        st.begin(format!("sync_file inode {}", file.ino))?;
        let ino = &mut st.inodes[file.ino];
        ino.durable = ino.data.clone();
        Ok(())
    }

    fn sync_dir(&self, dir: &usize) -> io::Result<()> {
        let mut st = self.lock();
        let what = format!("sync_dir {}", Self::path_of(&st, *dir));
        st.begin(what)?;
        let d = &mut st.dirs[*dir];
        d.durable = d.entries.clone();
        Ok(())
    }

    fn sync_filesystem(&self, dir: &usize) -> io::Result<()> {
        let mut st = self.lock();
        let dev = st.dirs[*dir].dev;
        st.begin(format!("sync_filesystem {dev}"))?;
        for d in st.dirs.iter_mut().filter(|d| d.dev == dev) {
            d.durable = d.entries.clone();
        }
        for i in st.inodes.iter_mut().filter(|i| i.dev == dev) {
            i.durable = i.data.clone();
        }
        Ok(())
    }

    fn link(&self, from_dir: &usize, from: &str, to_dir: &usize, to: &str) -> io::Result<()> {
        let mut st = self.lock();
        let what = format!(
            "link {} -> {}",
            Self::at(&st, *from_dir, from),
            Self::at(&st, *to_dir, to)
        );
        st.begin(what)?;
        let ino = st.file(*from_dir, from)?;
        if st.dirs[*from_dir].dev != st.dirs[*to_dir].dev {
            return Err(io::ErrorKind::CrossesDevices.into());
        }
        if st.dirs[*to_dir].entries.contains_key(to) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        st.dirs[*to_dir]
            .entries
            .insert(to.to_owned(), Node::File(ino));
        Ok(())
    }

    fn rename(&self, from_dir: &usize, from: &str, to_dir: &usize, to: &str) -> io::Result<()> {
        let mut st = self.lock();
        let what = format!(
            "rename {} -> {}",
            Self::at(&st, *from_dir, from),
            Self::at(&st, *to_dir, to)
        );
        st.begin(what)?;
        let ino = st.file(*from_dir, from)?;
        if st.dirs[*from_dir].dev != st.dirs[*to_dir].dev {
            return Err(io::ErrorKind::CrossesDevices.into());
        }
        st.dirs[*from_dir].entries.remove(from);
        st.dirs[*to_dir]
            .entries
            .insert(to.to_owned(), Node::File(ino));
        Ok(())
    }

    fn unlink(&self, dir: &usize, name: &str) -> io::Result<()> {
        let mut st = self.lock();
        let what = format!("unlink {}", Self::at(&st, *dir, name));
        st.begin(what)?;
        st.file(*dir, name)?;
        st.dirs[*dir].entries.remove(name);
        Ok(())
    }

    fn list(&self, dir: &usize) -> io::Result<Vec<String>> {
        let st = self.lock();
        if st.crashed() {
            return Err(lost_power());
        }
        Ok(st.dirs[*dir].entries.keys().cloned().collect())
    }

    fn accessed(&self, dir: &usize, name: &str) -> io::Result<SystemTime> {
        let st = self.lock();
        Ok(st.inodes[st.file(*dir, name)?].atime)
    }
}
