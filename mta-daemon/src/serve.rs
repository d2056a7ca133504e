//! The processes of `mta serve` other than the master ([`crate::master`]) and lspawn
//! ([`crate::lspawn`]): the queue process and the SMTP process, as qmail-send (with
//! qmail-clean and qmail-rspawn) and qmail-smtpd were separate programs under separate
//! accounts.
//!
//! **The queue process** (`mtaq`, the only writer of `DIR/queue`): the scheduler,
//! `concurrencylocal` local delivery threads (each delivery runs in a worker lspawn starts
//! under the recipient's account; unprivileged, in the thread itself), `concurrencyremote`
//! threads that hand remote jobs to the remote process ([`crate::rspawn`]), the finishers
//! (marks, bounces, removals), the pickup import and the trigger FIFO, the control socket
//! (`mta queue ...`), and the submission socket `DIR/run/queue/submit` through which the
//! SMTP process hands over each message (`mta_queue::submit`).
//!
//! **The SMTP process** (`mtad`): one acceptor per listener the master passed it, a thread
//! per session, and the metrics endpoint. It cannot open the queue; it streams each message
//! to the queue process and says `250` only after that process reports the commit durable.
//! While the queue process is down, messages get `451`.
//!
//! At a stop (the master's order, or SIGTERM to the process): the SMTP process's acceptors
//! stop and open sessions answer `421 4.3.2 shutting down` within a second (a transaction in
//! progress is void, its body never committed); the queue process's scheduler starts
//! nothing new and waits for the deliveries in flight for at most 10 s
//! (`STOP_DELIVERIES`). Nothing accepted is lost: every message that got `250` is in the
//! queue and the next start reschedules it; a delivery cut off at the deadline was not
//! marked, and is repeated.

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use mta_core::control::ListenKind;
use mta_dotqmail::Account;
use mta_queue::{Queue, QueueOptions};

use crate::accounts::Accounts;
use crate::bounce::QueueBouncer;
use crate::live::LiveSettings;
use crate::local::LocalDelivery;
use crate::log;
use crate::master::{Link, Order, Role};
use crate::remote::RemoteDelivery;
use crate::root::Root;
use crate::route::Router;
use crate::sched::{self, Input, Scheduler};
use crate::settings::Settings;
use crate::smtpd::{self, Shared};
use crate::users::Users;
use crate::{pool, trigger};

/// Threads that bounce and remove finished messages (bounces share the queue's fsyncs).
const FINISHERS: usize = 4;

/// The default delivery when a user has no `.qmail` (qmail-start's argument).
pub const DEFAULT_DELIVERY: &[u8] = b"./Maildir/\n";

/// The user table: users/assign (reloaded when it changes), then the alias user (home
/// `DIR/alias`, running as the alias account). `privileged`: uid 0 entries are refused.
///
/// # Errors
/// users/assign syntax errors (`file:line`), a missing alias directory.
pub fn user_table(root: &Root, accounts: &Accounts, privileged: bool) -> Result<Users, String> {
    // Absolute, without resolving links through directories above the root (which this
    // process may not be let through).
    if !root.alias().is_dir() {
        return Err(format!("{}: not a directory", root.alias().display()));
    }
    let home = absolute(root)?.join("alias");
    let home = home.as_os_str().as_encoded_bytes().to_vec();
    let a = &accounts.alias;
    let alias = Account::new("alias", a.uid, a.gid, home);
    Users::load(root.assign(), alias, privileged)
}

/// Connects to the Unix socket at `path`, retrying for up to 3 s while nobody listens
/// there yet (lspawn or the remote process (re)starting).
///
/// # Errors
/// The last connection error.
pub(crate) fn connect_patiently(path: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match std::os::unix::net::UnixStream::connect(path) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) && Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// The root as an absolute path (a child of the master names it `.`): for what other
/// processes are given, such as `.qmail` programs' `PATH`.
///
/// # Errors
/// The working directory cannot be read.
pub(crate) fn absolute(root: &Root) -> Result<std::path::PathBuf, String> {
    std::path::absolute(root.dir()).map_err(|e| format!("{}: {e}", root.dir().display()))
}

