//! The SMTP service: our qmail-smtpd, on mta-smtp's sans-IO [`ServerSession`] driven by
//! mta-smtp's one blocking loop ([`mta_smtp::blocking::serve_connection`]); this module is
//! its [`Policy`] (`SmtpPolicy`: qmail-smtpd's rules, the queue hand-over, the refusal log
//! and counters, the stop at SIGTERM) and its [`Connection`] (`Link`: the socket's read
//! deadline and STARTTLS with the listener's certificate).
//!
//! One thread per connection (kept for later connections), at most `concurrencyincoming` at
//! once and `concurrencyperip` from one address (beyond that a client gets `421 4.7.0` and
//! is closed, as tcpserver's limit would refuse it; see the `limits` module). Every command line
//! must arrive within `timeoutsmtpd` of the previous reply and DATA must keep up
//! `mindatarate` (mta-smtp's deadlines, enforced here with socket read timeouts); refused
//! commands count toward `maxerrors`; a message takes at most `maxrcpt` recipients and a
//! recipient named twice is delivered once. Every refusal is logged with the client's
//! address and counted per reason. Policy is qmail-smtpd's:
//! `badmailfrom` refuses every RCPT of a listed sender (`553 5.7.1`), relaying needs the
//! client in `relayclients` (qmail's RELAYCLIENT) or the domain in `rcpthosts` /
//! `morercpthosts` (`553 5.7.1`), `databytes` caps the size, the hop count refuses loops.
//! Unlike qmail, a local recipient nobody would take is refused at RCPT with `550 5.1.1`
//! (no backscatter), unless `control/acceptunknown` says otherwise.
//!
//! DATA streams behind our `Received:` line to the queue process over its submission socket
//! ([`mta_queue::submit`]; `sendmail -bs` writes the queue itself when it may); the
//! `250 ok <id>` goes out only after the queue process reported the commit durable, so a
//! `250` always means durable. The process runs as the SMTP account (`mtad`) and cannot
//! write the queue.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mta_core::control::ListenKind;
use mta_core::path::{ForwardPath, ReversePath};
use mta_core::{Address, Envelope};
use mta_queue::Queue;
use mta_queue::submit::{Submission, SubmitError, Submitter};
use mta_smtp::blocking::{Connection, Policy};
use mta_smtp::tls::rustls::ServerConfig as TlsConfig;
use mta_smtp::{ReceivedInfo, Reply, ServerConfig, ServerSession, Verdict};
use std::os::unix::net::UnixStream;

use crate::limits::{Limits, Reason, Slot};
use crate::local::RcptCheck;
use crate::log;
use crate::route::{Route, Router};
use crate::sched::Input;
use crate::settings::Settings;
use crate::tls::{CertStore, Wire};
use crate::users::Users;

/// What every session shares.
pub struct Shared {
    /// SPF, DKIM and DMARC checks of mail from outside (`None`: no DNS servers usable).
    pub verifier: Option<Arc<mta_msgauth::BlockingVerifier>>,
    /// Control settings, re-read at SIGHUP: read them once per use.
    pub settings: Arc<crate::live::LiveSettings>,
    /// Where accepted messages go.
    pub store: Store,
    /// Recipient routing.
    pub router: Arc<dyn Router>,
    /// RCPT-time lookups of local users.
    pub users: Arc<Users>,
    /// Recent `.qmail` lookups for RCPT checks.
    pub lookups: crate::lookup::LookupCache,
    /// Wakes the scheduler.
    pub scheduler: Sender<Input>,
    /// The trigger FIFO to pull when there is no scheduler in this process
    /// (`sendmail -bs`).
    pub trigger: Option<std::path::PathBuf>,
    /// The uid a local session (`sendmail -bs`) is invoked by, for its Received line
    /// (taken before root becomes the queue's owner).
    pub invoker_uid: u32,
    /// Session slots (`concurrencyincoming`, `concurrencyperip`) and refusal counters.
    pub(crate) limits: Arc<Limits>,
    /// `control/servercert.pem`, for STARTTLS and smtps.
    pub(crate) certs: CertStore,
    /// `users/passwords`, for AUTH.
    pub(crate) passwords: crate::auth::PasswordStore,
    /// Failed AUTHs per client address (`authfailmax`).
    pub(crate) auth_failures: crate::auth::FailTracker,
    /// Set at shutdown: acceptors stop, sessions answer `421 4.3.2` within a second.
    pub stopping: AtomicBool,
}

/// A session thread's stack: address space only, pages become resident as they are
/// touched. Plain sessions touch a few KB; a TLS handshake (rustls, ring) goes deeper.
const SESSION_STACK: usize = 256 * 1024;

/// How long a session thread waits for the next connection before it exits.
const IDLE_THREAD: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest a session blocks in one read: how soon it sees [`Shared::stopping`] and
/// answers `421 4.3.2` (one wake-up per second per idle session).
const STOP_POLL: Duration = Duration::from_secs(1);

