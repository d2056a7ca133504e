//! A DNS server for tests: UDP and TCP on one loopback port, answering TXT, A, AAAA and MX
//! queries from a zone map (NXDOMAIN for unknown names, an empty answer for a known name
//! without records of the type asked), or never answering at all.
//!
//! Written with hickory-proto 0.25 (the workspace's), independent of the hickory-resolver
//! 0.26 inside mail-auth that queries it. Also used by `benches/dkim.rs`.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable as _;

/// Records by (lower-case name without the final dot, type).
#[derive(Default, Clone)]
pub struct Zone {
    table: HashMap<(String, RecordType), Vec<Record>>,
    servfail: Vec<String>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn dname(s: &str) -> Name {
    Name::from_ascii(format!("{}.", s.trim_end_matches('.'))).unwrap()
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    fn push(&mut self, name: &str, rtype: RecordType, rdata: RData) -> &mut Self {
        self.table
            .entry((key(name), rtype))
            .or_default()
            .push(Record::from_rdata(dname(name), 300, rdata));
        self
    }

    /// A TXT record; text longer than 255 octets is split into several strings, as a zone
    /// file would hold a DKIM key.
    pub fn txt(&mut self, name: &str, text: &str) -> &mut Self {
        let parts = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        self.push(name, RecordType::TXT, RData::TXT(TXT::new(parts)))
    }

    pub fn a(&mut self, name: &str, ip: [u8; 4]) -> &mut Self {
        self.push(
            name,
            RecordType::A,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    }

    pub fn aaaa(&mut self, name: &str, ip: std::net::Ipv6Addr) -> &mut Self {
        self.push(name, RecordType::AAAA, RData::AAAA(AAAA::from(ip)))
    }

    pub fn mx(&mut self, name: &str, pref: u16, host: &str) -> &mut Self {
        self.push(name, RecordType::MX, RData::MX(MX::new(pref, dname(host))))
    }

    /// Every query for `name` gets SERVFAIL.
    pub fn servfail(&mut self, name: &str) -> &mut Self {
        self.servfail.push(key(name));
        self
    }

    fn respond(&self, q: &Message) -> Message {
        let mut r = Message::new();
        r.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_op_code(q.op_code())
            .set_recursion_desired(q.recursion_desired())
            .set_recursion_available(true);
        let Some(query) = q.queries().first() else {
            r.set_response_code(ResponseCode::FormErr);
            return r;
        };
        r.add_query(query.clone());
        let name = key(&query.name().to_ascii());
        if self.servfail.contains(&name) {
            r.set_response_code(ResponseCode::ServFail);
        } else if let Some(records) = self.table.get(&(name.clone(), query.query_type())) {
            r.add_answers(records.clone());
        } else if !self.table.keys().any(|(n, _)| *n == name) {
            r.set_response_code(ResponseCode::NXDomain);
        }
        r
    }
}

/// How the server behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Answers from the zone.
    Answer,
    /// Reads queries and never answers (a dead or firewalled server).
    Silent,
}

/// A running server; stopped when dropped.
pub struct FakeDns {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl FakeDns {
    pub fn start(zone: Zone) -> FakeDns {
        FakeDns::with_mode(zone, Mode::Answer)
    }

    pub fn silent() -> FakeDns {
        FakeDns::with_mode(Zone::new(), Mode::Silent)
    }

    pub fn with_mode(zone: Zone, mode: Mode) -> FakeDns {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let zone = Arc::new(zone);
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mut threads = Vec::new();
        {
            let (zone, stop, queries) =
                (Arc::clone(&zone), Arc::clone(&stop), Arc::clone(&queries));
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    queries.fetch_add(1, Ordering::SeqCst);
                    if mode == Mode::Silent {
                        continue;
                    }
                    let Ok(q) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    let mut reply = zone.respond(&q);
                    let mut bytes = reply.to_bytes().unwrap();
                    if bytes.len() > 1232 {
                        // too big for UDP: truncated, the client retries over TCP
                        reply.take_answers();
                        reply.set_truncated(true);
                        bytes = reply.to_bytes().unwrap();
                    }
                    let _ = udp.send_to(&bytes, from);
                }
            }));
        }
        {
            let (zone, stop, queries) =
                (Arc::clone(&zone), Arc::clone(&stop), Arc::clone(&queries));
            threads.push(std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut s, _)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    queries.fetch_add(1, Ordering::SeqCst);
                    if mode == Mode::Silent {
                        held.push(s);
                        continue;
                    }
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    // one connection may carry several queries
                    loop {
                        let mut len = [0u8; 2];
                        if s.read_exact(&mut len).is_err() {
                            break;
                        }
                        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if s.read_exact(&mut buf).is_err() {
                            break;
                        }
                        let Ok(q) = Message::from_vec(&buf) else {
                            break;
                        };
                        let reply = zone.respond(&q).to_bytes().unwrap();
                        let mut out = u16::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
                        out.extend_from_slice(&reply);
                        if s.write_all(&out).is_err() {
                            break;
                        }
                    }
                }
            }));
        }
        FakeDns {
            addr,
            queries,
            stop,
            threads,
        }
    }

    /// The server's address as a one-element list, for `VerifierConfig::new`.
    pub fn servers(&self) -> Vec<SocketAddr> {
        vec![self.addr]
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// 127.0.0.1 as an `IpAddr`.
pub fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
