//! `mta serve`: wires the SMTP service, the scheduler and the delivery pools together, like
//! qmail-start started qmail-send, qmail-lspawn, qmail-rspawn and qmail-clean.
//!
//! Threads: one acceptor per `control/listen` address (sessions get a thread each), the
//! scheduler, `concurrencylocal` local delivery threads, one thread reading the trigger FIFO
//! (pulled by `mta inject` and `mta queue flush`), and the main thread waiting for SIGTERM or
//! SIGINT. At a signal: acceptors stop, open SMTP sessions answer `421 4.3.2 shutting down`
//! within a second (a transaction in progress is void, its body never committed) and
//! close, the scheduler starts nothing new and waits for the deliveries in flight for at
//! most 10 s (`STOP_DELIVERIES`), then the process exits 0. Nothing accepted is lost: every
//! message that got `250` is in the queue and the next start reschedules it; a delivery
//! cut off at the deadline was not marked, and is repeated.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use mta_dotqmail::Account;
use mta_queue::{Queue, QueueOptions};

use crate::bounce::QueueBouncer;
use crate::live::LiveSettings;
use crate::local::LocalDelivery;
use crate::log;
use crate::remote::RemoteDelivery;
use crate::root::{self, Root};
use crate::route::Router;
use crate::sched::{self, Input, Scheduler};
use crate::settings::Settings;
use crate::smtpd::{self, Shared};
use crate::users::Users;
use crate::{pool, privs, trigger};

/// Threads that bounce and remove finished messages (bounces share the queue's fsyncs).
const FINISHERS: usize = 4;

/// The default delivery when a user has no `.qmail` (qmail-start's argument).
pub const DEFAULT_DELIVERY: &[u8] = b"./Maildir/\n";

/// The remote pool's view of [`RemoteDelivery`].
struct RemotePool(Arc<RemoteDelivery>);

impl pool::Deliver for RemotePool {
    fn deliver(&self, job: &sched::Job) -> Vec<mta_core::DeliveryResult> {
        self.0.deliver(job)
    }
}

/// The alias account: `DIR/alias` as home, owned by `alias` or `nobody` when root, else us.
fn alias_account(root: &Root, as_root: bool) -> Result<Account, String> {
    let home = std::fs::canonicalize(root.alias())
        .map_err(|e| format!("{}: {e}", root.alias().display()))?;
    let home = home.as_os_str().as_encoded_bytes().to_vec();
    if as_root {
        let acct = privs::unprivileged_account(Path::new("/etc/passwd"))
            .ok_or("no alias or nobody account in /etc/passwd")?;
        Ok(Account::new("alias", acct.uid, acct.gid, home))
    } else {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        Ok(Account::new("alias", uid, gid, home))
    }
}

/// The user table: users/assign (reloaded when it changes), then the alias user.
///
/// # Errors
/// users/assign syntax errors (`file:line`), a missing alias directory or account.
pub fn user_table(root: &Root, as_root: bool) -> Result<Users, String> {
    let alias = alias_account(root, as_root)?;
    Users::load(root.assign(), alias, as_root)
}

/// Opens the queue, waiting up to five seconds while another process (an `mta inject` in
/// the middle of its enqueue) holds it.
fn open_queue_patiently(root: &Root) -> Result<Queue, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Queue::open(root.queue(), QueueOptions::default()) {
            Ok(q) => return Ok(q),
            Err(mta_queue::QueueError::Locked) if std::time::Instant::now() < deadline => {
                thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(format!("unable to open queue: {e}")),
        }
    }
}

/// Moves messages `mta inject` left in `DIR/pickup` (while this process held the queue)
/// into the queue, and tells the scheduler.
fn import_pickup(root: &Root, queue: &Queue, tx: &crossbeam_channel::Sender<Input>) {
    match crate::inject::pickup::drain(root, queue) {
        Ok(d) => {
            for id in d.imported {
                // The scheduler rescans at start; a send can only fail at shutdown.
                let _ = tx.send(Input::New(id));
            }
            for name in d.unreadable {
                log::line(&format!(
                    "warning: unreadable file in pickup: {}",
                    log::safe(name.as_bytes())
                ));
            }
        }
        Err(e) => log::line(&format!(
            "warning: trouble importing pickup: {e}; will try again later"
        )),
    }
}