/// Accepts connections on `listener` until shutdown, one thread per session.
///
/// A thread whose session ended waits 10 s for the next connection before it
/// exits, so a busy server (a client opening a connection per message, as `smtp-source`
/// does) does not pay a thread start and stack mapping per connection.
/// The hand-over is a rendezvous: a connection goes to a thread that is already waiting,
/// or gets a new one; no connection ever queues behind a busy session.
pub fn accept_loop(listener: &TcpListener, kind: ListenKind, shared: &Arc<Shared>) {
    let (handoff, waiting) = crossbeam_channel::bounded::<Incoming>(0);
    let mut pacer = crate::accept::Pacer::new("smtp");
    loop {
        // `accept` rather than `incoming`: it gives the peer's address, which the limits
        // and the session need, without a `getpeername` per connection.
        let conn = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Some((stream, peer)) = pacer.take(conn) else {
            continue;
        };
        let ip = Some(peer.ip());
        let settings = shared.settings.get();
        let slot = match shared.limits.admit(
            ip,
            settings.concurrency_incoming,
            settings.concurrency_per_ip,
        ) {
            Ok(slot) => slot,
            Err(reason) => {
                turn_away(shared, &stream, ip, reason);
                continue;
            }
        };
        crate::metrics::session_started();
        // Replies are written a batch at a time; do not let Nagle hold the last one back.
        // A socket option that cannot be set only costs speed.
        let _ = stream.set_nodelay(true);
        // Read here, with the daemon's privileges: a root-only key file works.
        let tls = shared.certs.current();
        let passwords = shared.passwords.current();
        let incoming = Incoming {
            stream,
            peer,
            slot,
            kind,
            tls,
            passwords,
        };
        let job = match handoff.try_send(incoming) {
            Ok(()) => continue,
            Err(e) => e.into_inner(),
        };
        // No thread is waiting: start one, and hand it the connection through the same
        // rendezvous rather than in its spawn closure, whose captures stay allocated for
        // the thread's life (bytes per idle session, W5). Whichever waiting thread takes it
        // first serves it. A failed spawn, or a hand-over nobody takes in time, drops the
        // job: the connection closes and the slot comes back.
        let session_shared = Arc::clone(shared);
        let session_waiting = waiting.clone();
        let started = std::thread::Builder::new()
            .name("smtp".into())
            .stack_size(SESSION_STACK)
            .spawn(move || session_thread(&session_shared, &session_waiting));
        if started.is_ok() {
            let _ = handoff.send_timeout(job, HANDOFF);
        }
    }
}

/// How long the acceptor waits for a session thread it just started to take its first
/// connection (it is the thread's first step; a thread that could not take it in this
/// time is not coming).
const HANDOFF: Duration = Duration::from_secs(5);

/// A connection handed to a session thread.
struct Incoming {
    stream: TcpStream,
    /// The client's address, as `accept` gave it.
    peer: SocketAddr,
    /// Its place under the session limits, given back when the session ends.
    slot: Slot,
    /// What the listener speaks.
    kind: ListenKind,
    /// The certificate configuration at accept time (`None`: no TLS).
    tls: Option<Arc<TlsConfig>>,
    /// `users/passwords` at accept time (`None`: no file).
    passwords: Option<Arc<mta_core::control::Passwords>>,
}

/// Answers a connection over a session limit with `421 4.7.0` and closes it at once,
/// logging the client and the limit.
fn turn_away(shared: &Shared, stream: &TcpStream, ip: Option<IpAddr>, reason: Reason) {
    let (text, limit): (&[u8], String) = match reason {
        Reason::TooManyFromIp => (
            b"421 4.7.0 too many connections from your address, try again later\r\n",
            format!(
                "concurrencyperip {}",
                shared.settings.get().concurrency_per_ip
            ),
        ),
        _ => (
            b"421 4.7.0 too many connections, try again later\r\n",
            format!(
                "concurrencyincoming {}",
                shared.settings.get().concurrency_incoming
            ),
        ),
    };
    // Best effort, and never a wait: the line fits the empty send buffer of a new socket.
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(text);
    refused(shared, ip, reason, &limit);
}

/// Logs and counts a refusal: `smtp: refused IP: REASON (DETAIL)`. Whatever the client
/// sent must pass through [`log::safe`] before it is part of `detail`.
fn refused(shared: &Shared, ip: Option<IpAddr>, reason: Reason, detail: &str) {
    shared.limits.count(reason);
    let ip = ip.map_or_else(|| "local".to_owned(), |ip| ip.to_string());
    log::line(&format!(
        "smtp: refused {ip}: {} ({detail})",
        reason.as_str()
    ));
}

/// A session thread: serves every connection handed to it, until none comes for
/// [`IDLE_THREAD`] or the acceptor is gone.
fn session_thread(shared: &Arc<Shared>, waiting: &crossbeam_channel::Receiver<Incoming>) {
    while let Ok(incoming) = waiting.recv_timeout(IDLE_THREAD) {
        let Incoming {
            stream,
            peer,
            slot,
            kind,
            tls,
            passwords,
        } = incoming;
        let mut client = Client::new(Some(peer), kind, tls);
        client.passwords = passwords;
        let relay = shared.settings.get().is_relay_client(peer.ip());
        let mut wire = Wire::Plain(stream);
        let ready = kind != ListenKind::Smtps || implicit_tls(shared, &mut wire, &mut client);
        if ready
            && let Err(e) = serve_connection(shared, &mut wire, &mut client, relay)
            && !matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            )
        {
            log::line(&format!("smtp: connection error: {e}"));
        }
        drop(wire);
        drop(slot);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Where a session puts accepted messages.
pub enum Store {
    /// Straight into the queue (streaming): `sendmail -bs` as the queue's owner.
    Queue(Arc<Queue>),
    /// Streamed to the queue process over its submission socket: `mta serve`'s SMTP
    /// process, which may not write the queue itself.
    Submit(SubmitPool),
    /// Into `DIR/pickup` for a running `mta serve` to import: `sendmail -bs` while the
    /// server holds the queue.
    Pickup(crate::root::Root),
}

/// Connections to the queue process's submission socket (`mta_queue::submit`), kept
/// between messages: a session's second message costs no connect.
pub struct SubmitPool {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<Submitter<UnixStream>>>,
}

impl SubmitPool {
    /// Connections to the socket at `path`, made when first needed.
    pub fn new(path: std::path::PathBuf) -> SubmitPool {
        SubmitPool {
            path,
            idle: std::sync::Mutex::default(),
        }
    }

    fn connect(&self) -> Result<Submitter<UnixStream>, String> {
        let stream = UnixStream::connect(&self.path).map_err(|e| format!("queue process: {e}"))?;
        let clone = stream.try_clone().map_err(|e| e.to_string())?;
        Ok(Submitter::new(stream, clone))
    }

    /// Starts a message: on an idle connection, or (that failing: the queue process may
    /// have restarted since) on a new one.
    fn begin(&self) -> Result<Submission<UnixStream>, String> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        if let Some(conn) = idle {
            match conn.begin() {
                Ok(s) => return Ok(s),
                Err((SubmitError::Refused(e), Some(conn))) => {
                    self.put_back(conn);
                    return Err(e);
                }
                Err(_) => {}
            }
        }
        self.connect()?.begin().map_err(|(e, conn)| {
            if let Some(conn) = conn {
                self.put_back(conn);
            }
            e.to_string()
        })
    }

    fn put_back(&self, conn: Submitter<UnixStream>) {
        if let Ok(mut v) = self.idle.lock() {
            v.push(conn);
        }
    }
}

