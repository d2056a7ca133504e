//! The daemon's resolved settings: control files read once at start with qmail's defaults
//! (reference §8), turned into the values the SMTP service, the router, the scheduler and
//! the bounce composer use.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::route::Tables;

/// Everything `serve` needs from `DIR/control`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `me`.
    pub me: String,
    /// The text after `220 ` (smtpgreeting, else me).
    pub greeting: String,
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Routing tables (locals, virtualdomains, percenthack, envnoathost).
    pub tables: Tables,
    /// `rcpthosts` + `morercpthosts`; `None` when rcpthosts is absent.
    pub rcpthosts: Option<HashSet<String>>,
    /// `badmailfrom` entries, lowercased (`addr` or `@domain`).
    pub badmailfrom: HashSet<String>,
    /// `relayclients`: (network, prefix length).
    pub relayclients: Vec<(IpAddr, u8)>,
    /// `databytes` (0 = the built-in cap).
    pub databytes: u64,
    /// `timeoutsmtpd`.
    pub timeout_smtpd: Duration,
    /// `concurrencyincoming`.
    pub concurrency_incoming: usize,
    /// `concurrencylocal`.
    pub concurrency_local: usize,
    /// `concurrencyremote`.
    pub concurrency_remote: usize,
    /// `queuelifetime`.
    pub queue_lifetime: Duration,
    /// `acceptunknown`: qmail's accept-every-local-recipient behaviour.
    pub accept_unknown: bool,
    /// Bounce settings.
    pub bounce: mta_verp::BounceConfig,
}

impl Settings {
    /// Reads `dir` (the control directory) with qmail's rules and defaults.
    ///
    /// # Errors
    /// A message naming the file (and line) that could not be read or parsed.
    pub fn load(dir: &Path) -> Result<Settings, String> {
        let c = Files { dir };
        let me = c.line("me")?.unwrap_or_else(crate::root::system_hostname);
        let or_me = |name: &str, fallback: &str| -> Result<String, String> {
            Ok(c.line(name)?.unwrap_or_else(|| {
                if c.exists("me") {
                    me.clone()
                } else {
                    fallback.to_owned()
                }
            }))
        };
        let tables = Tables {
            locals: c
                .list("locals")?
                .unwrap_or_else(|| vec![me.clone()])
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            percenthack: lower_set(c.list("percenthack")?),
            envnoathost: or_me("envnoathost", "envnoathost")?,
            virtualdomains: c
                .list("virtualdomains")?
                .unwrap_or_default()
                .iter()
                .filter_map(|l| {
                    let (k, p) = l.rsplit_once(':')?;
                    Some((k.to_ascii_lowercase(), p.to_owned()))
                })
                .collect(),
        };
        let rcpthosts = match c.list("rcpthosts")? {
            Some(r) => {
                let mut set = lower_set(Some(r));
                set.extend(lower_set(c.list("morercpthosts")?));
                Some(set)
            }
            None => None,
        };
        let mut listen = Vec::new();
        for (i, l) in c
            .list("listen")?
            .unwrap_or_else(|| vec!["127.0.0.1:2525".into()])
            .iter()
            .enumerate()
        {
            listen.push(
                l.parse::<SocketAddr>()
                    .map_err(|e| format!("{}/listen: line {}: {e}: {l}", dir.display(), i + 1))?,
            );
        }
        let mut relayclients = Vec::new();
        let nets = c
            .list("relayclients")?
            .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1".into()]);
        for (i, l) in nets.iter().enumerate() {
            relayclients.push(parse_net(l).ok_or_else(|| {
                format!(
                    "{}/relayclients: line {}: not an IP or CIDR: {l}",
                    dir.display(),
                    i + 1
                )
            })?);
        }
        let bounce = mta_verp::BounceConfig::new(&me)
            .bouncefrom(
                &c.line("bouncefrom")?
                    .unwrap_or_else(|| "MAILER-DAEMON".into()),
            )
            .bouncehost(&or_me("bouncehost", "bouncehost")?)
            .doublebounceto(
                &c.line("doublebounceto")?
                    .unwrap_or_else(|| "postmaster".into()),
            )
            .doublebouncehost(&or_me("doublebouncehost", "doublebouncehost")?);
        Ok(Settings {
            greeting: c.line("smtpgreeting")?.unwrap_or_else(|| me.clone()),
            me,
            listen,
            tables,
            rcpthosts,
            badmailfrom: lower_set(c.list("badmailfrom")?),
            relayclients,
            databytes: c.number("databytes")?.unwrap_or(0),
            timeout_smtpd: Duration::from_secs(c.number("timeoutsmtpd")?.unwrap_or(1200).max(1)),
            concurrency_incoming: c
                .number("concurrencyincoming")?
                .map_or(40, |n| n.clamp(1, 100_000) as usize),
            concurrency_local: c
                .number("concurrencylocal")?
                .map_or(10, |n| n.min(1000) as usize),
            concurrency_remote: c
                .number("concurrencyremote")?
                .map_or(20, |n| n.min(1000) as usize),
            queue_lifetime: Duration::from_secs(c.number("queuelifetime")?.unwrap_or(604_800)),
            accept_unknown: c.number("acceptunknown")?.unwrap_or(0) != 0,
            bounce,
        })
    }

