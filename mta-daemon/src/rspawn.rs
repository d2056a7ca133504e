//! The remote delivery process (`mtar`, qmail-rspawn + qmail-remote) and the queue
//! process's side of its link.
//!
//! Outbound SMTP and DNS answers are the Internet talking back, so they are parsed by a
//! process that can do nothing else: it runs as the remote account, cannot open the queue
//! (mode 0700, the queue account's), and reads each message only through the descriptor the
//! queue process passes with the job. It listens on `DIR/run/remote/socket` (directory
//! 0750, the queue account's group; the peer's uid is checked with `SO_PEERCRED`); each of
//! the queue's `concurrencyremote` delivery threads keeps a connection and sends one job at
//! a time: one byte carrying the message file's descriptor (`SCM_RIGHTS`), then a frame of
//! [`mta_queue::rspawn`]; the answer is the results frame. A connection that breaks
//! mid-job (the process was killed) defers the job: the remote host may have taken the
//! message, so a retry can duplicate it, never lose it (qmail's "Possible duplicate!").
//!
//! The remote process keeps what qmail-remote and qmail-tcpto kept: the DNS cache, the
//! hosts marked down (`flush` forgets them), the TLS and DKIM configuration; it rereads
//! `control/` like the others.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mta_core::{DeliveryResult, frame};
use mta_queue::rspawn::{self, RemoteJob, RemoteTarget, Request};
use mta_queue::{MessageId, Queue};

use crate::log;
use crate::master::Order;
use crate::remote::{Messages, RemoteDelivery};
use crate::root::Root;
use crate::sched::{Job, Target};

/// `DIR/run/remote/socket`.
pub fn socket_path(root: &Root) -> PathBuf {
    crate::tree::remote_run(root).join("socket")
}

/// The largest request frame read (a job to a thousand recipients fits many times).
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// Sends one request: a byte carrying `fd` when given, then the frame, in one `sendmsg`
/// when the socket takes it all.
fn send_request(
    conn: &UnixStream,
    request: &Request,
    fd: Option<&std::fs::File>,
) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(file) = fd {
        fds = [file.as_fd()];
        if !ancillary.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("ancillary buffer"));
        }
    }
    let fields = rspawn::encode_request(request);
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    let mut bytes = Vec::new();
    frame::write(&mut bytes, &refs)?;
    let sent = sendmsg(
        conn,
        &[io::IoSlice::new(b"J"), io::IoSlice::new(&bytes)],
        &mut ancillary,
        SendFlags::NOSIGNAL,
    )?;
    // The rest, if the socket buffer took only part (the descriptor went with the first).
    let rest = bytes.get(sent.saturating_sub(1)..).unwrap_or_default();
    io::Write::write_all(&mut &*conn, rest)
}

/// Receives one request and the descriptor that came with it; `None` at the end.
///
/// `reader` buffers `conn` for the whole connection (one allocation per connection, not
/// one per job). The descriptor-carrying byte is read from the socket itself, so nothing
/// may be left in the buffer when a request starts: the queue process sends the next
/// request only after the answer to this one, and a peer that sends more is refused.
fn recv_request(
    reader: &mut io::BufReader<&UnixStream>,
) -> io::Result<Option<(Request, Option<OwnedFd>)>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    if !reader.buffer().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request sent before the previous one was answered",
        ));
    }
    let conn: &UnixStream = reader.get_ref();
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = recvmsg(
        conn,
        &mut [io::IoSliceMut::new(&mut byte)],
        &mut ancillary,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    for msg in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            // More than one descriptor is not ours to keep: dropped (closed) here.
            fd = rights.into_iter().next();
        }
    }
    if got.bytes == 0 {
        return Ok(None);
    }
    // Buffered: the frame arrives in one or two reads, not one per field.
    let fields = frame::read_limited(reader, MAX_REQUEST)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    let request = rspawn::decode_request(&fields)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad remote request"))?;
    Ok(Some((request, fd)))
}

/// The messages of the jobs under way in the remote process: the passed descriptors, by
/// message id (one message's jobs to several domains may run at once).
#[derive(Debug, Default)]
struct JobMessages {
    open: Mutex<HashMap<MessageId, Passed>>,
}

/// A passed message file, where its bytes start, how many, and the jobs using it.
type Passed = (Arc<std::fs::File>, u64, u64, usize);

impl JobMessages {
    fn register(&self, id: MessageId, file: Arc<std::fs::File>, offset: u64, len: u64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.entry(id)
            .and_modify(|e| e.3 += 1)
            .or_insert((file, offset, len, 1));
    }

