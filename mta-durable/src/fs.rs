//! The [`Fs`] trait: the file-system operations durable code runs through.

use std::io;
use std::path::Path;
use std::time::SystemTime;

/// How [`Fs::open`] opens an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading only (`O_RDONLY`).
    Read,
    /// Reading and writing (`O_RDWR`), e.g. to append records at a known offset.
    ReadWrite,
}

/// The file-system operations durable code needs, on open directory handles.
///
/// Every operation but [`open_dir`](Fs::open_dir) names its target relative to an open
/// directory (`dir`, and `name` or `path` inside it), as the `*at` system calls do: a
/// directory renamed meanwhile cannot redirect it. A `name` may be one component (`"x"`) or a
/// relative path of several (`"mess/3/17"`); `""` in [`open_dir_at`](Fs::open_dir_at) is
/// the directory itself.
///
/// **What is durable when.** Nothing a call changes survives power loss until it is synced:
/// a file's bytes and length after [`sync_data`](Fs::sync_data) or
/// [`sync_all`](Fs::sync_all) of that file; a created, linked, renamed or removed name after
/// [`sync_dir`](Fs::sync_dir) of the directory holding it (of both directories, for a
/// rename's two halves). The two are independent: syncing a file does not make its name
/// durable, and syncing a directory does not make the data of the files it names durable.
/// [`sync_filesystem`](Fs::sync_filesystem) makes both durable for a whole file system.
/// That is the rule ext4 and XFS give, and the one [`SimFs`](crate::sim::SimFs) enforces.
///
/// Implementations: [`OsFs`](crate::OsFs), the real file system through rustix, and
/// [`SimFs`](crate::sim::SimFs), an in-memory model that keeps only what was synced. Wrap
/// either to add kill points or fault injection. Cloning an `Fs` gives another handle to the
/// same file system.
///
/// Errors are plain [`io::Error`]s with the kinds the system call would give (`NotFound`,
/// `AlreadyExists`, `CrossesDevices`, `StorageFull`, ...).
pub trait Fs: Clone + Send + Sync + 'static {
    /// An open directory.
    type Dir: std::fmt::Debug + Send + Sync;
    /// An open file. It stays valid after its name is removed, as on Unix.
    type File: Send + Sync;

    /// Opens the directory at `path`. A relative path starts at the file system's base
    /// directory (the directory given to [`OsFs::open`](crate::OsFs::open), the working
    /// directory for [`OsFs::new`](crate::OsFs::new), `/` for the simulator).
    ///
    /// # Errors
    /// `NotFound`, `NotADirectory`, or any I/O error.
    fn open_dir(&self, path: &Path) -> io::Result<Self::Dir>;

    /// Opens the directory at relative `path` inside `dir` (`""` opens `dir` again).
    ///
    /// # Errors
    /// `NotFound`, `NotADirectory`, or any I/O error.
    fn open_dir_at(&self, dir: &Self::Dir, path: &str) -> io::Result<Self::Dir>;

    /// Creates directory `name` (mode 0700) in `dir`. Not durable until `dir` is synced.
    ///
    /// # Errors
    /// `AlreadyExists` if the name exists, `NotFound` if its parent does not, or any I/O
    /// error.
    fn create_dir(&self, dir: &Self::Dir, name: &str) -> io::Result<()>;

    /// Creates a new empty regular file `name` in `dir` (mode 0600, `O_EXCL`: never reuses
    /// a name, never follows a symlink) and opens it for reading and writing. Neither the
    /// name nor the file is durable until synced.
    ///
    /// # Errors
    /// `AlreadyExists` if the name exists, or any I/O error.
    fn create_new(&self, dir: &Self::Dir, name: &str) -> io::Result<Self::File>;

    /// Opens the existing file `name` in `dir`.
    ///
    /// # Errors
    /// `NotFound`, or any I/O error.
    fn open(&self, dir: &Self::Dir, name: &str, access: Access) -> io::Result<Self::File>;

    /// Opens `name` in `dir` for appending, creating it (mode 0600) if it does not exist;
    /// the flag says whether it was created.
    ///
    /// On [`OsFs`](crate::OsFs): `O_RDWR|O_APPEND`, or `O_WRONLY|O_APPEND` when reading is
    /// not permitted (`EACCES`); symlinks are followed (a user's mbox may be one); the open
    /// is non-blocking and anything but a regular file (a FIFO, a device) is refused right
    /// after it.
    ///
    /// # Errors
    /// `InvalidInput` ("not a regular file"), or any I/O error.
    fn open_append(&self, dir: &Self::Dir, name: &str) -> io::Result<(Self::File, bool)>;

    /// Reads into `buf` at the file's position and advances it; `Ok(0)` at the end.
    ///
    /// # Errors
    /// Any I/O error.
    fn read(&self, file: &mut Self::File, buf: &mut [u8]) -> io::Result<usize>;

    /// Reads into `buf` from `offset` without moving the file position (`pread`); returns
    /// the number of bytes read (0 at the end).
    ///
    /// # Errors
    /// Any I/O error.
    fn read_at(&self, file: &Self::File, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at the file's position (at the end, for an append file). Not
    /// durable until synced.
    ///
    /// # Errors
    /// Any I/O error; part of `buf` may have been written.
    fn write_all(&self, file: &mut Self::File, buf: &[u8]) -> io::Result<()>;

    /// Writes all of `buf` at `offset` (`pwrite`). Not durable until synced.
    ///
    /// # Errors
    /// Any I/O error; part of `buf` may have been written.
    fn write_all_at(&self, file: &Self::File, buf: &[u8], offset: u64) -> io::Result<()>;

    /// The file's current length.
    ///
    /// # Errors
    /// Any I/O error.
    fn file_len(&self, file: &Self::File) -> io::Result<u64>;

    /// Truncates or extends the file to `len`. Not durable until synced.
    ///
    /// # Errors
    /// Any I/O error.
    fn set_len(&self, file: &Self::File, len: u64) -> io::Result<()>;

    /// Tries to take an exclusive lock on the file without waiting: `Ok(false)` when another
    /// holder has it. On [`OsFs`](crate::OsFs): `flock(LOCK_EX|LOCK_NB)`, then a POSIX
    /// `fcntl` write lock on the whole file; if the second is held elsewhere the first is
    /// released again; if `fcntl` locks are unavailable (`ENOLCK`) the `flock` alone counts.
    ///
    /// # Errors
    /// Any I/O error other than "held elsewhere".
    fn try_lock(&self, file: &Self::File) -> io::Result<bool>;

    /// Makes the file's data and length durable (`fdatasync`; `F_FULLFSYNC` on Apple).
    ///
    /// # Errors
    /// Any I/O error; after one, the file's durable contents are unknown.
    fn sync_data(&self, file: &Self::File) -> io::Result<()>;

    /// Makes the file's data, length and metadata durable (`fsync`; `F_FULLFSYNC` on
    /// Apple).
    ///
    /// # Errors
    /// Any I/O error; after one, the file's durable contents are unknown.
    fn sync_all(&self, file: &Self::File) -> io::Result<()>;

    /// Makes the names in `dir` durable (`fsync` on the directory; `F_FULLFSYNC` on Apple):
    /// every name created, linked, renamed or removed in it before the call.
    ///
    /// # Errors
    /// Any I/O error; after one, which changes are durable is unknown.
    fn sync_dir(&self, dir: &Self::Dir) -> io::Result<()>;

    /// Makes everything on the file system holding `dir` durable at once (`syncfs`): file
    /// data and directory entries alike.
    ///
    /// # Errors
    /// `Unsupported` where the platform has no such call (the default), or any I/O error.
    fn sync_filesystem(&self, dir: &Self::Dir) -> io::Result<()> {
        let _ = dir; // nothing to sync with: the default is "unsupported"
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Which file system holds `dir`: equal numbers mean one file system, so one
    /// [`sync_filesystem`](Fs::sync_filesystem) of either makes changes in both durable
    /// (`st_dev` of `fstat` on [`OsFs`](crate::OsFs)). Batched commits group their files by
    /// it.
    ///
    /// # Errors
    /// `Unsupported` where the implementation cannot tell (the default: callers then sync
    /// file by file), or any I/O error.
    fn device(&self, dir: &Self::Dir) -> io::Result<u64> {
        let _ = dir; // nothing to ask: the default is "unsupported"
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Which boot of the machine this is: a string that changes whenever the machine
    /// restarts (Linux's `/proc/sys/kernel/random/boot_id` on [`OsFs`](crate::OsFs)), and
    /// stays the same when only a process restarts. Code that lets unsynced data be named
    /// (and detects it by checksum) uses it to know when a power loss may have torn what it
    /// wrote, so it verifies only then.
    ///
    /// # Errors
    /// Any I/O error. `Ok(None)` means the implementation cannot tell (the default): callers
    /// then assume every open follows a restart of the machine.
    fn boot_id(&self) -> io::Result<Option<String>> {
        Ok(None)
    }

    /// Creates a new empty file with no name, on the file system holding `dir`, open for
    /// reading and writing (Linux's `O_TMPFILE`, mode 0600): nobody can open it, and if the
    /// process or the machine stops before [`link_unnamed`](Fs::link_unnamed) names it, it
    /// is gone (the file system frees it; no leftover to clean). A writer that publishes a
    /// complete file under its final name (a maildir's `new/`) needs no temporary name then:
    /// one directory change per file instead of three (create, link, unlink).
    ///
    /// # Errors
    /// `Unsupported` where the platform or the file system has no unnamed files (the
    /// default; callers then create a named temporary file), or any I/O error.
    fn create_unnamed(&self, dir: &Self::Dir) -> io::Result<Self::File> {
        let _ = dir; // no unnamed files: the default is "unsupported"
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Gives a file made by [`create_unnamed`](Fs::create_unnamed) the name `dir/name`.
    /// Never replaces: `name` must not exist. Not durable until `dir` is synced (and the
    /// file's data only once the file is synced, as for any file).
    ///
    /// # Errors
    /// `AlreadyExists` if `name` exists, `CrossesDevices` (`EXDEV`) if `dir` is on another
    /// file system, `Unsupported` (the default), or any I/O error.
    fn link_unnamed(&self, file: &Self::File, dir: &Self::Dir, name: &str) -> io::Result<()> {
        let _ = (file, dir, name); // no unnamed files: the default is "unsupported"
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Gives the file `from_dir/from` a second name `to_dir/to` (a hard link). Never
    /// replaces: `to` must not exist. Not durable until `to_dir` is synced.
    ///
    /// The default returns `Unsupported`; callers then fall back to
    /// [`rename`](Fs::rename) (see [`move_file`](crate::move_file)).
    ///
    /// # Errors
    /// `AlreadyExists` if `to` exists, `CrossesDevices` (`EXDEV`) across file systems,
    /// `Unsupported`, or any I/O error.
    fn link(
        &self,
        from_dir: &Self::Dir,
        from: &str,
        to_dir: &Self::Dir,
        to: &str,
    ) -> io::Result<()> {
        let _ = (from_dir, from, to_dir, to); // no hard links: the default is "unsupported"
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Renames `from_dir/from` to `to_dir/to` atomically, replacing `to` if it exists. Not
    /// durable until both directories are synced.
    ///
    /// # Errors
    /// `NotFound`, `CrossesDevices`, or any I/O error.
    fn rename(
        &self,
        from_dir: &Self::Dir,
        from: &str,
        to_dir: &Self::Dir,
        to: &str,
    ) -> io::Result<()>;

    /// Removes the file name `name` in `dir` (`unlink`). Not durable until `dir` is synced.
    ///
    /// # Errors
    /// `NotFound`, or any I/O error.
    fn remove_file(&self, dir: &Self::Dir, name: &str) -> io::Result<()>;

    /// The names in `dir`, without `.` and `..`, in no particular order. Names that are not
    /// UTF-8 are skipped (nothing this workspace creates has one, and such a name could not
    /// be passed back to the other operations).
    ///
    /// # Errors
    /// Any I/O error.
    fn list_dir(&self, dir: &Self::Dir) -> io::Result<Vec<String>>;

    /// The last access time of `dir/name`, not following a symlink (maildir(5) cleans
    /// `tmp/` by access time).
    ///
    /// # Errors
    /// `NotFound`, or any I/O error.
    fn accessed(&self, dir: &Self::Dir, name: &str) -> io::Result<SystemTime>;
}
