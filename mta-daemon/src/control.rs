//! Queue control: `mta queue list|show|delete|hold|release|flush` while `serve` runs.
//!
//! The queue process answers on a Unix socket, `DIR/queue/control` (owned by the queue's
//! account; the peer's uid must be root, that account or the server's own), speaking
//! mta-sched's [control protocol](mta_sched::control): one request per connection, one
//! reply. Listings are read from the queue by the server; changes (hold, release, delete)
//! go through the scheduler thread, which changes the queue on disk before its own state,
//! so nothing touches queue files behind the scheduler's back.
//!
//! With no server running, the commands work on the queue directly: listings through a
//! read-only view, changes only after taking the queue's lock (which a running server
//! holds), so the two can never race.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use mta_queue::{MessageId, MessageInfo, Queue, QueueOptions, Status};
use mta_sched::control::{self, Request, Selection};

use crate::qread::{self, MessageLine, RecipientLine};
use crate::root::Root;
use crate::route::{Route, Router};
use crate::sched::{Command, Input};

/// The socket's path under the root.
pub fn socket_path(root: &Root) -> PathBuf {
    root.queue().join("control")
}

/// How long one control connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a command waits for the scheduler.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server's control thread needs.
pub struct Server {
    /// The queue (read for listings).
    pub queue: std::sync::Arc<Queue>,
    /// Routes recipients for the listing's local/remote column.
    pub router: std::sync::Arc<dyn Router>,
    /// The scheduler's input.
    pub scheduler: Sender<Input>,
    /// The uids allowed besides root: the queue's account and the server's own.
    pub allowed: Vec<u32>,
    /// The trigger FIFO: a flush goes the same way as SIGALRM (forget downed hosts too).
    pub trigger: PathBuf,
}

/// Binds the control socket (replacing a stale one) and hands it to the queue's account.
///
/// # Errors
/// I/O errors binding or changing its owner.
pub fn bind(root: &Root, owner: Option<(u32, u32)>) -> io::Result<UnixListener> {
    let path = socket_path(root);
    // A socket left by an earlier run goes; anything else at that name stays (bind fails).
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(&path)?;
        }
    }
    let listener = UnixListener::bind(&path)?;
    if let Some((uid, gid)) = owner {
        // lchown: never follows a link planted in its place.
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
    }
    Ok(listener)
}

/// The control thread: answers connections one at a time until the listener fails.
pub fn serve(listener: &UnixListener, server: &Server) {
    let mut pacer = crate::accept::Pacer::new("control");
    for conn in listener.incoming() {
        let Some(mut conn) = pacer.take(conn) else {
            continue;
        };
        let allowed = rustix::net::sockopt::socket_peercred(&conn).is_ok_and(|cred| {
            let uid = cred.uid.as_raw();
            uid == 0 || server.allowed.contains(&uid)
        });
        let reply = if allowed {
            match read_request(&mut conn) {
                Ok(request) => server.answer(request),
                Err(e) => Err(e),
            }
        } else {
            Err("permission denied: only root and the queue's account may use this\n".into())
        };
        let (ok, text) = match reply {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        // The client may be gone; nothing to do about it.
        let _ = conn.write_all(&control::encode_reply(ok, text.as_bytes()));
    }
}

fn read_request(conn: &mut UnixStream) -> Result<Request, String> {
    conn.set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut wire = Vec::new();
    conn.take(control::MAX_REQUEST as u64 + 1)
        .read_to_end(&mut wire)
        .map_err(|e| format!("reading the request: {e}\n"))?;
    control::decode_request(&wire).map_err(|e| format!("{e}\n"))
}

impl Server {
    fn answer(&self, request: Request) -> Result<String, String> {
        match request {
            Request::List { json } => listing(&self.queue, &*self.router, json),
            Request::Show(id) => show(&self.queue, &*self.router, id),
            Request::Flush => {
                crate::trigger::pull(&self.trigger, crate::trigger::Pull::Flush);
                Ok("flush requested\n".into())
            }
            Request::Hold(ids) => self.command(Command::Hold(ids)),
            Request::Release(ids) => self.command(Command::Release(ids)),
            Request::Delete(selection) => {
                let ids = select(&self.queue, &selection)?;
                if ids.is_empty() {
                    return Ok("no message matches\n".into());
                }
                self.command(Command::Delete(ids))
            }
        }
    }

    fn command(&self, command: Command) -> Result<String, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.scheduler
            .send(Input::Command(command, tx))
            .map_err(|_| "the server is stopping\n".to_string())?;
        rx.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| "the scheduler did not answer\n".to_string())?
            .map_err(|e| format!("{e}\n"))
    }
}

