//! lspawn: the one process of `mta serve` that stays root after the start, and its only job
//! is qmail-lspawn's: starting a local delivery worker (`mta local-worker`) under the
//! account of a recipient.
//!
//! The queue process connects to `DIR/run/lspawn/socket` (mode 0660, root and the queue
//! account's group; the peer's uid is checked with `SO_PEERCRED`) and sends one frame
//! ([`mta_core::frame`]): `spawn LOCAL TIMEOUT`. lspawn looks `LOCAL` up itself, in
//! users/assign and then the alias user (the same table local delivery uses), so the queue
//! process cannot name the account a worker runs as. It refuses, with a deferral text the
//! queue reports (`refused TEXT`), uid 0, gid 0 and the daemon's own accounts (smtpd, queue,
//! remote); otherwise it starts the worker with that uid and gid, no supplementary groups,
//! a fixed environment, `/` as its directory, the connection itself as the worker's
//! standard input and output, and a pipe as its standard error, and answers `ok UID GID`.
//! From then on the queue process and the worker speak `mta_dotqmail::worker`'s protocol
//! on that connection; lspawn keeps no copy of it. What the worker writes to standard error
//! is logged, line by line, with its pid and uid, and lspawn reaps it.
//!
//! lspawn reads no message and no file another user wrote other than users/assign (root's);
//! the worker reads the user's `.qmail` files as the user.

use std::io::{self, BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mta_core::frame;
use mta_dotqmail::Resolved;
use mta_dotqmail::worker::{self, SpawnAnswer, SpawnRequest};

use crate::accounts::Accounts;
use crate::log;
use crate::root::Root;
use crate::users::Users;

/// `DIR/run/lspawn/socket`.
pub fn socket_path(root: &Root) -> PathBuf {
    crate::tree::lspawn_run(root).join("socket")
}

/// The environment variable that carries `timeoutlocal` (seconds) to a worker process.
pub const TIMEOUT_ENV: &str = "MTA_TIMEOUT_LOCAL";

/// Why lspawn did not start a worker.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// lspawn could not be reached or the connection failed.
    Io(io::Error),
    /// lspawn refused; the deferral text (qmail's `#4.3.0` style).
    Refused(String),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Io(e) => write!(f, "lspawn unreachable: {e}"),
            SpawnError::Refused(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for SpawnError {}

/// The queue process's side: asks lspawn for workers.
#[derive(Clone, Debug)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// A client of the lspawn listening at `path`.
    pub fn new(path: PathBuf) -> Client {
        Client { path }
    }

    /// A worker for the recipient whose local part is `local`: the connection to it and the
    /// uid and gid it runs as.
    ///
    /// # Errors
    /// [`SpawnError`]: lspawn unreachable, or it refused (the text to defer with).
    pub fn spawn_worker(
        &self,
        local: &[u8],
        timeout: Duration,
    ) -> Result<(UnixStream, (u32, u32)), SpawnError> {
        let mut stream = crate::serve::connect_patiently(&self.path).map_err(SpawnError::Io)?;
        let request = SpawnRequest {
            local,
            timeout_secs: timeout.as_secs(),
        };
        worker::write_spawn(&mut stream, &request).map_err(SpawnError::Io)?;
        // Unbuffered: whatever follows the answer belongs to the worker's protocol.
        let answer = frame::read_limited(&mut stream, 4096)
            .map_err(SpawnError::Io)?
            .ok_or_else(|| SpawnError::Io(io::ErrorKind::UnexpectedEof.into()))?;
        match worker::decode_spawn_answer(&answer) {
            Some(SpawnAnswer::Started { uid, gid }) => Ok((stream, (uid, gid))),
            Some(SpawnAnswer::Refused(text)) => Err(SpawnError::Refused(text)),
            None => Err(SpawnError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed lspawn answer",
            ))),
        }
    }
}

/// Whether a worker may run as `uid:gid`: the deferral text when not (qmail-lspawn refused
/// root; group 0 and the daemon's accounts would hand a user's `.qmail` program their
/// rights).
pub fn refusal(accounts: &Accounts, uid: u32, gid: u32) -> Option<String> {
    if uid == 0 {
        return Some("Not allowed to perform deliveries as root. (#4.3.0)".into());
    }
    if gid == 0 {
        return Some("Not allowed to perform deliveries with group 0. (#4.3.0)".into());
    }
    if accounts.is_daemon_id(uid, gid) {
        return Some(
            "Not allowed to perform deliveries as one of the mail system's accounts. (#4.3.0)"
                .into(),
        );
    }
    None
}

/// What the lspawn process holds.
struct Lspawn {
    users: Arc<Users>,
    accounts: Accounts,
    /// This program, by descriptor ([`crate::privs::reexec_path`]).
    exe: (PathBuf, std::os::fd::OwnedFd),
}

