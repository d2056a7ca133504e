//! Handing a message to the queue from another process: the link between an SMTP server that
//! may not write the queue and the one process that owns it (qmail-smtpd → qmail-queue, made
//! a stream over a local socket instead of a setuid program).
//!
//! The SMTP side runs as its own account and cannot open the queue directory; the queue
//! process accepts its connections and does the writing. Every exchange is a frame of
//! [`mta_core::frame`] (length-prefixed fields: nothing an attacker put into a message or an
//! address can be read back as framing):
//!
//! | client → queue | queue → client |
//! |---|---|
//! | `begin` | `id N` (the message's queue id, for the trace line's `qp N`) or `error TEXT` |
//! | `data BYTES` (any number, no reply) | |
//! | `commit SENDER RCPTS` (the recipients [`frame::pack`]ed into one field: there may be more than a frame's fields) | `ok N` once the message is durable, or `error TEXT` |
//! | `abort` (or closing the connection) | |
//!
//! A client says `250` only after `ok`: the queue process replies after the commit's
//! fsyncs, so the guarantee is the same as [`Incoming::commit`](crate::Incoming::commit)'s in
//! one process. A connection that ends mid-message leaves nothing behind (the queue's usual
//! abort). One connection carries any number of messages, one at a time.
//!
//! The queue side trusts nothing it reads: frames are capped ([`MAX_REQUEST`]), an
//! unexpected request ends the connection, and a message can only be committed with a
//! non-empty recipient list. Decoding is a pure function ([`decode_request`],
//! [`decode_reply`]) with a fuzz target.

use std::io::{self, BufReader, BufWriter, Read, Write};

use mta_core::frame;
use mta_core::{Address, Envelope};

use crate::durable::Fs;
use crate::{Incoming, MessageId, MessageInfo, Queue};

/// The largest request frame the queue side reads: a `data` chunk the client sends is at most
/// [`CHUNK`]; a `commit` carries the envelope (a thousand recipients of 256 bytes each fit).
pub const MAX_REQUEST: usize = 1024 * 1024;

/// How much message text a client gathers before it sends a `data` frame.
pub const CHUNK: usize = 64 * 1024;

/// What the client asks of the queue process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Start a message; the reply is its id.
    Begin,
    /// More of the message's bytes.
    Data(Vec<u8>),
    /// Make the message durable with this envelope.
    Commit(Envelope),
    /// Forget the message under way.
    Abort,
}

/// What the queue process answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `begin` worked: the message's id.
    Id(MessageId),
    /// `commit` worked: the message is durable.
    Ok(MessageId),
    /// Either failed (temporarily: the client answers `451`).
    Error(String),
}

/// The fields of a request frame.
pub fn encode_request(request: &Request) -> Vec<Vec<u8>> {
    match request {
        Request::Begin => vec![b"begin".to_vec()],
        Request::Data(bytes) => vec![b"data".to_vec(), bytes.clone()],
        Request::Commit(env) => vec![
            b"commit".to_vec(),
            env.sender.as_bytes().to_vec(),
            frame::pack(env.recipients.iter().map(Address::as_bytes)),
        ],
        Request::Abort => vec![b"abort".to_vec()],
    }
}

/// A request from a frame's fields; `None` for anything that is not exactly one of the four
/// (an unknown verb, missing or extra fields, a commit without recipients).
pub fn decode_request(mut fields: Vec<Vec<u8>>) -> Option<Request> {
    let verb = fields.first()?.clone();
    match (verb.as_slice(), fields.len()) {
        (b"begin", 1) => Some(Request::Begin),
        (b"abort", 1) => Some(Request::Abort),
        (b"data", 2) => fields.pop().map(Request::Data),
        (b"commit", 3) => {
            let recipients = frame::unpack(&fields[2])?;
            if recipients.is_empty() {
                return None;
            }
            let sender = Address::from_bytes(fields.swap_remove(1));
            Some(Request::Commit(Envelope {
                sender,
                recipients: recipients.into_iter().map(Address::from_bytes).collect(),
            }))
        }
        _ => None,
    }
}