/// The ids a `delete` names: the given ones, or every message from or to an address
/// (ASCII case ignored; only unfinished recipients count for `--to`).
fn select(queue: &Queue, selection: &Selection) -> Result<Vec<MessageId>, String> {
    let (want, from) = match selection {
        Selection::Ids(ids) => return Ok(ids.clone()),
        Selection::From(a) => (a, true),
        Selection::To(a) => (a, false),
    };
    let mut ids = queue.scan().map_err(|e| format!("{e}\n"))?;
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .filter(|&id| {
            queue.info(id).is_ok_and(|info| {
                if from {
                    info.envelope.sender.as_bytes().eq_ignore_ascii_case(want)
                } else {
                    info.envelope
                        .recipients
                        .iter()
                        .zip(&info.statuses)
                        .any(|(r, s)| !s.is_final() && r.as_bytes().eq_ignore_ascii_case(want))
                }
            })
        })
        .collect())
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The queued messages with their details, in id order.
fn messages(queue: &Queue) -> Result<Vec<(MessageInfo, bool)>, String> {
    let mut ids = queue
        .scan()
        .map_err(|e| format!("unable to scan queue: {e}\n"))?;
    ids.sort_unstable();
    let held = queue.holds().unwrap_or_default();
    Ok(ids
        .into_iter()
        // A message removed meanwhile is simply not listed.
        .filter_map(|id| queue.info(id).ok())
        .map(|info| {
            let h = held.binary_search(&info.id).is_ok();
            (info, h)
        })
        .collect())
}

/// `queue list`: qmail-qread's text, or the JSON array of design.md.
///
/// # Errors
/// The text to print when the queue cannot be scanned.
pub fn listing(queue: &Queue, router: &dyn Router, json: bool) -> Result<String, String> {
    let messages = messages(queue)?;
    if json {
        let mut out = String::from("[");
        for (i, (info, held)) in messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_message(&mut out, info, *held);
        }
        out.push_str("]\n");
        return Ok(out);
    }
    let lines: Vec<MessageLine> = messages
        .iter()
        .map(|(info, held)| qread_line(info, *held, router))
        .collect();
    Ok(qread::format_list(&lines))
}

fn qread_line(info: &MessageInfo, held: bool, router: &dyn Router) -> MessageLine {
    let recipients = info
        .envelope
        .recipients
        .iter()
        .zip(&info.statuses)
        .map(|(a, s)| RecipientLine {
            local: matches!(router.route(a), Route::Local(_)),
            address: a.as_bytes().to_vec(),
            done: s.is_final(),
            deferred: match s {
                Status::Deferred {
                    next_attempt,
                    reason,
                    ..
                } => Some((
                    String::from_utf8_lossy(reason).into_owned(),
                    unix(*next_attempt),
                )),
                _ => None,
            },
        })
        .collect();
    MessageLine {
        birth: unix(info.birth),
        id: info.id.to_string(),
        bytes: info.body_len,
        sender: info.envelope.sender.as_bytes().to_vec(),
        bouncing: info.statuses.iter().any(|s| matches!(s, Status::Failed(_))),
        held,
        recipients,
    }
}

/// One message as a JSON object (design.md's fields).
fn json_message(out: &mut String, info: &MessageInfo, held: bool) {
    let _ = write!(
        out,
        "{{\"id\":\"{}\",\"sender\":{},\"size\":{},\"received\":{},\"held\":{held},\"recipients\":[",
        info.id,
        json_string(info.envelope.sender.as_bytes()),
        info.body_len,
        unix(info.birth),
    );
    for (i, (address, status)) in info
        .envelope
        .recipients
        .iter()
        .zip(&info.statuses)
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let (state, attempts, next, error) = crate::sched::describe(status);
        let _ = write!(
            out,
            "{{\"address\":{},\"state\":\"{state}\",\"attempts\":{attempts},\"next_retry\":{},\"last_error\":{}}}",
            json_string(address.as_bytes()),
            next.map_or_else(|| "null".to_string(), |t| unix(t).to_string()),
            error.map_or_else(|| "null".to_string(), json_string),
        );
    }
    out.push_str("]}");
}

/// A JSON string (RFC 8259 §7) of `bytes` read as UTF-8, invalid sequences replaced.
fn json_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Most header bytes `queue show` prints.
const SHOW_HEADER: u64 = 64 * 1024;