/// Runs the daemon until SIGTERM/SIGINT. Returns the exit code.
pub fn run(root: &Root) -> i32 {
    match run_inner(root) {
        Ok(()) => 0,
        Err(e) => {
            log::line(&format!("alert: cannot start: {}", log::safe(e.as_bytes())));
            111
        }
    }
}

/// Raises the open-file limit to its hard maximum: every SMTP session holds a socket, and
/// `concurrencyincoming` may be in the thousands.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        // Failure leaves the old limit, which is still a working limit.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        );
    }
}

/// What the start-up reads before any thread runs.
struct Base {
    settings: Arc<Settings>,
    queue: Arc<Queue>,
    /// The messages queued before anything could add to one (see `queued_at_start`).
    queued_at_start: Option<Vec<mta_queue::MessageId>>,
    /// The account sessions and deliveries of the alias user drop to, when root.
    drop_to: Option<(u32, u32)>,
    users: Arc<Users>,
    live: Arc<LiveSettings>,
    router: Arc<dyn Router>,
}

/// The delivery side: pools, their channels, the pieces a reload changes.
struct Pools {
    local: Arc<LocalDelivery>,
    remote: Arc<RemoteDelivery>,
    bouncer: Arc<QueueBouncer>,
    local_tx: crossbeam_channel::Sender<sched::Job>,
    remote_tx: crossbeam_channel::Sender<sched::Job>,
    finish_tx: crossbeam_channel::Sender<pool::Finish>,
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|e| format!("spawn: {e}"))
}

fn run_inner(root: &Root) -> Result<(), String> {
    raise_fd_limit();
    if !root.exists() {
        root::init(root, None).map_err(|e| format!("init {}: {e}", root.dir().display()))?;
    }
    // Signals are caught from here on: a HUP or ALRM sent while the daemon starts (a
    // supervisor does not know when it is ready) is handled once it runs, never fatal.
    let signals = {
        use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGTERM};
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGALRM])
            .map_err(|e| format!("signals: {e}"))?
    };
    let base = prepare(root)?;
    let (sched_tx, sched_rx) = unbounded();
    let pools = start_pools(root, &base, &sched_tx)?;

    // The trigger FIFO is opened, and pickup imported, before the scheduler runs: it
    // logs the imported messages as new, and nothing left in pickup misses a wake-up.
    let pulls = trigger::Listener::open(&root.trigger())
        .map_err(|e| format!("trigger {}: {e}", root.trigger().display()))?;
    import_pickup(root, &base.queue, &sched_tx);
    let scheduler = Scheduler::new(
        Arc::clone(&base.queue),
        Arc::clone(&base.router),
        pools.finish_tx.clone(),
        sched::Settings {
            concurrency_local: base.settings.concurrency_local,
            concurrency_remote: base.settings.concurrency_remote,
            lifetime: base.settings.queue_lifetime,
            remote_enabled: true,
            queue_uid: base
                .drop_to
                .map_or_else(|| rustix::process::getuid().as_raw(), |(uid, _)| uid),
        },
        sched_rx,
        pools.local_tx.clone(),
        Some(pools.remote_tx.clone()),
    );
    let scheduler = match base.queued_at_start.clone() {
        Some(ids) => scheduler.queued_at_start(ids),
        None => scheduler,
    };
    let sched_thread = thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || scheduler.run())
        .map_err(|e| format!("spawn: {e}"))?;
    start_control(root, &base, &sched_tx)?;
    start_trigger(root, pulls, &base, &pools, &sched_tx)?;
    let (shared, bound) = start_smtp(root, &base, &sched_tx)?;

    // Signals: HUP rereads, ALRM flushes, TERM / INT stop.
    let reload = Reload {
        root,
        live: &base.live,
        users: &base.users,
        remote: &pools.remote,
        local: &pools.local,
        bouncer: &pools.bouncer,
    };
    wait_for_stop(signals, &reload);
    stop(&shared, bound, &sched_tx, sched_thread);
    Ok(())
}

