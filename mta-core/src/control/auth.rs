//! The SMTP AUTH files (design.md "TLS, AUTH and message authentication"):
//! `users/passwords` (who may log in, and as which senders) and `control/smtpauth` (the
//! credentials remote delivery gives a smarthost). Only the grammar lives here; checking
//! a password against its hash is the daemon's job.

use std::path::Path;

use super::read::File;
use super::{ControlError, ControlErrorKind};
use crate::Address;

/// One `users/passwords` line: `LOGIN:HASH[:SENDERS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordEntry {
    /// The login name (not empty, no `:`).
    pub login: String,
    /// The password hash in crypt form: `$6$` SHA-512-crypt, `$2b$`/`$2y$` bcrypt,
    /// `$argon2id$` (PHC string). Verified by the daemon.
    pub hash: String,
    /// The addresses (`a@b`) and domains (`@b`) this login may use in MAIL FROM; `None`
    /// when the line has no third field (any sender).
    pub senders: Option<Vec<String>>,
}

impl PasswordEntry {
    /// True when `sender` is allowed: no SENDERS list, the whole address (case-insensitive),
    /// or its `@domain`.
    pub fn allows_sender(&self, sender: &Address) -> bool {
        let Some(list) = &self.senders else {
            return true;
        };
        let addr = String::from_utf8_lossy(sender.as_bytes()).to_ascii_lowercase();
        let domain = sender
            .domain()
            .map(|d| format!("@{}", String::from_utf8_lossy(d).to_ascii_lowercase()));
        list.iter()
            .any(|s| *s == addr || domain.as_deref() == Some(s.as_str()))
    }
}

/// `users/passwords`: `LOGIN:HASH[:SENDERS]` per line, SENDERS a comma-separated list of
/// addresses and `@domain`s. Blank lines and `#` comments are skipped; a login may appear
/// once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Passwords {
    entries: Vec<PasswordEntry>,
}

/// The hash prefixes the daemon verifies.
const HASH_KINDS: [&str; 4] = ["$6$", "$2b$", "$2y$", "$argon2id$"];

impl Passwords {
    /// Parses the text of a passwords file; `path` names it in errors.
    ///
    /// ```
    /// use mta_core::{Address, control::Passwords};
    /// let p = Passwords::parse("joe:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA:joe@example.org,@lists.example.org\n", "passwords")?;
    /// let joe = p.get("joe").expect("joe");
    /// assert!(joe.allows_sender(&Address::from("Joe@Example.org")));
    /// assert!(joe.allows_sender(&Address::from("x@lists.example.org")));
    /// assert!(!joe.allows_sender(&Address::from("boss@example.org")));
    /// # Ok::<(), mta_core::control::ControlError>(())
    /// ```
    ///
    /// # Errors
    /// [`ControlError`] naming the line: not `LOGIN:HASH[:SENDERS]`, an empty login, a hash
    /// of no known kind, a SENDERS entry that is neither `a@b` nor `@b`, a repeated login.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Passwords, ControlError> {
        let file = File {
            path: path.as_ref().to_path_buf(),
            text: text.to_owned(),
        };
        let mut entries: Vec<PasswordEntry> = Vec::new();
        for (n, line) in file.lines() {
            let mut fields = line.splitn(3, ':');
            let login = fields.next().unwrap_or_default();
            let hash = fields.next().unwrap_or_default();
            if login.is_empty() || login.chars().any(|c| c.is_control() || c == ' ') {
                return Err(file.invalid(n, "LOGIN:HASH[:SENDERS]", line));
            }
            if !HASH_KINDS.iter().any(|k| hash.starts_with(k)) {
                return Err(file.invalid(
                    n,
                    "a $6$ (SHA-512-crypt), $2b$/$2y$ (bcrypt) or $argon2id$ hash",
                    line,
                ));
            }
            let senders = match fields.next() {
                None => None,
                Some(list) => {
                    let mut v = Vec::new();
                    for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let ok = s.find('@').is_some_and(|at| at + 1 < s.len());
                        if !ok {
                            return Err(file.invalid(
                                n,
                                "SENDERS as a@b or @b, comma-separated",
                                s,
                            ));
                        }
                        v.push(s.to_ascii_lowercase());
                    }
                    Some(v)
                }
            };
            if entries.iter().any(|e| e.login == login) {
                return Err(file.invalid(n, "each login once", line));
            }
            entries.push(PasswordEntry {
                login: login.to_owned(),
                hash: hash.to_owned(),
                senders,
            });
        }
        Ok(Passwords { entries })
    }

    /// Reads and parses the file at `path`; a missing file is `Ok(None)`.
    ///
    /// # Errors
    /// As [`Passwords::parse`], plus unreadable or non-UTF-8 files.
    pub fn load(path: &Path) -> Result<Option<Passwords>, ControlError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ControlError {
                    path: path.to_path_buf(),
                    line: None,
                    kind: ControlErrorKind::Io(e),
                });
            }
        };
        let text = String::from_utf8(bytes).map_err(|_| ControlError {
            path: path.to_path_buf(),
            line: None,
            kind: ControlErrorKind::NotUtf8,
        })?;
        Passwords::parse(&text, path).map(Some)
    }

    /// The entry for `login` (exact match).
    pub fn get(&self, login: &str) -> Option<&PasswordEntry> {
        self.entries.iter().find(|e| e.login == login)
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[PasswordEntry] {
        &self.entries
    }

    /// The file's text with `login`'s hash set to `hash` (a new line when absent; an
    /// existing line keeps its SENDERS), for `mta passwd`.
    pub fn render_with(&self, login: &str, hash: &str) -> String {
        let mut out = String::new();
        let mut found = false;
        for e in &self.entries {
            let h = if e.login == login {
                found = true;
                hash
            } else {
                e.hash.as_str()
            };
            out.push_str(&e.login);
            out.push(':');
            out.push_str(h);
            if let Some(s) = &e.senders {
                out.push(':');
                out.push_str(&s.join(","));
            }
            out.push('\n');
        }
        if !found {
            out.push_str(login);
            out.push(':');
            out.push_str(hash);
            out.push('\n');
        }
        out
    }
}

