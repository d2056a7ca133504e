//! qmail's control files (qmail-reference §8) read into one typed [`Control`], with
//! qmail's defaults for absent files and qmail's syntax rules, plus the three files of our
//! own (`listen`, `relayclients`, `dnsservers`), a switch (`acceptunknown`) and the limits
//! that hold under abuse (`concurrencyincoming`, `concurrencyperip`, `maxrcpt`,
//! `maxerrors`, `mindatarate`, `timeoutlocal`; design.md "Limits").
//!
//! Syntax, as qmail's `control.c`:
//! - single-value files (`me`, `helohost`, ...): only the first line counts, trailing
//!   space and tab removed; an existing file with an empty first line gives an empty value,
//!   not the default;
//! - list files (`locals`, `rcpthosts`, ...): one entry per line, trailing white space
//!   removed, blank lines and lines starting with `#` skipped, leading white space kept;
//! - numbers: decimal digits at the start of the first line.
//!
//! "me → X" below means: the value of `me` if that file exists, else the literal X.
//! Errors name the file and the line ([`ControlError`]).
//!
//! ```
//! use mta_core::{Address, control::Control};
//! let dir = std::env::temp_dir().join(format!("mta-core-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("me"), "mx.example.com\n")?;
//! std::fs::write(dir.join("rcpthosts"), "example.com\n.example.com\n")?;
//! let c = Control::load(&dir)?;
//! assert_eq!(c.bouncehost, "mx.example.com");          // me → bouncehost
//! assert_eq!(c.concurrencyremote, 20);                  // qmail's default
//! assert!(c.rcpt_allowed(&Address::from("joe@mail.example.com")));
//! assert!(!c.rcpt_allowed(&Address::from("joe@example.org")));
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;
mod net;
mod read;
mod tables;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use crate::Address;
use crate::address_list::QmailRewrite;

pub use auth::{PasswordEntry, Passwords, SmtpAuth, SmtpAuthEntry};

/// The one default message size limit (`control/databytes`), in bytes: 50 MiB. qmail's
/// default was 0, no limit, which let a client push gigabytes at a 32-bit length counter
/// (CVE-2005-1513); here every server has a finite cap. A missing `databytes` gives this;
/// `mta init` writes it; mta-smtp's `DEFAULT_MAX_MESSAGE_SIZE` is this value.
pub const DEFAULT_DATABYTES: u64 = 50 * 1024 * 1024;
pub use net::{
    DEFAULT_LISTEN, IpNet, ListenKind, Listener, RelayClients, nameservers_from_resolv_conf,
};
pub use read::{ControlError, ControlErrorKind};
pub use tables::{
    AccountNames, BadMailFrom, RcptHosts, SmtpRoute, SmtpRoutes, TlsDestination, TlsDestinations,
    VirtualDomains,
};

use read::Source;

