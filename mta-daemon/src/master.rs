//! The master process of `mta serve` (design.md "Processes and accounts"): qmail-start's
//! job. It binds the listeners, starts the other processes under their accounts, restarts
//! one that dies (with backoff) and stops them all at SIGTERM. It reads the configuration
//! (to know what to bind and whom to run as) and nothing else: no message, no network data,
//! no file under `queue/`, `pickup/` or any home.
//!
//! | process | account | started as |
//! |---|---|---|
//! | queue | `mtaq` | `mta serve-role queue` |
//! | lspawn | root | `mta serve-role lspawn` (only when the master is root) |
//! | remote | `mtar` | `mta serve-role remote` |
//! | smtpd | `mtad` | `mta serve-role smtpd` |
//!
//! Each child's standard input is its [`Link`] to the master: a `SOCK_SEQPACKET` socket that
//! carries the listening sockets (`SCM_RIGHTS`) and the master's orders (`reload`, `flush`,
//! `stop`). Its end of file tells the child that the master is gone, and the child stops as
//! at SIGTERM, so a killed master leaves nothing running that would hold the ports or the
//! queue when it is started again. Started as an ordinary user, the same processes run under
//! that user's uid.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::accounts::{self, Accounts};
use crate::log;
use crate::root::{self, Root};
use crate::settings::Settings;

/// The processes the master starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Owns the queue: scheduler, deliveries, bounces, pickup, the submission socket.
    Queue,
    /// Root's one job: starting local delivery workers under the recipient's account.
    Lspawn,
    /// Outbound SMTP and DNS.
    Remote,
    /// SMTP sessions.
    Smtpd,
}

impl Role {
    /// The name in `mta serve-role NAME` and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Role::Queue => "queue",
            Role::Lspawn => "lspawn",
            Role::Remote => "remote",
            Role::Smtpd => "smtpd",
        }
    }

    /// The role called `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Queue, Role::Lspawn, Role::Remote, Role::Smtpd]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// A message on a [`Link`]: what it says, and the descriptors it carries.
pub type Packet = (Vec<u8>, Vec<OwnedFd>);

/// The master's end or a child's end of their socket.
#[derive(Debug)]
pub struct Link(OwnedFd);

impl Link {
    /// A connected pair: (the master's end, the child's end).
    ///
    /// # Errors
    /// `socketpair` failed.
    pub fn pair() -> io::Result<(Link, Link)> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Link(a), Link(b)))
    }

    /// A child's link: its standard input.
    ///
    /// # Errors
    /// Standard input could not be duplicated.
    pub fn from_stdin() -> io::Result<Link> {
        Ok(Link(io::stdin().as_fd().try_clone_to_owned()?))
    }

    /// A second handle on the same socket.
    ///
    /// # Errors
    /// `dup` failed.
    pub fn try_clone(&self) -> io::Result<Link> {
        Ok(Link(self.0.try_clone()?))
    }

    /// Waits at most `limit` for the child to say `ready` (lspawn and the queue process,
    /// once their sockets are bound); whether it did.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        use rustix::net::sockopt::Timeout;
        use rustix::net::sockopt::set_socket_timeout;
        if set_socket_timeout(&self.0, Timeout::Recv, Some(limit)).is_err() {
            return false;
        }
        let ready = matches!(self.recv(), Ok(Some((msg, _))) if msg == b"ready");
        let _ = set_socket_timeout(&self.0, Timeout::Recv, None);
        ready
    }

    /// Sends `msg` with `fds` attached.
    ///
    /// # Errors
    /// The other end is gone, or `sendmsg` failed.
    pub fn send(&self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut ancillary = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !ancillary.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many fds"));
        }
        sendmsg(
            &self.0,
            &[io::IoSlice::new(msg)],
            &mut ancillary,
            SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }

    /// Waits for the next message; `None` when the other end has closed.
    ///
    /// # Errors
    /// `recvmsg` failed.
    pub fn recv(&self) -> io::Result<Option<Packet>> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 512];
        let got = loop {
            match recvmsg(
                &self.0,
                &mut [io::IoSliceMut::new(&mut buf)],
                &mut ancillary,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(r) => break r,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        let mut fds = Vec::new();
        for msg in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
        if got.bytes == 0 && fds.is_empty() {
            return Ok(None);
        }
        Ok(Some((buf[..got.bytes].to_vec(), fds)))
    }
}

