//! The user table, reloaded when `users/assign` changes.
//!
//! qmail read `users/cdb` afresh for every delivery, so `qmail-newu` took effect at once.
//! We keep the parsed table in memory and look at the file's modification time at most once
//! a second; a changed file is parsed again. A file with a syntax error is not taken: the
//! previous table stays in force and the error is logged with its line (run `mta check`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use mta_dotqmail::{Account, UserTable, UsersAssign};

use crate::log;

/// A [`UserTable`] that follows `users/assign`.
#[derive(Debug)]
pub struct Users {
    path: PathBuf,
    alias: Account,
    refuse_root: bool,
    table: RwLock<Arc<UserTable>>,
    checked: Mutex<(Instant, Option<SystemTime>)>,
}

const RECHECK: Duration = Duration::from_secs(1);

fn mtime(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads and parses `path`; a missing file is an empty table.
///
/// # Errors
/// `file:line: reason` for a syntax error, or the I/O error.
pub fn load_assign(path: &PathBuf) -> Result<Option<UsersAssign>, String> {
    match std::fs::read(path) {
        Ok(text) => UsersAssign::parse(&text).map(Some).map_err(|e| {
            let full = e.to_string();
            let reason = full.split_once(": ").map_or(full.as_str(), |(_, r)| r);
            format!("{}:{}: {reason}", path.display(), e.line)
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

impl Users {
    /// Loads `path` (users/assign) with `alias` as the fallback user.
    ///
    /// # Errors
    /// As [`load_assign`].
    pub fn load(path: PathBuf, alias: Account, refuse_root: bool) -> Result<Users, String> {
        let stamp = mtime(&path);
        let mut table = UserTable::new(alias.clone()).refuse_root(refuse_root);
        table.set_assign(load_assign(&path)?);
        Ok(Users {
            path,
            alias,
            refuse_root,
            table: RwLock::new(Arc::new(table)),
            checked: Mutex::new((Instant::now(), stamp)),
        })
    }

    /// The current table, reloaded first if the file changed.
    pub fn table(&self) -> Arc<UserTable> {
        self.refresh();
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn refresh(&self) {
        let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        if checked.0.elapsed() < RECHECK {
            return;
        }
        checked.0 = Instant::now();
        let now = mtime(&self.path);
        if now == checked.1 {
            return;
        }
        match load_assign(&self.path) {
            Ok(assign) => {
                let mut table = UserTable::new(self.alias.clone()).refuse_root(self.refuse_root);
                table.set_assign(assign);
                *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
                checked.1 = now;
                log::line("status: reloaded users/assign");
            }
            Err(e) => {
                checked.1 = now;
                log::line(&format!(
                    "warning: keeping the previous users/assign: {}",
                    log::safe(e.as_bytes())
                ));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mta_dotqmail::Resolved;

    #[test]
    fn reloads_on_change_and_keeps_old_table_on_error() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("assign");
        std::fs::write(&p, "=joe:joe:1001:1001:/home/joe:::\n.\n").unwrap();
        let users = Users::load(p.clone(), Account::new("alias", 7, 7, "/a"), true).unwrap();
        let is_joe = |u: &Users, l: &[u8]| match u.table().resolve(l).unwrap() {
            Resolved::User(x) => x.account().user() == b"joe",
            _ => false,
        };
        assert!(is_joe(&users, b"joe"));
        assert!(!is_joe(&users, b"jim"));
        std::fs::write(&p, "=jim:joe:1001:1001:/home/joe:::\n.\n").unwrap();
        force_recheck(&users);
        assert!(is_joe(&users, b"jim"));
        std::fs::write(&p, "=broken\n.\n").unwrap();
        force_recheck(&users);
        assert!(
            is_joe(&users, b"jim"),
            "a broken file must not replace the table"
        );
    }

    /// Pretends the last check was long ago and saw another file.
    fn force_recheck(users: &Users) {
        let past = Instant::now().checked_sub(RECHECK * 2).unwrap();
        *users.checked.lock().unwrap() = (past, Some(SystemTime::UNIX_EPOCH));
    }
}