/// Where a message's bytes go while it is received.
enum Sink {
    Queue(mta_queue::Incoming),
    Submit(Submission<UnixStream>),
}

impl Sink {
    fn id(&self) -> u64 {
        match self {
            Sink::Queue(i) => i.id().as_u64(),
            Sink::Submit(s) => s.id().as_u64(),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Sink::Queue(i) => i.write(bytes).map_err(|e| e.to_string()),
            Sink::Submit(s) => s.write(bytes).map_err(|e| e.to_string()),
        }
    }

    /// Commits: `Ok` only once the message is durable.
    fn commit(self, env: &Envelope, store: &Store) -> Result<mta_queue::MessageId, String> {
        match self {
            Sink::Queue(i) => i.commit(env).map_err(|e| e.to_string()),
            Sink::Submit(s) => {
                // The next message on this connection starts without a round trip.
                let (id, conn) = s.commit_and_begin_next(env).map_err(|e| e.to_string())?;
                if let Store::Submit(pool) = store {
                    pool.put_back(conn);
                }
                Ok(id)
            }
        }
    }
}

/// A message being received.
enum Body {
    Queue(Sink),
    Buffer(Vec<u8>),
    /// A message to check (SPF, DKIM, DMARC) before it is queued: our trace lines are
    /// already in the queue file; the client's message waits here for the checks, whose
    /// Authentication-Results header must go in front of it.
    Checked(Sink, Vec<u8>),
}

impl Body {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Body::Queue(i) => i.write(bytes),
            Body::Buffer(b) | Body::Checked(_, b) => {
                b.extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}

/// The transaction being built.
#[derive(Default)]
struct Transaction {
    sender: Option<Address>,
    bad_sender: bool,
    recipients: Vec<Address>,
    /// [`mailbox_key`] of every recipient, to accept a repeated one only once.
    mailboxes: std::collections::HashSet<Vec<u8>>,
    incoming: Option<Body>,
    write_failed: bool,
    /// The SPF result found at MAIL FROM (with `spfreject`), reused at the end of DATA.
    spf: Option<mta_msgauth::SpfCheck>,
}

/// Port 465: the TLS handshake before anything else. False when the session cannot go on
/// (no certificate, or the handshake failed; both logged).
fn implicit_tls(shared: &Shared, wire: &mut Wire, client: &mut Client) -> bool {
    if client.tls_config.is_none() {
        log::line("smtp: smtps connection closed: no control/servercert.pem");
        return false;
    }
    handshake(shared, wire, client)
}

/// The smtps handshake on `stream`, bounded by `timeoutsmtpd`: on success the client's TLS
/// version and cipher are noted and logged; a failure is logged. True when the session is
/// encrypted. (STARTTLS runs the same steps through [`Link`] and [`SmtpPolicy`].)
fn handshake<S: SessionStream + ?Sized>(
    shared: &Shared,
    stream: &mut S,
    client: &mut Client,
) -> bool {
    let timeout = shared.settings.get().timeout_smtpd;
    match start_tls_with(stream, client.tls_config.clone(), timeout) {
        Ok(described) => {
            client.tls_started(described);
            true
        }
        Err(e) => {
            client.tls_failed(&e);
            false
        }
    }
}

/// Runs the server handshake on `stream` with the listener's certificate, if it has one.
fn start_tls_with<S: SessionStream + ?Sized>(
    stream: &mut S,
    config: Option<Arc<TlsConfig>>,
    timeout: Duration,
) -> io::Result<String> {
    match config {
        Some(config) => stream.start_tls(config, timeout),
        None => Err(io::Error::other("no certificate")),
    }
}

/// A session's byte stream: a socket (plain or TLS), or stdin/stdout for `sendmail -bs`.
pub trait SessionStream: Read + Write {
    /// Limits the next read to `wait` (`None`: no limit). Streams without timeouts
    /// (stdio) ignore it.
    ///
    /// # Errors
    /// The socket option could not be set.
    fn set_read_wait(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let _ = wait;
        Ok(())
    }

    /// STARTTLS: runs the server handshake within `timeout` and goes on encrypted;
    /// returns the TLS version and cipher.
    ///
    /// # Errors
    /// The handshake failed; streams that cannot do TLS (stdio) always fail.
    fn start_tls(&mut self, config: Arc<TlsConfig>, timeout: Duration) -> io::Result<String> {
        let _ = (config, timeout);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no TLS on this stream",
        ))
    }
}

