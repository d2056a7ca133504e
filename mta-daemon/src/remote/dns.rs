//! A small stub resolver on hickory-proto messages: recursive queries to the configured
//! servers over UDP, retried over TCP when the answer is truncated (RFC 1035 §4.2,
//! RFC 7766), with per-query timeouts and retries, CNAME following, and a TTL-respecting
//! cache shared by the remote delivery pool (RFC 2308 negative caching from the SOA).
//!
//! Errors are classified as qmail's `dns.c` did: NXDOMAIN is a hard error
//! ([`DnsError::NotFound`]); SERVFAIL, REFUSED, timeouts and malformed answers are soft
//! ([`DnsError::Temporary`]) once every server has been tried.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Longest CNAME chain followed.
const MAX_CHAIN: usize = 8;
/// Entries kept in the cache before it is pruned.
const CACHE_CAPACITY: usize = 4096;
/// Cap on any cached TTL.
const MAX_TTL: u32 = 86_400;
/// Cap on negative (NXDOMAIN / no data) caching.
const MAX_NEGATIVE_TTL: u32 = 3_600;

/// Why a lookup gave no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DnsError {
    /// The name does not exist (NXDOMAIN).
    NotFound,
    /// No server gave a usable answer (timeouts, SERVFAIL, REFUSED, garbage).
    Temporary(String),
}

/// What a server said about one (name, type).
#[derive(Clone, Debug)]
enum Answer {
    /// NOERROR: the answer section (possibly empty: no data).
    Records(Vec<Record>),
    /// NXDOMAIN.
    NxDomain,
}

/// Resolver settings.
#[derive(Clone, Debug)]
pub(crate) struct ResolverConfig {
    /// Servers, tried in order.
    pub servers: Vec<SocketAddr>,
    /// How long to wait for one answer.
    pub timeout: Duration,
    /// Rounds over the server list.
    pub attempts: u32,
}

/// The stub resolver; cheap to share (`&self` everywhere).
#[derive(Debug)]
pub(crate) struct Resolver {
    config: ResolverConfig,
    cache: Mutex<HashMap<(String, RecordType), (Instant, Answer)>>,
}