/// Runs lspawn until the master says stop.
///
/// # Errors
/// What kept it from starting (its table, its socket).
pub fn run(
    root: &Root,
    orders: &crossbeam_channel::Receiver<crate::master::Order>,
    ready: &dyn Fn(),
) -> Result<(), String> {
    crate::helpers::set_program_root(&crate::serve::absolute(root)?);
    let accounts = crate::accounts::resolve(&root.control(), true, false)?;
    let users = Arc::new(crate::serve::user_table(root, &accounts, true)?);
    let listener = bind(root, accounts.queue.gid).map_err(|e| format!("lspawn socket: {e}"))?;
    let state = Arc::new(Lspawn {
        users: Arc::clone(&users),
        accounts,
        exe: crate::privs::reexec_path().map_err(|e| format!("current_exe: {e}"))?,
    });
    std::thread::Builder::new()
        .name("lspawn".into())
        .spawn(move || accept_loop(&listener, &state))
        .map_err(|e| format!("spawn: {e}"))?;
    ready();
    for order in orders {
        match order {
            crate::master::Order::Reload => users.reload_now(),
            crate::master::Order::Flush => {}
            crate::master::Order::Stop => break,
        }
    }
    Ok(())
}

/// Binds the socket ([`crate::serve::bind_unix`]), then gives it mode 0660 and group
/// `gid` (the directory is root's: nothing else can have put anything there).
fn bind(root: &Root, gid: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(root);
    let listener = crate::serve::bind_unix(&path)?;
    std::os::unix::fs::lchown(&path, Some(0), Some(gid))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

fn accept_loop(listener: &UnixListener, state: &Arc<Lspawn>) {
    let mut pacer = crate::accept::Pacer::new("lspawn");
    for conn in listener.incoming() {
        let Some(conn) = pacer.take(conn) else {
            continue;
        };
        let allowed = rustix::net::sockopt::socket_peercred(&conn)
            .is_ok_and(|c| c.uid.as_raw() == 0 || c.uid.as_raw() == state.accounts.queue.uid);
        if !allowed {
            continue;
        }
        let state = Arc::clone(state);
        let spawned = std::thread::Builder::new()
            .name("lspawn-conn".into())
            .spawn(move || {
                if let Err(e) = handle(conn, &state) {
                    log::line(&format!(
                        "warning: lspawn: {}",
                        log::safe(e.to_string().as_bytes())
                    ));
                }
            });
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One request: resolve, refuse or start the worker on the connection.
fn handle(mut conn: UnixStream, state: &Lspawn) -> io::Result<()> {
    let Some(fields) = frame::read_limited(&mut conn, 4096)? else {
        return Ok(());
    };
    let refuse = |conn: &mut UnixStream, text: &str| {
        worker::write_spawn_answer(conn, &SpawnAnswer::Refused(text.to_owned()))
    };
    let Some(request) = worker::decode_spawn(&fields) else {
        return refuse(&mut conn, "Malformed lspawn request. (#4.3.0)");
    };
    let (local, timeout) = (request.local, request.timeout_secs);
    let table = state.users.table();
    let user = match table.resolve(local) {
        Ok(Resolved::User(u)) => u,
        Ok(_) => return refuse(&mut conn, "No such local user. (#5.1.1)"),
        Err(e) => return refuse(&mut conn, &e.report()),
    };
    let (uid, gid) = (user.account().uid(), user.account().gid());
    if let Some(text) = refusal(&state.accounts, uid, gid) {
        return refuse(&mut conn, &text);
    }
    let theirs_in = OwnedFd::from(conn.try_clone()?);
    let theirs_out = OwnedFd::from(conn.try_clone()?);
    let mut child = Command::new(&state.exe.0)
        .arg0("mta")
        .arg("local-worker")
        .env_clear()
        .envs(crate::helpers::program_env())
        .env(TIMEOUT_ENV, timeout.to_string())
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::from(theirs_in))
        .stdout(Stdio::from(theirs_out))
        .stderr(Stdio::piped())
        .spawn()?;
    let answer = frame::write(
        &mut conn,
        &[
            b"ok",
            uid.to_string().as_bytes(),
            gid.to_string().as_bytes(),
        ],
    );
    drop(conn);
    let pid = child.id();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).split(b'\n') {
            let Ok(line) = line else { break };
            log::line(&format!(
                "delivery worker {pid} uid {uid}: {}",
                log::safe(&line)
            ));
        }
    }
    let _ = child.wait();
    answer
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::accounts::SysAccount;

    fn accounts() -> Accounts {
        let a = |uid| SysAccount {
            name: String::new(),
            uid,
            gid: uid,
        };
        Accounts {
            smtpd: a(901),
            queue: a(902),
            remote: a(903),
            alias: a(904),
        }
    }

    #[test]
    fn refuses_root_group_zero_and_daemon_accounts() {
        let a = accounts();
        assert!(refusal(&a, 0, 5).unwrap().contains("as root"));
        assert!(refusal(&a, 5, 0).unwrap().contains("group 0"));
        for id in [901, 902, 903] {
            assert!(refusal(&a, id, 5).is_some(), "uid {id}");
            assert!(refusal(&a, 5, id).is_some(), "gid {id}");
        }
        assert_eq!(refusal(&a, 904, 904), None);
        assert_eq!(refusal(&a, 1000, 1000), None);
    }
}
