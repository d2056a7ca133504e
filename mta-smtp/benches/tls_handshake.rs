//! TLS handshakes per second of the blocking server driver: [`mta_smtp::tls::accept`] on a
//! loopback `TcpStream` against [`mta_smtp::tls::connect`], a full handshake each time (no
//! resumption: the client keeps no session cache), for an ECDSA P-256 and an RSA-2048
//! certificate (self-signed, made at start: rcgen for ECDSA; `openssl genpkey` for the RSA
//! key, which ring cannot generate; without openssl the RSA case is skipped).
//!
//! One iteration: TCP connect, the client's handshake, and the server's `accept` up to its
//! return (its TLS 1.3 session tickets written), so the figure is a sequential pair: the
//! server's own capacity is higher by the client's share. The client checks signatures
//! but not the certificate's issuer (`ServerCheck::None`, as under `tlsdestinations` `may`
//! and `encrypt`); the protocol is whatever both prefer (TLS 1.3 with X25519).
//!
//! `cargo bench -p mta-smtp --features rustls --bench tls_handshake`

#![allow(missing_docs, clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mta_smtp::tls::{self, ServerCheck};

/// Key and self-signed certificate for `localhost`, as one PEM (servercert.pem's layout).
fn server_pem(key: &rcgen::KeyPair) -> String {
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(key).unwrap();
    format!("{}{}", key.serialize_pem(), cert.pem())
}

fn ecdsa_p256() -> String {
    server_pem(&rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
}

/// An RSA-2048 key: rcgen if its provider can make one (ring cannot), else openssl.
fn rsa_2048() -> Option<String> {
    if let Ok(key) = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256) {
        return Some(server_pem(&key));
    }
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let pem = String::from_utf8(out.stdout).unwrap();
            let key =
                rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap();
            Some(server_pem(&key))
        }
        _ => {
            eprintln!("tls_handshake: openssl genpkey failed or is missing: RSA-2048 skipped");
            None
        }
    }
}

/// A server thread accepting handshakes until the bench ends; each finished `accept` is
/// reported on the channel, so an iteration waits for the server's whole side.
struct Server {
    port: u16,
    done: mpsc::Receiver<()>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(pem: &str) -> Server {
        let config = tls::server_config_from_pem(pem.as_bytes()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, done) = mpsc::sync_channel(1);
        let handle = thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(tcp) = conn else { continue };
                tcp.set_nodelay(true).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                tcp.set_write_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                // A connection closed without a handshake is the signal to stop.
                match tls::accept(tcp, Arc::clone(&config)) {
                    Ok(stream) => drop(stream),
                    Err(_) => return,
                }
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
        Server {
            port,
            done,
            handle: Some(handle),
        }
    }

    fn handshake(&self, client: &Arc<tls::rustls::ClientConfig>) {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_nodelay(true).unwrap();
        let stream = tls::connect(tcp, Arc::clone(client), "localhost").unwrap();
        self.done.recv().unwrap();
        drop(stream);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(TcpStream::connect(("127.0.0.1", self.port)));
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let client = tls::client_config(&ServerCheck::None, None).unwrap();
    let mut certs = vec![("ecdsa_p256", ecdsa_p256())];
    if let Some(pem) = rsa_2048() {
        certs.push(("rsa_2048", pem));
    }
    let mut g = c.benchmark_group("tls_handshake");
    g.throughput(Throughput::Elements(1));
    for (name, pem) in &certs {
        let server = Server::start(pem);
        g.bench_function(*name, |b| b.iter(|| server.handshake(&client)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
