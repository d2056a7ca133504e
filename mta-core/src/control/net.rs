//! The network control files of this project (design.md): `listen`, `relayclients`,
//! `dnsservers`, and the `/etc/resolv.conf` fallback for the last.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use super::read::{ControlError, File};

/// An IP network: an address and a prefix length (CIDR, RFC 4632 / RFC 4291 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network of `addr` with `prefix` leading bits (host bits are cleared).
    /// Returns `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
            _ => return None,
        };
        Some(IpNet { addr, prefix })
    }

    /// A single host (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNet { addr, prefix }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` is inside the network. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 clients) matches IPv4
    /// networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        IpNet::new(ip, self.prefix).is_some_and(|n| n.addr == self.addr)
    }
}

impl FromStr for IpNet {
    type Err = ();

    /// `ADDR` or `ADDR/PREFIX`, IPv4 or IPv6.
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.split_once('/') {
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| ())?;
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(());
                }
                IpNet::new(addr, p.parse().map_err(|_| ())?).ok_or(())
            }
            None => s.parse().map(IpNet::host).map_err(|_| ()),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `relayclients` (design.md; RFC 5321 §3.6.2 relaying): the client networks allowed to relay (to send to domains outside
/// `rcpthosts`). Default: `127.0.0.0/8` and `::1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayClients {
    nets: Vec<IpNet>,
}

impl RelayClients {
    /// The given networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        RelayClients { nets }
    }

    /// The networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// True when `ip` is in one of the networks.
    ///
    /// ```
    /// use mta_core::control::RelayClients;
    /// let r = RelayClients::default();
    /// assert!(r.contains("127.3.2.1".parse()?));
    /// assert!(r.contains("::1".parse()?));
    /// assert!(r.contains("::ffff:127.0.0.1".parse()?));
    /// assert!(!r.contains("192.0.2.1".parse()?));
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    pub(super) fn from_file(file: &File) -> Result<Self, ControlError> {
        let nets = file
            .lines()
            .map(|(n, l)| {
                l.trim()
                    .parse()
                    .map_err(|()| file.invalid(n, "IP or IP/PREFIX", l))
            })
            .collect::<Result<_, _>>()?;
        Ok(RelayClients { nets })
    }
}

impl Default for RelayClients {
    fn default() -> Self {
        RelayClients {
            nets: vec![
                IpNet {
                    addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    prefix: 8,
                },
                IpNet::host(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
        }
    }
}

/// The default `listen` address: `127.0.0.1:2525` (design.md "Root layout").
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2525);

/// What a listener speaks (design.md, `control/listen`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ListenKind {
    /// Plain SMTP (the MX port): STARTTLS offered when a certificate is configured,
    /// never required (RFC 3207 §4).
    #[default]
    Smtp,
    /// Submission (port 587, RFC 6409): STARTTLS, then AUTH, before MAIL.
    Submission,
    /// Implicit TLS from the first byte (port 465, RFC 8314), then AUTH before MAIL.
    Smtps,
}

impl ListenKind {
    /// The word used in `control/listen`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenKind::Smtp => "smtp",
            ListenKind::Submission => "submission",
            ListenKind::Smtps => "smtps",
        }
    }
}

/// One `control/listen` line: where to listen and what to speak there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Listener {
    /// The address to bind.
    pub addr: SocketAddr,
    /// What the port speaks.
    pub kind: ListenKind,
}

impl Listener {
    /// A plain SMTP listener on `addr`.
    pub fn smtp(addr: SocketAddr) -> Listener {
        Listener {
            addr,
            kind: ListenKind::Smtp,
        }
    }
}

/// `listen`: `ADDR:PORT [KIND]` per line, `[v6]:PORT` for IPv6; KIND is `smtp`
/// (default), `submission` or `smtps`.
pub(super) fn listen_from_file(file: &File) -> Result<Vec<Listener>, ControlError> {
    file.lines()
        .map(|(n, l)| {
            let mut words = l.split_ascii_whitespace();
            let expected = "ADDR:PORT or [IPv6]:PORT, then smtp, submission or smtps";
            let addr = words
                .next()
                .and_then(|w| w.parse::<SocketAddr>().ok())
                .ok_or_else(|| file.invalid(n, expected, l))?;
            let kind = match words.next() {
                None | Some("smtp") => ListenKind::Smtp,
                Some("submission") => ListenKind::Submission,
                Some("smtps") => ListenKind::Smtps,
                Some(_) => return Err(file.invalid(n, expected, l)),
            };
            if words.next().is_some() {
                return Err(file.invalid(n, expected, l));
            }
            Ok(Listener { addr, kind })
        })
        .collect()
}

/// One DNS server: `IP`, `IP:PORT`, `IPv6` or `[IPv6]:PORT`; port 53 by default.
fn dns_server(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    s.parse().ok()
}

/// `dnsservers`: `IP[:PORT]` per line.
pub(super) fn dns_from_file(file: &File) -> Result<Vec<SocketAddr>, ControlError> {
    file.lines()
        .map(|(n, l)| dns_server(l.trim()).ok_or_else(|| file.invalid(n, "IP[:PORT]", l)))
        .collect()
}

/// The `nameserver` lines of a resolv.conf (resolv.conf(5)), port 53. Entries that are
/// not plain IP addresses (an IPv6 address with a `%zone`) are skipped; with none left,
/// the local host `127.0.0.1:53` is used, as the resolver library does.
pub fn nameservers_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|w| w.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect();
    if out.is_empty() {
        out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nets() {
        let n: IpNet = "10.1.2.3/8".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert!(n.contains("10.255.0.1".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "x",
            "10.0.0.0/+8",
            "10.0.0.0/0008",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dns() {
        assert_eq!(
            dns_server("192.0.2.53"),
            Some("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(
            dns_server("192.0.2.53:5353"),
            Some("192.0.2.53:5353".parse().unwrap())
        );
        assert_eq!(
            dns_server("2001:db8::53"),
            Some("[2001:db8::53]:53".parse().unwrap())
        );
        assert_eq!(
            dns_server("[2001:db8::53]:5353"),
            Some("[2001:db8::53]:5353".parse().unwrap())
        );
        assert_eq!(dns_server("dns.example"), None);
    }
}