/// The session's configuration for `client` on its kind of listener.
fn session_config(settings: &Settings, client: &Client) -> ServerConfig {
    let mut config = ServerConfig::new(settings.greeting.clone());
    config.set_databytes(settings.databytes);
    config.max_recipients = settings.max_rcpt;
    config.max_errors = settings.max_errors;
    config.min_data_rate = settings.min_data_rate;
    config.timeout = settings.timeout_smtpd;
    config.offer_starttls = client.tls_config.is_some();
    config.implicit_tls = client.kind == ListenKind::Smtps;
    // RFC 3207 §4: a submission port may require TLS; the MX port never does.
    config.require_tls = client.kind == ListenKind::Submission;
    // AUTH when there is someone to log in as; inside TLS only (mta-smtp's default).
    config.offer_auth = client.passwords.is_some() || settings.control.checkpassword.is_some();
    // RFC 6409 §4.3: submission ports take mail from logged-in users only.
    config.require_auth = client.kind != ListenKind::Smtp;
    config
}

/// Runs one session on a connected stream (also used by `sendmail -bs` on stdio), with
/// mta-smtp's blocking driver ([`mta_smtp::blocking::serve_connection`]) and this
/// daemon's rules as its [`Policy`].
///
/// # Errors
/// I/O errors on the stream.
pub fn serve_connection<S: SessionStream + ?Sized>(
    shared: &Shared,
    stream: &mut S,
    client: &mut Client,
    relay_client: bool,
) -> io::Result<()> {
    let settings = shared.settings.get();
    let session = ServerSession::new(session_config(&settings, client), Instant::now());
    let mut link = Link {
        stream,
        tls: client.tls_config.clone(),
        handshake_timeout: settings.timeout_smtpd,
        read_wait: mta_smtp::blocking::ReadWait::default(),
    };
    drop(settings);
    let mut policy = SmtpPolicy {
        shared,
        client,
        tx: Transaction::default(),
        relay_client,
        helo: None,
    };
    mta_smtp::blocking::serve_connection(&mut link, session, &mut policy)
}

/// The client's stream as the driver sees it: reads bounded by the session's deadline
/// (the socket's timeout set only when it must change: [`ReadWait`](mta_smtp::blocking::ReadWait)),
/// and STARTTLS with the listener's certificate within `timeoutsmtpd`.
struct Link<'a, S: ?Sized> {
    stream: &'a mut S,
    tls: Option<Arc<TlsConfig>>,
    handshake_timeout: Duration,
    read_wait: mta_smtp::blocking::ReadWait,
}

impl<S: SessionStream + ?Sized> Read for Link<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl<S: SessionStream + ?Sized> Write for Link<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl<S: SessionStream + ?Sized> Connection for Link<'_, S> {
    fn set_read_wait(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let stream = &mut *self.stream;
        self.read_wait.apply(wait, |w| stream.set_read_wait(w))
    }
    fn start_tls(&mut self) -> io::Result<String> {
        // The handshake sets timeouts of its own: the next wait is set afresh.
        self.read_wait = mta_smtp::blocking::ReadWait::default();
        start_tls_with(self.stream, self.tls.clone(), self.handshake_timeout)
    }
}

/// qmail-smtpd's rules for one session, answering mta-smtp's driver: the sender and
/// recipient checks, the message's streaming into the queue and its durable commit, AUTH,
/// the refusal log lines and counters, and the stop at SIGTERM.
struct SmtpPolicy<'a> {
    shared: &'a Shared,
    client: &'a mut Client,
    tx: Transaction,
    relay_client: bool,
    /// The client's HELO/EHLO name, for the Received line and SPF (forgotten at STARTTLS).
    helo: Option<String>,
}

impl Policy for SmtpPolicy<'_> {
    fn hello(&mut self, name: &str) {
        self.helo = Some(name.to_owned());
        self.tx = Transaction::default();
    }

    fn mail(&mut self, path: &ReversePath, _: &mta_smtp::MailParams) -> Verdict {
        let (shared, client) = (self.shared, &*self.client);
        self.tx = Transaction::default();
        let sender = match path {
            ReversePath::Null => Address::null(),
            ReversePath::Mailbox(m) => m.to_address(),
        };
        self.tx.bad_sender = shared.settings.get().is_bad_sender(&sender);
        let mut verdict = sender_allowed(shared, client, &sender);
        if matches!(verdict, Verdict::Accept) && !trusted(self.relay_client, client) {
            verdict = spf_at_mail(shared, &mut self.tx, client, self.helo.as_deref(), &sender);
        }
        self.tx.sender = Some(sender);
        verdict
    }

    fn rcpt(&mut self, path: &ForwardPath, _: &mta_smtp::RcptParams) -> Verdict {
        // A successful AUTH may relay.
        let relay = self.relay_client || self.client.login.is_some();
        rcpt(self.shared, &mut self.tx, path, relay, self.client)
    }

    fn data_start(&mut self) -> Verdict {
        let check = !trusted(self.relay_client, self.client) && self.shared.verifier.is_some();
        data_start(
            self.shared,
            &mut self.tx,
            self.client,
            self.helo.as_deref(),
            check,
        )
    }

    fn data_chunk(&mut self, chunk: &[u8]) {
        let tx = &mut self.tx;
        if let Some(inc) = tx.incoming.as_mut()
            && !tx.write_failed
            && inc.write(chunk).is_err()
        {
            tx.write_failed = true;
        }
    }

    fn data_end(&mut self, _: &mta_smtp::DataSummary) -> Verdict {
        data_end(self.shared, &mut self.tx, self.client, self.helo.as_deref())
    }

    fn data_rejected(&mut self, error: mta_smtp::DataError) {
        refused(
            self.shared,
            self.client.ip,
            Reason::BadMessage,
            &error.to_string(),
        );
        self.tx = Transaction::default();
    }

    fn auth(&mut self, credentials: &mta_smtp::Credentials) -> Verdict {
        auth(self.shared, self.client, credentials)
    }

    fn reset(&mut self) {
        self.tx = Transaction::default();
    }

    fn tls_started(&mut self, described: &str) {
        self.client.tls_started(described.to_owned());
        self.helo = None;
    }

    fn tls_failed(&mut self, error: &io::Error) {
        self.client.tls_failed(error);
    }

    fn timed_out(&mut self) {
        let limit = format!(
            "timeoutsmtpd {}",
            self.shared.settings.get().timeout_smtpd.as_secs()
        );
        refused(self.shared, self.client.ip, Reason::Timeout, &limit);
        self.tx = Transaction::default();
    }

    fn too_many_recipients(&mut self) {
        let limit = format!("maxrcpt {}", self.shared.settings.get().max_rcpt);
        refused(
            self.shared,
            self.client.ip,
            Reason::TooManyRecipients,
            &limit,
        );
    }

    fn aborted(&mut self, reason: mta_smtp::AbortReason) {
        if reason == mta_smtp::AbortReason::TooManyErrors {
            let limit = format!("maxerrors {}", self.shared.settings.get().max_errors);
            refused(self.shared, self.client.ip, Reason::TooManyErrors, &limit);
        }
        self.tx = Transaction::default();
    }

    /// SIGTERM: a transaction in progress is void (its body is never committed); a
    /// message that got its 250 is already in the queue.
    fn stop(&mut self) -> Option<Reply> {
        self.shared
            .stopping
            .load(Ordering::Relaxed)
            .then(|| reply(421, "4.3.2 shutting down"))
    }

    fn stop_poll(&self) -> Option<Duration> {
        Some(STOP_POLL)
    }
}