/// Every control file the daemon reads, in one place (qmail-reference §8, design.md "Root
/// layout"). Field names are the file names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Control {
    /// `me`: this host's name; the default of many others. `None` when absent.
    pub me: Option<String>,
    /// `locals`: domains delivered locally (exact match, no case). Default: me, or none.
    pub locals: Vec<String>,
    /// `rcpthosts` and `morercpthosts`: domains accepted at RCPT. `None` when rcpthosts
    /// is absent, which qmail takes as "accept everything" (see [`Control::rcpt_allowed`]).
    pub rcpthosts: Option<RcptHosts>,
    /// `virtualdomains`. Default: empty.
    pub virtualdomains: VirtualDomains,
    /// `percenthack`: domains where `u%h@dom` becomes `u@h`. Default: empty.
    pub percenthack: Vec<String>,
    /// `smtproutes`. Default: empty (MX for everything).
    pub smtproutes: SmtpRoutes,
    /// `badmailfrom`. Default: empty.
    pub badmailfrom: BadMailFrom,
    /// `envnoathost`: appended to recipients without `@`. me → `envnoathost`.
    pub envnoathost: String,
    /// `bouncefrom`: user part of the bounce `From:`. Default `MAILER-DAEMON`.
    pub bouncefrom: String,
    /// `bouncehost`: host part of the bounce `From:`. me → `bouncehost`.
    pub bouncehost: String,
    /// `doublebounceto`: user that gets double bounces. Default `postmaster`.
    pub doublebounceto: String,
    /// `doublebouncehost`. me → `doublebouncehost`.
    pub doublebouncehost: String,
    /// `concurrencylocal`: parallel local deliveries. Default 10.
    pub concurrencylocal: u64,
    /// `concurrencyremote`: parallel remote deliveries. Default 20.
    pub concurrencyremote: u64,
    /// `concurrencyincoming` (ours): parallel SMTP sessions. Default 100.
    pub concurrencyincoming: u64,
    /// `concurrencyperip` (ours): parallel SMTP sessions from one client address. Default
    /// 10.
    pub concurrencyperip: u64,
    /// `maxrcpt` (ours): recipients accepted per message; more get `452 4.5.3`. Default
    /// 1000 (Postfix's `smtpd_recipient_limit`).
    pub maxrcpt: u64,
    /// `maxerrors` (ours): refused commands per SMTP session before `421` and close.
    /// Default 20 (Postfix's `smtpd_hard_error_limit`).
    pub maxerrors: u64,
    /// `mindatarate` (ours): bytes per second DATA must keep up on average after the
    /// `timeoutsmtpd` grace; 0 turns the rate check off. Default 500 (Postfix's
    /// `smtpd_min_data_rate`).
    pub mindatarate: u64,
    /// `timeoutlocal` (ours): seconds a `.qmail` program may run before it is killed and
    /// the delivery deferred. Default 3600.
    pub timeoutlocal: u64,
    /// `queuelifetime`: seconds before temporary failures become permanent. Default
    /// 604800 (a week).
    pub queuelifetime: u64,
    /// `databytes`: largest message accepted, in bytes. Default [`DEFAULT_DATABYTES`]
    /// (50 MiB) when the file is missing; qmail's `0` ("no limit") is kept as written,
    /// and mta-smtp turns it into the same default cap.
    pub databytes: u64,
    /// `timeoutsmtpd`: seconds the SMTP server gives a client to send a whole command line
    /// (counted from the previous reply, not reset by each byte). Default 1200.
    pub timeoutsmtpd: u64,
    /// `timeoutremote`: seconds the SMTP client waits per read or write. Default 1200.
    pub timeoutremote: u64,
    /// `timeoutconnect`: seconds the SMTP client waits to connect. Default 60.
    pub timeoutconnect: u64,
    /// `helohost`: the SMTP client's HELO name. Default me, else `None`.
    pub helohost: Option<String>,
    /// `smtpgreeting`: text after `220 `. Default me, else `None` (qmail answers 421).
    pub smtpgreeting: Option<String>,
    /// `localiphost`: replaces `[local IP]` in recipients. Default me, else `None`.
    pub localiphost: Option<String>,
    /// `defaulthost`: qmail-inject's host for addresses without `@`. me → `defaulthost`.
    pub defaulthost: String,
    /// `defaultdomain`: appended to hosts without a dot. me → `defaultdomain`.
    pub defaultdomain: String,
    /// `plusdomain`: replaces a trailing `+`. me → `plusdomain`.
    pub plusdomain: String,
    /// `idhost`: the host in Message-IDs. me → `idhost`.
    pub idhost: String,
    /// `listen` (ours): `ADDR:PORT [KIND]` lines, the addresses the SMTP server binds
    /// and what each speaks. Default [`DEFAULT_LISTEN`], plain SMTP.
    pub listen: Vec<Listener>,
    /// `relayclients` (ours): clients allowed to relay. Default `127.0.0.0/8`, `::1`.
    pub relayclients: RelayClients,
    /// `dnsservers` (ours): DNS servers. Default: the `nameserver`s of resolv.conf.
    pub dnsservers: Vec<SocketAddr>,
    /// `tlsdestinations` (ours): outbound TLS policy per destination domain. Default:
    /// empty, every destination [`TlsDestination::May`].
    pub tlsdestinations: TlsDestinations,
    /// `smtpauth` (ours): `HOST:LOGIN:PASSWORD` lines, the logins remote delivery gives a
    /// smarthost named in smtproutes (only inside TLS). Default: empty.
    pub smtpauth: SmtpAuth,
    /// True when `smtpauth` exists but this process may not read it (a secret readable
    /// only by the process that delivers remotely; the others run without it). Its reader
    /// should warn: the logins are then missing.
    pub smtpauth_unreadable: bool,
    /// `checkpassword` (ours): a program with qmail's checkpassword interface for logins
    /// not in `users/passwords`. Default: none.
    pub checkpassword: Option<String>,
    /// `authfailmax` (ours): failed AUTHs from one address within 10 minutes before that
    /// address is refused AUTH for 10 minutes. Default 10.
    pub authfailmax: u64,
    /// `acceptunknown` (ours): `1` accepts every recipient in a local domain at RCPT, as
    /// qmail does; absent or `0` refuses unknown local recipients at RCPT.
    pub acceptunknown: bool,
    /// `accounts` (ours): the accounts `mta serve`'s processes run as. Default: `mtad`,
    /// `mtaq`, `mtar`, `mtaa`.
    pub accounts: AccountNames,
    /// `spfreject` (ours): `1` refuses a MAIL FROM whose SPF result is `fail` (RFC 7208
    /// §8.4) from a client outside `relayclients` that has not authenticated, with
    /// `550 5.7.23`. Default 0: the result is only recorded in Authentication-Results.
    pub spfreject: bool,
    /// `dmarcreject` (ours): `1` refuses, at the end of DATA with `550 5.7.1`, a message that
    /// fails DMARC (RFC 7489) under its domain's `p=reject`. Default 0.
    pub dmarcreject: bool,
}