/// The fields of a reply frame.
pub fn encode_reply(reply: &Reply) -> Vec<Vec<u8>> {
    match reply {
        Reply::Id(id) => vec![b"id".to_vec(), id.to_string().into_bytes()],
        Reply::Ok(id) => vec![b"ok".to_vec(), id.to_string().into_bytes()],
        Reply::Error(text) => vec![b"error".to_vec(), text.as_bytes().to_vec()],
    }
}

/// A reply from a frame's fields; `None` unless it is exactly one of the three.
pub fn decode_reply(fields: &[Vec<u8>]) -> Option<Reply> {
    let [verb, arg] = fields else { return None };
    let id = || std::str::from_utf8(arg).ok()?.parse::<MessageId>().ok();
    match verb.as_slice() {
        b"id" => id().map(Reply::Id),
        b"ok" => id().map(Reply::Ok),
        b"error" => Some(Reply::Error(String::from_utf8_lossy(arg).into_owned())),
        _ => None,
    }
}

fn send(w: &mut impl Write, fields: &[Vec<u8>]) -> io::Result<()> {
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    frame::write(w, &refs)
}

/// Adds a frame to `w`'s buffer without flushing it: frames that go together leave in one
/// write (one wake-up of the other side, not one per frame).
fn put(w: &mut impl Write, fields: &[&[u8]]) -> io::Result<()> {
    let mut bytes = Vec::new();
    frame::write(&mut bytes, fields)?;
    w.write_all(&bytes)
}

/// Why a submission failed. Every case is temporary for the SMTP client (`451`).
#[derive(Debug)]
#[non_exhaustive]
pub enum SubmitError {
    /// The connection to the queue process failed (it may be restarting).
    Io(io::Error),
    /// The queue process could not take the message; its reason.
    Refused(String),
    /// The queue process answered something that is not a reply.
    Protocol,
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::Io(e) => write!(f, "queue process unreachable: {e}"),
            SubmitError::Refused(text) => write!(f, "queue process: {text}"),
            SubmitError::Protocol => f.write_str("queue process: malformed reply"),
        }
    }
}

impl std::error::Error for SubmitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SubmitError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SubmitError {
    fn from(e: io::Error) -> Self {
        SubmitError::Io(e)
    }
}

/// The client side of one connection: sends messages to the queue process one at a time.
#[derive(Debug)]
pub struct Submitter<S: Read + Write> {
    reader: BufReader<S>,
    writer: BufWriter<S>,
    /// A `begin` was sent ahead ([`Submitter::begin_ahead`]); its reply is still unread.
    begun: bool,
    /// The last message's chunk buffer, kept for the next one (a connection carries many
    /// messages; each would otherwise allocate [`CHUNK`] bytes anew).
    spare: Vec<u8>,
}

impl<S: Read + Write> Submitter<S> {
    /// A client over `stream`; `clone` is a second handle on the same connection (e.g.
    /// `UnixStream::try_clone`), used for writing.
    pub fn new(stream: S, clone: S) -> Self {
        Submitter {
            reader: BufReader::new(stream),
            writer: BufWriter::with_capacity(CHUNK + 64, clone),
            begun: false,
            spare: Vec::new(),
        }
    }

    /// Sends the next message's `begin` now, without waiting for its reply: an idle
    /// connection kept for the next message then has its id ready, and [`Submitter::begin`]
    /// costs no round trip. (The queue process holds a message file open for it meanwhile,
    /// dropped if the connection closes.)
    ///
    /// # Errors
    /// The connection failed; it should be dropped.
    pub fn begin_ahead(&mut self) -> io::Result<()> {
        if !self.begun {
            send(&mut self.writer, &encode_request(&Request::Begin))?;
            self.begun = true;
        }
        Ok(())
    }

    fn reply(&mut self) -> Result<Reply, SubmitError> {
        let fields = frame::read_limited(&mut self.reader, 64 * 1024)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        decode_reply(&fields).ok_or(SubmitError::Protocol)
    }

