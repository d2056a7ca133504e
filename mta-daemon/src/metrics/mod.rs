//! The Prometheus endpoint (design.md "Metrics"): counters the rest of the daemon bumps with
//! one call each, and `serve`, the listener behind `control/metrics`.
//!
//! Every counter is an atomic (prometheus-client's `Counter`), taken once at start, so a
//! call from an SMTP session or a delivery thread never takes a lock. The queue gauges come
//! from a small map of message births under a mutex held for one insert or removal; the
//! session gauge and the rejects counters are read from the SMTP limits (`limits.rs`)
//! when scraped.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `mta_queue_messages` | gauge | |
//! | `mta_queue_oldest_seconds` | gauge | |
//! | `mta_smtp_sessions_active` | gauge | |
//! | `mta_smtp_sessions_total` | counter | |
//! | `mta_smtp_messages_total` | counter | |
//! | `mta_smtp_rejects_total` | counter | `reason` (the refusal reasons of `limits.rs`) |
//! | `mta_smtp_tls_total` | counter | |
//! | `mta_smtp_auth_total` | counter | `result`: `ok`, `fail` |
//! | `mta_deliveries_total` | counter | `channel`: `local`, `remote`; `result`: `success`, `deferral`, `failure` |
//! | `mta_delivery_seconds` | histogram | |

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mta_core::DeliveryResult;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::limits::{Limits, Reason};
use crate::log;
use crate::sched::Channel;

pub use mta_core::http::{Request, RequestError, parse_request};

/// Labels of one series.
type Labels = Vec<(&'static str, &'static str)>;

/// How an AUTH ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthResult {
    /// `235`: logged in.
    Ok,
    /// `535`: wrong login or password (or the checkpassword program said no).
    Fail,
}

/// Every metric, registered once.
struct Metrics {
    registry: Registry,
    queue_messages: Gauge,
    queue_oldest: Gauge,
    sessions_active: Gauge,
    sessions: Counter,
    messages: Counter,
    tls: Counter,
    /// `[ok, fail]`.
    auth: [Counter; 2],
    /// `[local, remote]` × `[success, deferral, failure]`.
    deliveries: [[Counter; 3]; 2],
    rejects: Family<Labels, Counter>,
    delivery_seconds: Histogram,
    /// Queued messages by birth (unix seconds): how many were born that second.
    births: Mutex<BTreeMap<u64, u64>>,
}