/// Reads the configuration, opens the queue, prepares the alias account and the tables.
fn prepare(root: &Root) -> Result<Base, String> {
    let settings = Arc::new(Settings::load(&root.control())?);
    let as_root = privs::is_root();
    // .qmail programs find qmail's helpers in DIR/bin first (a root made by an older
    // `init` gets the links now).
    let abs_root =
        std::fs::canonicalize(root.dir()).map_err(|e| format!("{}: {e}", root.dir().display()))?;
    if let Err(e) = crate::helpers::install_links(&Root::new(&abs_root)) {
        // Mail still flows; only .qmail programs that use the helpers will defer.
        log::line(&format!(
            "warning: unable to create {}/bin: {}",
            log::safe(abs_root.as_os_str().as_encoded_bytes()),
            log::safe(e.to_string().as_bytes())
        ));
    }
    crate::helpers::set_program_root(&abs_root);
    let queue = Arc::new(open_queue_patiently(root)?);
    // What is queued now was logged by the process that received it: the scheduler does
    // not announce it again (it will announce everything that arrives from here on).
    let queued_at_start = queue.scan().ok();
    let alias = alias_account(root, as_root)?;
    let mut drop_to = None;
    if as_root {
        let (uid, gid) = (alias.uid(), alias.gid());
        privs::chown_tree(&root.alias(), uid, gid).map_err(|e| format!("chown alias: {e}"))?;
        privs::chown_tree(&root.queue(), uid, gid).map_err(|e| format!("chown queue: {e}"))?;
        drop_to = Some((uid, gid));
    }
    let users = Arc::new(Users::load(root.assign(), alias, as_root)?);
    let live = Arc::new(LiveSettings::new(Arc::clone(&settings)));
    let router: Arc<dyn Router> = Arc::clone(&live) as Arc<dyn Router>;
    Ok(Base {
        settings,
        queue,
        queued_at_start,
        drop_to,
        users,
        live,
        router,
    })
}

/// The local and remote delivery pools (deliver, report) and the finishing pool (marks,
/// bounces, removals).
fn start_pools(
    root: &Root,
    base: &Base,
    sched_tx: &crossbeam_channel::Sender<Input>,
) -> Result<Pools, String> {
    let settings = &base.settings;
    let queue = &base.queue;
    let worker_exe = if privs::is_root() {
        Some(std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?)
    } else {
        None
    };
    let local = Arc::new(
        LocalDelivery::new(
            Arc::clone(&base.users),
            crate::live::default_delivery(&root.control())?,
            Arc::clone(queue),
            sched_tx.clone(),
            worker_exe,
        )
        .with_program_timeout(settings.timeout_local),
    );
    let (local_tx, local_rx) = unbounded::<sched::Job>();
    for _ in 0..settings.concurrency_local.max(1) {
        let (rx, tx) = (local_rx.clone(), sched_tx.clone());
        let (local, queue) = (Arc::clone(&local), Arc::clone(queue));
        spawn("local", move || {
            pool::run_deliveries(&rx, &*local, &queue, &tx);
        })?;
    }
    let remote = Arc::new(
        RemoteDelivery::new(&root.control(), Arc::clone(queue))
            .map_err(|e| format!("remote delivery: {e}"))?,
    );
    let (remote_tx, remote_rx) = unbounded::<sched::Job>();
    for _ in 0..settings.concurrency_remote.max(1) {
        let (rx, tx) = (remote_rx.clone(), sched_tx.clone());
        let (remote, queue) = (Arc::clone(&remote), Arc::clone(queue));
        spawn("remote", move || {
            pool::run_deliveries(&rx, &RemotePool(remote), &queue, &tx);
        })?;
    }
    let (finish_tx, finish_rx) = unbounded::<pool::Finish>();
    let bouncer = Arc::new(QueueBouncer::new(settings.bounce.clone()));
    for _ in 0..FINISHERS {
        let (rx, tx) = (finish_rx.clone(), sched_tx.clone());
        let (queue, bouncer) = (Arc::clone(queue), Arc::clone(&bouncer));
        spawn("finish", move || {
            pool::run_finisher(&rx, &queue, &*bouncer, &tx);
        })?;
    }
    Ok(Pools {
        local,
        remote,
        bouncer,
        local_tx,
        remote_tx,
        finish_tx,
    })
}

/// The queue's control socket (`mta queue hold|release|delete|show|list|flush`).
fn start_control(
    root: &Root,
    base: &Base,
    sched_tx: &crossbeam_channel::Sender<Input>,
) -> Result<(), String> {
    let listener =
        crate::control::bind(root, base.drop_to).map_err(|e| format!("control socket: {e}"))?;
    let own = rustix::process::getuid().as_raw();
    let server = crate::control::Server {
        queue: Arc::clone(&base.queue),
        router: Arc::clone(&base.router),
        scheduler: sched_tx.clone(),
        allowed: base
            .drop_to
            .map_or_else(|| vec![own], |(uid, _)| vec![uid, own]),
        trigger: root.trigger(),
    };
    spawn("control", move || crate::control::serve(&listener, &server))
}

