//! Enqueueing: [`Incoming`] (streaming, for SMTP DATA) and [`Queue::enqueue`]; reading a
//! message back with [`MessageReader`].

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use mta_core::Envelope;

use crate::durable::{self, Access, Fs};
use crate::format::{self, HEADER_LEN, Header};
use crate::queue::{CommitMode, DirOp};
use crate::state::Paths;
use crate::{MessageId, MessageInfo, OsFs, Queue, QueueError, Status};

/// Bytes gathered before one write to the file.
const CHUNK: usize = 64 * 1024;

/// A message being received: bytes go to a `tmp/` file as they arrive; nothing is visible
/// in the queue until [`Incoming::commit`] returns. Dropping it without committing is an
/// [abort](Incoming::abort).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use mta_queue::{Queue, QueueOptions};
/// use mta_core::Envelope;
/// let queue = Queue::open(dir.path(), QueueOptions::default())?;
/// let mut incoming = queue.begin()?;
/// incoming.write(b"Subject: hi\r\n\r\n")?;
/// incoming.write(b"body\r\n")?;
/// let id = incoming.commit(&Envelope::new("a@example.com", ["b@example.org"]))?;
/// assert_eq!(queue.info(id)?.body_len, 21);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Incoming<F: Fs = OsFs> {
    queue: Queue<F>,
    id: MessageId,
    paths: Paths,
    file: Option<F::File>,
    buf: Vec<u8>,
    flushed: u64,
    /// Length of the reused file's old contents (0 for a new file): cut off at commit.
    reused_len: u64,
    /// The file's slot, which goes with it to the free list when the message is removed
    /// (see `FreeList`).
    slot: u64,
    /// CRC-32 of the message bytes so far (the header's, format 2).
    body_crc: u32,
}

