//! Check results and the RFC 8601 `Authentication-Results:` header field.

use std::fmt;

/// An SPF result (RFC 7208 §2.6), as written in `spf=` (RFC 8601 §2.7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpfResult {
    /// No SPF record, or no checkable domain (§2.6.1).
    None,
    /// The domain makes no assertion about the IP (§2.6.2).
    Neutral,
    /// The IP is authorized (§2.6.3).
    Pass,
    /// The IP is not authorized (§2.6.4): a caller with `spfreject` refuses with
    /// `550 5.7.23` (RFC 7372).
    Fail,
    /// The IP is probably not authorized (§2.6.5).
    SoftFail,
    /// A transient DNS error, including a timeout (§2.6.6).
    TempError,
    /// The record could not be interpreted (§2.6.7).
    PermError,
}

impl SpfResult {
    /// The result's name as written in headers: `pass`, `softfail`, `temperror`...
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which identity SPF checked (RFC 7208 §2.3, §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpfIdentity {
    /// The MAIL FROM address (`smtp.mailfrom`).
    MailFrom,
    /// The HELO/EHLO name, checked for the null reverse-path `<>` (`smtp.helo`).
    Helo,
}

/// The outcome of an SPF check, from [`Verifier::check_spf`](crate::Verifier::check_spf).
#[derive(Clone, Debug)]
pub struct SpfCheck {
    pub(crate) result: SpfResult,
    pub(crate) identity: SpfIdentity,
    /// The MAIL FROM address, or the HELO name.
    pub(crate) subject: String,
    /// The domain checked.
    pub(crate) domain: String,
    pub(crate) output: mail_auth::SpfOutput,
}

impl SpfCheck {
    /// The result.
    pub fn result(&self) -> SpfResult {
        self.result
    }

    /// The identity checked.
    pub fn identity(&self) -> SpfIdentity {
        self.identity
    }

    /// The domain whose policy was checked (the MAIL FROM domain, or the HELO name).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `spfreject` refuses the sender: the result is `fail` (RFC 7208 §8.4 allows
    /// rejecting; RFC 7372's `5.7.23` is the status code).
    pub fn is_fail(&self) -> bool {
        self.result == SpfResult::Fail
    }
}

/// A DKIM result for one signature (RFC 8601 §2.7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DkimResult {
    /// The message had no signature.
    None,
    /// The signature verified.
    Pass,
    /// The signature did not verify (changed body or header, wrong key).
    Fail,
    /// The signature could not be processed (malformed, expired, unsupported).
    Neutral,
    /// The key could not be fetched for a transient reason, including a timeout.
    TempError,
    /// The key record is missing or unusable.
    PermError,
}

impl DkimResult {
    /// The result's name as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            DkimResult::None => "none",
            DkimResult::Pass => "pass",
            DkimResult::Fail => "fail",
            DkimResult::Neutral => "neutral",
            DkimResult::TempError => "temperror",
            DkimResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for DkimResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome for one DKIM-Signature field (RFC 6376 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimCheck {
    pub(crate) result: DkimResult,
    pub(crate) domain: String,
    pub(crate) selector: String,
    pub(crate) algorithm: Option<&'static str>,
    pub(crate) reason: Option<String>,
}

impl DkimCheck {
    /// The result.
    pub fn result(&self) -> DkimResult {
        self.result
    }

    /// The signing domain (`d=`); empty for a signature too broken to read.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selector (`s=`); empty for a signature too broken to read.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// Why it did not pass, in the DKIM library's words.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

/// A DMARC result (RFC 7489 §11.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DmarcResult {
    /// No DMARC record for the From: domain (or no single From: domain).
    None,
    /// An aligned SPF or DKIM pass.
    Pass,
    /// Neither SPF nor DKIM passed aligned with the From: domain.
    Fail,
    /// A DNS lookup failed transiently, including a timeout.
    TempError,
    /// The DMARC record could not be used.
    PermError,
}

impl DmarcResult {
    /// The result's name as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::None => "none",
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for DmarcResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy a DMARC record asks receivers to apply to failing mail (RFC 7489 §6.3 `p=`,
/// `sp=`; with `t=y` already lowered one step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DmarcPolicy {
    /// `p=none`: monitor only.
    None,
    /// `p=quarantine`: treat as suspicious.
    Quarantine,
    /// `p=reject`: refuse (a caller with `dmarcreject` does).
    Reject,
}

impl DmarcPolicy {
    /// The policy's name as in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }
}

/// The outcome of the DMARC check (RFC 7489 §6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmarcCheck {
    pub(crate) result: DmarcResult,
    pub(crate) from_domain: String,
    pub(crate) policy: Option<DmarcPolicy>,
}

impl DmarcCheck {
    /// The result.
    pub fn result(&self) -> DmarcResult {
        self.result
    }

    /// The RFC 5322 From: domain checked; empty when there was none (or several).
    pub fn from_domain(&self) -> &str {
        &self.from_domain
    }

    /// The policy of the record that applied; `None` without a record.
    pub fn policy(&self) -> Option<DmarcPolicy> {
        self.policy
    }
}

/// SPF, DKIM and DMARC results for one message, from
/// [`Verifier::check`](crate::Verifier::check).
#[derive(Clone, Debug)]
pub struct AuthResults {
    pub(crate) spf: SpfCheck,
    pub(crate) dkim: Vec<DkimCheck>,
    pub(crate) dmarc: DmarcCheck,
}

impl AuthResults {
    /// The SPF outcome.
    pub fn spf(&self) -> &SpfCheck {
        &self.spf
    }

    /// One outcome per DKIM-Signature field, in message order; empty without signatures.
    pub fn dkim(&self) -> &[DkimCheck] {
        &self.dkim
    }

    /// The DMARC outcome.
    pub fn dmarc(&self) -> &DmarcCheck {
        &self.dmarc
    }

    /// Whether `dmarcreject` refuses the message: DMARC `fail` under `p=reject` (RFC 7489
    /// §6.6.4; `550 5.7.1` is the usual reply).
    pub fn dmarc_reject(&self) -> bool {
        self.dmarc.result == DmarcResult::Fail && self.dmarc.policy == Some(DmarcPolicy::Reject)
    }

    /// The `Authentication-Results:` header field (RFC 8601 §2.2) naming `authserv_id` (the
    /// host's `control/me`), folded at 78 columns, ending in CRLF. For example:
    ///
    /// ```text
    /// Authentication-Results: mx.example.org;
    ///         spf=pass smtp.mailfrom=alice@example.com;
    ///         dkim=pass header.d=example.com header.s=s1 header.a=ed25519-sha256;
    ///         dmarc=pass (p=reject) header.from=example.com
    /// ```
    ///
    /// (each continuation line starts with one tab).
    pub fn header(&self, authserv_id: &str) -> String {
        let mut items: Vec<Vec<String>> = Vec::new();
        let mut spf = vec![format!("spf={}", self.spf.result)];
        match self.spf.identity {
            SpfIdentity::MailFrom => {
                spf.push(format!("smtp.mailfrom={}", mailbox(&self.spf.subject)));
            }
            SpfIdentity::Helo => {
                spf.push(format!("smtp.helo={}", domain_value(&self.spf.subject)));
            }
        }
        items.push(spf);
        if self.dkim.is_empty() {
            items.push(vec!["dkim=none".to_string()]);
        }
        for d in &self.dkim {
            let mut v = vec![format!("dkim={}", d.result)];
            if let Some(r) = &d.reason {
                v.push(comment(r));
            }
            if !d.domain.is_empty() {
                v.push(format!("header.d={}", domain_value(&d.domain)));
            }
            if !d.selector.is_empty() {
                v.push(format!("header.s={}", domain_value(&d.selector)));
            }
            if let Some(a) = d.algorithm {
                v.push(format!("header.a={a}"));
            }
            items.push(v);
        }
        let mut dmarc = vec![format!("dmarc={}", self.dmarc.result)];
        if let Some(p) = self.dmarc.policy {
            dmarc.push(format!("(p={})", p.as_str()));
        }
        if !self.dmarc.from_domain.is_empty() {
            dmarc.push(format!(
                "header.from={}",
                domain_value(&self.dmarc.from_domain)
            ));
        }
        items.push(dmarc);
        fold(authserv_id, &items)
    }
}

/// Writes the field: the authserv-id on the first line, each resinfo on its own line,
/// long ones folded between words.
fn fold(authserv_id: &str, items: &[Vec<String>]) -> String {
    const WIDTH: usize = 78;
    let mut out = format!("Authentication-Results: {};", value(authserv_id));
    for (i, words) in items.iter().enumerate() {
        out.push_str("\r\n\t");
        let mut col = 8;
        for (j, w) in words.iter().enumerate() {
            if j > 0 {
                if col + 1 + w.len() > WIDTH {
                    out.push_str("\r\n\t");
                    col = 8;
                } else {
                    out.push(' ');
                    col += 1;
                }
            }
            out.push_str(w);
            col += w.len();
        }
        if i + 1 < items.len() {
            out.push(';');
        }
    }
    out.push_str("\r\n");
    out
}

/// RFC 2045 `token` characters: printable ASCII except SPACE and tspecials.
fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

/// RFC 8601 `value`: a token when possible, else a quoted-string; control and non-ASCII
/// characters become `?` (they come from the network).
fn value(s: &str) -> String {
    if !s.is_empty() && s.chars().all(is_token_char) {
        return s.to_string();
    }
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            ' ' => q.push(' '),
            c if c.is_ascii_graphic() => q.push(c),
            _ => q.push('?'),
        }
    }
    q.push('"');
    q
}

/// A domain name as a `pvalue`: letters, digits, `.`, `-` and `_` pass as they are.
fn domain_value(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
    {
        s.to_string()
    } else {
        value(s)
    }
}

/// An address as a `pvalue` (`[ [ local-part ] "@" ] domain-name`): the whole address when
/// its local part is a dot-atom, else just the domain.
fn mailbox(addr: &str) -> String {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return domain_value(addr);
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom = !local.is_empty()
        && local
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(atext));
    let domain = domain_value(domain);
    if dot_atom && !domain.starts_with('"') {
        format!("{local}@{domain}")
    } else {
        domain
    }
}

