//! A small SMTP sink on `mta_smtp::blocking::serve`: accepts every message, throws it away
//! and prints one line per message. Usable as the receiving end of benchmarks.
//!
//! ```text
//! cargo run --release -p mta-smtp --example smtp_sink -- 127.0.0.1:2526
//! swaks --server 127.0.0.1:2526 --to a@example.com
//! ```
//!
//! Output: `message 1 from=<alice@example.org> rcpts=2 bytes=1234 hops=1`.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mta_core::path::{ForwardPath, ReversePath};
use mta_smtp::blocking::{Policy, serve};
use mta_smtp::{DataSummary, MailParams, RcptParams, Reply, ServerConfig, Verdict};

struct Sink {
    counter: Arc<AtomicU64>,
    from: String,
    rcpts: usize,
}

impl Policy for Sink {
    fn mail(&mut self, path: &ReversePath, _: &MailParams) -> Verdict {
        self.from = path.to_address().to_string();
        self.rcpts = 0;
        Verdict::Accept
    }

    fn rcpt(&mut self, _: &ForwardPath, _: &RcptParams) -> Verdict {
        self.rcpts += 1;
        Verdict::Accept
    }

    fn data_end(&mut self, summary: &DataSummary) -> Verdict {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let line = format!(
            "message {n} from=<{}> rcpts={} bytes={} hops={}\n",
            self.from, self.rcpts, summary.size, summary.hops
        );
        // A closed stdout (e.g. piped into `head`) must not stop the sink.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        match Reply::new(250, &format!("ok {n}")) {
            Ok(r) => Verdict::AcceptWith(r),
            Err(_) => Verdict::Accept,
        }
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2526".to_owned());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("smtp_sink listening on {}", listener.local_addr()?);
    let counter = Arc::new(AtomicU64::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let counter = Arc::clone(&counter);
        std::thread::spawn(move || {
            let mut sink = Sink {
                counter,
                from: String::new(),
                rcpts: 0,
            };
            if let Err(e) = serve(stream, ServerConfig::new("smtp-sink.example"), &mut sink) {
                eprintln!("session: {e}");
            }
        });
    }
    Ok(())
}