impl Resolver {
    pub(crate) fn new(config: ResolverConfig) -> Resolver {
        Resolver {
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The records of type `rtype` for `name`, following CNAMEs (within one answer, and by
    /// new queries when the chain leaves it). An empty vector means the name exists but
    /// has no such records.
    pub(crate) fn lookup(&self, name: &Name, rtype: RecordType) -> Result<Vec<RData>, DnsError> {
        let mut current = name.clone();
        for _ in 0..MAX_CHAIN {
            let Answer::Records(records) = self.query(&current, rtype)? else {
                return Err(DnsError::NotFound);
            };
            let mut owner = current.clone();
            for _ in 0..MAX_CHAIN {
                let next = records.iter().find_map(|r| match r.data() {
                    RData::CNAME(c) if rtype != RecordType::CNAME && same(r.name(), &owner) => {
                        Some(c.0.clone())
                    }
                    _ => None,
                });
                match next {
                    Some(n) => owner = n,
                    None => break,
                }
            }
            let found: Vec<RData> = records
                .iter()
                .filter(|r| r.record_type() == rtype && same(r.name(), &owner))
                .map(|r| r.data().clone())
                .collect();
            if !found.is_empty() || same(&owner, &current) {
                return Ok(found);
            }
            // The chain leads to a name this answer says nothing about: ask for it.
            current = owner;
        }
        Err(DnsError::Temporary(format!(
            "CNAME chain too long for {}",
            name.to_ascii()
        )))
    }

    /// The IPv6 then IPv4 addresses of `name`. Not finding the name is a hard error only
    /// if both lookups say so.
    pub(crate) fn addresses(&self, name: &Name) -> Result<Vec<IpAddr>, DnsError> {
        let v6 = self.lookup(name, RecordType::AAAA);
        let v4 = self.lookup(name, RecordType::A);
        let mut ips = Vec::new();
        for rdata in [&v6, &v4].into_iter().flatten() {
            ips.extend(rdata.iter().filter_map(|d| match d {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            }));
        }
        match (v6, v4) {
            _ if !ips.is_empty() => Ok(ips),
            (Err(DnsError::Temporary(e)), _) | (_, Err(DnsError::Temporary(e))) => {
                Err(DnsError::Temporary(e))
            }
            (Err(DnsError::NotFound), Err(DnsError::NotFound)) => Err(DnsError::NotFound),
            _ => Ok(ips),
        }
    }

    /// Forgets every cached answer.
    #[cfg(test)]
    pub(crate) fn clear_cache(&self) {
        self.cache().clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, RecordType), (Instant, Answer)>> {
        // Every update is a single insert or a prune, so a poisoned map is still sound.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One question, from the cache or the servers.
    fn query(&self, name: &Name, rtype: RecordType) -> Result<Answer, DnsError> {
        let key = (
            name.to_lowercase()
                .to_ascii()
                .trim_end_matches('.')
                .to_owned(),
            rtype,
        );
        let now = Instant::now();
        if let Some((expires, answer)) = self.cache().get(&key)
            && *expires > now
        {
            return Ok(answer.clone());
        }
        let (answer, ttl) = self.ask_servers(name, rtype)?;
        if ttl > 0 {
            let mut cache = self.cache();
            if cache.len() >= CACHE_CAPACITY {
                cache.retain(|_, (exp, _)| *exp > now);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                (now + Duration::from_secs(u64::from(ttl)), answer.clone()),
            );
        }
        Ok(answer)
    }

    /// Tries each server `attempts` times; returns the answer and how long it may be cached.
    fn ask_servers(&self, name: &Name, rtype: RecordType) -> Result<(Answer, u32), DnsError> {
        let mut name = name.clone();
        name.set_fqdn(true);
        let mut last = String::from("no DNS servers");
        for _ in 0..self.config.attempts.max(1) {
            for &server in &self.config.servers {
                match self.exchange(server, &name, rtype) {
                    Ok(reply) => match reply.response_code() {
                        ResponseCode::NoError => {
                            let records = reply.answers().to_vec();
                            let ttl = if records.is_empty() {
                                negative_ttl(&reply)
                            } else {
                                records
                                    .iter()
                                    .map(Record::ttl)
                                    .min()
                                    .unwrap_or(0)
                                    .min(MAX_TTL)
                            };
                            return Ok((Answer::Records(records), ttl));
                        }
                        ResponseCode::NXDomain => {
                            return Ok((Answer::NxDomain, negative_ttl(&reply)));
                        }
                        code => last = format!("{server} answered {code}"),
                    },
                    Err(e) => last = format!("{server}: {e}"),
                }
            }
        }
        Err(DnsError::Temporary(last))
    }

    /// One query to one server: UDP, then TCP if the answer is truncated.
    fn exchange(&self, server: SocketAddr, name: &Name, rtype: RecordType) -> io::Result<Message> {
        let id = (super::random_u64() & 0xffff) as u16;
        let mut query = Message::new();
        query
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(name.clone(), rtype));
        let bytes = query.to_vec().map_err(io::Error::other)?;
        match self.udp(server, &bytes, id, name, rtype)? {
            Some(reply) if !reply.truncated() => Ok(reply),
            _ => self.tcp(server, &bytes, id, name, rtype),
        }
    }

    fn udp(
        &self,
        server: SocketAddr,
        bytes: &[u8],
        id: u16,
        name: &Name,
        rtype: RecordType,
    ) -> io::Result<Option<Message>> {
        let local: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let sock = UdpSocket::bind(local)?;
        sock.connect(server)?;
        sock.send(bytes)?;
        let deadline = Instant::now() + self.config.timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
            }
            sock.set_read_timeout(Some(left))?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
                }
                Err(e) => return Err(e),
            };
            // Anything that is not the answer to our question (wrong id, garbage) is
            // ignored, so a stray or spoofed packet cannot end the wait.
            match Message::from_vec(&buf[..n]) {
                Ok(m) if answers(&m, id, name, rtype) => return Ok(Some(m)),
                // A server that cut its answer mid-record: only the header is whole, and
                // its TC bit (RFC 1035 §4.1.1) says to ask again over TCP.
                Err(_) if n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x82 == 0x82 => {
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    fn tcp(
        &self,
        server: SocketAddr,
        bytes: &[u8],
        id: u16,
        name: &Name,
        rtype: RecordType,
    ) -> io::Result<Message> {
        let mut s = TcpStream::connect_timeout(&server, self.config.timeout)?;
        s.set_read_timeout(Some(self.config.timeout))?;
        s.set_write_timeout(Some(self.config.timeout))?;
        let len = u16::try_from(bytes.len()).map_err(io::Error::other)?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        s.write_all(&framed)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf)?;
        let m = Message::from_vec(&buf).map_err(io::Error::other)?;
        if answers(&m, id, name, rtype) {
            Ok(m)
        } else {
            Err(io::Error::other("TCP answer does not match the question"))
        }
    }
}

/// True if `m` is a response to our query `id` for `name`/`rtype`.
fn answers(m: &Message, id: u16, name: &Name, rtype: RecordType) -> bool {
    m.id() == id
        && m.message_type() == MessageType::Response
        && m.queries().len() == 1
        && m.queries()[0].query_type() == rtype
        && same(m.queries()[0].name(), name)
}

/// Case-insensitive name equality, ignoring the trailing dot.
fn same(a: &Name, b: &Name) -> bool {
    a.to_lowercase().to_ascii().trim_end_matches('.')
        == b.to_lowercase().to_ascii().trim_end_matches('.')
}

/// RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM).
fn negative_ttl(m: &Message) -> u32 {
    m.name_servers()
        .iter()
        .find_map(|r| match r.data() {
            RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
            _ => None,
        })
        .unwrap_or(0)
        .min(MAX_NEGATIVE_TTL)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// A UDP responder answering from `respond`, counting queries; stopped on drop.
    struct Responder {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        queries: Arc<AtomicUsize>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Responder {
        fn start(respond: impl Fn(&Message) -> Option<Message> + Send + 'static) -> Responder {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let addr = sock.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let queries = Arc::new(AtomicUsize::new(0));
            let (s, q) = (Arc::clone(&stop), Arc::clone(&queries));
            let thread = std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !s.load(Ordering::SeqCst) {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    q.fetch_add(1, Ordering::SeqCst);
                    let m = Message::from_vec(&buf[..n]).unwrap();
                    if let Some(r) = respond(&m) {
                        sock.send_to(&r.to_vec().unwrap(), from).unwrap();
                    }
                }
            });
            Responder {
                addr,
                stop,
                queries,
                thread: Some(thread),
            }
        }

        /// A resolver of this responder whose attempts wait 2 s: long enough that a
        /// loaded machine's late answer is not retried (the tests count queries).
        fn resolver(&self) -> Resolver {
            self.resolver_waiting(Duration::from_secs(2))
        }

        fn resolver_waiting(&self, timeout: Duration) -> Resolver {
            Resolver::new(ResolverConfig {
                servers: vec![self.addr],
                timeout,
                attempts: 2,
            })
        }
    }

    impl Drop for Responder {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    fn reply_to(q: &Message, code: ResponseCode) -> Message {
        let mut r = Message::new();
        r.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_response_code(code);
        r.add_query(q.queries()[0].clone());
        r
    }

    #[test]
    fn cname_chain_followed_within_and_across_answers() {
        let dns = Responder::start(|q| {
            let qn = q.queries()[0].name().to_lowercase().to_ascii();
            let mut r = reply_to(q, ResponseCode::NoError);
            match qn.as_str() {
                "alias.test." => {
                    r.add_answer(Record::from_rdata(
                        name("alias.test."),
                        300,
                        RData::CNAME(CNAME(name("mid.test."))),
                    ));
                    r.add_answer(Record::from_rdata(
                        name("mid.test."),
                        300,
                        RData::CNAME(CNAME(name("real.test."))),
                    ));
                }
                "real.test." => {
                    r.add_answer(Record::from_rdata(
                        name("real.test."),
                        300,
                        RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                    ));
                }
                _ => return Some(reply_to(q, ResponseCode::NXDomain)),
            }
            Some(r)
        });
        let res = dns.resolver();
        let got = res.lookup(&name("Alias.TEST"), RecordType::A).unwrap();
        assert_eq!(got, [RData::A(A(Ipv4Addr::new(192, 0, 2, 7)))]);
        assert_eq!(dns.queries.load(Ordering::SeqCst), 2);
        // Cached for the TTL: no new queries.
        res.lookup(&name("alias.test"), RecordType::A).unwrap();
        assert_eq!(dns.queries.load(Ordering::SeqCst), 2);
        res.clear_cache();
        res.lookup(&name("alias.test"), RecordType::A).unwrap();
        assert_eq!(dns.queries.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn nxdomain_is_hard_and_negatively_cached_by_soa() {
        let dns = Responder::start(|q| {
            let mut r = reply_to(q, ResponseCode::NXDomain);
            let soa = SOA::new(name("ns.test."), name("host.test."), 1, 60, 60, 60, 30);
            r.add_name_server(Record::from_rdata(name("test."), 600, RData::SOA(soa)));
            Some(r)
        });
        let res = dns.resolver();
        assert_eq!(
            res.lookup(&name("nope.test"), RecordType::MX),
            Err(DnsError::NotFound)
        );
        assert_eq!(res.addresses(&name("nope.test")), Err(DnsError::NotFound));
        // MX, AAAA and A each asked once; the repeat came from the cache.
        assert_eq!(dns.queries.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn servfail_and_silence_are_temporary_after_retries() {
        let dns = Responder::start(|q| Some(reply_to(q, ResponseCode::ServFail)));
        let res = dns.resolver();
        assert!(
            matches!(res.lookup(&name("x.test"), RecordType::MX), Err(DnsError::Temporary(e)) if e.contains("Server Failure"))
        );
        assert_eq!(
            dns.queries.load(Ordering::SeqCst),
            2,
            "two attempts, nothing cached"
        );

        let quiet = Responder::start(|_| None);
        let res = quiet.resolver_waiting(Duration::from_millis(200));
        let t0 = Instant::now();
        assert!(matches!(
            res.lookup(&name("x.test"), RecordType::A),
            Err(DnsError::Temporary(_))
        ));
        assert!(t0.elapsed() >= Duration::from_millis(400));
        assert_eq!(quiet.queries.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn ttl_zero_is_not_cached_and_ttls_expire() {
        let dns = Responder::start(|q| {
            let qn = q.queries()[0].name().clone();
            let ttl = u32::from(qn.to_ascii().starts_with("one."));
            let mut r = reply_to(q, ResponseCode::NoError);
            r.add_answer(Record::from_rdata(
                qn,
                ttl,
                RData::A(A(Ipv4Addr::LOCALHOST)),
            ));
            Some(r)
        });
        let res = dns.resolver();
        res.lookup(&name("zero.test"), RecordType::A).unwrap();
        res.lookup(&name("zero.test"), RecordType::A).unwrap();
        assert_eq!(
            dns.queries.load(Ordering::SeqCst),
            2,
            "TTL 0: asked every time"
        );
        res.lookup(&name("one.test"), RecordType::A).unwrap();
        res.lookup(&name("one.test"), RecordType::A).unwrap();
        assert_eq!(dns.queries.load(Ordering::SeqCst), 3, "TTL 1: cached");
        std::thread::sleep(Duration::from_millis(1100));
        res.lookup(&name("one.test"), RecordType::A).unwrap();
        assert_eq!(dns.queries.load(Ordering::SeqCst), 4, "expired after 1 s");
    }

    #[test]
    fn a_dead_server_is_skipped() {
        let dns = Responder::start(|q| {
            let mut r = reply_to(q, ResponseCode::NoError);
            let qn = q.queries()[0].name().clone();
            r.add_answer(Record::from_rdata(qn, 60, RData::A(A(Ipv4Addr::LOCALHOST))));
            Some(r)
        });
        // A port with nothing behind it: the kernel refuses at once.
        let dead = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let res = Resolver::new(ResolverConfig {
            servers: vec![dead, dns.addr],
            timeout: Duration::from_secs(5),
            attempts: 1,
        });
        let t0 = Instant::now();
        let got = res.lookup(&name("x.test"), RecordType::A).unwrap();
        assert_eq!(got, [RData::A(A(Ipv4Addr::LOCALHOST))]);
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn an_answer_cut_mid_record_goes_to_tcp() {
        // UDP: the header with QR and TC set, then garbage. TCP: a real answer.
        // A UDP and a TCP socket on the same free port: the TCP port may be taken, so retry.
        let (udp, tcp, addr) = (0..100)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let addr = udp.local_addr().ok()?;
                let tcp = std::net::TcpListener::bind(addr).ok()?;
                Some((udp, tcp, addr))
            })
            .unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut cut = q.id().to_be_bytes().to_vec();
            cut.extend_from_slice(&[0x83, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 7, b'e', b'x']);
            udp.send_to(&cut, from).unwrap();
            let (mut s, _) = tcp.accept().unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf).unwrap();
            let q = Message::from_vec(&buf).unwrap();
            let mut r = reply_to(&q, ResponseCode::NoError);
            let qn = q.queries()[0].name().clone();
            r.add_answer(Record::from_rdata(qn, 60, RData::A(A(Ipv4Addr::LOCALHOST))));
            let r = r.to_vec().unwrap();
            let mut out = u16::try_from(r.len()).unwrap().to_be_bytes().to_vec();
            out.extend_from_slice(&r);
            s.write_all(&out).unwrap();
        });
        let res = Resolver::new(ResolverConfig {
            servers: vec![addr],
            timeout: Duration::from_secs(2),
            attempts: 1,
        });
        let got = res.lookup(&name("cut.test"), RecordType::A).unwrap();
        assert_eq!(got, [RData::A(A(Ipv4Addr::LOCALHOST))]);
        t.join().unwrap();
    }

    #[test]
    fn wrong_id_is_ignored() {
        let dns = Responder::start(|q| {
            let mut r = reply_to(q, ResponseCode::NoError);
            r.set_id(q.id().wrapping_add(1));
            Some(r)
        });
        let res = dns.resolver();
        assert!(
            matches!(res.lookup(&name("x.test"), RecordType::A), Err(DnsError::Temporary(e)) if e.contains("timed out"))
        );
    }
}