/// `mta serve`: runs the master until SIGTERM/SIGINT. Returns the exit code.
pub fn run(root: &Root) -> i32 {
    match run_inner(root) {
        Ok(()) => 0,
        Err(e) => {
            log::line(&format!("alert: cannot start: {}", log::safe(e.as_bytes())));
            111
        }
    }
}

/// One child the master keeps running.
struct Slot {
    role: Role,
    child: Option<(Child, Link)>,
    started: Instant,
    /// Since when this role may have had no process: the master's start, then the last
    /// time the previous one was seen alive. A new queue process announces (`new msg`,
    /// `info msg`) the messages born since then, which only a direct `mta inject` could
    /// have queued while none held the queue.
    gone_since: SystemTime,
    /// The next start after a death; doubles while the child keeps dying early.
    backoff: Duration,
    restart_at: Option<Instant>,
}

/// The first wait before restarting a child that died, and the longest.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long before dying is restarted after [`BACKOFF_FIRST`] again.
const HEALTHY: Duration = Duration::from_mins(1);
/// How long a stop waits for the children before killing them.
const STOP_CHILDREN: Duration = Duration::from_secs(15);
/// How long the master waits at start for lspawn and the queue process to say they are
/// ready (the queue may wait for a predecessor's lock).
const READY: Duration = Duration::from_mins(1);
/// How long the master retries binding a port still held by a stopping predecessor.
const BIND_PATIENCE: Duration = Duration::from_secs(20);

/// Everything a child start needs.
struct Plan {
    /// This program, by descriptor ([`crate::privs::reexec_path`]).
    exe: (PathBuf, OwnedFd),
    privileged: bool,
    accounts: Accounts,
    /// The SMTP listeners with their kinds, and the metrics listener.
    listeners: Vec<(String, TcpListener)>,
}

fn run_inner(root: &Root) -> Result<(), String> {
    crate::privs::close_inherited_fds();
    crate::serve::raise_fd_limit();
    if !root.exists() {
        root::init(root, None).map_err(|e| format!("init {}: {e}", root.dir().display()))?;
    }
    let signals = {
        use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGTERM};
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGALRM])
            .map_err(|e| format!("signals: {e}"))?
    };
    let privileged = crate::privs::is_root();
    let abs_root =
        std::fs::canonicalize(root.dir()).map_err(|e| format!("{}: {e}", root.dir().display()))?;
    let root = Root::new(&abs_root);
    let settings = Settings::load(&root.control())?;
    let accounts = accounts::resolve(&root.control(), privileged, privileged)?;
    if privileged && let Err(e) = reachable_by_everyone(root.dir()) {
        log::line(&format!(
            "warning: {}; the processes still work from inside it, but the alias user's \
             deliveries and .qmail programs that run DIR/bin will fail",
            log::safe(e.as_bytes())
        ));
    }
    std::env::set_current_dir(root.dir()).map_err(|e| format!("{}: {e}", root.dir().display()))?;
    crate::tree::prepare(&root, &accounts, privileged)?;
    let mut listeners = Vec::new();
    for l in &settings.listen {
        let listener = bind_patiently(l.addr)?;
        log::line(&format!(
            "status: listening on {} {}",
            l.addr,
            l.kind.as_str()
        ));
        listeners.push((l.kind.as_str().to_owned(), listener));
    }
    if let Some(addr) = crate::metrics::configured(&root.control())? {
        listeners.push(("metrics".to_owned(), bind_patiently(addr)?));
    }
    let plan = Plan {
        exe: crate::privs::reexec_path().map_err(|e| format!("current_exe: {e}"))?,
        privileged,
        accounts,
        listeners,
    };
    // lspawn first (the queue's first deliveries need it), then the queue process, and the
    // SMTP process once the queue is ready: the first client's message must not find the
    // submission socket missing.
    let master_started = SystemTime::now();
    let slot = |role| Slot {
        role,
        child: None,
        started: Instant::now(),
        gone_since: master_started,
        backoff: BACKOFF_FIRST,
        restart_at: Some(Instant::now()),
    };
    let mut slots = Vec::new();
    if privileged {
        slots.push(slot(Role::Lspawn));
    }
    slots.push(slot(Role::Remote));
    slots.push(slot(Role::Queue));
    for s in &mut slots {
        reap_or_start(&plan, s);
        if let Some((_, link)) = &s.child
            && !link.wait_ready(READY)
        {
            log::line(&format!(
                "warning: the {} process is not ready yet; going on",
                s.role.name()
            ));
        }
    }
    slots.push(slot(Role::Smtpd));
    supervise(&plan, &root, &mut slots, signals);
    stop_all(&mut slots);
    Ok(())
}

