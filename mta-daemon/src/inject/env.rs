//! The environment qmail-inject reads, captured once so the rest is deterministic.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variables qmail-inject and the sendmail wrapper read (qmail-reference
/// §7.1), plus the clock, pid and uid, captured once.
///
/// [`Env::from_process`] reads the real process; [`Env::for_test`] gives an empty
/// environment with a fixed time and pid, and [`Env::with`] sets one variable, so tests are
/// deterministic.
///
/// ```
/// use mta_daemon::inject::Env;
/// let env = Env::for_test(1_795_925_285, 4711).with("QMAILUSER", "joe");
/// assert_eq!(env.var("QMAILUSER"), Some(&b"joe"[..]));
/// assert_eq!(env.var("MAILUSER"), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(&'static str, Vec<u8>)>,
    /// Seconds since the Unix epoch (qmail-inject's `starttime`).
    pub now: i64,
    /// The process id, used in Message-ID and the Received line.
    pub pid: u32,
    /// The real uid, named in the Received line.
    pub uid: u32,
}

/// Every variable [`Env`] keeps: the qmail-inject ones and `TZ` (for the `Date` field's
/// local offset).
pub const VARIABLES: &[&str] = &[
    "QMAILUSER",
    "MAILUSER",
    "USER",
    "LOGNAME",
    "QMAILHOST",
    "MAILHOST",
    "QMAILNAME",
    "MAILNAME",
    "NAME",
    "QMAILSUSER",
    "QMAILSHOST",
    "QMAILINJECT",
    "QMAILDEFAULTDOMAIN",
    "QMAILDEFAULTHOST",
    "QMAILPLUSDOMAIN",
    "QMAILIDHOST",
    "QMAILMFTFILE",
    "TZ",
];

impl Env {
    /// Captures the process environment, the current time, pid and real uid.
    pub fn from_process() -> Env {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let vars = VARIABLES
            .iter()
            .filter_map(|&name| std::env::var_os(name).map(|v: OsString| (name, v.into_vec())))
            .collect();
        Env {
            vars,
            now,
            pid: std::process::id(),
            uid: rustix::process::getuid().as_raw(),
        }
    }

    /// An environment at time `now` with process id `pid`, uid 0, and only `TZ=UTC0` set
    /// (so the `Date` field does not depend on the machine's zone).
    pub fn for_test(now: i64, pid: u32) -> Env {
        Env {
            vars: vec![("TZ", b"UTC0".to_vec())],
            now,
            pid,
            uid: 0,
        }
    }

    /// Returns the environment with `name` set to `value`.
    ///
    /// # Panics
    /// When `name` is not one of [`VARIABLES`] (a programming error in the caller).
    #[must_use]
    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Env {
        self.set(name, Some(value.as_ref().to_vec()));
        self
    }

    /// Sets (`Some`) or unsets (`None`) one variable, as the sendmail wrapper's `-f` and `-F`
    /// do.
    ///
    /// # Panics
    /// When `name` is not one of [`VARIABLES`] (a programming error in the caller).
    pub fn set(&mut self, name: &str, value: Option<Vec<u8>>) {
        let Some(&key) = VARIABLES.iter().find(|&&v| v == name) else {
            panic!("Env::set: {name} is not a variable qmail-inject reads");
        };
        self.vars.retain(|(k, _)| *k != key);
        if let Some(v) = value {
            self.vars.push((key, v));
        }
    }

    /// The value of `name`, if set.
    pub fn var(&self, name: &str) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first of `names` that is set (qmail's `QMAILUSER > MAILUSER > ...` precedence).
    pub(crate) fn first(&self, names: &[&str]) -> Option<&[u8]> {
        names.iter().find_map(|n| self.var(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_unset_and_precedence() {
        let mut env = Env::for_test(0, 1).with("USER", "u").with("LOGNAME", "l");
        assert_eq!(
            env.first(&["QMAILUSER", "MAILUSER", "USER", "LOGNAME"]),
            Some(&b"u"[..])
        );
        env.set("USER", None);
        assert_eq!(
            env.first(&["QMAILUSER", "MAILUSER", "USER", "LOGNAME"]),
            Some(&b"l"[..])
        );
        env = env.with("LOGNAME", "x");
        assert_eq!(env.var("LOGNAME"), Some(&b"x"[..]));
    }

    #[test]
    #[should_panic(expected = "not a variable")]
    fn unknown_variable_is_a_bug() {
        let _ = Env::for_test(0, 1).with("PATH", "/bin");
    }
}
