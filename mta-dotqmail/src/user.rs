//! Address → user: qmail-lspawn's resolution of a local part to an account, a dash and an
//! extension (users/assign, then the system users through qmail-getpw's rules, then the
//! alias user).

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::assign::UsersAssign;
use crate::passwd::SystemUsers;

/// A delivery account: the user name, uid, gid and home directory qmail-local runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    user: Vec<u8>,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl Account {
    /// Builds an account. `home` should be absolute; [`crate::deliver`] defers with a
    /// usage error otherwise, as qmail-local does.
    pub fn new(user: impl Into<Vec<u8>>, uid: u32, gid: u32, home: impl AsRef<[u8]>) -> Self {
        Account {
            user: user.into(),
            uid,
            gid,
            home: PathBuf::from(OsStr::from_bytes(home.as_ref())),
        }
    }

    /// The user name (`USER` in the program environment).
    pub fn user(&self) -> &[u8] {
        &self.user
    }

    /// The uid deliveries run as.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The gid deliveries run as (qmail-lspawn sets no supplementary groups).
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The home directory (`HOME`); `.qmail` files and relative paths are found here.
    pub fn home(&self) -> &Path {
        &self.home
    }
}

/// The outcome of qmail-lspawn's lookup: the account plus the `dash` and `ext` arguments
/// it hands qmail-local.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalUser {
    account: Account,
    dash: Vec<u8>,
    ext: Vec<u8>,
}

impl LocalUser {
    /// Builds a resolved user.
    pub fn new(account: Account, dash: &[u8], ext: impl Into<Vec<u8>>) -> Self {
        LocalUser {
            account,
            dash: dash.to_vec(),
            ext: ext.into(),
        }
    }

    /// The account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// `""` for a user's own address (no extension), normally `-` otherwise. With an empty
    /// dash a missing `.qmail` means "use the default delivery"; with a dash it means
    /// "no such mailbox".
    pub fn dash(&self) -> &[u8] {
        &self.dash
    }

    /// The extension (original case), `EXT` in the program environment.
    pub fn ext(&self) -> &[u8] {
        &self.ext
    }
}

/// Where qmail-lspawn found the user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolved {
    /// The local part is empty (`<>`, `@host`): a trash address, accepted and discarded.
    Trash,
    /// A users/assign, system or alias user.
    User(LocalUser),
}

/// A resolution that could not finish: qmail-lspawn reports these as temporary (`Z`).
#[derive(Debug)]
#[non_exhaustive]
pub enum ResolveError {
    /// The system-user lookup failed temporarily (passwd unreadable, home stat failed
    /// with a transient error: qmail's "NFS failure").
    System(io::Error),
    /// The matched account has uid 0: `Not allowed to perform deliveries as root.`
    Root,
    /// The matched account has gid 0 (root's group, which may read and write what root's
    /// group may): `Not allowed to perform deliveries with group 0.` qmail-lspawn checked
    /// only the uid.
    RootGroup,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::System(e) => write!(f, "temporary failure looking up user: {e}"),
            ResolveError::Root => f.write_str("not allowed to perform deliveries as root"),
            ResolveError::RootGroup => {
                f.write_str("not allowed to perform deliveries with group 0")
            }
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResolveError::System(e) => Some(e),
            ResolveError::Root | ResolveError::RootGroup => None,
        }
    }
}

impl ResolveError {
    /// qmail-lspawn's report text for this error, with its status code.
    pub fn report(&self) -> String {
        match self {
            ResolveError::System(_) => "Temporary failure in qmail-lspawn. (#4.3.0)".into(),
            ResolveError::Root => "Not allowed to perform deliveries as root. (#4.3.0)".into(),
            ResolveError::RootGroup => {
                "Not allowed to perform deliveries with group 0. (#4.3.0)".into()
            }
        }
    }
}

/// What qmail-lspawn + qmail-getpw consult, in order: users/assign, an optional system
/// user database, then the alias user (whose home holds `.qmail-<local>` and
/// `.qmail-default`).
///
/// ```
/// use mta_dotqmail::{Account, Resolved, UserTable, UsersAssign};
/// let alias = Account::new("alias", 7790, 2108, "/var/qmail/alias");
/// let assign = UsersAssign::parse(b"=joe:joe:1001:100:/home/joe:::\n.\n")?;
/// let users = UserTable::new(alias).with_assign(assign);
/// let Resolved::User(u) = users.resolve(b"Postmaster")? else { unreachable!() };
/// assert_eq!((u.account().user(), u.dash(), u.ext()), (&b"alias"[..], &b"-"[..], &b"Postmaster"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UserTable {
    assign: Option<UsersAssign>,
    system: Option<Box<dyn SystemUsers + Send + Sync>>,
    alias: Account,
    refuse_root: bool,
}