/// One `control/smtpauth` line: the login remote delivery gives `host`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpAuthEntry {
    /// The host as written in smtproutes (a name or an IP address, without port).
    pub host: String,
    /// The login.
    pub login: String,
    /// The password (the rest of the line, which may contain `:`).
    pub password: String,
}

/// `control/smtpauth`: `HOST:LOGIN:PASSWORD` per line (HOST as in smtproutes, `[v6]` for
/// IPv6). Credentials are only ever sent inside TLS.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SmtpAuth {
    entries: Vec<SmtpAuthEntry>,
}

impl std::fmt::Debug for SmtpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpAuth")
            .field(
                "hosts",
                &self.entries.iter().map(|e| &e.host).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SmtpAuth {
    pub(super) fn from_file(file: &File) -> Result<SmtpAuth, ControlError> {
        let mut entries = Vec::new();
        for (n, line) in file.lines() {
            let (host, rest) = if let Some(v6) = line.strip_prefix('[') {
                match v6.split_once("]:") {
                    Some((h, rest)) => (h, rest),
                    None => return Err(file.invalid(n, "HOST:LOGIN:PASSWORD", "[...]")),
                }
            } else {
                match line.split_once(':') {
                    Some(x) => x,
                    None => return Err(file.invalid(n, "HOST:LOGIN:PASSWORD", "(hidden)")),
                }
            };
            let Some((login, password)) = rest.split_once(':') else {
                // The line holds a password: never echo it in an error.
                return Err(file.invalid(n, "HOST:LOGIN:PASSWORD", "(hidden)"));
            };
            if host.is_empty() || login.is_empty() {
                return Err(file.invalid(n, "HOST:LOGIN:PASSWORD", "(hidden)"));
            }
            entries.push(SmtpAuthEntry {
                host: host.to_ascii_lowercase(),
                login: login.to_owned(),
                password: password.to_owned(),
            });
        }
        Ok(SmtpAuth { entries })
    }

    /// The credentials for `host` (case-insensitive, as written in smtproutes).
    pub fn lookup(&self, host: &str) -> Option<&SmtpAuthEntry> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.entries
            .iter()
            .find(|e| e.host.eq_ignore_ascii_case(host))
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_file() {
        let text = "# logins\njoe:$6$salt$hash\nann:$2b$12$abc:ann@x.example, @y.example\n";
        let p = Passwords::parse(text, "passwords").unwrap_or_default();
        assert_eq!(p.entries().len(), 2);
        assert_eq!(
            p.get("ann").and_then(|e| e.senders.clone()),
            Some(vec!["ann@x.example".to_owned(), "@y.example".to_owned()])
        );
        let joe = p.get("joe").cloned();
        assert!(joe.is_some_and(|j| j.allows_sender(&Address::from("anyone@any.example"))));
        for (bad, line) in [
            ("joe:plaintext\n", 1),
            (":$6$x$y\n", 1),
            ("a:$6$x$y\na:$6$x$z\n", 2),
            ("a:$6$x$y:notanaddress\n", 1),
        ] {
            let e = Passwords::parse(bad, "passwords").err();
            assert_eq!(e.and_then(|e| e.line), Some(line), "{bad:?}");
        }
        let again = p.render_with("joe", "$argon2id$new");
        assert!(again.starts_with("joe:$argon2id$new\nann:$2b$12$abc:ann@x.example,@y.example\n"));
        assert!(p.render_with("new", "$6$n").ends_with("new:$6$n\n"));
    }

    #[test]
    fn smtpauth_file() {
        let f = File {
            path: "smtpauth".into(),
            text: "smart.example:joe:pa:ss\n[::1]:ann:pw\n".into(),
        };
        let a = SmtpAuth::from_file(&f).unwrap_or_default();
        assert_eq!(
            a.lookup("SMART.example").map(|e| e.password.as_str()),
            Some("pa:ss")
        );
        assert_eq!(a.lookup("[::1]").map(|e| e.login.as_str()), Some("ann"));
        assert!(!format!("{a:?}").contains("pa:ss"));
        let bad = File {
            path: "smtpauth".into(),
            text: "host:onlylogin\n".into(),
        };
        let e = SmtpAuth::from_file(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("smtpauth:1") && !e.contains("onlylogin"), "{e}");
    }
}