/// Delivery-time buckets, in seconds: a maildir write takes milliseconds, a slow remote
/// host minutes.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mta");
        let queue_messages = Gauge::default();
        registry.register(
            "queue_messages",
            "Messages in the queue",
            queue_messages.clone(),
        );
        let queue_oldest = Gauge::default();
        registry.register(
            "queue_oldest_seconds",
            "Age of the oldest queued message",
            queue_oldest.clone(),
        );
        let sessions_active = Gauge::default();
        registry.register(
            "smtp_sessions_active",
            "SMTP sessions running now",
            sessions_active.clone(),
        );
        // prometheus-client adds the `_total` suffix to counters.
        let sessions = Counter::default();
        registry.register("smtp_sessions", "SMTP sessions started", sessions.clone());
        let messages = Counter::default();
        registry.register(
            "smtp_messages",
            "Messages accepted by SMTP (250 after DATA)",
            messages.clone(),
        );
        let rejects = Family::<Labels, Counter>::default();
        for r in Reason::ALL {
            drop(rejects.get_or_create_owned(&vec![("reason", r.as_str())]));
        }
        registry.register("smtp_rejects", "SMTP refusals by reason", rejects.clone());
        let tls = Counter::default();
        registry.register("smtp_tls", "Completed inbound TLS handshakes", tls.clone());
        let auth_family = Family::<Labels, Counter>::default();
        let auth = ["ok", "fail"].map(|r| auth_family.get_or_create_owned(&vec![("result", r)]));
        registry.register("smtp_auth", "SMTP AUTH attempts by result", auth_family);
        let deliveries_family = Family::<Labels, Counter>::default();
        let deliveries = ["local", "remote"].map(|c| {
            ["success", "deferral", "failure"].map(|r| {
                deliveries_family.get_or_create_owned(&vec![("channel", c), ("result", r)])
            })
        });
        registry.register(
            "deliveries",
            "Delivery results by channel and result",
            deliveries_family,
        );
        let delivery_seconds = Histogram::new(BUCKETS);
        registry.register(
            "delivery_seconds",
            "Time one delivery job took",
            delivery_seconds.clone(),
        );
        Metrics {
            registry,
            queue_messages,
            queue_oldest,
            sessions_active,
            sessions,
            messages,
            tls,
            auth,
            deliveries,
            rejects,
            delivery_seconds,
            births: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Counts an SMTP session that got a slot.
pub fn session_started() {
    METRICS.sessions.inc();
}

/// Counts a message accepted with `250` after DATA.
pub fn message_accepted() {
    METRICS.messages.inc();
}

/// Counts a completed inbound TLS handshake (STARTTLS or smtps).
pub fn tls_started() {
    METRICS.tls.inc();
}

/// Counts an AUTH attempt.
pub fn auth(result: AuthResult) {
    METRICS.auth[usize::from(result == AuthResult::Fail)].inc();
}

/// Counts one recipient's delivery result.
pub fn delivery(channel: Channel, result: &DeliveryResult) {
    let r = match result {
        DeliveryResult::Delivered { .. } => 0,
        DeliveryResult::Failed { .. } => 2,
        _ => 1,
    };
    METRICS.deliveries[usize::from(channel == Channel::Remote)][r].inc();
}

/// Records how long one delivery job took.
pub fn delivery_time(took: Duration) {
    METRICS.delivery_seconds.observe(took.as_secs_f64());
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The scheduler loaded a message born at `birth`.
pub fn queued(birth: SystemTime) {
    let mut b = METRICS
        .births
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    *b.entry(unix(birth)).or_insert(0) += 1;
}

/// The scheduler forgot a message born at `birth` (removed from the queue).
pub fn dequeued(birth: SystemTime) {
    let mut b = METRICS
        .births
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = b.get_mut(&unix(birth)) {
        *n -= 1;
        if *n == 0 {
            b.remove(&unix(birth));
        }
    }
}

/// The whole text exposition, with the gauges and the rejects brought up to date.
pub(crate) fn render(limits: &Limits) -> String {
    let m = &*METRICS;
    let (count, oldest) = {
        let b = m.births.lock().unwrap_or_else(PoisonError::into_inner);
        (b.values().sum::<u64>(), b.keys().next().copied())
    };
    let now = unix(SystemTime::now());
    m.queue_messages.set(count as i64);
    m.queue_oldest
        .set(oldest.map_or(0, |t| now.saturating_sub(t)) as i64);
    m.sessions_active.set(limits.active() as i64);
    for (reason, n) in limits.rejects() {
        let c = m.rejects.get_or_create(&vec![("reason", reason.as_str())]);
        // Only this function moves these counters: bring them up to the limits' count.
        let seen = c.get();
        if n > seen {
            c.inc_by(n - seen);
        }
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
    out
}

/// Most bytes of a request read (the request line and headers; a body is never read).
const MAX_REQUEST: usize = 4096;
/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads `control/metrics`: one `ADDR:PORT` line (`[::1]:9187` for IPv6); no file, no
/// endpoint.
///
/// # Errors
/// `control/metrics:LINE: ...` for a line that is not an address, or an unreadable file.
pub(crate) fn configured(control: &Path) -> Result<Option<SocketAddr>, String> {
    let text = match std::fs::read_to_string(control.join("metrics")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("control/metrics: {e}")),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        return line
            .parse()
            .map(Some)
            .map_err(|_| format!("control/metrics:{}: not ADDR:PORT", n + 1));
    }
    Ok(None)
}

/// Answers scrapes on `listener` on one thread until the process exits (the SMTP
/// process: it runs as the SMTP account, so nothing running as root reads this network
/// input). A scrape gets this process's SMTP families and the queue process's families,
/// which it reads from the queue process's socket `queue_part` (left out while that process
/// is down).
///
/// # Errors
/// The thread could not start.
pub(crate) fn serve_on(
    listener: TcpListener,
    limits: Arc<Limits>,
    queue_part: std::path::PathBuf,
) -> Result<(), String> {
    if let Ok(addr) = listener.local_addr() {
        log::line(&format!("status: metrics on {addr}"));
    }
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let mut pacer = crate::accept::Pacer::new("metrics");
            for conn in listener.incoming() {
                let Some(stream) = pacer.take(conn) else {
                    continue;
                };
                let body = || combined(&limits, &queue_part);
                if let Err(e) = answer(stream, &body) {
                    log::line(&format!(
                        "metrics: connection error: {}",
                        log::safe(e.to_string().as_bytes())
                    ));
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("spawn: {e}"))
}

/// This process's `mta_smtp_*` families, then every other family from the queue process.
fn combined(limits: &Limits, queue_part: &Path) -> String {
    let own = families(&render(limits), |name| name.starts_with("mta_smtp_"));
    let theirs = std::os::unix::net::UnixStream::connect(queue_part)
        .and_then(|mut s| {
            s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })
        .map(|text| families(&text, |name| !name.starts_with("mta_smtp_")))
        .unwrap_or_default();
    format!("{own}{theirs}# EOF\n")
}

/// The families of an exposition whose name `keep` accepts, without the final `# EOF`.
fn families(text: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut keeping = false;
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .or_else(|| line.strip_prefix("# UNIT "))
        {
            keeping = keep(rest.split(' ').next().unwrap_or_default());
        }
        if keeping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Reads one request (at most [`MAX_REQUEST`] bytes within [`REQUEST_TIMEOUT`]) and
/// answers it, then closes the connection.
fn answer(mut stream: TcpStream, body: &dyn Fn() -> String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let parsed = loop {
        match parse_request(&buf[..len]) {
            Err(RequestError::Incomplete) if len < buf.len() => {}
            other => break other,
        }
        if std::time::Instant::now() >= deadline {
            break Err(RequestError::Incomplete);
        }
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            break Err(RequestError::Incomplete);
        }
        len += n;
    };
    let (status, content_type, body) = match parsed {
        Ok(Request::Metrics) => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body(),
        ),
        Ok(Request::NotFound) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        Ok(Request::BadMethod) => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
        Err(_) => ("400 Bad Request", "text/plain", "bad request\n".to_owned()),
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        head.push_str("Allow: GET\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    // Tell the scraper we are done; it may already have closed.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_metrics_is_one_address_or_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        assert_eq!(configured(dir.path()), Ok(None), "no file: off");
        let write = |text: &str| {
            std::fs::write(dir.path().join("metrics"), text).unwrap_or_else(|_| unreachable!());
        };
        write("# scraped by prometheus\n127.0.0.1:9187\n");
        assert_eq!(
            configured(dir.path()),
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9187))))
        );
        write("[::1]:9187\n");
        assert!(matches!(configured(dir.path()), Ok(Some(a)) if a.is_ipv6()));
        write("\nlocalhost:9187\n");
        assert_eq!(
            configured(dir.path()),
            Err("control/metrics:2: not ADDR:PORT".to_owned())
        );
        write("");
        assert_eq!(configured(dir.path()), Ok(None), "empty: off");
    }

    #[test]
    fn render_has_every_family_at_start() {
        let text = render(&Limits::default());
        for name in [
            "mta_queue_messages ",
            "mta_queue_oldest_seconds ",
            "mta_smtp_sessions_active ",
            "mta_smtp_sessions_total ",
            "mta_smtp_messages_total ",
            "mta_smtp_rejects_total{reason=\"relay_denied\"} ",
            "mta_smtp_tls_total ",
            "mta_smtp_auth_total{result=\"ok\"} ",
            "mta_deliveries_total{channel=\"remote\",result=\"failure\"} ",
            "mta_delivery_seconds_count ",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_two_processes_parts_make_one_exposition() {
        let text = render(&Limits::default());
        let smtp = families(&text, |n| n.starts_with("mta_smtp_"));
        let rest = families(&text, |n| !n.starts_with("mta_smtp_"));
        assert!(smtp.contains("mta_smtp_sessions_total ") && !smtp.contains("mta_queue"));
        assert!(rest.contains("mta_queue_messages ") && !rest.contains("mta_smtp"));
        assert!(!smtp.contains("# EOF") && !rest.contains("# EOF"));
        assert_eq!(
            smtp.lines().count() + rest.lines().count() + 1,
            text.lines().count()
        );
        let missing = std::path::Path::new("/nonexistent/metrics");
        let alone = combined(&Limits::default(), missing);
        assert!(alone.contains("mta_smtp_sessions_total ") && alone.ends_with("# EOF\n"));
    }
}