/// How long the queue process waits for the queue's lock: a predecessor may still be
/// finishing its deliveries in flight (up to `STOP_DELIVERIES`), or an `mta inject` its
/// enqueue.
const QUEUE_PATIENCE: Duration = Duration::from_secs(30);

/// Opens the queue, waiting while another process holds it.
fn open_queue_patiently(root: &Root) -> Result<Queue, String> {
    let deadline = Instant::now() + QUEUE_PATIENCE;
    loop {
        match Queue::open(root.queue(), QueueOptions::default()) {
            Ok(q) => {
                log::torn_messages(&q);
                return Ok(q);
            }
            Err(mta_queue::QueueError::Locked) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("unable to open queue: {e}")),
        }
    }
}

/// Moves messages `mta inject` left in `DIR/pickup` into the queue, and tells the scheduler.
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

/// `mta serve-role ROLE`: one of the master's children. Returns the exit code.
pub fn run_role(root: &Root, role: &str, privileged: bool) -> i32 {
    let Some(role) = Role::from_name(role) else {
        eprintln!("mta: unknown role {role}");
        return 1;
    };
    // `ps -o comm` and `top` show `mta-queue`, `mta-smtpd`, ... (the program was started as
    // /proc/self/fd/N, which would name it `N`).
    crate::privs::set_process_name(&format!("mta-{}", role.name()));
    let result = (|| -> Result<(), String> {
        let link = Link::from_stdin().map_err(|e| format!("link to the master: {e}"))?;
        let listeners = if role == Role::Smtpd {
            crate::master::receive_listeners(&link).map_err(|e| format!("listeners: {e}"))?
        } else {
            Vec::new()
        };
        // SIGTERM, SIGINT, SIGHUP and SIGALRM sent to this process act as the master's
        // orders do; caught before anything else runs.
        let signals = {
            use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGTERM};
            signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGALRM])
                .map_err(|e| format!("signals: {e}"))?
        };
        let (tx, orders) = unbounded();
        let signal_tx = tx.clone();
        let notify = link.try_clone().map_err(|e| format!("link: {e}"))?;
        spawn("master-link", move || {
            crate::master::forward_orders(&link, &tx);
        })?;
        spawn("signals", move || forward_signals(signals, &signal_tx))?;
        // The master may be gone; then the stop order follows.
        let ready = move || drop(notify.send(b"ready", &[]));
        match role {
            Role::Queue => run_queue(root, privileged, &orders, &ready),
            Role::Smtpd => run_smtpd(root, privileged, listeners, &orders),
            Role::Remote => crate::rspawn::run(root, &orders, &ready),
            Role::Lspawn => crate::lspawn::run(root, &orders, &ready),
        }
    })();
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            log::line(&format!(
                "alert: {} process cannot start: {}",
                role.name(),
                log::safe(e.as_bytes())
            ));
            111
        }
    };
    log::flush();
    code
}

/// Turns signals into orders: TERM and INT stop, HUP reloads, ALRM flushes.
fn forward_signals(
    mut signals: signal_hook::iterator::Signals,
    tx: &crossbeam_channel::Sender<Order>,
) {
    use signal_hook::consts::{SIGALRM, SIGHUP};
    for signal in signals.forever() {
        let order = match signal {
            SIGHUP => Order::Reload,
            SIGALRM => Order::Flush,
            _ => Order::Stop,
        };
        if tx.send(order).is_err() {
            return;
        }
    }
}

