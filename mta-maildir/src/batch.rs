//! [`DeliveryBatch`]: many deliveries, into one maildir or many, committed together.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use crate::durable::{self, Fs, OsFs};
use crate::error::{DeliverError, DeliverStep, copy_io_error};
use crate::maildir::{Maildir, create_unique};
use crate::name::{DeliveredName, unique_name};

/// Deliveries staged and committed together: one `syncfs` for all their data, a hard link
/// of each into its `new/`, one `syncfs` for all the names.
///
/// [`Maildir::deliver`] costs two fsyncs per message (the file, then `new/`), and on a disk
/// with a write-back cache each ends in a cache flush. A delivery agent that has several
/// messages at hand (qmail-local run for several recipients, or several messages for one
/// user) stages each with [`stage`](DeliveryBatch::stage) (create a file without a name on
/// `tmp/`'s file system, `O_TMPFILE` ([`Fs::create_unnamed`]), or where there is no such
/// thing a unique file in `tmp/`; write it, no sync) and then calls
/// [`commit`](DeliveryBatch::commit) once:
///
/// 1. `syncfs` once per file system the staged files are on: every file's data is durable.
///    A crash before this leaves only unnamed files (freed by the file system) or `tmp/`
///    files, never visible to readers.
/// 2. each file is linked into its maildir's `new/` under a fresh unique name (never
///    replacing one). Its data is already durable, so whichever names survive a crash
///    name complete messages.
/// 3. `syncfs` once per file system again: the names are durable. Only now is a delivery
///    reported `Ok`. A crash between 2 and 3 may keep some names: those messages are
///    complete, and were not reported delivered, so they may be delivered again (the
///    duplicate qmail accepts, never a loss).
/// 4. `tmp/` names, where files had them, are unlinked (not synced; a leftover is cleaned
///    after 36 hours).
///
/// An unnamed file saves two of the three directory changes of the `tmp/` way (the create
/// in `tmp/` and the unlink; the link into `new/` remains): less CPU per delivery, and
/// `tmp/`'s directory block is not written back by every sync.
///
/// So N deliveries cost two cache flushes instead of 2N. Where the file system cannot be
/// identified ([`Fs::device`] unsupported) or `syncfs` is unsupported, the batch falls
/// back to [`Maildir::deliver`]'s syncs for those files (an fsync of each file, then of
/// each `new/`), with the same guarantee.
///
/// `syncfs` also writes back unrelated dirty data of that file system, and Linux reports
/// write-back errors from it only since 5.8. Each staged delivery holds its file's
/// descriptor until the commit, and each maildir of the batch two (`tmp/` and `new/`,
/// opened once per batch, however many deliveries it gets): bound the batch size
/// accordingly.
///
/// ```
/// use mta_maildir::{DeliveryBatch, Maildir, Subdir};
/// # let home = tempfile::tempdir()?;
/// let md = Maildir::create(home.path().join("Maildir"))?;
/// let mut batch = DeliveryBatch::new();
/// for n in 0..3 {
///     batch.stage(&md, format!("X-N: {n}\n").as_bytes(), &b"hello\n"[..])?;
/// }
/// let results = batch.commit(); // one result per staged delivery, in order
/// assert!(results.iter().all(Result::is_ok));
/// assert_eq!(md.list(Subdir::New)?.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DeliveryBatch<F: Fs = OsFs> {
    staged: Vec<Staged<F>>,
    /// The maildirs staged into so far, by path, with their open directories.
    maildirs: Vec<(PathBuf, Arc<Dirs<F>>)>,
}

/// A maildir's `tmp/` and `new/`, opened once per batch.
struct Dirs<F: Fs> {
    tmp: F::Dir,
    new: F::Dir,
    /// The file system's number, `None` when the `Fs` cannot tell (then fsync per file).
    device: Option<u64>,
}

impl<F: Fs> std::fmt::Debug for Dirs<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dirs")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// One staged delivery: its file written (not synced), unnamed or under `tmp_name` in
/// `tmp/`.
struct Staged<F: Fs> {
    fs: F,
    dirs: Arc<Dirs<F>>,
    /// `None` for an unnamed file ([`Fs::create_unnamed`]).
    tmp_name: Option<String>,
    file: F::File,
}