impl fmt::Debug for UserTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTable")
            .field("assign", &self.assign)
            .field("system", &self.system.is_some())
            .field("alias", &self.alias)
            .field("refuse_root", &self.refuse_root)
            .finish()
    }
}

impl UserTable {
    /// A table with only the alias user; uid 0 is refused, as qmail-lspawn does.
    pub fn new(alias: Account) -> Self {
        UserTable {
            assign: None,
            system: None,
            alias,
            refuse_root: true,
        }
    }

    /// Adds (or replaces) the users/assign table, consulted first.
    #[must_use]
    pub fn with_assign(mut self, assign: UsersAssign) -> Self {
        self.assign = Some(assign);
        self
    }

    /// Replaces the users/assign table in place (after the file changed).
    pub fn set_assign(&mut self, assign: Option<UsersAssign>) {
        self.assign = assign;
    }

    /// Enables the system-user fallback (qmail-getpw), consulted when users/assign has no
    /// match.
    #[must_use]
    pub fn with_system(mut self, system: impl SystemUsers + Send + Sync + 'static) -> Self {
        self.system = Some(Box::new(system));
        self
    }

    /// Whether a resolution to uid 0 is refused (default true, as qmail-lspawn). A daemon
    /// that is not root and delivers everything as itself may turn this off.
    #[must_use]
    pub fn refuse_root(mut self, refuse: bool) -> Self {
        self.refuse_root = refuse;
        self
    }

    /// The alias account.
    pub fn alias(&self) -> &Account {
        &self.alias
    }

    /// Resolves local part `local` (after any virtualdomains prefix was added) as
    /// qmail-lspawn does.
    ///
    /// # Errors
    /// [`ResolveError::System`] when the system lookup fails temporarily,
    /// [`ResolveError::Root`] when the account has uid 0 and root is refused,
    /// [`ResolveError::RootGroup`] when it has gid 0 (also under [`refuse_root`](Self::refuse_root)).
    pub fn resolve(&self, local: &[u8]) -> Result<Resolved, ResolveError> {
        if local.is_empty() {
            return Ok(Resolved::Trash);
        }
        let found = if let Some(u) = self.assign.as_ref().and_then(|a| a.lookup(local)) {
            u
        } else {
            let system = match &self.system {
                Some(s) => s.getpw(local).map_err(ResolveError::System)?,
                None => None,
            };
            system.unwrap_or_else(|| LocalUser::new(self.alias.clone(), b"-", local))
        };
        if self.refuse_root && found.account().uid() == 0 {
            return Err(ResolveError::Root);
        }
        if self.refuse_root && found.account().gid() == 0 {
            return Err(ResolveError::RootGroup);
        }
        Ok(Resolved::User(found))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Fixed;
    impl SystemUsers for Fixed {
        fn getpw(&self, local: &[u8]) -> io::Result<Option<LocalUser>> {
            match local {
                b"fail" => Err(io::Error::other("nfs")),
                b"sys-x" => Ok(Some(LocalUser::new(
                    Account::new("sys", 5, 5, "/h"),
                    b"-",
                    "x",
                ))),
                _ => Ok(None),
            }
        }
    }

    #[test]
    fn order_assign_system_alias() {
        let assign = UsersAssign::parse(
            b"=sys-x:assigned:9:9:/a:::\n=r:root:0:0:/root:::\n=g:wheel:9:0:/g:::\n.\n",
        )
        .unwrap();
        let t = UserTable::new(Account::new("alias", 7, 7, "/alias"))
            .with_assign(assign)
            .with_system(Fixed);
        let user = |l: &[u8]| match t.resolve(l).unwrap() {
            Resolved::User(u) => u.account().user().to_vec(),
            Resolved::Trash => b"<trash>".to_vec(),
        };
        assert_eq!(user(b"sys-x"), b"assigned");
        assert_eq!(user(b"other"), b"alias");
        assert_eq!(user(b""), b"<trash>");
        assert!(matches!(t.resolve(b"fail"), Err(ResolveError::System(_))));
        assert!(matches!(t.resolve(b"r"), Err(ResolveError::Root)));
        assert!(matches!(t.resolve(b"g"), Err(ResolveError::RootGroup)));
        let t = t.refuse_root(false);
        assert!(t.resolve(b"r").is_ok());
        assert!(t.resolve(b"g").is_ok());
    }
}