/// The client of a session, for Received lines, refusal logs and TLS.
pub struct Client {
    /// Its address (`None` for `sendmail -bs`).
    ip: Option<IpAddr>,
    /// Its address as text (`127.0.0.1` for `sendmail -bs`, as qmail's TCPREMOTEIP).
    name: String,
    /// The kind of listener it came in on.
    kind: ListenKind,
    /// The certificate configuration, when TLS is possible.
    tls_config: Option<Arc<TlsConfig>>,
    /// The TLS version and cipher once encrypted.
    tls: Option<String>,
    /// `users/passwords` at accept time.
    passwords: Option<Arc<mta_core::control::Passwords>>,
    /// The login of a successful AUTH.
    login: Option<String>,
}

impl Client {
    /// A client at `peer` (`None`: a local stdio session) on a `kind` listener.
    fn new(
        peer: Option<SocketAddr>,
        kind: ListenKind,
        tls_config: Option<Arc<TlsConfig>>,
    ) -> Client {
        Client {
            ip: peer.map(|p| p.ip()),
            name: peer.map_or_else(|| "127.0.0.1".to_owned(), |p| p.ip().to_string()),
            kind,
            tls_config,
            tls: None,
            passwords: None,
            login: None,
        }
    }

    /// TLS is up: `smtp: tls IP TLSv1.3 TLS13_AES_256_GCM_SHA384` (rustls's names, not the
    /// peer's words) is logged and counted, and the Received line will say so.
    fn tls_started(&mut self, described: String) {
        log::line(&format!("smtp: tls {} {described}", self.name));
        crate::metrics::tls_started();
        self.tls = Some(described);
    }

    /// A failed handshake, logged.
    fn tls_failed(&self, error: &io::Error) {
        log::line(&format!(
            "smtp: tls handshake with {} failed: {}",
            self.name,
            log::safe(error.to_string().as_bytes())
        ));
    }
}

/// AUTH: the lockout, then the password check; logs `auth ok|fail LOGIN IP`, never the
/// password.
fn auth(shared: &Shared, client: &mut Client, c: &mta_smtp::Credentials) -> Verdict {
    let settings = shared.settings.get();
    let now = Instant::now();
    let login = log::safe(c.login.as_bytes());
    let locked = client.ip.is_some_and(|ip| {
        shared
            .auth_failures
            .locked(ip, now, settings.control.authfailmax)
    });
    if locked {
        let detail = format!("authfailmax {}", settings.control.authfailmax);
        refused(shared, client.ip, Reason::AuthLocked, &detail);
        return Verdict::Reject(reply(
            454,
            "4.7.0 too many authentication failures, try again later",
        ));
    }
    let check = crate::auth::check(
        client.passwords.as_deref(),
        settings.control.checkpassword.as_deref(),
        &c.login,
        c.password.expose(),
    );
    match check {
        crate::auth::Check::Ok => {
            log::line(&format!("auth ok {login} {}", client.name));
            crate::metrics::auth(crate::metrics::AuthResult::Ok);
            client.login = Some(c.login.clone());
            Verdict::Accept
        }
        crate::auth::Check::Wrong => {
            log::line(&format!("auth fail {login} {}", client.name));
            crate::metrics::auth(crate::metrics::AuthResult::Fail);
            if let Some(ip) = client.ip {
                shared.auth_failures.failed(ip, now);
            }
            shared.limits.count(Reason::AuthFailed);
            Verdict::Reject(reply(535, "5.7.8 authentication credentials invalid"))
        }
        crate::auth::Check::Unavailable(why) => {
            crate::metrics::auth(crate::metrics::AuthResult::Fail);
            log::line(&format!(
                "auth fail {login} {}: {}",
                client.name,
                log::safe(why.as_bytes())
            ));
            Verdict::Reject(reply(454, "4.7.0 temporary authentication failure"))
        }
    }
}

