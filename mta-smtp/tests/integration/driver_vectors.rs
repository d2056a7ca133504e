//! The shared driver vectors (tests/vectors/mod.rs) against the blocking `serve` over
//! loopback TCP: every transcript and every smuggling variant, the client's bytes written
//! whole and one byte per write. mta-smtp-tokio runs the same vectors against its async
//! server.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mta_core::path::{ForwardPath, ReversePath};
use mta_smtp::blocking::{Policy, serve};
use mta_smtp::{DataError, DataSummary, MailParams, RcptParams, ServerConfig, Verdict};

use crate::vectors::{
    Recorder, SMUGGLING_VARIANTS, check_smuggling, reference, smuggling_attack, transcripts,
};

struct Shared(Arc<Mutex<Recorder>>);

impl Policy for Shared {
    fn mail(&mut self, path: &ReversePath, _: &MailParams) -> Verdict {
        self.0.lock().unwrap().mail(path)
    }
    fn rcpt(&mut self, path: &ForwardPath, _: &RcptParams) -> Verdict {
        Recorder::rcpt(path)
    }
    fn data_start(&mut self) -> Verdict {
        self.0.lock().unwrap().data_start()
    }
    fn data_chunk(&mut self, chunk: &[u8]) {
        self.0.lock().unwrap().chunk(chunk);
    }
    fn data_end(&mut self, _: &DataSummary) -> Verdict {
        self.0.lock().unwrap().data_end()
    }
    fn data_rejected(&mut self, _: DataError) {
        self.0.lock().unwrap().data_rejected();
    }
}

/// One session of the blocking server on a fresh port; the client writes `input` (whole
/// or a byte per write), closes its sending side and reads until the server closes.
fn run(config: ServerConfig, input: &[u8], bytewise: bool) -> (String, Recorder) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let server_rec = Arc::clone(&rec);
    let server = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        // An error here (the client reset) is the client's doing; the replies decide.
        let _ = serve(s, config, &mut Shared(server_rec));
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = c.try_clone().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        // The server may close first (line too long, too many errors): write errors are
        // expected then.
        if bytewise {
            for b in &input {
                if w.write_all(std::slice::from_ref(b)).is_err() {
                    break;
                }
            }
        } else {
            let _ = w.write_all(&input);
        }
        let _ = w.shutdown(Shutdown::Write);
    });
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    writer.join().unwrap();
    server.join().unwrap();
    let rec = std::mem::take(&mut *rec.lock().unwrap());
    (String::from_utf8_lossy(&out).into_owned(), rec)
}

#[test]
fn blocking_serve_runs_the_shared_transcripts() {
    let all = transcripts();
    assert_eq!(all.len(), 14);
    for t in all {
        let (want, want_accepted) = reference(t.config(), &t.input);
        assert_eq!(
            want, t.replies,
            "{}: the reference differs from the file",
            t.name
        );
        for bytewise in [false, true] {
            let (got, rec) = run(t.config(), &t.input, bytewise);
            assert_eq!(got, want, "{} (bytewise {bytewise}): replies", t.name);
            assert_eq!(
                rec.accepted, want_accepted,
                "{} (bytewise {bytewise})",
                t.name
            );
        }
    }
}

#[test]
fn blocking_serve_refuses_every_smuggling_variant() {
    for variant in SMUGGLING_VARIANTS {
        for bytewise in [false, true] {
            let (replies, rec) = run(
                ServerConfig::new("mx.test"),
                &smuggling_attack(variant),
                bytewise,
            );
            check_smuggling(variant, &replies, &rec);
        }
    }
}
