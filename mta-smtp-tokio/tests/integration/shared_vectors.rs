//! mta-smtp's shared driver vectors (mta-smtp/tests/vectors/mod.rs) against the async
//! server: every transcript and smuggling variant, whole and one byte at a time (one byte
//! per client write and per server read). mta-smtp runs the same vectors against its
//! blocking `serve`.

use std::sync::{Arc, Mutex};

use mta_smtp_tokio::mta_core::path::{ForwardPath, ReversePath};
use mta_smtp_tokio::{
    DataError, DataSummary, Handler, MailParams, RcptParams, Server, ServerConfig, SessionInfo,
    Verdict,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::OneByte;
use crate::vectors::{
    Recorder, SMUGGLING_VARIANTS, check_smuggling, reference, smuggling_attack, transcripts,
};

struct Shared(Arc<Mutex<Recorder>>);

impl Handler for Shared {
    async fn mail(&mut self, path: &ReversePath, _: &MailParams, _: &SessionInfo) -> Verdict {
        self.0.lock().unwrap().mail(path)
    }
    async fn rcpt(&mut self, path: &ForwardPath, _: &RcptParams, _: &SessionInfo) -> Verdict {
        Recorder::rcpt(path)
    }
    async fn data_start(&mut self, _: &SessionInfo) -> Verdict {
        self.0.lock().unwrap().data_start()
    }
    async fn data_chunk(&mut self, chunk: &[u8], _: &SessionInfo) {
        self.0.lock().unwrap().chunk(chunk);
    }
    async fn data_end(&mut self, _: &DataSummary, _: Option<&[u8]>, _: &SessionInfo) -> Verdict {
        self.0.lock().unwrap().data_end()
    }
    async fn data_rejected(&mut self, _: DataError, _: &SessionInfo) {
        self.0.lock().unwrap().data_rejected();
    }
}

/// One async session on a fresh port; the client writes `input` (whole, or a byte per
/// write with the server reading a byte at a time), closes its sending side and reads
/// until the server closes.
async fn run(config: ServerConfig, input: &[u8], bytewise: bool) -> (String, Recorder) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let mut handler = Shared(Arc::clone(&rec));
    let server = tokio::spawn(async move {
        let (s, peer) = listener.accept().await.unwrap();
        let server = Server::new(config);
        // An error (the client reset) is the client's doing; the replies decide.
        let _ = if bytewise {
            server
                .serve_connection(OneByte(s), Some(peer), &mut handler)
                .await
        } else {
            server.serve_connection(s, Some(peer), &mut handler).await
        };
    });
    let c = TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    let (mut r, mut w) = c.into_split();
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        // The server may close first (line too long, too many errors).
        if bytewise {
            for b in &input {
                if w.write_all(std::slice::from_ref(b)).await.is_err() {
                    break;
                }
            }
        } else {
            let _ = w.write_all(&input).await;
        }
        let _ = w.shutdown().await;
    });
    let mut out = Vec::new();
    let _ = r.read_to_end(&mut out).await;
    writer.await.unwrap();
    server.await.unwrap();
    let rec = std::mem::take(&mut *rec.lock().unwrap());
    (String::from_utf8_lossy(&out).into_owned(), rec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_server_runs_the_shared_transcripts() {
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
            let (got, rec) = run(t.config(), &t.input, bytewise).await;
            assert_eq!(got, want, "{} (bytewise {bytewise}): replies", t.name);
            assert_eq!(
                rec.accepted, want_accepted,
                "{} (bytewise {bytewise})",
                t.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_server_refuses_every_smuggling_variant() {
    for variant in SMUGGLING_VARIANTS {
        for bytewise in [false, true] {
            let (replies, rec) = run(
                ServerConfig::new("mx.test"),
                &smuggling_attack(variant),
                bytewise,
            )
            .await;
            check_smuggling(variant, &replies, &rec);
        }
    }
}