/// SENDERS of `users/passwords`: a logged-in user may send only as the addresses and
/// domains listed on their line (`553 5.7.1` otherwise); no list, any sender.
fn sender_allowed(shared: &Shared, client: &Client, sender: &Address) -> Verdict {
    let (Some(login), Some(passwords)) = (&client.login, &client.passwords) else {
        return Verdict::Accept;
    };
    match passwords.get(login) {
        Some(entry) if !entry.allows_sender(sender) => {
            let detail = format!(
                "{} may not send as <{}>",
                log::safe(login.as_bytes()),
                log::safe(sender.as_bytes())
            );
            refused(shared, client.ip, Reason::SenderNotAllowed, &detail);
            Verdict::Reject(reply(
                553,
                "5.7.1 sender address not allowed for this login",
            ))
        }
        _ => Verdict::Accept,
    }
}

fn reply(code: u16, text: &str) -> Reply {
    // invariant: the codes and texts below are fixed and valid.
    #[allow(clippy::expect_used)]
    Reply::new(code, text).expect("valid fixed reply")
}

/// One key per mailbox: the local part as written (case matters, RFC 5321 §2.4), then
/// the domain lowercased (case does not).
fn mailbox_key(a: &Address) -> Vec<u8> {
    let mut key = a.local_part().to_vec();
    if let Some(domain) = a.domain() {
        key.push(b'@');
        key.extend(domain.iter().map(u8::to_ascii_lowercase));
    }
    key
}

fn rcpt(
    shared: &Shared,
    tx: &mut Transaction,
    path: &ForwardPath,
    relay_client: bool,
    client: &Client,
) -> Verdict {
    let verdict = rcpt_verdict(shared, tx, path, relay_client);
    if let Err((reason, ref reply)) = verdict {
        let detail = format!(
            "{} for {}",
            reply.to_string().trim_end(),
            log::safe(path.to_string().as_bytes())
        );
        refused(shared, client.ip, reason, detail.trim_end());
    }
    match verdict {
        Ok(addr) => {
            // The same recipient twice in one transaction is accepted and delivered once
            // (a set, so 8,192 recipients cost 8,192 lookups, not 33 million comparisons).
            if tx.mailboxes.insert(mailbox_key(&addr)) {
                tx.recipients.push(addr);
            }
            Verdict::Accept
        }
        Err((_, r)) => Verdict::Reject(r),
    }
}

/// The RCPT policy: the address to add, or why not and the reply.
fn rcpt_verdict(
    shared: &Shared,
    tx: &Transaction,
    path: &ForwardPath,
    relay_client: bool,
) -> Result<Address, (Reason, Reply)> {
    let settings = shared.settings.get();
    let addr = match path {
        ForwardPath::Mailbox(m) => m.to_address(),
        ForwardPath::Postmaster => Address::from("postmaster"),
    };
    if tx.bad_sender {
        return Err((
            Reason::BadMailFrom,
            reply(
                553,
                "5.7.1 sorry, your envelope sender is in my badmailfrom list",
            ),
        ));
    }
    let postmaster = matches!(path, ForwardPath::Postmaster);
    if !relay_client && !postmaster && !settings.rcpthosts_allows(&addr) {
        return Err((
            Reason::Relay,
            reply(
                553,
                "5.7.1 sorry, that domain isn't in my list of allowed rcpthosts",
            ),
        ));
    }
    if !settings.accept_unknown
        && let Route::Local(local) = shared.router.route(&addr)
    {
        {
            match crate::local::check(&shared.users, &shared.lookups, &local) {
                RcptCheck::Exists => {}
                RcptCheck::Unknown => {
                    return Err((
                        Reason::UnknownUser,
                        reply(550, "5.1.1 sorry, no mailbox here by that name"),
                    ));
                }
                RcptCheck::TryLater(why) => {
                    log::line(&format!(
                        "smtp: recipient check deferred: {}",
                        log::safe(why.as_bytes())
                    ));
                    return Err((
                        Reason::LookupFailed,
                        reply(451, "4.3.0 temporary failure looking up recipient"),
                    ));
                }
            }
        }
    }
    Ok(addr)
}

