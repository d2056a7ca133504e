//! Where to connect for a domain: qmail-remote's routing (reference §6 "Routing"):
//! `smtproutes` first, then an address literal, then MX records (ascending preference,
//! random order among equals) resolved to IPv6 and IPv4 addresses, with the domain's own
//! addresses when it has no MX, RFC 7505 null MX, and the own-MX loop guard.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use hickory_proto::rr::{Name, RData, RecordType};
use mta_core::control::SmtpRoute;
use mta_core::{DeliveryResult, EnhancedStatus, StatusClass};

use super::RemoteDelivery;
use super::dns::DnsError;

/// One address to try, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    /// The address.
    pub(crate) ip: IpAddr,
    /// The SMTP port.
    pub(crate) port: u16,
    /// The host name the address came from (the MX, the smtproutes relay, or the address
    /// literal itself): what a `verify` TLS policy checks the certificate against.
    pub(crate) name: String,
}

/// A resolved MX (or the domain itself as an implicit MX of preference 0).
struct Exchanger {
    pref: u32,
    name: String,
    ips: Vec<IpAddr>,
}

fn code(class: StatusClass, subject: u16, detail: u16) -> Option<EnhancedStatus> {
    EnhancedStatus::new(class, subject, detail).ok()
}

/// qmail's `temp_dns`.
fn temp_dns(why: &str) -> DeliveryResult {
    DeliveryResult::Deferred {
        text: format!("Sorry, I couldn't find any host by that name. ({why}) (#4.1.2)"),
        status: code(StatusClass::Transient, 1, 2),
    }
}

/// qmail's `perm_dns`; the host is shown with bytes outside 33–126 as `?`.
fn perm_dns(host: &str) -> DeliveryResult {
    let safe: String = host
        .bytes()
        .map(|b| {
            if (33..=126).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect();
    DeliveryResult::Failed {
        text: format!("Sorry, I couldn't find any host named {safe}. (#5.1.2)"),
        status: code(StatusClass::Permanent, 1, 2),
    }
}

/// qmail's `perm_nomx`.
fn perm_nomx() -> DeliveryResult {
    DeliveryResult::Failed {
        text: "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)".into(),
        status: code(StatusClass::Permanent, 4, 4),
    }
}

/// qmail's `perm_ambigmx`: the best MX left is this host.
fn perm_loop() -> DeliveryResult {
    DeliveryResult::Failed {
        text: "Sorry. Although I'm listed as a best-preference MX or A for that host,\n\
               it isn't in my control/locals file, so I don't treat it as local:\n\
               mail loops back to myself. (#5.4.6)"
            .into(),
        status: code(StatusClass::Permanent, 4, 6),
    }
}

/// RFC 7505 §3: a domain whose only MX is `0 .` accepts no mail.
fn null_mx(domain: &str) -> DeliveryResult {
    DeliveryResult::Failed {
        text: format!("Sorry, {domain} does not accept mail (null MX, RFC 7505). (#5.1.10)"),
        status: code(StatusClass::Permanent, 1, 10),
    }
}

/// `[1.2.3.4]` or `[IPv6:...]` (RFC 5321 §4.1.3).
fn literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..].parse().ok().map(IpAddr::V6),
        _ => inner.parse().ok().map(IpAddr::V4),
    }
}