/// An RFC 5322 comment holding `text` in lower case, shortened, without characters that
/// would end it (parentheses and backslashes become spaces, runs of spaces one space).
fn comment(text: &str) -> String {
    let mut c = String::from("(");
    for ch in text.chars().take(72) {
        let ch = match ch {
            '(' | ')' | '\\' => ' ',
            ch if ch.is_ascii_graphic() || ch == ' ' => ch.to_ascii_lowercase(),
            _ => '?',
        };
        if !(ch == ' ' && (c.ends_with(' ') || c.ends_with('('))) {
            c.push(ch);
        }
    }
    let trimmed = c.trim_end().len();
    c.truncate(trimmed);
    c.push(')');
    c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn results(spf: SpfResult, identity: SpfIdentity, subject: &str) -> AuthResults {
        AuthResults {
            spf: SpfCheck {
                result: spf,
                identity,
                subject: subject.to_string(),
                domain: String::new(),
                output: mail_auth::SpfOutput::new(String::new()),
            },
            dkim: vec![],
            dmarc: DmarcCheck {
                result: DmarcResult::None,
                from_domain: "example.com".to_string(),
                policy: None,
            },
        }
    }

    #[test]
    fn header_layout() {
        let mut r = results(SpfResult::Pass, SpfIdentity::MailFrom, "alice@example.com");
        r.dkim.push(DkimCheck {
            result: DkimResult::Fail,
            domain: "example.com".into(),
            selector: "s1".into(),
            algorithm: Some("rsa-sha256"),
            reason: Some("Signature verification failed (body hash)".into()),
        });
        r.dmarc.result = DmarcResult::Fail;
        r.dmarc.policy = Some(DmarcPolicy::Reject);
        let h = r.header("mx.example.org");
        assert_eq!(
            h,
            "Authentication-Results: mx.example.org;\r\n\
             \tspf=pass smtp.mailfrom=alice@example.com;\r\n\
             \tdkim=fail (signature verification failed body hash)\r\n\
             \theader.d=example.com header.s=s1 header.a=rsa-sha256;\r\n\
             \tdmarc=fail (p=reject) header.from=example.com\r\n"
        );
        assert!(r.dmarc_reject());
        for line in h.split("\r\n") {
            assert!(line.replace('\t', "        ").len() <= 78, "{line}");
        }
    }

    #[test]
    fn hostile_values_are_quoted() {
        let r = results(SpfResult::None, SpfIdentity::Helo, "[1.2.3.4]");
        let h = r.header("me");
        assert!(h.contains("spf=none smtp.helo=\"[1.2.3.4]\";"), "{h}");
        let r = results(SpfResult::Fail, SpfIdentity::MailFrom, "\"a b\"@x.example");
        assert!(r.header("me").contains("smtp.mailfrom=x.example;"));
        let r = results(SpfResult::Fail, SpfIdentity::MailFrom, "a\r\nX: y@x\"y");
        let h = r.header("me");
        assert!(!h.contains("\r\nX"), "{h}");
        assert_eq!(value("a\"b\\c\r"), "\"a\\\"b\\\\c?\"");
        assert_eq!(comment("x(y)\r\n"), "(x y ??)");
        assert_eq!(comment(" (a) "), "(a)");
        assert!(!r.dmarc_reject());
    }
}
