//! The user table, reloaded when `users/assign` changes.
//!
//! qmail read `users/cdb` afresh for every delivery, so `qmail-newu` took effect at once.
//! We keep the parsed table in memory and let mta-dotqmail's [`AssignFile`] look at the
//! file (size, mtime, inode) at most once a second; a changed file is parsed again. A file
//! with a syntax error is not taken: the previous table stays in force and the error is
//! logged with its line (run `mta check`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mta_dotqmail::{Account, AssignFile, UserTable, UsersAssign};

use crate::log;

/// A [`UserTable`] that follows `users/assign`.
#[derive(Debug)]
pub struct Users {
    alias: Account,
    refuse_root: bool,
    table: RwLock<Arc<UserTable>>,
    file: Mutex<(Instant, AssignFile)>,
}

const RECHECK: Duration = Duration::from_secs(1);

/// Reads and parses `path`; a missing file is no table.
///
/// # Errors
/// `file:line: reason` for a syntax error, or the I/O error.
pub fn load_assign(path: &Path) -> Result<Option<UsersAssign>, String> {
    let mut f = AssignFile::new(path);
    f.refresh().map_err(|e| e.to_string())?;
    Ok(f.current().cloned())
}

impl Users {
    /// Loads `path` (users/assign) with `alias` as the fallback user.
    ///
    /// # Errors
    /// As [`load_assign`].
    pub fn load(path: PathBuf, alias: Account, refuse_root: bool) -> Result<Users, String> {
        let mut file = AssignFile::new(path);
        file.refresh().map_err(|e| e.to_string())?;
        let table = build(&alias, refuse_root, file.current().cloned());
        Ok(Users {
            alias,
            refuse_root,
            table: RwLock::new(Arc::new(table)),
            file: Mutex::new((Instant::now(), file)),
        })
    }

    /// The current table, reloaded first if the file changed.
    pub fn table(&self) -> Arc<UserTable> {
        self.refresh();
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Looks at `users/assign` now, not up to a second later (SIGHUP).
    pub fn reload_now(&self) {
        if let Some(past) = Instant::now().checked_sub(RECHECK * 2) {
            self.file.lock().unwrap_or_else(PoisonError::into_inner).0 = past;
        }
        self.refresh();
    }

    fn refresh(&self) {
        let mut guard = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let (checked, file) = &mut *guard;
        if checked.elapsed() < RECHECK {
            return;
        }
        *checked = Instant::now();
        match file.refresh() {
            Ok(false) => {}
            Ok(true) => {
                let table = build(&self.alias, self.refuse_root, file.current().cloned());
                *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
                log::line("status: reloaded users/assign");
            }
            Err(e) => log::line(&format!(
                "warning: keeping the previous users/assign: {}",
                log::safe(e.to_string().as_bytes())
            )),
        }
    }
}

fn build(alias: &Account, refuse_root: bool, assign: Option<UsersAssign>) -> UserTable {
    let mut table = UserTable::new(alias.clone()).refuse_root(refuse_root);
    table.set_assign(assign);
    table
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
        std::fs::write(&p, "=jim:joe:1001:1001:/home/joe:::\n=x:joe:1:1:/h:::\n.\n").unwrap();
        force_recheck(&users);
        assert!(is_joe(&users, b"jim"));
        std::fs::write(&p, "=broken\n.\n").unwrap();
        force_recheck(&users);
        assert!(
            is_joe(&users, b"jim"),
            "a broken file must not replace the table"
        );
    }

    /// Pretends the last check was long ago.
    fn force_recheck(users: &Users) {
        let past = Instant::now().checked_sub(RECHECK * 2).unwrap();
        users.file.lock().unwrap().0 = past;
    }
}
