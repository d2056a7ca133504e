//! Names in the key directory: `DOMAIN/SELECTOR.pem`.
//!
//! RFC 6376 §3.1: `selector = sub-domain *( "." sub-domain )`, with RFC 5321's
//! `sub-domain = Let-dig [Ldh-str]`. Domain directory names follow the same grammar and must
//! be lower case, because From: domains are lower-cased before the directory is looked up.

/// Why a name is not a valid domain or selector.
pub(crate) fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > 253 {
        return Err("name longer than 253 octets");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("label longer than 63 octets");
        }
        let b = label.as_bytes();
        if !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return Err("only letters, digits, '-' and '_' are allowed in a label");
        }
        if b.first() == Some(&b'-') || b.last() == Some(&b'-') {
            return Err("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

/// Checks a domain directory name: a valid DNS name in lower case.
pub(crate) fn check_domain_dir(name: &str) -> Result<(), &'static str> {
    check_dns_name(name)?;
    if name.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err("domain directory names must be lower case");
    }
    Ok(())
}

/// What a directory entry inside a domain directory is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyFileName<'a> {
    /// `SELECTOR.pem`: a key file.
    Key(&'a str),
    /// A name starting with `.` (temporary files of [`write_key`](crate::write_key), editor
    /// backups): ignored.
    Hidden,
    /// Anything else not ending in `.pem`: ignored (a README, a public key file).
    Other,
    /// A name ending in `.pem` whose selector is invalid.
    Bad(&'static str),
}

/// Classifies a file name inside a domain directory.
pub(crate) fn parse_key_file_name(name: &str) -> KeyFileName<'_> {
    if name.starts_with('.') {
        return KeyFileName::Hidden;
    }
    let Some(selector) = name.strip_suffix(".pem") else {
        return KeyFileName::Other;
    };
    match check_dns_name(selector) {
        Ok(()) => KeyFileName::Key(selector),
        Err(e) => KeyFileName::Bad(e),
    }
}

/// Fuzzing entry point: classifies `name` as a domain directory and as a key file name.
#[doc(hidden)]
pub fn fuzz_names(name: &str) {
    let _ = check_domain_dir(name); // only checking that it does not panic
    if let KeyFileName::Key(s) = parse_key_file_name(name) {
        assert!(name.starts_with(s));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(parse_key_file_name("s1.pem"), KeyFileName::Key("s1"));
        assert_eq!(
            parse_key_file_name("2026.ed.pem"),
            KeyFileName::Key("2026.ed")
        );
        assert_eq!(parse_key_file_name(".s1.pem.tmp"), KeyFileName::Hidden);
        assert_eq!(parse_key_file_name("README"), KeyFileName::Other);
        assert!(matches!(
            parse_key_file_name("a b.pem"),
            KeyFileName::Bad(_)
        ));
        assert!(matches!(parse_key_file_name(".pem"), KeyFileName::Hidden));
        assert!(matches!(parse_key_file_name("-x.pem"), KeyFileName::Bad(_)));
        assert!(matches!(
            parse_key_file_name("a..b.pem"),
            KeyFileName::Bad(_)
        ));
    }

    #[test]
    fn domains() {
        assert!(check_domain_dir("example.com").is_ok());
        assert!(check_domain_dir("Example.com").is_err());
        assert!(check_domain_dir("ex ample.com").is_err());
        assert!(check_domain_dir("").is_err());
        assert!(check_domain_dir(&"a".repeat(64)).is_err());
    }
}