fn data_start(
    shared: &Shared,
    tx: &mut Transaction,
    client: &Client,
    helo: Option<&str>,
    check: bool,
) -> Verdict {
    let mut incoming = match &shared.store {
        Store::Queue(queue) => match queue.begin() {
            Ok(i) => Body::Queue(Sink::Queue(i)),
            Err(e) => {
                log::line(&format!("smtp: unable to start enqueue: {e}"));
                return Verdict::Reject(reply(451, "4.3.0 qqt failure"));
            }
        },
        Store::Submit(pool) => match pool.begin() {
            Ok(s) => Body::Queue(Sink::Submit(s)),
            Err(e) => {
                log::line(&format!(
                    "smtp: unable to start enqueue: {}",
                    log::safe(e.as_bytes())
                ));
                return Verdict::Reject(reply(451, "4.3.0 qqt failure"));
            }
        },
        Store::Pickup(_) => Body::Buffer(Vec::new()),
    };
    let now = crate::log::unix_now();
    let date = mta_core::date::qmail_date822(now);
    let settings = shared.settings.get();
    let mut info = ReceivedInfo::new("unknown", &client.name, &settings.me, &date);
    info.helo = helo;
    // RFC 3848: ESMTPS under TLS, ESMTPA after AUTH, ESMTPSA for both.
    info.protocol = match (&client.tls, &client.login) {
        (Some(_), Some(_)) => "ESMTPSA",
        (Some(_), None) => "ESMTPS",
        (None, Some(_)) => "ESMTPA",
        (None, None) => info.protocol,
    };
    if let Some(tls) = &client.tls {
        info.tls = Some(tls);
    }
    // qmail-queue's line goes on top of qmail-smtpd's, as qmail-queue prepends it:
    // `invoked from network` in the daemon, `invoked by uid U` for `sendmail -bs`; a
    // message left in pickup gets it from the importer.
    let invoker = match (&shared.store, &shared.trigger) {
        (Store::Pickup(_), _) => None,
        (Store::Submit(_), _) | (Store::Queue(_), None) => {
            Some(mta_core::header::QueueInvoker::Network)
        }
        (Store::Queue(_), Some(_)) => Some(mta_core::header::QueueInvoker::Uid(shared.invoker_uid)),
    };
    // Its number is the message's queue id, which the `250 ok ... qp N` reply and the
    // log's `info msg` also show (qmail's three show qmail-queue's pid).
    let qp = match &incoming {
        Body::Queue(i) | Body::Checked(i, _) => i.id(),
        Body::Buffer(_) => u64::from(std::process::id()),
    };
    let mut line =
        invoker.map_or_else(Vec::new, |by| mta_core::header::received_queue(qp, by, now));
    line.extend_from_slice(mta_smtp::received_line(&info).as_bytes());
    if incoming.write(&line).is_err() {
        tx.write_failed = true;
    }
    tx.incoming = Some(match incoming {
        Body::Queue(i) if check => Body::Checked(i, Vec::new()),
        other => other,
    });
    Verdict::Accept
}

fn data_end(shared: &Shared, tx: &mut Transaction, client: &Client, helo: Option<&str>) -> Verdict {
    let Some(mut incoming) = tx.incoming.take() else {
        refused(
            shared,
            client.ip,
            Reason::QueueFailed,
            "451 no message in progress",
        );
        return Verdict::Reject(reply(451, "4.3.0 qqt failure"));
    };
    if tx.write_failed {
        drop(incoming);
        *tx = Transaction::default();
        refused(
            shared,
            client.ip,
            Reason::QueueFailed,
            "451 qq write error or disk full",
        );
        return Verdict::Reject(reply(451, "4.3.0 qq write error or disk full"));
    }
    if let Body::Checked(i, message) = incoming {
        match check_message(shared, tx, client, helo, &message) {
            Ok(header) => {
                let mut i = Body::Queue(i);
                let written = i.write(&header).and_then(|()| {
                    let me = shared.settings.get().me.clone();
                    i.write(&mta_msgauth::remove_auth_results(&message, &me))
                });
                if written.is_err() {
                    *tx = Transaction::default();
                    return Verdict::Reject(reply(451, "4.3.0 qq write error or disk full"));
                }
                incoming = i;
            }
            Err(verdict) => {
                *tx = Transaction::default();
                return verdict;
            }
        }
    }
    let env = Envelope {
        sender: tx.sender.take().unwrap_or_default(),
        recipients: std::mem::take(&mut tx.recipients),
    };
    *tx = Transaction::default();
    let committed = match (incoming, &shared.store) {
        (Body::Checked(..), _) => Err("internal: unchecked body".into()),
        (Body::Queue(i), store) => i.commit(&env, store).map(Committed::Queued),
        (Body::Buffer(b), Store::Pickup(root)) => to_pickup(root, &env, &b),
        (Body::Buffer(_), _) => Err("internal: buffered body without pickup".into()),
    };
    match committed {
        Ok(done) => {
            // The scheduler may be shutting down (or, in the SMTP process, the queue
            // process has told its own): the message is durable and is picked up by the
            // next start's scan.
            let told = match done {
                Committed::Queued(id) => shared.scheduler.send(Input::New(id)).is_ok(),
                Committed::Pickup => false,
            };
            if !told && let Some(t) = &shared.trigger {
                crate::trigger::pull(t, crate::trigger::Pull::NewMail);
            }
            crate::metrics::message_accepted();
            let secs = crate::log::unix_now();
            let qp = match done {
                Committed::Queued(id) => id.to_string(),
                Committed::Pickup => "pickup".to_owned(),
            };
            Verdict::AcceptWith(reply(250, &format!("2.0.0 ok {secs} qp {qp}")))
        }
        Err(e) => {
            let detail = format!("451 enqueue failed: {}", log::safe(e.as_bytes()));
            refused(shared, client.ip, Reason::QueueFailed, &detail);
            Verdict::Reject(reply(451, "4.3.0 qq write error or disk full"))
        }
    }
}

/// Mail this host vouches for (a relay client, or a logged-in user) is not checked.
fn trusted(relay_client: bool, client: &Client) -> bool {
    relay_client || client.login.is_some() || client.ip.is_none()
}

/// With `spfreject`: SPF for MAIL FROM (HELO for `<>`) now, refusing a `fail` with
/// `550 5.7.23` (RFC 7372); the result is kept for the Authentication-Results header.
fn spf_at_mail(
    shared: &Shared,
    tx: &mut Transaction,
    client: &Client,
    helo: Option<&str>,
    sender: &Address,
) -> Verdict {
    let (Some(verifier), Some(ip)) = (&shared.verifier, client.ip) else {
        return Verdict::Accept;
    };
    if !shared.settings.get().control.spfreject {
        return Verdict::Accept;
    }
    let spf = verifier.check_spf(ip, helo.unwrap_or(""), &sender.to_string_lossy());
    if spf.is_fail() {
        let detail = format!("550 SPF fail for <{}>", log::safe(sender.as_bytes()));
        refused(shared, client.ip, Reason::SpfFail, &detail);
        return Verdict::Reject(reply(
            550,
            "5.7.23 SPF validation failed: this host is not allowed to send for that domain",
        ));
    }
    tx.spf = Some(spf);
    Verdict::Accept
}

