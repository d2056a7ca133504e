//! The control settings remote delivery uses, taken from [`mta_core::control::Control`]
//! (the workspace's one reader of qmail control files, with qmail's rules and defaults,
//! reference §8): `smtproutes`, `helohost`, `me`, `localiphost`, `timeoutconnect`,
//! `timeoutremote`, `listen`, `relayclients` (who may have DKIM signatures), and our
//! `dnsservers` (default: the resolv.conf nameservers).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mta_core::control::{RelayClients, SmtpAuth, SmtpRoutes, TlsDestinations};

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
    /// `tlsdestinations`: the outbound TLS policy per domain.
    pub tls_destinations: TlsDestinations,
    /// `smtpauth`: logins for smarthosts, given only inside TLS.
    pub smtp_auth: SmtpAuth,
    /// `relayclients`: mail they sent (without AUTH) is signed with DKIM like local mail.
    pub relay_clients: RelayClients,
}

impl Control {
    /// Reads `dir`; `resolv_conf` is consulted only when `dnsservers` is absent.
    pub(crate) fn load(dir: &Path, resolv_conf: &Path) -> Result<Control, String> {
        let c = mta_core::control::Control::load_with_resolv_conf(dir, resolv_conf)
            .map_err(|e| e.to_string())?;
        let helohost = c
            .helohost
            .clone()
            .unwrap_or_else(crate::root::system_hostname);
        let own_names =
            c.me.iter()
                .chain(c.localiphost.iter())
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect();
        let dns_servers = if c.dnsservers.is_empty() {
            vec![SocketAddr::from(([127, 0, 0, 1], 53))]
        } else {
            c.dnsservers.clone()
        };
        Ok(Control {
            helohost,
            own_names,
            listen: c.listen.iter().map(|l| l.addr).collect(),
            timeout_connect: Duration::from_secs(c.timeoutconnect.max(1)),
            timeout_remote: Duration::from_secs(c.timeoutremote.max(1)),
            routes: c.smtproutes,
            dns_servers,
            tls_destinations: c.tlsdestinations,
            smtp_auth: c.smtpauth,
            relay_clients: c.relayclients,
        })
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
            ["192.0.2.53:53".parse().unwrap()],
            "a scoped IPv6 nameserver is skipped"
        );

        std::fs::write(dir.join("helohost"), "helo.example.org \n").unwrap();
        std::fs::write(dir.join("localiphost"), "Local.Example.ORG.\n").unwrap();
        std::fs::write(dir.join("timeoutconnect"), "7x\n").unwrap();
        std::fs::write(dir.join("timeoutremote"), "0\n").unwrap();
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
            Duration::from_secs(1),
            "0 would mean no wait at all; 1 s is the least"
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
        assert!(e.contains("dnsservers:2"), "{e}");
        std::fs::remove_file(dir.join("dnsservers")).unwrap();
        std::fs::write(dir.join("smtproutes"), "x.test:relay:notaport\n").unwrap();
        let e = Control::load(dir, Path::new("/nonexistent")).unwrap_err();
        assert!(e.contains("smtproutes:1"), "{e}");
    }

    #[test]
    fn no_resolv_conf_means_localhost() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Control::load(tmp.path(), &tmp.path().join("missing")).unwrap();
        assert_eq!(c.dns_servers, [SocketAddr::from(([127, 0, 0, 1], 53))]);
    }
}