impl<F: Fs> Queue<F> {
    /// Starts receiving a message: reserves its id and makes its `tmp/` file, reusing a
    /// removed message's file (its free name `mess/<n>/free.<id>`) when there is one (see
    /// [`QueueOptions::recycle`](crate::QueueOptions::recycle)).
    ///
    /// # Errors
    /// [`QueueError::Io`] if the file cannot be created (e.g. out of inodes).
    pub fn begin(&self) -> Result<Incoming<F>, QueueError> {
        if self.inner.read_only {
            return Err(QueueError::ReadOnly);
        }
        let id = MessageId::from_u64(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let mut paths = Paths::of(id, self.inner.split);
        let (file, reused_len, slot) = if let Some((path, file, len, slot)) = self.reuse_free() {
            // Written under its free name, which recovery discards like a tmp/ name.
            paths.tmp = path;
            (file, len, slot)
        } else {
            let file = self
                .retry_when_full(|| self.inner.fs.create_new(&self.inner.root, &paths.tmp))
                .map_err(|e| QueueError::io("create", paths.tmp.clone(), e))?;
            (file, 0, crate::queue::lock(&self.inner.free).new_slot())
        };
        Ok(Incoming {
            queue: self.clone(),
            id,
            paths,
            file: Some(file),
            buf: Vec::new(),
            flushed: 0,
            reused_len,
            slot,
            body_crc: 0,
        })
    }

    /// Queues a message read to the end from `message`, with envelope `envelope`. When this
    /// returns `Ok`, the message and envelope are durable (qmail-queue's exit 0): they
    /// survive a crash or power loss at any later moment.
    ///
    /// # Errors
    /// [`QueueError::Io`] when reading `message` or storing fails (nothing is then visible in
    /// the queue); [`QueueError::TooLarge`] for an oversized envelope.
    pub fn enqueue(
        &self,
        envelope: &Envelope,
        mut message: impl Read,
    ) -> Result<MessageId, QueueError> {
        let mut incoming = self.begin()?;
        let mut chunk = [0u8; 8192];
        loop {
            match message.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => incoming.write(&chunk[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(QueueError::io("read", "message", e)),
            }
        }
        incoming.commit(envelope)
    }

    /// Opens the stored bytes of message `id` for reading.
    ///
    /// # Errors
    /// [`QueueError::NotFound`], [`QueueError::Corrupt`] or [`QueueError::Io`].
    pub fn open_message(&self, id: MessageId) -> Result<MessageReader<F>, QueueError> {
        let (file, header, _) = self.open_file(id, Access::Read)?;
        Ok(MessageReader {
            queue: self.clone(),
            file,
            pos: 0,
            len: header.body_len,
        })
    }
}

impl<F: Fs> Incoming<F> {
    /// The id the message will have once committed.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    /// True if no bytes were received yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn file(&self) -> Result<&F::File, QueueError> {
        self.file.as_ref().ok_or_else(|| {
            QueueError::io(
                "write",
                self.paths.tmp.clone(),
                io::Error::other("already finished"),
            )
        })
    }

    /// Appends message bytes (buffered; written to the file in 64 KiB pieces, not synced).
    ///
    /// # Errors
    /// [`QueueError::Io`] if a write fails; the message should then be aborted.
    pub fn write(&mut self, data: &[u8]) -> Result<(), QueueError> {
        self.body_crc = format::crc32_update(self.body_crc, data);
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            let offset = HEADER_LEN + self.flushed;
            let fs = &self.queue.inner.fs;
            let file = self.file()?;
            self.queue
                .retry_when_full(|| fs.write_all_at(file, &self.buf, offset))
                .map_err(|e| QueueError::io("write", self.paths.tmp.clone(), e))?;
            self.flushed += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Commits the message with its envelope and returns its id. When this returns `Ok` the
    /// message is durable: under [`CommitMode::Filesystem`] it was renamed into `mess/` and
    /// a `syncfs` that started after the rename finished (shared with concurrent commits);
    /// otherwise its bytes were fsynced, then it was renamed and that directory fsynced.
    /// This is the moment to answer `250` to DATA.
    ///
    /// # Errors
    /// [`QueueError::Io`] or [`QueueError::TooLarge`]; nothing is then visible in the queue.
    pub fn commit(mut self, envelope: &Envelope) -> Result<MessageId, QueueError> {
        let result = self.commit_inner(envelope, SystemTime::now());
        if result.is_ok() {
            self.file = None;
        }
        result
    }

    /// [`commit`](Incoming::commit), returning what [`Queue::info`] would now read back
    /// from the file (the birth recorded, the length, the envelope, every recipient
    /// [`Pending`](Status::Pending)) without reading it: for the process that committed the
    /// message and hands it to its scheduler (qmail-send read each new message's `info` and
    /// `local`/`remote` files again; here the committer has them).
    ///
    /// # Errors
    /// As [`commit`](Incoming::commit).
    pub fn commit_info(mut self, envelope: &Envelope) -> Result<MessageInfo, QueueError> {
        let birth = SystemTime::now();
        let body_len = self.len();
        let id = self.commit_inner(envelope, birth)?;
        self.file = None;
        Ok(MessageInfo {
            id,
            birth,
            body_len,
            envelope: envelope.clone(),
            statuses: vec![Status::Pending; envelope.recipients.len()],
        })
    }

    fn commit_inner(
        &mut self,
        envelope: &Envelope,
        birth: SystemTime,
    ) -> Result<MessageId, QueueError> {
        let fs = &self.queue.inner.fs;
        let root = &self.queue.inner.root;
        let tmp = &self.paths.tmp;
        let meta = format::encode_meta(birth, envelope, Some(self.id.as_u64()))
            .map_err(|_| QueueError::TooLarge)?;
        let header = Header {
            body_len: self.len(),
            meta_len: meta.len() as u32,
            nrcpt: envelope.recipients.len() as u32,
            body_crc: Some(self.body_crc),
        };
        let head = format::encode_header(&header);
        let end = header.status_offset();
        // A reused file's old bytes past the new end would read as status records.
        let cut = |file: &F::File| {
            if self.reused_len > end {
                fs.set_len(file, end)
                    .map_err(|e| QueueError::io("truncate", tmp.clone(), e))
            } else {
                Ok(())
            }
        };
        let rounds = inner_uses_rounds(&self.queue);
        if self.flushed == 0 {
            // The common small message: header, body and envelope in one write.
            let mut all = Vec::with_capacity(head.len() + self.buf.len() + meta.len());
            all.extend_from_slice(&head);
            all.extend_from_slice(&self.buf);
            all.extend_from_slice(&meta);
            let file = self.file()?;
            cut(file)?;
            self.queue
                .retry_when_full(|| {
                    if rounds {
                        fs.write_all_at(file, &all, 0)
                    } else {
                        durable::write_at_synced(fs, file, 0, &all)
                    }
                })
                .map_err(|e| QueueError::io("write", tmp.clone(), e))?;
        } else {
            self.buf.extend_from_slice(&meta);
            let file = self.file()?;
            self.queue
                .retry_when_full(|| fs.write_all_at(file, &self.buf, HEADER_LEN + self.flushed))
                .map_err(|e| QueueError::io("write", tmp.clone(), e))?;
            cut(file)?;
            if rounds {
                fs.write_all_at(file, &head, 0)
            } else {
                durable::write_at_synced(fs, file, 0, &head)
            }
            .map_err(|e| QueueError::io("write", tmp.clone(), e))?;
        }
        let inner = &self.queue.inner;
        let published = match inner.commit {
            CommitMode::Filesystem if rounds => {
                let published = inner.rounds.submit((self.id, self.paths.clone()), &**inner);
                match published {
                    Err(QueueError::Io { source, .. })
                        if source.kind() == io::ErrorKind::Unsupported =>
                    {
                        // No syncfs here. The round linked the message already: make its
                        // data durable, then its name (the grouped way's two syncs, in
                        // that order), and commit all later messages the grouped way.
                        inner.no_syncfs.store(true, Ordering::Relaxed);
                        let file = self.file()?;
                        durable::sync_data(fs, file)
                            .map_err(|e| QueueError::io("sync", tmp.clone(), e))
                            .and_then(|()| {
                                durable::sync_dir_at(fs, root, &self.paths.dir)
                                    .map_err(|e| QueueError::io("sync", self.paths.dir.clone(), e))
                            })
                    }
                    other => other,
                }
            }
            CommitMode::Grouped | CommitMode::Filesystem => inner
                .publisher
                .submit(DirOp::Publish(self.id, self.paths.clone()), &|ops| {
                    inner.run_dir_ops(ops)
                }),
            CommitMode::PerMessage => {
                durable::publish_by_move(fs, root, tmp, &self.paths.mess, &self.paths.dir)
                    .map_err(|e| QueueError::io("publish", self.paths.mess.clone(), e))
            }
        };
        if let Err(e) = published {
            // The rename may have happened without its directory sync: take the name back so
            // a message whose sender was told to retry is not delivered as well. Best effort:
            // if this fails too, the message stays queued and is delivered (a duplicate, the
            // failure mode qmail accepts).
            let _ = durable::discard(fs, root, &self.paths.mess);
            return Err(e);
        }
        crate::queue::mark_verified(&self.queue, self.id);
        crate::queue::lock(&inner.free).committed(self.id, self.slot);
        Ok(self.id)
    }

    /// Abandons the message: its `tmp/` file is removed and nothing is queued.
    ///
    /// # Errors
    /// [`QueueError::Io`] if the file cannot be removed (the next [`Queue::open`] removes it).
    pub fn abort(mut self) -> Result<(), QueueError> {
        self.discard()
    }

    fn discard(&mut self) -> Result<(), QueueError> {
        if self.file.take().is_some() {
            durable::discard(
                &self.queue.inner.fs,
                &self.queue.inner.root,
                &self.paths.tmp,
            )
            .map_err(|e| QueueError::io("unlink", self.paths.tmp.clone(), e))?;
        }
        Ok(())
    }
}

/// Whether this queue commits in [`CommitMode::Filesystem`] rounds (data written unsynced,
/// the round's `syncfs` makes it durable) rather than with a file sync per message.
fn inner_uses_rounds<F: Fs>(queue: &Queue<F>) -> bool {
    queue.inner.commit == CommitMode::Filesystem && !queue.inner.no_syncfs.load(Ordering::Relaxed)
}

impl<F: Fs> Drop for Incoming<F> {
    fn drop(&mut self) {
        // An error here leaves a tmp/ file that recovery removes at the next open.
        let _ = self.discard();
    }
}

impl<F: Fs> io::Write for Incoming<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Incoming::write(self, buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The stored bytes of a queued message, from [`Queue::open_message`].
#[derive(Debug)]
pub struct MessageReader<F: Fs = OsFs> {
    queue: Queue<F>,
    file: F::File,
    pos: u64,
    len: u64,
}

impl<F: Fs> MessageReader<F> {
    /// The message's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl MessageReader<OsFs> {
    /// The open message file and where the message's bytes start in it: to hand the
    /// message to another process (its descriptor, passed over a Unix socket) that may not
    /// open the queue itself; it reads [`len`](Self::len) bytes from that offset with
    /// `pread`, never changing the file.
    pub fn file_range(&self) -> (&std::fs::File, u64) {
        (&self.file, HEADER_LEN)
    }
}

impl<F: Fs> Read for MessageReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .queue
            .inner
            .fs
            .read_at(&self.file, &mut buf[..want], HEADER_LEN + self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}
