//! The system accounts of design.md's "Processes and accounts": who each process of `mta
//! serve` runs as.
//!
//! | role | default name | runs |
//! |---|---|---|
//! | `smtpd` | `mtad` | the SMTP sessions (qmail's qmaild) |
//! | `queue` | `mtaq` | the queue, the scheduler, bounces, pickup, remote delivery (qmailq, qmailr) |
//! | `remote` | `mtar` | reserved for a separate outbound SMTP process (qmailr) |
//! | `alias` | `mtaa` | deliveries of the alias user, whose home is `DIR/alias` (qmail's alias) |
//!
//! `control/accounts` may rename them, one `ROLE:NAME` line each (`#` comments and blank lines
//! allowed). Started as root, `mta init` and `mta serve` create the accounts that are missing
//! (system accounts with their own group, no home, no login shell; `useradd`, as a qmail
//! admin's install script did). Started as anyone else, every role is that user.

use std::path::Path;

use mta_core::control::AccountNames;

use crate::privs;

/// One resolved account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysAccount {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Every role's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accounts {
    /// SMTP sessions.
    pub smtpd: SysAccount,
    /// The queue process.
    pub queue: SysAccount,
    /// Outbound SMTP (reserved; see the module documentation).
    pub remote: SysAccount,
    /// The alias user.
    pub alias: SysAccount,
}

impl Accounts {
    /// Whether `uid` or `gid` belongs to one of the daemon's own accounts other than the alias
    /// user: a local delivery must never run as those (lspawn refuses them).
    pub fn is_daemon_id(&self, uid: u32, gid: u32) -> bool {
        [&self.smtpd, &self.queue, &self.remote]
            .iter()
            .any(|a| a.uid == uid || a.gid == gid)
    }
}

/// The account names `control/accounts` gives (smtpd, queue, remote, alias) (the defaults for roles
/// it does not name). The parser is mta-core's ([`mta_core::control::AccountNames`]).
///
/// # Errors
/// `file:line: ...` for a bad line, or a file that cannot be read.
pub fn names(control: &Path) -> Result<[String; 4], String> {
    let path = control.join("accounts");
    let names = match std::fs::read(&path) {
        Ok(text) => AccountNames::parse(&path, &text).map_err(|e| e.to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => AccountNames::default(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    Ok([names.smtpd, names.queue, names.remote, names.alias])
}

/// The accounts to run as. `privileged` (the master runs as root): each is looked up in
/// `/etc/passwd` and, when `create` is set, created if missing; otherwise every role is the
/// current user.
///
/// # Errors
/// A bad `control/accounts`, an account that is missing (and could not be created), or one
/// that is root or has group 0.
pub fn resolve(control: &Path, privileged: bool, create: bool) -> Result<Accounts, String> {
    let names = names(control)?;
    if !privileged {
        let me = SysAccount {
            name: std::env::var("USER").unwrap_or_else(|_| "mta".into()),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        };
        return Ok(Accounts {
            smtpd: me.clone(),
            queue: me.clone(),
            remote: me.clone(),
            alias: me,
        });
    }
    let mut found = Vec::with_capacity(4);
    for name in &names {
        found.push(account(name, create)?);
    }
    let [smtpd, queue, remote, alias] =
        <[SysAccount; 4]>::try_from(found).map_err(|_| "internal: accounts".to_owned())?;
    Ok(Accounts {
        smtpd,
        queue,
        remote,
        alias,
    })
}

/// One account by name, created with `useradd` when missing and `create` is set.
fn account(name: &str, create: bool) -> Result<SysAccount, String> {
    let passwd = Path::new("/etc/passwd");
    let lookup = || {
        privs::lookup_account(passwd, name).map(|a| SysAccount {
            name: a.name,
            uid: a.uid,
            gid: a.gid,
        })
    };
    let mut tries = 0;
    let acct = loop {
        if let Some(a) = lookup() {
            break a;
        }
        if !create {
            return Err(format!(
                "no account {name} in /etc/passwd (mta init creates it)"
            ));
        }
        // Another process (a parallel `mta init`) may be adding it at the same moment:
        // useradd then fails on its lock or on the name, and the next lookup finds it.
        let _ = std::process::Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        tries += 1;
        if tries > 20 {
            return Err(format!("unable to create account {name} (useradd)"));
        }
        if lookup().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(50 * tries));
        }
    };
    if acct.uid == 0 || acct.gid == 0 {
        return Err(format!("account {name} is root or in group 0; refused"));
    }
    Ok(acct)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_control_accounts() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(names(d.path()).unwrap(), ["mtad", "mtaq", "mtar", "mtaa"]);
        std::fs::write(d.path().join("accounts"), "smtpd:qmaild\nalias:alias\n").unwrap();
        assert_eq!(
            names(d.path()).unwrap(),
            ["qmaild", "mtaq", "mtar", "alias"]
        );
        std::fs::write(d.path().join("accounts"), "\nlocal:x\n").unwrap();
        assert!(names(d.path()).unwrap_err().contains("accounts:2"));
    }

    #[test]
    fn daemon_ids_are_recognised() {
        let a = |uid| SysAccount {
            name: String::new(),
            uid,
            gid: uid,
        };
        let accts = Accounts {
            smtpd: a(10),
            queue: a(11),
            remote: a(12),
            alias: a(13),
        };
        assert!(accts.is_daemon_id(10, 500));
        assert!(accts.is_daemon_id(500, 12));
        assert!(!accts.is_daemon_id(13, 13));
        assert!(!accts.is_daemon_id(1000, 1000));
    }
}