/// The processes run as other accounts: every directory above the root must let them
/// through (search permission for others), or each would fail at its first file.
fn reachable_by_everyone(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)
            .map_err(|e| format!("{}: {e}", ancestor.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "{} (mode {:o}) keeps the mail system's accounts out of {}: choose a root \
                 others can reach (e.g. --root /var/mta), or chmod o+x {}",
                ancestor.display(),
                mode & 0o7777,
                dir.display(),
                ancestor.display()
            ));
        }
    }
    Ok(())
}

/// Binds `addr`, retrying while the port is still held (a predecessor killed a moment ago
/// whose SMTP process is closing its sessions).
fn bind_patiently(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    let deadline = Instant::now() + BIND_PATIENCE;
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("bind {addr}: {e}")),
        }
    }
}

/// Starts the children, restarts the ones that die, passes signals on as orders; returns at
/// SIGTERM or SIGINT.
fn supervise(
    plan: &Plan,
    root: &Root,
    slots: &mut [Slot],
    mut signals: signal_hook::iterator::Signals,
) {
    use signal_hook::consts::{SIGALRM, SIGHUP};
    let mut checked = Instant::now();
    loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => {
                    crate::tree::share_secrets(root, &plan.accounts, plan.privileged);
                    tell(slots, None, b"reload");
                }
                SIGALRM => tell(slots, Some(Role::Queue), b"flush"),
                _ => return,
            }
        }
        for slot in slots.iter_mut() {
            reap_or_start(plan, slot);
        }
        // A key or password file replaced by the admin gets its group again.
        if checked.elapsed() >= Duration::from_secs(2) {
            checked = Instant::now();
            crate::tree::share_secrets(root, &plan.accounts, plan.privileged);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `order` to the children of `role` (all when `None`); a dead child is skipped.
fn tell(slots: &[Slot], role: Option<Role>, order: &[u8]) {
    for slot in slots {
        if role.is_none_or(|r| r == slot.role)
            && let Some((_, link)) = &slot.child
        {
            let _ = link.send(order, &[]);
        }
    }
}

/// Notices a child's death (logs it, schedules the restart) or starts it when due.
fn reap_or_start(plan: &Plan, slot: &mut Slot) {
    if let Some((child, _)) = slot.child.as_mut() {
        match child.try_wait() {
            Ok(None) | Err(_) => {
                // Seen alive now: whatever it queued is born before its death, which is
                // after this (see `gone_since`).
                slot.gone_since = SystemTime::now();
                return;
            }
            Ok(Some(status)) => {
                let ran = slot.started.elapsed();
                if ran >= HEALTHY {
                    slot.backoff = BACKOFF_FIRST;
                }
                log::line(&format!(
                    "warning: {} process {} exited ({status}) after {} s; restarting in {} s",
                    slot.role.name(),
                    child.id(),
                    ran.as_secs(),
                    slot.backoff.as_secs()
                ));
                slot.restart_at = Some(Instant::now() + slot.backoff);
                slot.backoff = (slot.backoff * 2).min(BACKOFF_MAX);
                // `gone_since` stays the last time it was seen alive: a message it queued
                // after that is announced twice rather than one queued directly never.
                slot.child = None;
            }
        }
    }
    if slot.restart_at.is_some_and(|t| Instant::now() >= t) {
        match start(plan, slot.role, slot.gone_since) {
            Ok(c) => {
                slot.child = Some(c);
                slot.started = Instant::now();
                slot.restart_at = None;
            }
            Err(e) => {
                log::line(&format!(
                    "alert: unable to start the {} process: {}; trying again in {} s",
                    slot.role.name(),
                    log::safe(e.to_string().as_bytes()),
                    slot.backoff.as_secs()
                ));
                slot.restart_at = Some(Instant::now() + slot.backoff);
                slot.backoff = (slot.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Starts one child: `mta --root DIR serve-role ROLE`, under the role's account, with its
/// link as standard input and the listeners sent over it (smtpd). The queue process also
/// gets `gone_since` (see [`Slot::gone_since`]) in [`crate::serve::NEW_SINCE_ENV`].
fn start(plan: &Plan, role: Role, gone_since: SystemTime) -> io::Result<(Child, Link)> {
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = Link::pair()?;
    let mut cmd = Command::new(&plan.exe.0);
    // The children start in DIR (the master's directory) and name it `.`: they reach it
    // even when a directory above it does not let their accounts through.
    cmd.arg0("mta")
        .arg("--root")
        .arg(".")
        .arg("serve-role")
        .arg(role.name())
        .stdin(Stdio::from(theirs.0))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if role == Role::Queue
        && let Ok(since) = gone_since.duration_since(SystemTime::UNIX_EPOCH)
    {
        cmd.env(
            crate::serve::NEW_SINCE_ENV,
            format!("{}.{:09}", since.as_secs(), since.subsec_nanos()),
        );
    }
    if plan.privileged {
        cmd.arg("--privileged");
        let account = match role {
            Role::Queue => Some(&plan.accounts.queue),
            Role::Smtpd => Some(&plan.accounts.smtpd),
            Role::Remote => Some(&plan.accounts.remote),
            Role::Lspawn => None,
        };
        if let Some(a) = account {
            // std drops the supplementary groups when it changes the uid of a root process.
            cmd.uid(a.uid).gid(a.gid);
        }
    }
    let mut child = cmd.spawn()?;
    if role == Role::Smtpd {
        let sent = plan.listeners.iter().try_for_each(|(kind, listener)| {
            ours.send(format!("listener {kind}").as_bytes(), &[listener.as_fd()])
        });
        if let Err(e) = sent.and_then(|()| ours.send(b"ready", &[])) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    log::line(&format!(
        "status: started the {} process {}",
        role.name(),
        child.id()
    ));
    Ok((child, ours))
}

/// Stops the children: smtpd first (no new messages), then the queue (its deliveries in
/// flight), then lspawn; kills what still runs after [`STOP_CHILDREN`].
fn stop_all(slots: &mut [Slot]) {
    log::line("status: stopping");
    let deadline = Instant::now() + STOP_CHILDREN;
    for role in [Role::Smtpd, Role::Queue, Role::Remote, Role::Lspawn] {
        for slot in slots.iter_mut().filter(|s| s.role == role) {
            let Some((mut child, link)) = slot.child.take() else {
                continue;
            };
            let _ = link.send(b"stop", &[]);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        log::line(&format!(
                            "warning: the {} process did not stop in time; killing it",
                            role.name()
                        ));
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

/// What a child reads from its link before it starts work: the listeners (smtpd), up to
/// `ready`; for other roles nothing.
///
/// # Errors
/// The link failed or carried something else.
pub fn receive_listeners(link: &Link) -> io::Result<Vec<(String, OwnedFd)>> {
    let mut out = Vec::new();
    loop {
        let Some((msg, mut fds)) = link.recv()? else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        if msg == b"ready" {
            return Ok(out);
        }
        let kind = msg
            .strip_prefix(b"listener ")
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected message"))?;
        let fd = fds
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "listener without fd"))?;
        out.push((kind.to_owned(), fd));
    }
}

/// What the master orders a running child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Reread the configuration (SIGHUP at the master).
    Reload,
    /// Retry deferred deliveries now (SIGALRM at the master).
    Flush,
    /// Stop cleanly: SIGTERM at the master, or the master is gone.
    Stop,
}

/// Reads the master's orders into `tx` until the link ends (then a final [`Order::Stop`]).
pub fn forward_orders(link: &Link, tx: &crossbeam_channel::Sender<Order>) {
    loop {
        let order = match link.recv() {
            Ok(Some((msg, _))) => match msg.as_slice() {
                b"reload" => Order::Reload,
                b"flush" => Order::Flush,
                b"stop" => Order::Stop,
                _ => continue,
            },
            Ok(None) | Err(_) => Order::Stop,
        };
        if tx.send(order).is_err() || order == Order::Stop {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_cross_the_link() {
        let (a, b) = Link::pair().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        a.send(b"listener smtp", &[l.as_fd()]).unwrap();
        a.send(b"ready", &[]).unwrap();
        a.send(b"reload", &[]).unwrap();
        drop(l);
        let got = receive_listeners(&b).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "smtp");
        let l = TcpListener::from(got.into_iter().next().unwrap().1);
        assert_eq!(l.local_addr().unwrap(), addr);
        drop(a);
        let (tx, rx) = crossbeam_channel::unbounded();
        forward_orders(&b, &tx);
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            [Order::Reload, Order::Stop]
        );
    }
}