    /// True when `ip` is inside one of the `relayclients` networks.
    pub fn is_relay_client(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        self.relayclients
            .iter()
            .any(|&(net, len)| in_net(ip, net, len))
    }

    /// qmail-smtpd's rcpthosts rule: the whole domain, then each `.suffix`. Addresses without
    /// `@` pass. With no rcpthosts file we refuse relaying (a deliberate difference from
    /// qmail, whose absent rcpthosts made an open relay).
    pub fn rcpthosts_allows(&self, domain: Option<&[u8]>) -> bool {
        let Some(domain) = domain else {
            return true;
        };
        let Some(hosts) = &self.rcpthosts else {
            return false;
        };
        let d = String::from_utf8_lossy(domain).to_ascii_lowercase();
        if hosts.contains(&d) {
            return true;
        }
        d.char_indices()
            .filter(|&(_, c)| c == '.')
            .any(|(i, _)| hosts.contains(&d[i..]))
    }

    /// qmail-smtpd's badmailfrom: the whole address, or `@domain`.
    pub fn is_bad_sender(&self, sender: &mta_core::Address) -> bool {
        if self.badmailfrom.is_empty() || sender.is_null() {
            return false;
        }
        let whole = String::from_utf8_lossy(sender.as_bytes()).to_ascii_lowercase();
        if self.badmailfrom.contains(&whole) {
            return true;
        }
        sender.domain().is_some_and(|d| {
            let at = format!("@{}", String::from_utf8_lossy(d).to_ascii_lowercase());
            self.badmailfrom.contains(&at)
        })
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// qmail's control-file readers (`control_readline`, `control_readfile`, `control_readint`).
struct Files<'a> {
    dir: &'a Path,
}

impl Files<'_> {
    fn exists(&self, name: &str) -> bool {
        self.dir.join(name).exists()
    }

    fn read(&self, name: &str) -> Result<Option<String>, String> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}/{name}: {e}", self.dir.display())),
        }
    }

    /// First line, trailing space/tab stripped; an existing file with an empty first line
    /// is the empty value.
    fn line(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.read(name)?.map(|t| {
            t.split('\n')
                .next()
                .unwrap_or("")
                .trim_end_matches([' ', '\t', '\r'])
                .to_owned()
        }))
    }

    /// Every line, trailing whitespace stripped, blank and `#` lines skipped.
    fn list(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        Ok(self.read(name)?.map(|t| {
            t.lines()
                .map(|l| l.trim_end().to_owned())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect()
        }))
    }

    /// A decimal number from the start of the first line; a non-numeric start is absent.
    fn number(&self, name: &str) -> Result<Option<u64>, String> {
        Ok(self.line(name)?.and_then(|l| {
            let digits: String = l
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        }))
    }
}

fn lower_set(list: Option<Vec<String>>) -> HashSet<String> {
    list.unwrap_or_default()
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

/// `IP` or `IP/len`.
fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let lo: IpAddr = "127.0.0.0".parse().unwrap_or_else(|_| unreachable!());
        assert!(in_net(
            "127.1.2.3".parse().unwrap_or_else(|_| unreachable!()),
            lo,
            8
        ));
        assert!(!in_net(
            "128.0.0.1".parse().unwrap_or_else(|_| unreachable!()),
            lo,
            8
        ));
        let v6: IpAddr = "::1".parse().unwrap_or_else(|_| unreachable!());
        assert!(in_net(v6, v6, 128));
        assert!(!in_net(v6, lo, 8));
    }
}