/// The trigger FIFO's reader: pickup imports and flushes.
fn start_trigger(
    root: &Root,
    mut pulls: trigger::Listener,
    base: &Base,
    pools: &Pools,
    sched_tx: &crossbeam_channel::Sender<Input>,
) -> Result<(), String> {
    let tx = sched_tx.clone();
    let root = root.clone();
    let queue = Arc::clone(&base.queue);
    let remote = Arc::clone(&pools.remote);
    spawn("trigger", move || {
        while let Ok(pull) = pulls.wait() {
            let input = match pull {
                trigger::Pull::NewMail => {
                    import_pickup(&root, &queue, &tx);
                    Input::Rescan
                }
                trigger::Pull::Flush => {
                    // qmail-tcpok: forget downed hosts, then retry everything.
                    remote.reset_downed_hosts();
                    Input::Flush
                }
            };
            if tx.send(input).is_err() {
                break;
            }
        }
    })
}

/// The SMTP listeners (and the metrics endpoint); returns the sessions' shared state and
/// the bound addresses.
fn start_smtp(
    root: &Root,
    base: &Base,
    sched_tx: &crossbeam_channel::Sender<Input>,
) -> Result<(Arc<Shared>, Vec<std::net::SocketAddr>), String> {
    let shared = Arc::new(Shared {
        verifier: verifier(&base.settings),
        settings: Arc::clone(&base.live),
        store: smtpd::Store::Queue(Arc::clone(&base.queue)),
        router: Arc::clone(&base.router),
        users: Arc::clone(&base.users),
        lookups: crate::lookup::LookupCache::default(),
        scheduler: sched_tx.clone(),
        trigger: None,
        drop_to: base.drop_to,
        limits: Arc::default(),
        certs: crate::tls::cert_store(root.control().join("servercert.pem")),
        passwords: crate::auth::password_store(root.dir().join("users/passwords")),
        auth_failures: crate::auth::FailTracker::default(),
        stopping: AtomicBool::new(false),
    });
    if let Some(addr) = crate::metrics::configured(&root.control())? {
        let bound = crate::metrics::serve(addr, Arc::clone(&shared.limits), base.drop_to)?;
        log::line(&format!("status: metrics on {bound}"));
    }
    // Parse the certificate now: a broken file is logged at start, not at the first client.
    let _ = shared.certs.current();
    let mut bound = Vec::new();
    for l in &base.settings.listen {
        let (addr, kind) = (l.addr, l.kind);
        let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        bound.push(listener.local_addr().map_err(|e| e.to_string())?);
        let shared = Arc::clone(&shared);
        spawn("accept", move || {
            smtpd::accept_loop(&listener, kind, &shared);
        })?;
        log::line(&format!("status: listening on {addr} {}", kind.as_str()));
    }
    Ok((shared, bound))
}

/// The SPF, DKIM and DMARC checker for mail from outside, asking `dnsservers` (each lookup
/// gets 5 s, each of the three checks 10 s, well inside the SMTP timeouts).
fn verifier(settings: &Settings) -> Option<Arc<mta_msgauth::BlockingVerifier>> {
    let config = mta_msgauth::VerifierConfig::new(settings.control.dnsservers.clone())
        .query_timeout(Duration::from_secs(5))
        .check_timeout(Duration::from_secs(10))
        .hostname(settings.me.clone());
    match mta_msgauth::BlockingVerifier::new(config) {
        Ok(v) => Some(Arc::new(v)),
        Err(e) => {
            log::line(&format!(
                "warning: no SPF, DKIM or DMARC checks: {}",
                log::safe(e.to_string().as_bytes())
            ));
            None
        }
    }
}