    /// Starts a message.
    ///
    /// # Errors
    /// [`SubmitError`]: the connection failed or the queue could not start a message. The
    /// connection is usable afterwards only for [`SubmitError::Refused`].
    pub fn begin(mut self) -> Result<Submission<S>, (SubmitError, Option<Self>)> {
        if !self.begun
            && let Err(e) = send(&mut self.writer, &encode_request(&Request::Begin))
        {
            return Err((e.into(), None));
        }
        self.begun = false;
        match self.reply() {
            Ok(Reply::Id(id)) => {
                let mut buf = std::mem::take(&mut self.spare);
                buf.clear();
                buf.reserve_exact(CHUNK);
                Ok(Submission {
                    conn: self,
                    id,
                    buf,
                })
            }
            Ok(Reply::Error(text)) => Err((SubmitError::Refused(text), Some(self))),
            Ok(Reply::Ok(_)) => Err((SubmitError::Protocol, None)),
            Err(e) => Err((e, None)),
        }
    }
}

/// A message under way through a [`Submitter`]: write its bytes, then commit. Dropping it
/// without committing sends nothing more; the queue process drops the message when the
/// connection closes.
#[derive(Debug)]
pub struct Submission<S: Read + Write> {
    conn: Submitter<S>,
    id: MessageId,
    buf: Vec<u8>,
}

impl<S: Read + Write> Submission<S> {
    /// The queue id the message will have.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Appends message bytes (sent in [`CHUNK`]-sized frames).
    ///
    /// # Errors
    /// The connection failed.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), SubmitError> {
        while !bytes.is_empty() {
            let room = CHUNK - self.buf.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = later;
            if self.buf.len() == CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), SubmitError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let refs: [&[u8]; 2] = [b"data", &self.buf];
        put(&mut self.conn.writer, &refs)?;
        self.buf.clear();
        Ok(())
    }

    /// Commits the message with `envelope`; returns once the queue process reports it
    /// durable, with the connection for the next message.
    ///
    /// # Errors
    /// [`SubmitError`]: nothing was committed, or (for `Io` after the request went out) the
    /// outcome is unknown, as with any lost connection; the SMTP client retries, which at
    /// worst queues the message twice.
    pub fn commit(self, envelope: &Envelope) -> Result<(MessageId, Submitter<S>), SubmitError> {
        self.commit_then(envelope, false)
    }

    /// [`Submission::commit`], with the next message's `begin` sent in the same write (as
    /// [`Submitter::begin_ahead`] would): the connection comes back with its next id
    /// already asked for, and the queue process is woken once for the message's last
    /// data, its commit and the next begin.
    ///
    /// # Errors
    /// As [`Submission::commit`].
    pub fn commit_and_begin_next(
        self,
        envelope: &Envelope,
    ) -> Result<(MessageId, Submitter<S>), SubmitError> {
        self.commit_then(envelope, true)
    }

    fn commit_then(
        mut self,
        envelope: &Envelope,
        begin_next: bool,
    ) -> Result<(MessageId, Submitter<S>), SubmitError> {
        self.flush_chunk()?;
        let commit = encode_request(&Request::Commit(envelope.clone()));
        let refs: Vec<&[u8]> = commit.iter().map(Vec::as_slice).collect();
        put(&mut self.conn.writer, &refs)?;
        if begin_next {
            put(&mut self.conn.writer, &[b"begin"])?;
        }
        self.conn.writer.flush()?;
        match self.conn.reply()? {
            Reply::Ok(id) if id == self.id => {
                self.conn.begun = begin_next;
                self.conn.spare = std::mem::take(&mut self.buf);
                Ok((id, self.conn))
            }
            Reply::Error(text) => Err(SubmitError::Refused(text)),
            _ => Err(SubmitError::Protocol),
        }
    }
}

/// How many of a message's first bytes [`Committed::head`] holds: enough for a trace line
/// (qmail-queue's `Received: (qmail PID invoked by uid UID); DATE` is under 100).
pub const HEAD_LEN: usize = 256;

/// A message [`serve`] made durable, as its `committed` callback sees it: what a scheduler
/// needs to start delivering it without reading the file back (the queue process of a
/// daemon that receives over this protocol would otherwise open and read every new
/// message once more).
#[derive(Debug)]
pub struct Committed<'a> {
    /// What [`Queue::info`] would read back now: id, birth, length, envelope, and every
    /// recipient pending ([`Incoming::commit_info`]).
    pub info: MessageInfo,
    /// The message's first bytes, up to [`HEAD_LEN`] (all of a shorter message).
    pub head: &'a [u8],
}

