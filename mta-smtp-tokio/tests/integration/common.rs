//! Helpers: a recording handler, a test certificate, a server on a loopback port.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use mta_smtp_tokio::mta_core::path::{ForwardPath, ReversePath};
use mta_smtp_tokio::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use mta_smtp_tokio::{
    Credentials, DataSummary, Handler, MailParams, RcptParams, Server, SessionInfo, TlsConnect,
    Verdict, rustls,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One accepted message: bytes, recipients, over TLS, the peer.
pub type Message = (Vec<u8>, Vec<String>, bool, Option<SocketAddr>);

/// What the recording handler saw, shared with the test.
#[derive(Debug, Default)]
pub struct Seen {
    pub sessions: usize,
    pub mails: Vec<String>,
    pub messages: Vec<Message>,
    pub auths: Vec<String>,
}

/// Accepts everything but recipients starting `reject` (550) and `defer` (451), and
/// AUTH only for `user`/`secret`; records messages with their recipients and TLS state.
pub struct Recording {
    pub seen: Arc<Mutex<Seen>>,
    pub message: Vec<u8>,
}

impl Handler for Recording {
    async fn mail(&mut self, path: &ReversePath, _: &MailParams, _: &SessionInfo) -> Verdict {
        let a = path.to_address().to_string_lossy();
        self.seen.lock().unwrap().mails.push(a);
        Verdict::Accept
    }
    async fn rcpt(&mut self, path: &ForwardPath, _: &RcptParams, _: &SessionInfo) -> Verdict {
        mta_smtp_tokio_vectors_rcpt(path)
    }
    async fn auth(&mut self, c: &Credentials, _: &SessionInfo) -> Verdict {
        self.seen.lock().unwrap().auths.push(c.login.clone());
        if c.login == "user" && c.password.expose() == b"secret" {
            Verdict::Accept
        } else {
            Verdict::Reject(mta_smtp_tokio::Reply::new(535, "5.7.8 no").unwrap())
        }
    }
    async fn data_chunk(&mut self, chunk: &[u8], _: &SessionInfo) {
        self.message.extend_from_slice(chunk);
    }
    async fn data_end(&mut self, _: &DataSummary, _: Option<&[u8]>, info: &SessionInfo) -> Verdict {
        let rcpts = info
            .recipients()
            .iter()
            .map(|r| r.to_address().to_string_lossy())
            .collect();
        let m = std::mem::take(&mut self.message);
        self.seen
            .lock()
            .unwrap()
            .messages
            .push((m, rcpts, info.is_tls(), info.peer()));
        Verdict::Accept
    }
    async fn reset(&mut self) {
        self.message.clear();
    }
}

fn mta_smtp_tokio_vectors_rcpt(path: &ForwardPath) -> Verdict {
    crate::vectors::Recorder::rcpt(path)
}

/// A running `Server::run` on a loopback port; `stop` shuts it down and waits.
pub struct Running {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn start(server: Server) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, stopped) = oneshot::channel::<()>();
        let s2 = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            server
                .run(
                    listener,
                    move |_| {
                        s2.lock().unwrap().sessions += 1;
                        Recording {
                            seen: Arc::clone(&s2),
                            message: Vec::new(),
                        }
                    },
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
        });
        Running {
            addr,
            seen,
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) -> Seen {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// A self-signed certificate for `localhost`, as rustls configurations for both sides.
pub fn tls_configs() -> (
    Arc<rustls::ServerConfig>,
    Arc<rustls::ClientConfig>,
    Vec<u8>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
    (Arc::new(server), Arc::new(client), pem.into_bytes())
}

pub fn tls_connect(client: Arc<rustls::ClientConfig>) -> TlsConnect {
    TlsConnect::new(client, ServerName::try_from("localhost").unwrap())
}

/// A transport that hands the reader one byte per read: the server sees the client's
/// bytes one at a time, whatever TCP coalesced.
pub struct OneByte<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for OneByte<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut one = [0u8; 1];
        let mut small = ReadBuf::new(&mut one);
        match Pin::new(&mut self.0).poll_read(cx, &mut small) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(small.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for OneByte<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