/// The stop: acceptors and sessions end (`421 4.3.2`), the scheduler starts nothing new,
/// deliveries in flight get `STOP_DELIVERIES`.
fn stop(
    shared: &Shared,
    bound: Vec<std::net::SocketAddr>,
    sched_tx: &crossbeam_channel::Sender<Input>,
    sched_thread: thread::JoinHandle<()>,
) {
    log::line("status: stopping");
    shared.stopping.store(true, Ordering::SeqCst);
    for addr in bound {
        // Wake each acceptor so it sees the flag; failure only means it is already gone.
        let _ = TcpStream::connect(addr);
    }
    let _ = sched_tx.send(Input::Shutdown);
    let start = Instant::now();
    // Sessions notice the flag within a second and answer 421 4.3.2.
    if !wait_until(start + STOP_SESSIONS, || shared.limits.active() == 0) {
        log::line("warning: SMTP sessions still open at stop; closing them");
    }
    if wait_until(start + STOP_DELIVERIES, || sched_thread.is_finished()) {
        let _ = sched_thread.join();
    } else {
        // Their messages are still queued, unmarked: the next start delivers them.
        log::line(&format!(
            "warning: deliveries still running {} s after the stop; exiting, they will be \
             retried at the next start",
            STOP_DELIVERIES.as_secs()
        ));
    }
}

/// How long a stop waits for SMTP sessions to say `421 4.3.2` and close.
const STOP_SESSIONS: Duration = Duration::from_secs(3);
/// How long a stop waits for deliveries in flight.
const STOP_DELIVERIES: Duration = Duration::from_secs(10);

/// Polls `done` until it holds or `deadline` passes; whether it held.
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// What SIGHUP re-reads.
struct Reload<'a> {
    root: &'a Root,
    live: &'a LiveSettings,
    users: &'a Users,
    remote: &'a RemoteDelivery,
    local: &'a LocalDelivery,
    bouncer: &'a QueueBouncer,
}

impl Reload<'_> {
    /// qmail-send's SIGHUP: control/ and users/assign again, at once. Everything is read
    /// before anything changes: a file that does not parse keeps the whole old
    /// configuration, and is logged with its `file:line`.
    fn run(&self) {
        let control = self.root.control();
        let applied = (|| -> Result<(), String> {
            let settings = Arc::new(Settings::load(&control)?);
            let default_delivery = crate::live::default_delivery(&control)?;
            // Parses, then applies: the last step that can fail.
            self.remote.reload(&control)?;
            self.bouncer.set_config(settings.bounce.clone());
            self.live.set(settings);
            self.local.set_default_delivery(default_delivery);
            Ok(())
        })();
        self.users.reload_now();
        match applied {
            Ok(()) => log::line("status: reloaded configuration"),
            Err(e) => log::line(&format!(
                "alert: unable to reread controls: {}; keeping the previous configuration",
                log::safe(e.as_bytes())
            )),
        }
    }
}

/// How often control/ and users/ are checked for changes (qmail read most control files
/// per delivery; a changed file applies within this time, or at once on SIGHUP).
const POLL_CONFIG: Duration = Duration::from_secs(2);

/// What identifies the configuration's current contents: every file in control/ and
/// users/ by name, size, change time and inode. Any edit, replacement or removal changes it.
fn config_fingerprint(root: &Root) -> Vec<(std::path::PathBuf, u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for dir in [root.control(), root.dir().join("users")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(m) = entry.metadata() {
                out.push((entry.path(), m.len(), m.mtime(), m.mtime_nsec(), m.ino()));
            }
        }
    }
    out.sort();
    out
}

/// Waits for SIGTERM or SIGINT, handling SIGHUP (reread the configuration) and SIGALRM
/// (retry every deferred delivery now, as `mta queue flush`) meanwhile, and rereading the
/// configuration whenever a file in control/ or users/ changes.
fn wait_for_stop(mut signals: signal_hook::iterator::Signals, reload: &Reload<'_>) {
    use signal_hook::consts::{SIGALRM, SIGHUP};
    let mut seen = config_fingerprint(reload.root);
    let mut checked = Instant::now();
    loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => {
                    seen = config_fingerprint(reload.root);
                    reload.run();
                }
                SIGALRM => {
                    log::line("status: flushing the queue at SIGALRM");
                    // The same path as `mta queue flush`: forget downed hosts, retry now.
                    trigger::pull(&reload.root.trigger(), trigger::Pull::Flush);
                }
                _ => return,
            }
        }
        if checked.elapsed() >= POLL_CONFIG {
            checked = Instant::now();
            let now = config_fingerprint(reload.root);
            if now != seen {
                seen = now;
                reload.run();
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}