/// The queue side of one connection (`stream` to read, `clone` to write: two handles on one
/// socket): serves requests until the client closes it or breaks the protocol. `committed`
/// is called with each message made durable (before its `ok` goes out), e.g. to tell the
/// scheduler.
///
/// # Errors
/// I/O errors on the connection, or `InvalidData` for a request that is not one (the
/// connection should then be closed; the message under way is dropped).
pub fn serve<F: Fs>(
    queue: &Queue<F>,
    stream: impl Read,
    clone: impl Write,
    mut committed: impl FnMut(Committed<'_>),
) -> io::Result<()> {
    /// The message under way on this connection.
    enum State<F: Fs> {
        Idle,
        Open(Incoming<F>),
        /// A write failed: the rest of the message is read and dropped, and its commit
        /// gets this error.
        Failed(String),
    }
    let mut reader = BufReader::with_capacity(CHUNK + 64, stream);
    let mut writer = BufWriter::new(clone);
    let mut state = State::<F>::Idle;
    // The first bytes of the message under way, for `Committed::head`.
    let mut head: Vec<u8> = Vec::with_capacity(HEAD_LEN);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad submission request");
    loop {
        // Replies wait in the buffer while more requests are already here (a client sends a
        // message's last data, its commit and the next begin together): one write for all.
        if reader.buffer().is_empty() {
            writer.flush()?;
        }
        let Some(fields) = frame::read_limited(&mut reader, MAX_REQUEST)? else {
            return Ok(());
        };
        match (decode_request(fields).ok_or_else(bad)?, &mut state) {
            (Request::Begin, State::Idle) => {
                let reply = match queue.begin() {
                    Ok(incoming) => {
                        let id = incoming.id();
                        head.clear();
                        state = State::Open(incoming);
                        Reply::Id(id)
                    }
                    Err(e) => Reply::Error(e.to_string()),
                };
                let reply = encode_reply(&reply);
                let refs: Vec<&[u8]> = reply.iter().map(Vec::as_slice).collect();
                put(&mut writer, &refs)?;
            }
            (Request::Data(bytes), State::Open(incoming)) => {
                let room = HEAD_LEN - head.len();
                head.extend_from_slice(&bytes[..room.min(bytes.len())]);
                if let Err(e) = incoming.write(&bytes) {
                    state = State::Failed(format!("write error: {e}"));
                }
            }
            (Request::Data(_), State::Failed(_)) => {}
            (Request::Commit(env), State::Open(_) | State::Failed(_)) => {
                let reply = match std::mem::replace(&mut state, State::Idle) {
                    State::Open(incoming) => match incoming.commit_info(&env) {
                        Ok(info) => {
                            let id = info.id;
                            committed(Committed { info, head: &head });
                            Reply::Ok(id)
                        }
                        Err(e) => Reply::Error(e.to_string()),
                    },
                    State::Failed(text) => Reply::Error(text),
                    State::Idle => return Err(bad()),
                };
                let reply = encode_reply(&reply);
                let refs: Vec<&[u8]> = reply.iter().map(Vec::as_slice).collect();
                put(&mut writer, &refs)?;
            }
            (Request::Abort, _) => state = State::Idle,
            _ => return Err(bad()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn env(rcpts: &[&str]) -> Envelope {
        Envelope::new(
            Address::from_bytes("a@example.org"),
            rcpts.iter().map(|r| Address::from_bytes(*r)),
        )
    }

    #[test]
    fn requests_and_replies_round_trip() {
        for r in [
            Request::Begin,
            Request::Abort,
            Request::Data(b"x\0\r\n".to_vec()),
            Request::Commit(env(&["b@example.org", "c@example.org"])),
        ] {
            assert_eq!(decode_request(encode_request(&r)), Some(r));
        }
        // More recipients than a frame has fields (W3's 8,192), through a real frame.
        let many: Vec<String> = (0..10_000).map(|i| format!("u{i}@example.org")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let r = Request::Commit(env(&many));
        let fields = encode_request(&r);
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        let mut wire = Vec::new();
        frame::write(&mut wire, &refs).unwrap();
        let back = frame::read_limited(&mut &wire[..], MAX_REQUEST)
            .unwrap()
            .unwrap();
        assert_eq!(decode_request(back), Some(r));
        for r in [
            Reply::Id(MessageId::from_u64(7)),
            Reply::Ok(MessageId::from_u64(u64::MAX)),
            Reply::Error("disk full".into()),
        ] {
            assert_eq!(decode_reply(&encode_reply(&r)), Some(r));
        }
    }

    #[test]
    fn malformed_requests_are_refused() {
        let f = |v: &[&[u8]]| v.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
        assert_eq!(decode_request(f(&[])), None);
        assert_eq!(decode_request(f(&[b"begin", b"x"])), None);
        assert_eq!(decode_request(f(&[b"data"])), None);
        // A commit needs a sender and at least one recipient.
        assert_eq!(decode_request(f(&[b"commit", b"a@b"])), None);
        assert_eq!(decode_request(f(&[b"commit", b"a@b", b""])), None);
        assert_eq!(
            decode_request(f(&[b"commit", b"a@b", b"\0\0\0\x09x"])),
            None
        );
        assert_eq!(decode_request(f(&[b"BEGIN"])), None);
        assert_eq!(decode_reply(&f(&[b"ok", b"-1"])), None);
        assert_eq!(decode_reply(&f(&[b"id", b"1", b"2"])), None);
    }

    #[test]
    fn a_message_crosses_the_socket_and_is_durable_before_ok() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path(), crate::QueueOptions::default()).unwrap();
        let (client, server) = UnixStream::pair().unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| {
                let c = server.try_clone().unwrap();
                serve(&queue, server, c, |done| {
                    // What the callback is told is what the queue reads back.
                    let read = queue.info(done.info.id).unwrap();
                    assert_eq!(read.birth, done.info.birth);
                    assert_eq!(read.body_len, done.info.body_len);
                    assert_eq!(read.envelope, done.info.envelope);
                    assert_eq!(read.statuses, done.info.statuses);
                    let mut want = b"Subject: t\r\n\r\n".to_vec();
                    want.resize(HEAD_LEN, b'x');
                    assert_eq!(done.head, &want[..]);
                    seen.lock().unwrap().push(done.info.id);
                })
                .unwrap();
            });
            let c = client.try_clone().unwrap();
            let mut conn = Submitter::new(client, c);
            let body = vec![b'x'; CHUNK * 2 + 17];
            let mut ids = Vec::new();
            for n in 0..3 {
                if n == 2 {
                    conn.begin_ahead().unwrap();
                }
                let mut m = conn.begin().map_err(|(e, _)| e).unwrap();
                m.write(b"Subject: t\r\n\r\n").unwrap();
                m.write(&body).unwrap();
                let want = m.id();
                let (id, next) = if n == 0 {
                    m.commit_and_begin_next(&env(&["b@example.org"])).unwrap()
                } else {
                    m.commit(&env(&["b@example.org"])).unwrap()
                };
                assert_eq!(id, want, "message {n}");
                ids.push(id);
                conn = next;
            }
            // Abandoning a message mid-way leaves nothing queued.
            let mut m = conn.begin().map_err(|(e, _)| e).unwrap();
            m.write(b"partial").unwrap();
            drop(m);
            assert_eq!(*seen.lock().unwrap(), ids);
            for id in ids {
                let mut text = Vec::new();
                queue
                    .open_message(id)
                    .unwrap()
                    .read_to_end(&mut text)
                    .unwrap();
                assert_eq!(text.len(), 14 + body.len());
            }
        });
        assert_eq!(queue.scan().unwrap().len(), 3);
    }

    #[test]
    fn a_request_out_of_order_ends_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path(), crate::QueueOptions::default()).unwrap();
        let mut input = Vec::new();
        let data: [&[u8]; 2] = [b"data", b"x"];
        frame::write(&mut input, &data).unwrap();
        let mut out = Vec::new();
        let e = serve(&queue, &input[..], &mut out, |_| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(queue.scan().unwrap().is_empty());
    }
}