impl Control {
    /// Reads the control directory `dir`, taking the DNS default from
    /// `/etc/resolv.conf`.
    ///
    /// # Errors
    /// [`ControlError`] naming the file (and line) that could not be read or parsed. An
    /// absent file is never an error.
    pub fn load(dir: &Path) -> Result<Control, ControlError> {
        Control::load_with_resolv_conf(dir, Path::new("/etc/resolv.conf"))
    }

    /// Like [`Control::load`], with the resolv.conf used for the `dnsservers` default
    /// given (for tests and chroots). A missing resolv.conf gives `127.0.0.1:53`.
    ///
    /// # Errors
    /// As [`Control::load`]; an unreadable (not missing) resolv.conf is an error too.
    pub fn load_with_resolv_conf(dir: &Path, resolv_conf: &Path) -> Result<Control, ControlError> {
        Control::build(&Source::Dir(dir), || match std::fs::read(resolv_conf) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(ControlError {
                path: resolv_conf.to_path_buf(),
                line: None,
                kind: ControlErrorKind::Io(e),
            }),
        })
    }

    /// Builds a [`Control`] from file texts in memory (`(name, contents)`; absent names
    /// are absent files), with `resolv_conf` as the resolv.conf text. The parsing is the
    /// same as [`Control::load`]'s; no file is touched.
    ///
    /// # Errors
    /// [`ControlError`] naming the file (by its name) and line.
    pub fn from_texts<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        resolv_conf: &str,
    ) -> Result<Control, ControlError> {
        let map: HashMap<&str, &[u8]> = files.into_iter().collect();
        Control::build(&Source::Texts(map), || Ok(resolv_conf.to_owned()))
    }

    fn build(
        src: &Source<'_>,
        resolv: impl FnOnce() -> Result<String, ControlError>,
    ) -> Result<Control, ControlError> {
        let me = src.line("me")?;
        let or_me = |name: &str| -> Result<String, ControlError> {
            Ok(src
                .line(name)?
                .unwrap_or_else(|| me.clone().unwrap_or_else(|| name.to_owned())))
        };
        let or_me_opt = |name: &str| -> Result<Option<String>, ControlError> {
            Ok(src.line(name)?.or_else(|| me.clone()))
        };
        let list = |name: &str| -> Result<Option<Vec<String>>, ControlError> {
            Ok(src
                .read(name)?
                .map(|f| f.lines().map(|(_, l)| l.to_owned()).collect()))
        };
        let rcpthosts = match src.read("rcpthosts")? {
            Some(f) => {
                let mut r = RcptHosts::default();
                r.add_file(&f);
                if let Some(more) = src.read("morercpthosts")? {
                    r.add_file(&more);
                }
                Some(r)
            }
            None => None,
        };
        let smtpauth = src.read_secret("smtpauth")?;
        let dnsservers = match src.read("dnsservers")? {
            Some(f) => net::dns_from_file(&f)?,
            None => nameservers_from_resolv_conf(&resolv()?),
        };
        let switch = |name: &str| -> Result<bool, ControlError> {
            Ok(match src.read(name)? {
                Some(f) => f.number()? != 0,
                None => false,
            })
        };
        let acceptunknown = switch("acceptunknown")?;
        Ok(Control {
            locals: list("locals")?.unwrap_or_else(|| me.iter().cloned().collect()),
            rcpthosts,
            virtualdomains: src
                .read("virtualdomains")?
                .map_or(Ok(VirtualDomains::default()), |f| {
                    VirtualDomains::from_file(&f)
                })?,
            percenthack: list("percenthack")?.unwrap_or_default(),
            smtproutes: src
                .read("smtproutes")?
                .map_or(Ok(SmtpRoutes::default()), |f| SmtpRoutes::from_file(&f))?,
            badmailfrom: src
                .read("badmailfrom")?
                .map(|f| BadMailFrom::from_file(&f))
                .unwrap_or_default(),
            envnoathost: or_me("envnoathost")?,
            bouncefrom: src
                .line("bouncefrom")?
                .unwrap_or_else(|| "MAILER-DAEMON".into()),
            bouncehost: or_me("bouncehost")?,
            doublebounceto: src
                .line("doublebounceto")?
                .unwrap_or_else(|| "postmaster".into()),
            doublebouncehost: or_me("doublebouncehost")?,
            concurrencylocal: src.number("concurrencylocal", 10)?,
            concurrencyremote: src.number("concurrencyremote", 20)?,
            concurrencyincoming: src.number("concurrencyincoming", 100)?,
            concurrencyperip: src.number("concurrencyperip", 10)?,
            maxrcpt: src.number("maxrcpt", 1000)?,
            maxerrors: src.number("maxerrors", 20)?,
            mindatarate: src.number("mindatarate", 500)?,
            timeoutlocal: src.number("timeoutlocal", 3600)?,
            queuelifetime: src.number("queuelifetime", 604_800)?,
            databytes: src.number("databytes", DEFAULT_DATABYTES)?,
            timeoutsmtpd: src.number("timeoutsmtpd", 1200)?,
            timeoutremote: src.number("timeoutremote", 1200)?,
            timeoutconnect: src.number("timeoutconnect", 60)?,
            helohost: or_me_opt("helohost")?,
            smtpgreeting: or_me_opt("smtpgreeting")?,
            localiphost: or_me_opt("localiphost")?,
            defaulthost: or_me("defaulthost")?,
            defaultdomain: or_me("defaultdomain")?,
            plusdomain: or_me("plusdomain")?,
            idhost: or_me("idhost")?,
            listen: match src.read("listen")? {
                Some(f) => net::listen_from_file(&f)?,
                None => vec![Listener::smtp(DEFAULT_LISTEN)],
            },
            relayclients: match src.read("relayclients")? {
                Some(f) => RelayClients::from_file(&f)?,
                None => RelayClients::default(),
            },
            dnsservers,
            smtpauth_unreadable: smtpauth.is_err(),
            smtpauth: match smtpauth {
                Ok(Some(f)) => SmtpAuth::from_file(&f)?,
                Ok(None) | Err(()) => SmtpAuth::default(),
            },
            checkpassword: src.line("checkpassword")?.filter(|s| !s.is_empty()),
            authfailmax: src.number("authfailmax", 10)?,
            tlsdestinations: src
                .read("tlsdestinations")?
                .map_or(Ok(TlsDestinations::default()), |f| {
                    TlsDestinations::from_file(&f)
                })?,
            acceptunknown,
            accounts: match src.read("accounts")? {
                Some(f) => AccountNames::from_file(&f)?,
                None => AccountNames::default(),
            },
            spfreject: switch("spfreject")?,
            dmarcreject: switch("dmarcreject")?,
            me,
        })
    }

    /// True when `domain` is in `locals` (exact match, ignoring case), as qmail-send
    /// decides local delivery (qmail-reference §8).
    pub fn is_local(&self, domain: &str) -> bool {
        self.locals.iter().any(|l| l.eq_ignore_ascii_case(domain))
    }

    /// qmail-smtpd's `addrallowed`: may RCPT name this recipient? True when `rcpthosts`
    /// is absent (qmail's open default: a deployment should always have the file;
    /// `mta init` writes it), when the address has no `@`, or when its domain is
    /// accepted by [`RcptHosts::allows`]. Relaying clients are the caller's concern
    /// ([`Control::is_relay_client`]).
    pub fn rcpt_allowed(&self, recipient: &Address) -> bool {
        let Some(r) = &self.rcpthosts else {
            return true;
        };
        match recipient.domain() {
            Some(d) => r.allows(&String::from_utf8_lossy(d)),
            None => true,
        }
    }

    /// True when `badmailfrom` refuses this envelope sender ([`BadMailFrom::matches`]).
    pub fn badmailfrom_matches(&self, sender: &Address) -> bool {
        self.badmailfrom.matches(sender)
    }

    /// The local address a virtual-domain recipient is delivered to (`prepend-address`),
    /// or `None` when the domain is local (virtualdomains is ignored for `locals`) or no
    /// entry applies ([`VirtualDomains::rewrite`]).
    pub fn virtual_rewrite(&self, recipient: &Address) -> Option<Address> {
        let domain = recipient.domain()?;
        if self.is_local(&String::from_utf8_lossy(domain)) {
            return None;
        }
        self.virtualdomains.rewrite(recipient)
    }

    /// The `smtproutes` entry for a domain ([`SmtpRoutes::lookup`]).
    pub fn smtp_route(&self, domain: &str) -> Option<&SmtpRoute> {
        self.smtproutes.lookup(domain)
    }

    /// True when a client at `ip` may relay ([`RelayClients::contains`]).
    pub fn is_relay_client(&self, ip: IpAddr) -> bool {
        self.relayclients.contains(ip)
    }

    /// qmail-inject's rewriting with this host's `defaulthost`, `defaultdomain`,
    /// `plusdomain` and `percenthack` ([`QmailRewrite`]).
    pub fn qmail_rewrite(&self) -> QmailRewrite {
        QmailRewrite::new(&*self.defaulthost, &*self.defaultdomain, &*self.plusdomain)
            .with_percent_hack(self.percenthack.clone())
    }
}