impl<F: Fs> Staged<F> {
    fn tmp(&self) -> &F::Dir {
        &self.dirs.tmp
    }

    fn new_dir(&self) -> &F::Dir {
        &self.dirs.new
    }
}

impl<F: Fs> std::fmt::Debug for Staged<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("tmp_name", &self.tmp_name)
            .field("device", &self.dirs.device)
            .finish_non_exhaustive()
    }
}

impl<F: Fs> Default for DeliveryBatch<F> {
    fn default() -> Self {
        DeliveryBatch {
            staged: Vec::new(),
            maildirs: Vec::new(),
        }
    }
}

impl<F: Fs> DeliveryBatch<F> {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many deliveries are staged.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Stages one delivery into `maildir`: `prefix_headers` then the bytes of `message`,
    /// written exactly as given into a new file, not synced: unnamed on `tmp/`'s file system
    /// ([`Fs::create_unnamed`]), else uniquely named in `tmp/`.
    /// Returns the delivery's position in the batch (its index in
    /// [`commit`](DeliveryBatch::commit)'s results). Nothing is visible in `new/` until the
    /// commit.
    ///
    /// # Errors
    /// [`DeliverError`] naming the failed step ([`DeliverStep::OpenDir`],
    /// [`DeliverStep::CreateTmp`], [`DeliverStep::Write`], [`DeliverStep::ReadMessage`]);
    /// the `tmp/` file is then removed and nothing is staged.
    pub fn stage(
        &mut self,
        maildir: &Maildir<F>,
        prefix_headers: &[u8],
        message: impl Read,
    ) -> Result<usize, DeliverError> {
        let fs = maildir.fs();
        let dirs = self.dirs_of(maildir)?;
        let (mut file, tmp_name) = match fs.create_unnamed(&dirs.tmp) {
            Ok(file) => (file, None),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                let (file, name) = create_unique(fs, &dirs.tmp)?;
                (file, Some(name))
            }
            Err(e) => return Err(DeliverError::new(DeliverStep::CreateTmp, e)),
        };
        if let Err((step, e)) = durable::write_unsynced(fs, &mut file, prefix_headers, message) {
            // Best effort: the write error is what the caller needs; a leftover is cleaned
            // after 36 hours (an unnamed file goes when it is closed).
            if let Some(name) = &tmp_name {
                let _ = durable::remove_unsynced(fs, &dirs.tmp, name);
            }
            return Err(DeliverError::new(step, e));
        }
        self.staged.push(Staged {
            fs: fs.clone(),
            dirs,
            tmp_name,
            file,
        });
        Ok(self.staged.len() - 1)
    }

    /// `maildir`'s `tmp/` and `new/`: opened by its first delivery in this batch, shared by
    /// the rest (a batch of messages for one user opens them once, not twice per message).
    fn dirs_of(&mut self, maildir: &Maildir<F>) -> Result<Arc<Dirs<F>>, DeliverError> {
        if let Some((_, dirs)) = self.maildirs.iter().find(|(p, _)| p == maildir.path()) {
            return Ok(Arc::clone(dirs));
        }
        let open = |sub| {
            maildir
                .open_sub(sub)
                .map_err(|e| DeliverError::new(DeliverStep::OpenDir, e))
        };
        let (tmp, new) = (open("tmp")?, open("new")?);
        let device = maildir.fs().device(&tmp).ok();
        let dirs = Arc::new(Dirs { tmp, new, device });
        self.maildirs
            .push((maildir.path().to_path_buf(), Arc::clone(&dirs)));
        Ok(dirs)
    }

    /// Makes every staged delivery durable in its `new/` (the steps in the
    /// [type docs](DeliveryBatch)) and returns one result per staged delivery, in the order
    /// they were staged: `Ok` with the delivered name only once that name is durable.
    ///
    /// # Errors
    /// Per delivery, a [`DeliverError`] naming the failed step ([`DeliverStep::SyncFile`],
    /// [`DeliverStep::Link`], [`DeliverStep::SyncNew`]); a failed `syncfs` fails every
    /// delivery it covered. Nothing of a failed delivery is left in `new/` (a name not known
    /// durable is taken back, best effort: if that fails too, a retry duplicates it).
    pub fn commit(self) -> Vec<Result<DeliveredName, DeliverError>> {
        self.commit_with(&mut |_| None)
    }

    /// [`commit`](DeliveryBatch::commit), with the two `syncfs` calls offered to the caller
    /// first: before each step's sync of a file system, `sync` is called with its number
    /// ([`Fs::device`]) and may make everything on it durable itself, returning
    /// `Some(result)`; `None` lets the batch call `syncfs`. A caller that syncs that file
    /// system anyway (a mail queue's group commit on the same disk) shares one flush
    /// between its work and the batch's. The sync must start after the call: the batch's
    /// writes (at [`stage`](DeliveryBatch::stage)) or its links (step 2) are done by then.
    ///
    /// # Errors
    /// As [`commit`](DeliveryBatch::commit); an `Err` from `sync` fails the deliveries it
    /// was to cover, as a failed `syncfs` does.
    pub fn commit_with(
        self,
        sync: &mut dyn FnMut(u64) -> Option<io::Result<()>>,
    ) -> Vec<Result<DeliveredName, DeliverError>> {
        let staged = self.staged;
        // 1. The data: one syncfs per file system, or an fsync per file.
        let data = sync_all_of(&staged, sync, |s| durable::sync_all(&s.fs, &s.file));
        let mut linked: Vec<Result<String, DeliverError>> = staged
            .iter()
            .zip(data)
            .map(|(s, synced)| {
                synced.map_err(|e| DeliverError::new(DeliverStep::SyncFile, e))?;
                // 2. Data durable: a new/ name may appear now.
                match &s.tmp_name {
                    None => durable::publish_unnamed(&s.fs, &s.file, s.new_dir(), unique_name),
                    Some(tmp) => {
                        durable::publish_by_link(&s.fs, s.tmp(), tmp, s.new_dir(), unique_name)
                    }
                }
                .map_err(|e| DeliverError::new(DeliverStep::Link, e))
            })
            .collect();
        // 3. The names: one syncfs per file system that got one, or an fsync per new/.
        let linked_ok: Vec<&Staged<F>> = staged
            .iter()
            .zip(&linked)
            .filter(|(_, l)| l.is_ok())
            .map(|(s, _)| s)
            .collect();
        let mut names =
            sync_all_of(&linked_ok, sync, |s| durable::sync_dir(&s.fs, s.new_dir())).into_iter();
        for (s, l) in staged.iter().zip(linked.iter_mut()) {
            if let Ok(name) = l
                && let Some(Err(e)) = names.next()
            {
                // Not known durable: take the name back so a retry does not deliver twice.
                let _ = durable::remove_unsynced(&s.fs, s.new_dir(), name);
                *l = Err(DeliverError::new(DeliverStep::SyncNew, e));
            }
        }
        // 4. The tmp/ names go, success or failure (as in Maildir::deliver).
        for s in &staged {
            if let Some(tmp) = &s.tmp_name {
                let _ = durable::remove_unsynced(&s.fs, s.tmp(), tmp);
            }
        }
        linked
            .into_iter()
            .map(|l| l.map(DeliveredName::new))
            .collect()
    }
}

