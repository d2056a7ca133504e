//! Settings that change under a running `mta serve`: qmail-send's SIGHUP.
//!
//! [`LiveSettings`] holds the current [`Settings`] behind a lock. SMTP sessions, the router
//! (and so the scheduler and RCPT checks) read it for each session, command or message, so a
//! reload takes effect for the next one; work already under way keeps the snapshot it took.
//! A reload reads `DIR/control` again and swaps the snapshot ([`LiveSettings::set`]) only
//! when every file parsed: a file with an error keeps the old configuration in force, and
//! the caller logs the `file:line` error (qmail-send's `alert: unable to reread controls`).
//!
//! qmail-send re-read only `locals` and `virtualdomains` on SIGHUP (reference §1); we re-read
//! every control file `serve` can apply without a restart: what SMTP sessions use
//! (`rcpthosts`, `morercpthosts`, `relayclients`, `badmailfrom`, `databytes`,
//! `timeoutsmtpd`, `smtpgreeting`, `me`, `acceptunknown`, `concurrencyincoming`) and routing
//! (`locals`, `virtualdomains`, `percenthack`); remote delivery reloads its own files
//! (`smtproutes`, `tlsdestinations`, timeouts, `helohost`), and `serve` hands the bounce addresses and
//! `defaultdelivery` to the bouncer and local delivery. Read at start only: `listen`,
//! `concurrencylocal`, `concurrencyremote`, `queuelifetime`, `timeoutlocal`, `dnsservers`,
//! `clientcert.pem` and `tlsca.pem` (`servercert.pem` is re-read whenever it changes).

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use mta_core::Address;

use crate::route::{Route, Router};
use crate::settings::Settings;

/// The current [`Settings`], replaceable while readers hold older snapshots.
#[derive(Debug)]
pub struct LiveSettings {
    current: RwLock<Arc<Settings>>,
}

impl LiveSettings {
    /// Holds `settings` as the current snapshot.
    pub fn new(settings: Arc<Settings>) -> LiveSettings {
        LiveSettings {
            current: RwLock::new(settings),
        }
    }

    /// The current snapshot (cheap: a read lock and a reference count).
    pub fn get(&self) -> Arc<Settings> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the snapshot.
    pub fn set(&self, settings: Arc<Settings>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = settings;
    }
}

impl Router for LiveSettings {
    /// Routes with the control files current now (`locals`, `virtualdomains`, `percenthack`).
    fn route(&self, recipient: &Address) -> Route {
        self.get().control.route(recipient)
    }
}

/// The delivery instructions for a user without a `.qmail` (qmail-start's argument):
/// `control/defaultdelivery` when it exists and holds something, else `./Maildir/`.
///
/// # Errors
/// `control/defaultdelivery: ...`: the file cannot be read (other than being absent), or
/// its text is not valid `.qmail` lines (qmail-local would defer every such delivery).
pub fn default_delivery(control_dir: &Path) -> Result<Vec<u8>, String> {
    let path = control_dir.join("defaultdelivery");
    let text = match std::fs::read(&path) {
        Ok(mut text) if text.iter().any(|b| !b.is_ascii_whitespace()) => {
            if !text.ends_with(b"\n") {
                text.push(b'\n');
            }
            text
        }
        Ok(_) => return Ok(crate::serve::DEFAULT_DELIVERY.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(crate::serve::DEFAULT_DELIVERY.to_vec());
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    mta_dotqmail::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_delivery_file() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(default_delivery(t.path()).unwrap(), b"./Maildir/\n");
        std::fs::write(t.path().join("defaultdelivery"), "./Mailbox").unwrap();
        assert_eq!(default_delivery(t.path()).unwrap(), b"./Mailbox\n");
        std::fs::write(t.path().join("defaultdelivery"), "\n").unwrap();
        assert_eq!(default_delivery(t.path()).unwrap(), b"./Maildir/\n");
        std::fs::write(t.path().join("defaultdelivery"), "\n./Mailbox\n").unwrap();
        let e = default_delivery(t.path()).unwrap_err();
        assert!(e.contains("defaultdelivery: line 1"), "{e}");
    }
}