/// `queue show ID`: envelope, each recipient's state, and the message's header.
///
/// # Errors
/// The text to print when the message is not queued or cannot be read.
pub fn show(queue: &Queue, router: &dyn Router, id: MessageId) -> Result<String, String> {
    let info = queue.info(id).map_err(|e| format!("msg {id}: {e}\n"))?;
    let held = queue.holds().unwrap_or_default().contains(&id);
    let mut out = String::new();
    let _ = writeln!(out, "id: {id}");
    let _ = writeln!(
        out,
        "received: {} ({})",
        mta_core::date::utc_stamp(i64::try_from(unix(info.birth)).unwrap_or(0)),
        unix(info.birth)
    );
    let _ = writeln!(out, "size: {} bytes", info.body_len);
    let _ = writeln!(
        out,
        "sender: <{}>",
        printable(info.envelope.sender.as_bytes())
    );
    let _ = writeln!(out, "held: {}", if held { "yes" } else { "no" });
    for (address, status) in info.envelope.recipients.iter().zip(&info.statuses) {
        let channel = match router.route(address) {
            Route::Local(_) => "local",
            Route::Remote(_) => "remote",
        };
        let (state, attempts, next, error) = crate::sched::describe(status);
        let _ = write!(
            out,
            "recipient: {channel} <{}> {state}",
            printable(address.as_bytes())
        );
        if attempts > 0 {
            let _ = write!(out, ", {attempts} attempts");
        }
        if let Some(next) = next {
            let _ = write!(out, ", next try {}", unix(next));
        }
        if let Some(e) = error {
            let _ = write!(out, ": {}", printable(e));
        }
        out.push('\n');
    }
    out.push('\n');
    let mut header = Vec::new();
    queue
        .open_message(id)
        .map_err(|e| format!("msg {id}: {e}\n"))?
        .take(SHOW_HEADER)
        .read_to_end(&mut header)
        .map_err(|e| format!("msg {id}: {e}\n"))?;
    let end = header
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(header.len(), |p| p + 2);
    for line in header[..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            out.push_str(&printable(line));
            out.push('\n');
        }
    }
    Ok(out)
}

/// Bytes outside printable ASCII (but tab) shown as `_`.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'\t' | 32..=126 => b as char,
            _ => '_',
        })
        .collect()
}

/// A client's side: sends `request` to a running server. `Ok(None)` when no server
/// answers (no socket, or nobody listening).
///
/// # Errors
/// Other I/O errors (permission denied, a broken reply).
pub fn ask(path: &Path, request: &Request) -> io::Result<Option<(bool, Vec<u8>)>> {
    let mut conn = match UnixStream::connect(path) {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    conn.write_all(&control::encode_request(request))?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply)?;
    match control::decode_reply(&reply) {
        Some((ok, text)) => Ok(Some((ok, text.to_vec()))),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server's reply is malformed",
        )),
    }
}

/// Carries out `request` with no server running: listings from a read-only view, changes
/// under the queue's lock.
///
/// # Errors
/// The text to print.
pub fn offline(root: &Root, router: &dyn Router, request: &Request) -> Result<String, String> {
    match request {
        Request::List { json } => listing(&inspect(root)?, router, *json),
        Request::Show(id) => show(&inspect(root)?, router, *id),
        Request::Flush => Ok("no server running: the next `mta serve` tries everything\n".into()),
        Request::Hold(ids) | Request::Release(ids) => {
            let queue = lock(root)?;
            let hold = matches!(request, Request::Hold(_));
            let mut out = String::new();
            for &id in ids {
                let done = if hold {
                    queue.hold(id)
                } else {
                    queue.release(id)
                };
                done.map_err(|e| format!("{out}msg {id}: {e}\n"))?;
                let _ = writeln!(out, "{} {id}", if hold { "held" } else { "released" });
            }
            Ok(out)
        }
        Request::Delete(selection) => {
            let queue = lock(root)?;
            let mut out = String::new();
            for id in select(&queue, selection)? {
                queue
                    .remove_delivered(id)
                    .map_err(|e| format!("{out}msg {id}: {e}\n"))?;
                let _ = writeln!(out, "deleted {id}");
            }
            if out.is_empty() {
                out.push_str("no message matches\n");
            }
            Ok(out)
        }
    }
}

fn inspect(root: &Root) -> Result<Queue, String> {
    // Nothing root creates or changes in the queue may be root's: act as its owner.
    crate::inject::deliver::act_as_queue_owner(root);
    match Queue::inspect(root.queue()) {
        Ok(q) => Ok(q),
        Err(_) if !root.queue().join("layout").exists() => lock(root),
        Err(e) => Err(format!("unable to open queue: {e}\n")),
    }
}

fn lock(root: &Root) -> Result<Queue, String> {
    crate::inject::deliver::act_as_queue_owner(root);
    let queue = Queue::open(root.queue(), QueueOptions::default()).map_err(|e| match e {
        mta_queue::QueueError::Locked => {
            "the queue is in use (an `mta inject`, or a server without its control socket); \
             try again\n"
                .to_string()
        }
        e => format!("unable to open queue: {e}\n"),
    })?;
    crate::log::torn_messages(&queue);
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn json_strings_escape_what_rfc_8259_requires() {
        assert_eq!(json_string(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_string(b"\x01\n\t\x7f"), r#""\u0001\n\t\u007f""#);
        assert_eq!(json_string(b"\xff"), "\"\u{fffd}\"");
        assert_eq!(json_string("é".as_bytes()), "\"é\"");
    }
}