/// True if `ip` is an address of this machine (binding to it works only then).
fn is_local_ip(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// A stable-enough random order among equal preferences.
fn shuffle_key() -> u64 {
    super::random_u64()
}

impl RemoteDelivery {
    /// The addresses to try for `domain`, or the result every recipient gets.
    pub(crate) fn plan(&self, domain: &str) -> Result<Vec<Hop>, DeliveryResult> {
        let domain = domain.trim_end_matches('.');
        if let Some(SmtpRoute::Relay { host, port }) = self.control().routes.lookup(domain) {
            return self.plan_relay(host, port.unwrap_or(self.port));
        }
        if let Some(ip) = literal(domain) {
            if self.is_ours(ip, self.port) {
                return Err(perm_loop());
            }
            return Ok(vec![Hop {
                ip,
                port: self.port,
                name: ip.to_string(),
            }]);
        }
        let exchangers = self.exchangers(domain)?;
        self.plan_mx(exchangers)
    }

    /// An smtproutes relay, used as the only MX and without the own-host check (qmail's
    /// prefme 300000): an IP, or a name resolved to its addresses.
    fn plan_relay(&self, host: &str, port: u16) -> Result<Vec<Hop>, DeliveryResult> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![Hop {
                ip,
                port,
                name: host.to_owned(),
            }]);
        }
        let name = Name::from_utf8(host).map_err(|_| perm_dns(host))?;
        match self.resolver.addresses(&name) {
            Ok(ips) if ips.is_empty() => Err(perm_nomx()),
            Ok(ips) => Ok(ips
                .into_iter()
                .map(|ip| Hop {
                    ip,
                    port,
                    name: host.to_ascii_lowercase(),
                })
                .collect()),
            Err(DnsError::NotFound) => Err(perm_dns(host)),
            Err(DnsError::Temporary(e)) => Err(temp_dns(&e)),
        }
    }

    /// The MX names of `domain` in the order to try them (ascending preference, random
    /// among equals), or the domain itself with preference 0 when it has no MX records
    /// (RFC 5321 §5.1). A null MX (RFC 7505) fails.
    fn exchangers(&self, domain: &str) -> Result<Vec<(u32, Name)>, DeliveryResult> {
        let name = Name::from_utf8(domain).map_err(|_| perm_dns(domain))?;
        let records = match self.resolver.lookup(&name, RecordType::MX) {
            Err(DnsError::NotFound) => return Err(perm_dns(domain)),
            Err(DnsError::Temporary(e)) => return Err(temp_dns(&e)),
            Ok(records) => records,
        };
        if records.is_empty() {
            return Ok(vec![(0, name)]);
        }
        let mut v: Vec<(u32, u64, Name)> = records
            .into_iter()
            .filter_map(|r| match r {
                RData::MX(m) if !m.exchange().is_root() => Some((
                    u32::from(m.preference()),
                    shuffle_key(),
                    m.exchange().clone(),
                )),
                _ => None,
            })
            .collect();
        if v.is_empty() {
            return Err(null_mx(domain));
        }
        v.sort_by_key(|&(pref, key, _)| (pref, key));
        Ok(v.into_iter().map(|(pref, _, name)| (pref, name)).collect())
    }

    /// Resolves the exchangers and applies the loop guard: only MXes better than the best
    /// one that is this host are kept (qmail's prefme). Soft DNS failures on some
    /// exchangers are tolerated when others resolve.
    fn plan_mx(&self, exchangers: Vec<(u32, Name)>) -> Result<Vec<Hop>, DeliveryResult> {
        let port = self.port;
        let mut resolved = Vec::new();
        let mut soft = None;
        for (pref, name) in exchangers {
            let text = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
            let ips = match self.resolver.addresses(&name) {
                Ok(ips) => ips,
                Err(DnsError::Temporary(e)) => {
                    soft = Some(e);
                    Vec::new()
                }
                Err(DnsError::NotFound) => Vec::new(),
            };
            resolved.push(Exchanger {
                pref,
                name: text,
                ips,
            });
        }
        let prefme = resolved
            .iter()
            .filter(|x| {
                self.control().own_names.contains(&x.name)
                    || x.ips.iter().any(|&ip| self.is_ours(ip, port))
            })
            .map(|x| x.pref)
            .min();
        let hops: Vec<Hop> = resolved
            .iter()
            .filter(|x| prefme.is_none_or(|me| x.pref < me))
            .flat_map(|x| {
                x.ips.iter().map(|&ip| Hop {
                    ip,
                    port,
                    name: x.name.clone(),
                })
            })
            .collect();
        if !hops.is_empty() {
            return Ok(hops);
        }
        Err(match (prefme, soft) {
            (Some(_), _) => perm_loop(),
            (None, Some(e)) => temp_dns(&e),
            (None, None) => perm_nomx(),
        })
    }

    /// True if connecting to `ip:port` would reach this server: a `listen` address on that
    /// port (an unspecified listen address matches every address of this machine). Names
    /// (`me`, `localiphost`) are compared by the caller.
    fn is_ours(&self, ip: IpAddr, port: u16) -> bool {
        self.control().listen.iter().any(|l| {
            l.port() == port
                && (l.ip() == ip
                    || (l.ip().is_unspecified() && l.is_ipv4() == ip.is_ipv4() && is_local_ip(ip)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal("[192.0.2.1]"), Some(IpAddr::from([192, 0, 2, 1])));
        assert_eq!(literal("[IPv6:2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(literal("[ipv6:::1]"), "::1".parse().ok());
        assert_eq!(literal("example.com"), None);
        assert_eq!(literal("[example]"), None);
        assert_eq!(literal("[2001:db8::1]"), None, "IPv6 needs its tag");
    }

    #[test]
    fn texts_follow_qmail() {
        assert_eq!(
            perm_dns("bad host\u{1}").text(),
            "Sorry, I couldn't find any host named bad?host?. (#5.1.2)"
        );
        assert_eq!(perm_nomx().letter(), 'D');
        assert_eq!(temp_dns("x").letter(), 'Z');
        assert!(perm_loop().text().contains("loops back to myself"));
        assert!(null_mx("x.test").text().contains("#5.1.10"));
    }

    #[test]
    fn local_ips() {
        assert!(is_local_ip(IpAddr::from([127, 0, 0, 1])));
        assert!(
            !is_local_ip(IpAddr::from([192, 0, 2, 1])),
            "TEST-NET-1 is not ours"
        );
    }
}