    fn unregister(&self, id: MessageId) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = open.get_mut(&id) {
            e.3 -= 1;
            if e.3 == 0 {
                open.remove(&id);
            }
        }
    }
}

/// Reads `len` bytes from `offset` of a shared file with `pread`.
struct Slice {
    file: Arc<std::fs::File>,
    pos: u64,
    end: u64,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Messages for JobMessages {
    fn open(&self, id: MessageId) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let (file, offset, len, _) = open
            .get(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such message"))?;
        let slice = Slice {
            file: Arc::clone(file),
            pos: *offset,
            end: offset + len,
        };
        Ok((Box::new(slice), *len))
    }
}

/// Runs the remote delivery process until the master says stop.
///
/// # Errors
/// What kept it from starting (the control files, its socket).
pub fn run(
    root: &Root,
    orders: &crossbeam_channel::Receiver<Order>,
    ready: &dyn Fn(),
) -> Result<(), String> {
    let messages = Arc::new(JobMessages::default());
    let remote = Arc::new(
        RemoteDelivery::with_messages(&root.control(), Arc::clone(&messages) as Arc<dyn Messages>)
            .map_err(|e| format!("remote delivery: {e}"))?,
    );
    let settings = crate::settings::Settings::load(&root.control())?;
    if settings.control.smtpauth_unreadable {
        log::line(
            "warning: control/smtpauth is not readable by the remote account; no logins for \
             smarthosts",
        );
    }
    let path = socket_path(root);
    let listener =
        crate::serve::bind_unix(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let own = rustix::process::getuid().as_raw();
    let queue_uid = crate::tree::owner_uid(&root.queue()).unwrap_or(own);
    let allowed = [0, own, queue_uid];
    {
        let (remote, messages) = (Arc::clone(&remote), Arc::clone(&messages));
        std::thread::Builder::new()
            .name("remote-accept".into())
            .spawn(move || accept_loop(&listener, &allowed, &remote, &messages))
            .map_err(|e| format!("spawn: {e}"))?;
    }
    ready();
    crate::serve::wait_for_orders(
        orders,
        root,
        || match remote.reload(&root.control()) {
            Ok(()) => log::line("status: remote reloaded configuration"),
            Err(e) => log::line(&format!(
                "alert: remote unable to reread controls: {}; keeping the previous \
                 configuration",
                log::safe(e.as_bytes())
            )),
        },
        || remote.reset_downed_hosts(),
    );
    Ok(())
}

fn accept_loop(
    listener: &UnixListener,
    allowed: &[u32; 3],
    remote: &Arc<RemoteDelivery>,
    messages: &Arc<JobMessages>,
) {
    let mut pacer = crate::accept::Pacer::new("remote link");
    for conn in listener.incoming() {
        let Some(conn) = pacer.take(conn) else {
            continue;
        };
        let ok = rustix::net::sockopt::socket_peercred(&conn)
            .is_ok_and(|c| allowed.contains(&c.uid.as_raw()));
        if !ok {
            continue;
        }
        let (remote, messages) = (Arc::clone(remote), Arc::clone(messages));
        let spawned = std::thread::Builder::new()
            .name("remote-conn".into())
            .spawn(move || {
                if let Err(e) = serve_connection(&conn, &remote, &messages)
                    && e.kind() != io::ErrorKind::ConnectionReset
                {
                    log::line(&format!(
                        "warning: remote link: {}",
                        log::safe(e.to_string().as_bytes())
                    ));
                }
            });
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One connection from the queue process: jobs one at a time until it closes.
fn serve_connection(
    conn: &UnixStream,
    remote: &RemoteDelivery,
    messages: &JobMessages,
) -> io::Result<()> {
    let mut reader = io::BufReader::with_capacity(64 * 1024, conn);
    while let Some((request, fd)) = recv_request(&mut reader)? {
        let reply = match request {
            Request::Flush => {
                remote.reset_downed_hosts();
                rspawn::encode_results(0, &[])
            }
            Request::Deliver(job) => {
                let results = if let Some(fd) = fd {
                    let file = Arc::new(std::fs::File::from(fd));
                    messages.register(job.message, file, job.offset, job.len);
                    let results = remote.deliver(&to_job(&job));
                    messages.unregister(job.message);
                    results
                } else {
                    let text = "Unable to read message: no descriptor. (#4.3.0)".to_owned();
                    vec![DeliveryResult::Deferred { text, status: None }; job.targets.len()]
                };
                rspawn::encode_results(job.job, &results)
            }
        };
        let refs: Vec<&[u8]> = reply.iter().map(Vec::as_slice).collect();
        frame::write(&mut &*conn, &refs)?;
    }
    Ok(())
}

/// The scheduler's view of a job, rebuilt in the remote process.
fn to_job(j: &RemoteJob) -> Job {
    Job {
        job: mta_sched::JobId::from_u64(j.job),
        id: j.message,
        sender: mta_core::Address::from_bytes(j.sender.clone()),
        channel: crate::sched::Channel::Remote,
        targets: j
            .targets
            .iter()
            .map(|t| Target {
                delivery: t.delivery,
                index: t.index,
                address: mta_core::Address::from_bytes(t.address.clone()),
                attempts: t.attempts,
            })
            .collect(),
        birth: std::time::SystemTime::UNIX_EPOCH,
        whole: false,
    }
}

/// The queue process's side: hands remote jobs to the remote process, one connection per
/// delivery thread (kept between jobs).
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    queue: Arc<Queue>,
    idle: Mutex<Vec<Conn>>,
}

/// A connection to the remote process with its read buffer (kept with it: one allocation
/// per connection, not one per job). Only the results frame of the request just sent is
/// ever read, so the buffer is empty between exchanges.
type Conn = io::BufReader<UnixStream>;

impl Client {
    /// A client of the remote process listening at `path`, reading messages from `queue`.
    pub fn new(path: PathBuf, queue: Arc<Queue>) -> Client {
        Client {
            path,
            queue,
            idle: Mutex::default(),
        }
    }

    /// An idle connection, or a new one; `true` when it was idle (it may have died since).
    fn connection(&self) -> io::Result<(Conn, bool)> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok((c, true));
        }
        crate::serve::connect_patiently(&self.path).map(|c| (io::BufReader::new(c), false))
    }

    /// One exchange on a connection (a fresh one if an idle one turns out dead before the
    /// request went out: the remote process was restarted since, and the request, not
    /// sent, cannot be duplicated).
    fn exchange(
        &self,
        request: &Request,
        file: Option<&std::fs::File>,
        job: u64,
        n: usize,
    ) -> io::Result<Vec<DeliveryResult>> {
        let (mut conn, was_idle) = self.connection()?;
        if let Err(e) = send_request(conn.get_ref(), request, file) {
            if !was_idle {
                return Err(e);
            }
            conn = io::BufReader::new(crate::serve::connect_patiently(&self.path)?);
            send_request(conn.get_ref(), request, file)?;
        }
        // Buffered (the results frame is the only thing the remote process sends back).
        let fields =
            frame::read_limited(&mut conn, MAX_REQUEST)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let results = rspawn::decode_results(&fields, job, n)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad remote results"))?;
        if let Ok(mut v) = self.idle.lock() {
            v.push(conn);
        }
        Ok(results)
    }

    /// Opens `n` connections now (the remote process is up: the master started it first),
    /// so the first jobs do not each pay a connect and the remote process's thread start.
    pub fn warm_up(&self, n: usize) {
        let mut opened = Vec::with_capacity(n);
        for _ in 0..n {
            match UnixStream::connect(&self.path) {
                Ok(c) => opened.push(io::BufReader::new(c)),
                Err(_) => break,
            }
        }
        if let Ok(mut v) = self.idle.lock() {
            v.extend(opened);
        }
    }

    /// `mta queue flush`: the remote process forgets the hosts marked down.
    pub fn flush(&self) {
        if let Err(e) = self.exchange(&Request::Flush, None, 0, 0) {
            log::line(&format!(
                "warning: unable to reach the remote process: {}",
                log::safe(e.to_string().as_bytes())
            ));
        }
    }

    fn deliver_job(&self, job: &Job) -> io::Result<Vec<DeliveryResult>> {
        let reader = self.queue.open_message(job.id).map_err(io::Error::other)?;
        let (file, offset) = reader.file_range();
        let request = Request::Deliver(RemoteJob {
            job: job.job.as_u64(),
            message: job.id,
            sender: job.sender.as_bytes().to_vec(),
            offset,
            len: reader.len(),
            targets: job
                .targets
                .iter()
                .map(|t| RemoteTarget {
                    delivery: t.delivery,
                    index: t.index,
                    attempts: t.attempts,
                    address: t.address.as_bytes().to_vec(),
                })
                .collect(),
        });
        self.exchange(&request, Some(file), job.job.as_u64(), job.targets.len())
    }
}

impl crate::pool::Deliver for Client {
    fn deliver(&self, job: &Job) -> Vec<DeliveryResult> {
        match self.deliver_job(job) {
            Ok(results) => results,
            Err(e) => {
                let text = format!(
                    "Remote delivery process unavailable: {e}; possible duplicate. (#4.3.0)"
                );
                vec![DeliveryResult::Deferred { text, status: None }; job.targets.len()]
            }
        }
    }
}