/// Raises the open-file limit to its hard maximum: every SMTP session holds a socket, and
/// `concurrencyincoming` may be in the thousands.
pub(crate) fn raise_fd_limit() {
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

/// What the queue process reads before any thread runs.
struct Base {
    settings: Arc<Settings>,
    queue: Arc<Queue>,
    /// The messages queued before anything could add to one (see `queued_at_start`).
    queued_at_start: Option<Vec<mta_queue::MessageId>>,
    /// Since when no queue process held the queue ([`NEW_SINCE_ENV`]).
    new_since: Option<std::time::SystemTime>,
    accounts: Accounts,
    privileged: bool,
    users: Arc<Users>,
    live: Arc<LiveSettings>,
    router: Arc<dyn Router>,
}

/// The delivery side: pools, their channels, the pieces a reload changes.
struct Pools {
    local: Arc<LocalDelivery>,
    remote: Arc<crate::rspawn::Client>,
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

/// The queue process: runs until the master (or a signal) says stop.
fn run_queue(
    root: &Root,
    privileged: bool,
    orders: &Receiver<Order>,
    ready: &dyn Fn(),
) -> Result<(), String> {
    // Five lines per message: written together (see `log`), and at once when the
    // scheduler runs out of work.
    log::delay_writes();
    raise_fd_limit();
    let base = prepare(root, privileged)?;
    if base.settings.control.smtpauth_unreadable {
        log::line(
            "warning: control/smtpauth is not readable by the queue account; no logins for smarthosts",
        );
    }
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
            // Messages from the network and bounces were queued by the SMTP account.
            queue_uid: base.accounts.smtpd.uid,
        },
        sched_rx,
        pools.local_tx.clone(),
        Some(pools.remote_tx.clone()),
    );
    let scheduler = match base.queued_at_start.clone() {
        Some(ids) => scheduler.queued_at_start(ids, base.new_since),
        None => scheduler,
    };
    let sched_thread = thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || scheduler.run())
        .map_err(|e| format!("spawn: {e}"))?;
    start_control(root, &base, &sched_tx)?;
    start_trigger(root, pulls, &base, &pools, &sched_tx)?;
    start_submission(root, &base, &sched_tx)?;
    ready();

    let reload = Reload {
        who: "queue",
        root,
        live: &base.live,
        users: &base.users,
        remote: None,
        local: Some(&pools.local),
        bouncer: Some(&pools.bouncer),
    };
    wait_for_stop(orders, &reload, || {
        log::line("status: flushing the queue");
        // The same path as `mta queue flush`: forget downed hosts, retry now.
        trigger::pull(&root.trigger(), trigger::Pull::Flush);
    });
    stop_queue(&sched_tx, sched_thread);
    Ok(())
}

