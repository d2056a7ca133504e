//! The control files remote delivery reads, with qmail's rules and defaults
//! (reference §8): `smtproutes`, `helohost`, `me`, `localiphost`, `timeoutconnect`,
//! `timeoutremote`, `listen`, and our `dnsservers`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::routes::SmtpRoutes;

/// The resolved control settings for remote delivery.
#[derive(Clone, Debug)]
pub(crate) struct Control {
    /// `helohost`, else `me`, else the system host name.
    pub helohost: String,
    /// Lowercased names that are this host: `me` and `localiphost`.
    pub own_names: Vec<String>,
    /// `listen` addresses (default `127.0.0.1:2525`).
    pub listen: Vec<SocketAddr>,
    /// `timeoutconnect` (60 s).
    pub timeout_connect: Duration,
    /// `timeoutremote` (1200 s).
    pub timeout_remote: Duration,
    /// `smtproutes`.
    pub routes: SmtpRoutes,
    /// `dnsservers`, else the resolv.conf nameservers, else `127.0.0.1:53`.
    pub dns_servers: Vec<SocketAddr>,
}

impl Control {
    /// Reads `dir`; `resolv_conf` is consulted only when `dnsservers` is absent.
    pub(crate) fn load(dir: &Path, resolv_conf: &Path) -> Result<Control, String> {
        let c = Files { dir };
        let me = c.line("me")?;
        let helohost = match c.line("helohost")? {
            Some(h) => h,
            None => me.clone().unwrap_or_else(crate::root::system_hostname),
        };
        let mut own_names = Vec::new();
        own_names.extend(me.clone());
        own_names.extend(c.line("localiphost")?.or(me));
        let own_names = own_names
            .iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        let mut listen = Vec::new();
        for (i, l) in c
            .list("listen")?
            .unwrap_or_else(|| vec!["127.0.0.1:2525".into()])
            .iter()
            .enumerate()
        {
            listen.push(
                l.trim()
                    .parse()
                    .map_err(|e| c.bad("listen", i, &format!("{e}: {l}")))?,
            );
        }
        let routes = SmtpRoutes::parse(&c.list("smtproutes")?.unwrap_or_default())
            .map_err(|e| format!("{}/smtproutes: {e}", dir.display()))?;
        let dns_servers =
            match c.list("dnsservers")? {
                Some(lines) => {
                    let mut v = Vec::new();
                    for (i, l) in lines.iter().enumerate() {
                        v.push(parse_server(l.trim()).ok_or_else(|| {
                            c.bad("dnsservers", i, &format!("not IP[:PORT]: {l}"))
                        })?);
                    }
                    v
                }
                None => resolv_conf_servers(resolv_conf)?,
            };
        let dns_servers = if dns_servers.is_empty() {
            vec![SocketAddr::from(([127, 0, 0, 1], 53))]
        } else {
            dns_servers
        };
        Ok(Control {
            helohost,
            own_names,
            listen,
            timeout_connect: Duration::from_secs(c.number("timeoutconnect")?.unwrap_or(60).max(1)),
            timeout_remote: Duration::from_secs(c.number("timeoutremote")?.unwrap_or(1200).max(1)),
            routes,
            dns_servers,
        })
    }
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT`.
fn parse_server(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(SocketAddr::new(ip, 53));
    }
    s.parse().ok()
}

/// The `nameserver` lines of a resolv.conf (port 53; a `%scope` suffix is dropped). A
/// missing file gives no servers.
fn resolv_conf_servers(path: &Path) -> Result<Vec<SocketAddr>, String> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_ascii_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect())
}

/// qmail's control-file readers, as in [`crate::settings`].
struct Files<'a> {
    dir: &'a Path,
}

impl Files<'_> {
    fn bad(&self, name: &str, index: usize, what: &str) -> String {
        format!("{}/{name}: line {}: {what}", self.dir.display(), index + 1)
    }

    fn read(&self, name: &str) -> Result<Option<String>, String> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}/{name}: {e}", self.dir.display())),
        }
    }

    /// `control_readline`: the first line, trailing space and tab stripped.
    fn line(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.read(name)?.map(|t| {
            t.split('\n')
                .next()
                .unwrap_or("")
                .trim_end_matches([' ', '\t', '\r'])
                .to_owned()
        }))
    }

    /// `control_readfile`: every line, trailing whitespace stripped, blank and `#` lines
    /// skipped.
    fn list(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        Ok(self.read(name)?.map(|t| {
            t.lines()
                .map(|l| l.trim_end().to_owned())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect()
        }))
    }

    /// `control_readint`: decimal digits from the start; a non-numeric start is absent.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let resolv = dir.join("resolv.conf");
        std::fs::write(
            &resolv,
            "# comment\nsearch example\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n",
        )
        .unwrap();
        std::fs::write(dir.join("me"), "mx.example.org\n").unwrap();
        let c = Control::load(dir, &resolv).unwrap();
        assert_eq!(c.helohost, "mx.example.org");
        assert_eq!(c.own_names, ["mx.example.org", "mx.example.org"]);
        assert_eq!(c.timeout_connect, Duration::from_mins(1));
        assert_eq!(c.timeout_remote, Duration::from_mins(20));
        assert_eq!(c.listen, [SocketAddr::from(([127, 0, 0, 1], 2525))]);
        assert_eq!(
            c.dns_servers,
            [
                "192.0.2.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );

        std::fs::write(dir.join("helohost"), "helo.example.org \n").unwrap();
        std::fs::write(dir.join("localiphost"), "Local.Example.ORG.\n").unwrap();
        std::fs::write(dir.join("timeoutconnect"), "7x\n").unwrap();
        std::fs::write(dir.join("timeoutremote"), "abc\n").unwrap();
        std::fs::write(
            dir.join("dnsservers"),
            "127.0.0.1:5353\n# x\n::1\n[::1]:54\n",
        )
        .unwrap();
        std::fs::write(dir.join("smtproutes"), "x.test:127.0.0.2:2525\n").unwrap();
        let c = Control::load(dir, Path::new("/nonexistent/resolv.conf")).unwrap();
        assert_eq!(c.helohost, "helo.example.org");
        assert_eq!(c.own_names, ["mx.example.org", "local.example.org"]);
        assert_eq!(c.timeout_connect, Duration::from_secs(7));
        assert_eq!(
            c.timeout_remote,
            Duration::from_mins(20),
            "non-numeric start is absent"
        );
        assert_eq!(
            c.dns_servers,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "[::1]:54".parse().unwrap()
            ]
        );
        assert!(c.routes.lookup("x.test").is_some());
    }

    #[test]
    fn errors_name_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("dnsservers"), "127.0.0.1\nnot-an-ip\n").unwrap();
        let e = Control::load(dir, Path::new("/nonexistent")).unwrap_err();
        assert!(e.contains("dnsservers: line 2"), "{e}");
        std::fs::remove_file(dir.join("dnsservers")).unwrap();
        std::fs::write(dir.join("smtproutes"), "x.test:relay:notaport\n").unwrap();
        let e = Control::load(dir, Path::new("/nonexistent")).unwrap_err();
        assert!(e.contains("smtproutes: line 1"), "{e}");
    }

    #[test]
    fn no_resolv_conf_means_localhost() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Control::load(tmp.path(), &tmp.path().join("missing")).unwrap();
        assert_eq!(c.dns_servers, [SocketAddr::from(([127, 0, 0, 1], 53))]);
    }
}
