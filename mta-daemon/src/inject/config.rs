//! The control files qmail-inject reads (qmail-reference §8): `defaultdomain`,
//! `defaulthost`, `plusdomain` and `idhost`, each "me → X": the file's first line if the file
//! exists (an empty first line is an empty value, not the default), else `me`'s first line if
//! that exists, else the literal file name. They come from mta-core's typed
//! [`Control`], so inject reads them exactly as the rest of the daemon does; the `QMAIL*`
//! environment variables override them. `QMAILMFTFILE` is read here as a qmail list file.

use std::fs;
use std::io;
use std::path::Path;

use mta_core::control::{Control, ControlError};

use super::Env;

/// The resolved host names qmail-inject works with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hosts {
    /// Appended to addresses without `@`.
    pub(crate) default_host: Vec<u8>,
    /// Appended to domains without a dot.
    pub(crate) default_domain: Vec<u8>,
    /// Replaces a trailing `+`.
    pub(crate) plus_domain: Vec<u8>,
    /// The Message-ID host.
    pub(crate) id_host: Vec<u8>,
}

/// qmail `control_readfile`: every line with trailing whitespace removed, blank lines and
/// `#` lines skipped. `None` when the file does not exist.
pub(crate) fn read_list(path: &Path) -> io::Result<Option<Vec<Vec<u8>>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(
            bytes
                .split(|&b| b == b'\n')
                .map(|l| {
                    let end = l
                        .iter()
                        .rposition(|b| !b.is_ascii_whitespace())
                        .map_or(0, |i| i + 1);
                    l[..end].to_vec()
                })
                .filter(|l| !l.is_empty() && l[0] != b'#')
                .collect(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Hosts {
    /// Reads the controls under `control` ([`Control::load`], which applies qmail's
    /// syntax and "me → X" defaults) and applies the environment overrides.
    ///
    /// # Errors
    /// [`ControlError`] naming the file and line when a control file cannot be read or
    /// parsed (qmail-inject's "read error", a temporary failure).
    pub(crate) fn load(control: &Path, env: &Env) -> Result<Hosts, ControlError> {
        let c = Control::load(control)?;
        let pick = |var: &str, value: String| {
            env.var(var)
                .map_or_else(|| value.into_bytes(), <[u8]>::to_vec)
        };
        Ok(Hosts {
            default_domain: pick("QMAILDEFAULTDOMAIN", c.defaultdomain),
            default_host: pick("QMAILDEFAULTHOST", c.defaulthost),
            plus_domain: pick("QMAILPLUSDOMAIN", c.plusdomain),
            id_host: pick("QMAILIDHOST", c.idhost),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn me_then_literal_then_env() {
        let t = tempfile::tempdir().unwrap();
        let env = Env::for_test(0, 1);
        let h = Hosts::load(t.path(), &env).unwrap();
        assert_eq!(h.default_host, b"defaulthost");
        assert_eq!(h.id_host, b"idhost");
        fs::write(t.path().join("me"), "mx.example.org  \nignored\n").unwrap();
        fs::write(t.path().join("defaultdomain"), "\n").unwrap();
        fs::write(t.path().join("plusdomain"), "plus.example\t\n").unwrap();
        let h = Hosts::load(t.path(), &env).unwrap();
        assert_eq!(h.default_host, b"mx.example.org");
        assert_eq!(
            h.default_domain, b"",
            "an empty first line is an empty value"
        );
        assert_eq!(h.plus_domain, b"plus.example");
        let env = env
            .with("QMAILIDHOST", "id.example")
            .with("QMAILDEFAULTHOST", "dh");
        let h = Hosts::load(t.path(), &env).unwrap();
        assert_eq!(h.id_host, b"id.example");
        assert_eq!(h.default_host, b"dh");
    }

    #[test]
    fn list_file_rules() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("mft");
        assert_eq!(read_list(&p).unwrap(), None);
        fs::write(&p, "# lists\nlist@x.org  \n\n  sp@x.org\n").unwrap();
        assert_eq!(
            read_list(&p).unwrap().unwrap(),
            vec![b"list@x.org".to_vec(), b"  sp@x.org".to_vec()]
        );
    }
}