/// Reads the configuration, opens the queue, prepares the tables.
fn prepare(root: &Root, privileged: bool) -> Result<Base, String> {
    let settings = Arc::new(Settings::load(&root.control())?);
    crate::helpers::set_program_root(&absolute(root)?);
    let accounts = crate::accounts::resolve(&root.control(), privileged, false)?;
    let queue = Arc::new(open_queue_patiently(root)?);
    // What is queued now was logged by the process that received it: the scheduler does
    // not announce it again (it will announce everything that arrives from here on).
    let queued_at_start = queue.scan().ok();
    let new_since = std::env::var(NEW_SINCE_ENV)
        .ok()
        .and_then(|v| parse_unix_time(&v));
    let users = Arc::new(user_table(root, &accounts, privileged)?);
    let live = Arc::new(LiveSettings::new(Arc::clone(&settings)));
    let router: Arc<dyn Router> = Arc::clone(&live) as Arc<dyn Router>;
    Ok(Base {
        settings,
        queue,
        queued_at_start,
        new_since,
        accounts,
        privileged,
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
    let lspawn = base
        .privileged
        .then(|| crate::lspawn::Client::new(crate::lspawn::socket_path(root)));
    let local = Arc::new(
        LocalDelivery::new(
            Arc::clone(&base.users),
            crate::live::default_delivery(&root.control())?,
            Arc::clone(queue),
            sched_tx.clone(),
            lspawn,
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
    let remote = Arc::new(crate::rspawn::Client::new(
        crate::rspawn::socket_path(root),
        Arc::clone(queue),
    ));
    remote.warm_up(settings.concurrency_remote);
    let (remote_tx, remote_rx) = unbounded::<sched::Job>();
    for _ in 0..settings.concurrency_remote.max(1) {
        let (rx, tx) = (remote_rx.clone(), sched_tx.clone());
        let (remote, queue) = (Arc::clone(&remote), Arc::clone(queue));
        spawn("remote", move || {
            pool::run_deliveries(&rx, &*remote, &queue, &tx);
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
    let listener = crate::control::bind(root, None).map_err(|e| format!("control socket: {e}"))?;
    let own = rustix::process::getuid().as_raw();
    let server = crate::control::Server {
        queue: Arc::clone(&base.queue),
        router: Arc::clone(&base.router),
        scheduler: sched_tx.clone(),
        allowed: vec![own],
        trigger: root.trigger(),
    };
    spawn("control", move || crate::control::serve(&listener, &server))
}

/// The environment variable in which the master tells a queue process since when no queue
/// process held the queue (Unix seconds and nanoseconds, `S.NNNNNNNNN`): the master's start,
/// or its predecessor's death. Messages born since then were queued directly by `mta
/// inject` meanwhile and are announced (`new msg`, `info msg`) like any new message; older
/// ones were announced by the process that had them, or before this server started.
pub(crate) const NEW_SINCE_ENV: &str = "MTA_QUEUE_NEW_SINCE";

/// Parses [`NEW_SINCE_ENV`]'s `S.NNNNNNNNN`.
fn parse_unix_time(text: &str) -> Option<std::time::SystemTime> {
    let (secs, nanos) = text.split_once('.')?;
    let nanos: u32 = nanos.parse().ok().filter(|&n| n < 1_000_000_000)?;
    let d = std::time::Duration::new(secs.parse().ok()?, nanos);
    std::time::SystemTime::UNIX_EPOCH.checked_add(d)
}

/// `DIR/run/queue/submit`: where the SMTP process hands over messages.
pub fn submit_socket(root: &Root) -> std::path::PathBuf {
    crate::tree::queue_run(root).join("submit")
}

/// `DIR/run/queue/metrics`: the queue process's metrics, read by the SMTP process's
/// endpoint.
pub fn metrics_socket(root: &Root) -> std::path::PathBuf {
    crate::tree::queue_run(root).join("metrics")
}

/// Binds a Unix socket at `path` (a stale socket from an earlier run goes), mode 0666: who
/// may connect is decided by the directory (`DIR/run/queue` or `DIR/run/remote`, mode
/// 0750, the client account's group) and the peer's uid.
pub(crate) fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// The submission socket (one thread per SMTP process connection) and the metrics socket.
/// Only the SMTP account, root and this process's own uid may connect (`SO_PEERCRED`).
fn start_submission(
    root: &Root,
    base: &Base,
    sched_tx: &crossbeam_channel::Sender<Input>,
) -> Result<(), String> {
    let own = rustix::process::getuid().as_raw();
    let allowed = [0, own, base.accounts.smtpd.uid];
    let peer_ok = move |s: &std::os::unix::net::UnixStream| {
        rustix::net::sockopt::socket_peercred(s).is_ok_and(|c| allowed.contains(&c.uid.as_raw()))
    };
    let path = submit_socket(root);
    let listener = bind_unix(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let queue = Arc::clone(&base.queue);
    let tx = sched_tx.clone();
    spawn("submit", move || {
        let mut pacer = crate::accept::Pacer::new("submission");
        for conn in listener.incoming() {
            let Some(conn) = pacer.take(conn) else {
                continue;
            };
            if !peer_ok(&conn) {
                continue;
            }
            let (queue, tx) = (Arc::clone(&queue), tx.clone());
            let served = spawn("submit-conn", move || {
                let Ok(clone) = conn.try_clone() else { return };
                let done = mta_queue::submit::serve(&queue, &conn, &clone, |done| {
                    // Gone only at shutdown; the next start's scan finds the message.
                    let _ = tx.send(Input::Committed(Box::new(crate::sched::Committed {
                        info: done.info,
                        head: done.head.to_vec(),
                    })));
                });
                if let Err(e) = done
                    && e.kind() != std::io::ErrorKind::ConnectionReset
                {
                    log::line(&format!(
                        "warning: submission connection: {}",
                        log::safe(e.to_string().as_bytes())
                    ));
                }
            });
            if served.is_err() {
                thread::sleep(Duration::from_millis(100));
            }
        }
    })?;
    let path = metrics_socket(root);
    let listener = bind_unix(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    spawn("metrics-part", move || {
        use std::io::Write;
        let limits = crate::limits::Limits::default();
        let mut pacer = crate::accept::Pacer::new("metrics-part");
        for conn in listener.incoming() {
            let Some(mut conn) = pacer.take(conn) else {
                continue;
            };
            if peer_ok(&conn) {
                let _ = conn.write_all(crate::metrics::render(&limits).as_bytes());
            }
        }
    })
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
                    remote.flush();
                    Input::Flush
                }
            };
            if tx.send(input).is_err() {
                break;
            }
        }
    })
}

/// The SMTP process: runs until the master (or a signal) says stop.
fn run_smtpd(
    root: &Root,
    privileged: bool,
    listeners: Vec<(String, std::os::fd::OwnedFd)>,
    orders: &Receiver<Order>,
) -> Result<(), String> {
    raise_fd_limit();
    let settings = Arc::new(Settings::load(&root.control())?);
    let accounts = crate::accounts::resolve(&root.control(), privileged, false)?;
    let users = Arc::new(user_table(root, &accounts, privileged)?);
    let live = Arc::new(LiveSettings::new(Arc::clone(&settings)));
    // Sessions tell the queue process, which tells its scheduler: nobody listens here.
    let (scheduler, _) = unbounded();
    let shared = Arc::new(Shared {
        verifier: verifier(&settings),
        router: Arc::clone(&live) as Arc<dyn Router>,
        settings: Arc::clone(&live),
        store: smtpd::Store::Submit(smtpd::SubmitPool::new(submit_socket(root))),
        users: Arc::clone(&users),
        lookups: crate::lookup::LookupCache::default(),
        scheduler,
        trigger: None,
        invoker_uid: rustix::process::getuid().as_raw(),
        limits: Arc::default(),
        certs: crate::tls::cert_store(root.control().join("servercert.pem")),
        passwords: crate::auth::password_store(root.dir().join("users/passwords")),
        auth_failures: crate::auth::FailTracker::default(),
        stopping: AtomicBool::new(false),
    });
    // Parse the certificate now: a broken file is logged at start, not at the first client.
    let _ = shared.certs.current();
    let mut bound = Vec::new();
    for (kind, fd) in listeners {
        let listener = TcpListener::from(fd);
        if kind == "metrics" {
            crate::metrics::serve_on(listener, Arc::clone(&shared.limits), metrics_socket(root))?;
            continue;
        }
        let kind = match kind.as_str() {
            "submission" => ListenKind::Submission,
            "smtps" => ListenKind::Smtps,
            _ => ListenKind::Smtp,
        };
        bound.push(listener.local_addr().map_err(|e| e.to_string())?);
        let shared = Arc::clone(&shared);
        spawn("accept", move || {
            smtpd::accept_loop(&listener, kind, &shared);
        })?;
    }
    let reload = Reload {
        who: "smtpd",
        root,
        live: &live,
        users: &users,
        remote: None,
        local: None,
        bouncer: None,
    };
    wait_for_stop(orders, &reload, || {});
    stop_smtpd(&shared, bound);
    Ok(())
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

/// The SMTP process's stop: acceptors and sessions end (`421 4.3.2`).
fn stop_smtpd(shared: &Shared, bound: Vec<std::net::SocketAddr>) {
    shared.stopping.store(true, Ordering::SeqCst);
    for addr in bound {
        // Wake each acceptor so it sees the flag; failure only means it is already gone.
        let _ = TcpStream::connect(addr);
    }
    // Sessions notice the flag within a second and answer 421 4.3.2.
    if !wait_until(Instant::now() + STOP_SESSIONS, || {
        shared.limits.active() == 0
    }) {
        log::line("warning: SMTP sessions still open at stop; closing them");
    }
}

/// The queue process's stop: the scheduler starts nothing new, deliveries in flight get
/// `STOP_DELIVERIES`.
fn stop_queue(sched_tx: &crossbeam_channel::Sender<Input>, sched_thread: thread::JoinHandle<()>) {
    let _ = sched_tx.send(Input::Shutdown);
    if wait_until(Instant::now() + STOP_DELIVERIES, || {
        sched_thread.is_finished()
    }) {
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

/// What a reload re-reads in this process.
struct Reload<'a> {
    /// The process, in log lines.
    who: &'static str,
    root: &'a Root,
    live: &'a LiveSettings,
    users: &'a Users,
    remote: Option<&'a RemoteDelivery>,
    local: Option<&'a LocalDelivery>,
    bouncer: Option<&'a QueueBouncer>,
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
            if let Some(remote) = self.remote {
                remote.reload(&control)?;
            }
            if let Some(bouncer) = self.bouncer {
                bouncer.set_config(settings.bounce.clone());
            }
            self.live.set(settings);
            if let Some(local) = self.local {
                local.set_default_delivery(default_delivery);
            }
            Ok(())
        })();
        self.users.reload_now();
        match applied {
            Ok(()) => log::line(&format!("status: {} reloaded configuration", self.who)),
            Err(e) => log::line(&format!(
                "alert: {} unable to reread controls: {}; keeping the previous configuration",
                self.who,
                log::safe(e.as_bytes())
            )),
        }
    }
}

/// How often control/ and users/ are checked for changes (qmail read most control files
/// per delivery; a changed file applies within this time, or at once on SIGHUP).
const POLL_CONFIG: Duration = Duration::from_secs(2);

/// What identifies the configuration's current contents: every file in control/ and
/// users/ by name, size, modification and change times and inode. Any edit, replacement,
/// removal or change of permissions (a secret the master made readable) changes it.
fn config_fingerprint(root: &Root) -> Vec<(std::path::PathBuf, u64, i64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for dir in [root.control(), root.dir().join("users")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(m) = entry.metadata() {
                let times = (m.mtime(), m.mtime_nsec(), m.ctime());
                out.push((entry.path(), m.len(), times.0, times.1, times.2, m.ino()));
            }
        }
    }
    out.sort();
    out
}

/// Waits for the stop order, handling reloads and flushes meanwhile, and rereading the
/// configuration whenever a file in control/ or users/ changes.
fn wait_for_stop(orders: &Receiver<Order>, reload: &Reload<'_>, flush: impl Fn()) {
    wait_for_orders(orders, reload.root, || reload.run(), flush);
}

/// [`wait_for_stop`] with any reload: `reload` at the master's order or when a file in
/// control/ or users/ changes, `flush` at its flush order; returns at the stop order.
pub(crate) fn wait_for_orders(
    orders: &Receiver<Order>,
    root: &Root,
    reload: impl Fn(),
    flush: impl Fn(),
) {
    let mut seen = config_fingerprint(root);
    loop {
        match orders.recv_timeout(POLL_CONFIG) {
            Ok(Order::Reload) => {
                seen = config_fingerprint(root);
                reload();
            }
            Ok(Order::Flush) => flush(),
            Ok(Order::Stop) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                let now = config_fingerprint(root);
                if now != seen {
                    seen = now;
                    reload();
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The master's `NEW_SINCE_ENV` text reads back as the same instant; anything else is
    /// no time at all (the queue process then announces as before the variable existed).
    #[test]
    fn new_since_round_trips_and_junk_is_none() {
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(1_764_389_285, 7);
        assert_eq!(parse_unix_time("1764389285.000000007"), Some(t));
        for junk in ["", "1764389285", "x.1", "1.x", "1.1000000000", "-1.0"] {
            assert_eq!(parse_unix_time(junk), None, "{junk:?}");
        }
    }
}