/// Makes something durable for each of `items`: by one sync per file system (of the
/// item's `tmp/`) where the file system is known (the caller's `shared` sync, else
/// `syncfs`), else, or where `syncfs` is unsupported, by `each`. One result per item, in
/// order.
fn sync_all_of<F: Fs, S: std::borrow::Borrow<Staged<F>>>(
    items: &[S],
    shared: &mut dyn FnMut(u64) -> Option<io::Result<()>>,
    each: impl Fn(&Staged<F>) -> io::Result<()>,
) -> Vec<io::Result<()>> {
    // (device, result of its syncfs; None when unsupported)
    let mut done: Vec<(u64, Option<io::Result<()>>)> = Vec::new();
    items
        .iter()
        .map(|item| {
            let s = item.borrow();
            let Some(dev) = s.dirs.device else {
                return each(s);
            };
            let at = if let Some(i) = done.iter().position(|(d, _)| *d == dev) {
                i
            } else {
                let r = shared(dev).or_else(|| match durable::sync_filesystem(&s.fs, s.tmp()) {
                    Err(e) if e.kind() == io::ErrorKind::Unsupported => None,
                    other => Some(other),
                });
                done.push((dev, r));
                done.len() - 1
            };
            match &done[at].1 {
                Some(r) => r.as_ref().copied().map_err(copy_io_error),
                None => each(s),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Subdir;
    use crate::sim::PowerLossFs;
    use std::path::Path;

    fn setup(n: usize) -> (PowerLossFs, Vec<Maildir<PowerLossFs>>) {
        let fs = PowerLossFs::new();
        let mds = (0..n)
            .map(|i| {
                fs.create_dir_all(Path::new(&format!("/home/u{i}")))
                    .unwrap();
                Maildir::create_in(fs.clone(), format!("/home/u{i}/Maildir")).unwrap()
            })
            .collect();
        (fs, mds)
    }

    #[test]
    fn two_filesystem_syncs_for_a_whole_batch() {
        let (fs, mds) = setup(3);
        let mut batch = DeliveryBatch::new();
        for md in &mds {
            batch.stage(md, b"X: 1\n", &b"body\n"[..]).unwrap();
            batch.stage(md, b"X: 2\n", &b"body\n"[..]).unwrap();
        }
        let before = fs.trace().len();
        let results = batch.commit();
        assert!(results.iter().all(Result::is_ok));
        let trace = &fs.trace()[before..];
        let syncs: Vec<_> = trace.iter().filter(|t| t.starts_with("sync")).collect();
        assert_eq!(syncs.len(), 2, "{trace:?}");
        assert!(syncs.iter().all(|t| t.starts_with("sync_filesystem")));
        for md in &mds {
            assert_eq!(md.list(Subdir::New).unwrap().len(), 2);
            let tmp = format!("{}/tmp", md.path().display());
            assert_eq!(fs.list_dir(&tmp), Some(Vec::new()));
        }
    }

    /// A caller that syncs the file system itself (shared with its own work) is asked
    /// before each of the two steps, with the file system's number, and the batch then
    /// syncs nothing itself; what it reports delivered survives every crash image. A
    /// failed shared sync fails the deliveries and leaves nothing in `new/`.
    #[test]
    fn commit_with_lets_the_caller_make_both_steps_durable() {
        let (fs, mds) = setup(2);
        let mut batch = DeliveryBatch::new();
        for md in &mds {
            batch.stage(md, b"", &b"body\n"[..]).unwrap();
        }
        let dev = fs
            .device(&fs.open_dir(Path::new("/home")).unwrap())
            .unwrap();
        let before = fs.trace().len();
        let mut asked = Vec::new();
        let caller = fs.clone();
        let results = batch.commit_with(&mut |d| {
            asked.push(d);
            let root = caller.open_dir(Path::new("/")).unwrap();
            Some(caller.sync_filesystem(&root))
        });
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(asked, vec![dev, dev], "asked once per step");
        let own: Vec<_> = fs.trace()[before..]
            .iter()
            .filter(|t| t.starts_with("sync"))
            .cloned()
            .collect();
        assert_eq!(own.len(), 2, "only the caller's two syncs: {own:?}");
        for img in fs.crash_images() {
            for i in 0..2 {
                let md = Maildir::open_in(img.clone(), format!("/home/u{i}/Maildir")).unwrap();
                assert_eq!(md.list(Subdir::New).unwrap().len(), 1);
            }
        }

        let (_fs, mds) = setup(1);
        let mut batch = DeliveryBatch::new();
        batch.stage(&mds[0], b"", &b"body\n"[..]).unwrap();
        let results = batch.commit_with(&mut |_| Some(Err(io::Error::from_raw_os_error(5))));
        assert!(results[0].is_err());
        assert!(mds[0].list(Subdir::New).unwrap().is_empty());
    }

    #[test]
    fn separate_filesystems_get_one_sync_each() {
        let (fs, mds) = setup(2);
        fs.mount(Path::new("/home/u1")).unwrap();
        let mut batch = DeliveryBatch::new();
        for md in &mds {
            batch.stage(md, b"", &b"body\n"[..]).unwrap();
        }
        let before = fs.trace().len();
        assert!(batch.commit().iter().all(Result::is_ok));
        let syncs = fs.trace()[before..]
            .iter()
            .filter(|t| t.starts_with("sync_filesystem"))
            .count();
        assert_eq!(syncs, 4);
        for img in fs.crash_images() {
            for i in 0..2 {
                let md = Maildir::open_in(img.clone(), format!("/home/u{i}/Maildir")).unwrap();
                assert_eq!(md.list(Subdir::New).unwrap().len(), 1);
            }
        }
    }

    /// Power lost after every operation of a batch commit: each delivery reported `Ok` is
    /// complete in `new/` in every state the disk may come back in, and nothing in `new/` is
    /// ever partial.
    #[test]
    fn power_loss_at_every_step_keeps_every_reported_delivery() {
        // sync, 4 links, sync
        assert!(power_loss_at_every_step(true) >= 6);
    }

    /// The same where the file system has no unnamed files: staged in `tmp/`.
    #[test]
    fn power_loss_at_every_step_keeps_every_reported_delivery_through_tmp() {
        // sync, 4 links, sync, 4 unlinks
        assert!(power_loss_at_every_step(false) >= 10);
    }

    /// Cuts the power after each operation of a commit of four deliveries into two
    /// maildirs; returns how many operations the commit ran.
    fn power_loss_at_every_step(unnamed: bool) -> usize {
        let bodies: Vec<Vec<u8>> = (0..4)
            .map(|i| format!("message {i}\n").into_bytes())
            .collect();
        let mut n = 0;
        loop {
            n += 1;
            let (fs, mds) = setup(2);
            fs.set_unnamed_unsupported(!unnamed);
            let mut batch = DeliveryBatch::new();
            for (i, body) in bodies.iter().enumerate() {
                batch.stage(&mds[i % 2], b"", &body[..]).unwrap();
            }
            let staged_in_tmp = fs.list_dir("/home/u0/Maildir/tmp").unwrap().len();
            assert_eq!(staged_in_tmp, if unnamed { 0 } else { 2 });
            fs.crash_after(fs.op_count() + n as u64);
            let results = batch.commit();
            let crashed = fs.has_crashed();
            for img in fs.crash_images() {
                for (i, body) in bodies.iter().enumerate() {
                    let md =
                        Maildir::open_in(img.clone(), format!("/home/u{}/Maildir", i % 2)).unwrap();
                    let present: Vec<Vec<u8>> = md
                        .list(Subdir::New)
                        .unwrap()
                        .iter()
                        .map(|e| md.read(e).unwrap())
                        .collect();
                    for p in &present {
                        assert!(bodies.contains(p), "partial message {p:?} at step {n}");
                    }
                    if results[i].is_ok() {
                        assert!(present.contains(body), "lost delivery {i} at step {n}");
                    }
                    let tmp = img.list_dir(format!("/home/u{}/Maildir/tmp", i % 2));
                    if unnamed {
                        assert_eq!(tmp, Some(Vec::new()), "step {n}");
                    }
                }
            }
            if !crashed {
                assert!(results.iter().all(Result::is_ok));
                return n;
            }
        }
    }

    #[test]
    fn failed_sync_reports_every_delivery_and_leaves_nothing_in_new() {
        let (fs, mds) = setup(1);
        let mut batch = DeliveryBatch::new();
        batch.stage(&mds[0], b"", &b"a\n"[..]).unwrap();
        batch.stage(&mds[0], b"", &b"b\n"[..]).unwrap();
        fs.fail_syncs_after(1, 5); // the data sync works, the names' sync fails
        let results = batch.commit();
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().is_err_and(|e| e.step() == DeliverStep::SyncNew))
        );
        fs.clear_faults();
        assert!(mds[0].list(Subdir::New).unwrap().is_empty());
    }
}