/// SPF, DKIM and DMARC for a message from outside (RFC 7208, 6376, 7489): the
/// Authentication-Results header to put in front of it (RFC 8601, LF line ends), or the
/// refusal (`550 5.7.1` for a DMARC failure under `p=reject` with `dmarcreject`). DNS
/// trouble gives `temperror` results, never a refusal.
fn check_message(
    shared: &Shared,
    tx: &Transaction,
    client: &Client,
    helo: Option<&str>,
    message: &[u8],
) -> Result<Vec<u8>, Verdict> {
    let (Some(verifier), Some(ip)) = (&shared.verifier, client.ip) else {
        return Ok(Vec::new());
    };
    let settings = shared.settings.get();
    let sender = tx
        .sender
        .as_ref()
        .map(Address::to_string_lossy)
        .unwrap_or_default();
    let results = match &tx.spf {
        Some(spf) => verifier.check_message(spf, message),
        None => verifier.check(ip, helo.unwrap_or(""), &sender, message),
    };
    if settings.control.dmarcreject && results.dmarc_reject() {
        let detail = format!("550 DMARC p=reject for <{}>", log::safe(sender.as_bytes()));
        refused(shared, client.ip, Reason::DmarcReject, &detail);
        return Err(Verdict::Reject(reply(
            550,
            "5.7.1 DMARC policy of the From: domain says to reject this message",
        )));
    }
    let header = results.header(&settings.me);
    Ok(header
        .into_bytes()
        .into_iter()
        .filter(|&b| b != b'\r')
        .collect())
}

/// Leaves an accepted message in the pickup directory (qmail-queue wire envelope first).
fn to_pickup(root: &crate::root::Root, env: &Envelope, body: &[u8]) -> Result<Committed, String> {
    let envelope = mta_queue::qmail::encode(env).map_err(|e| e.to_string())?;
    crate::inject::pickup::drop_off(root, &envelope, b"", body).map_err(|e| e.to_string())?;
    Ok(Committed::Pickup)
}

/// Where an accepted message went: its `250` says so.
#[derive(Clone, Copy, Debug)]
enum Committed {
    /// Durable in the queue under this id (`qp` in the reply).
    Queued(mta_queue::MessageId),
    /// Durable in `DIR/pickup`, for the server to import (`sendmail -bs` beside it).
    Pickup,
}

/// stdin + stdout as one stream.
struct Stdio<'a> {
    input: &'a mut dyn Read,
    output: &'a mut dyn Write,
}

impl Read for Stdio<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl SessionStream for Stdio<'_> {}

impl Write for Stdio<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// `sendmail -bs`: one SMTP session on stdin/stdout, as a local client allowed to relay
/// (qmail set `RELAYCLIENT=` for it). Accepted messages wake a running `mta serve` through
/// the trigger. Returns the exit code.
pub fn serve_stdio(root: &crate::root::Root, stdin: &mut dyn Read, stdout: &mut dyn Write) -> i32 {
    let setup = || -> Result<Shared, String> {
        let settings = Arc::new(crate::live::LiveSettings::new(Arc::new(Settings::load(
            &root.control(),
        )?)));
        let invoker_uid = rustix::process::getuid().as_raw();
        let privileged = crate::privs::is_root();
        let accounts = crate::accounts::resolve(&root.control(), privileged, false)?;
        let users = Arc::new(crate::serve::user_table(root, &accounts, privileged)?);
        // Only the queue's owner writes the queue: root becomes it (as qmail-queue was
        // setuid qmailq); anyone else uses pickup.
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(root.queue()).map_err(|e| format!("queue: {e}"))?,
        );
        let became = owner != rustix::process::geteuid().as_raw()
            && crate::inject::deliver::become_queue_owner(root);
        let opened = if owner == rustix::process::geteuid().as_raw() {
            Queue::open(root.queue(), mta_queue::QueueOptions::default())
        } else {
            Err(mta_queue::QueueError::Locked)
        };
        if became && opened.is_err() {
            crate::inject::deliver::back_to_root();
        }
        let store = match opened {
            Ok(q) => Store::Queue(Arc::new(q)),
            // A running `mta serve` holds the queue: hand messages over through pickup.
            Err(mta_queue::QueueError::Locked) => Store::Pickup(root.clone()),
            Err(e) => return Err(format!("unable to open queue: {e}")),
        };
        let (tx, _rx) = crossbeam_channel::unbounded();
        Ok(Shared {
            // `sendmail -bs` is a local user's session: nothing to check.
            verifier: None,
            router: Arc::clone(&settings) as Arc<dyn Router>,
            settings,
            store,
            users,
            lookups: crate::lookup::LookupCache::default(),
            scheduler: tx,
            trigger: Some(root.trigger()),
            invoker_uid,
            limits: Arc::default(),
            certs: crate::tls::cert_store(root.control().join("servercert.pem")),
            passwords: crate::auth::password_store(root.dir().join("users/passwords")),
            auth_failures: crate::auth::FailTracker::default(),
            stopping: AtomicBool::new(false),
        })
    };
    let shared = match setup() {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(stdout, "421 4.3.0 {e}\r");
            return 111;
        }
    };
    let mut io = Stdio {
        input: stdin,
        output: stdout,
    };
    let mut client = Client::new(None, ListenKind::Smtp, None);
    match serve_connection(&shared, &mut io, &mut client, true) {
        Ok(()) => 0,
        Err(_) => 111,
    }
}
