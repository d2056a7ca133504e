//! Delivery outcomes and RFC 3463 enhanced status codes.
//!
//! Every delivery in the workspace ends in one of three results, exactly qmail's K, Z and D
//! report letters (qmail-send §1.5): delivered, deferred (temporary, retry later; exit 111)
//! or failed (permanent, bounce; exit 100). Each result carries the human text that goes to
//! logs and bounces and, where known, an RFC 3463 enhanced status code, the `(#x.y.z)` that
//! qmail writes into its own texts (RFCHCSC).

use std::fmt;
use std::str::FromStr;

/// The class digit of an enhanced status code (RFC 3463 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusClass {
    /// `2`: success.
    Success,
    /// `4`: persistent transient failure.
    Transient,
    /// `5`: permanent failure.
    Permanent,
}

/// An RFC 3463 enhanced mail system status code, `class.subject.detail`.
///
/// ```
/// use mta_core::EnhancedStatus;
/// let s: EnhancedStatus = "5.1.1".parse()?;
/// assert_eq!(s.to_string(), "5.1.1");
/// assert!(s.is_permanent());
/// # Ok::<(), mta_core::ParseStatusError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    class: StatusClass,
    subject: u16,
    detail: u16,
}

impl EnhancedStatus {
    /// Builds a code. RFC 3463 §2: subject and detail are 1 to 3 digits.
    ///
    /// # Errors
    /// [`ParseStatusError`] when `subject` or `detail` exceed 999.
    pub fn new(class: StatusClass, subject: u16, detail: u16) -> Result<Self, ParseStatusError> {
        if subject > 999 || detail > 999 {
            return Err(ParseStatusError);
        }
        Ok(EnhancedStatus {
            class,
            subject,
            detail,
        })
    }

    /// The class (success, transient, permanent).
    pub fn class(self) -> StatusClass {
        self.class
    }

    /// The subject number (RFC 3463 §3.2, e.g. 1 = addressing).
    pub fn subject(self) -> u16 {
        self.subject
    }

    /// The detail number.
    pub fn detail(self) -> u16 {
        self.detail
    }

    /// True for class 5.
    pub fn is_permanent(self) -> bool {
        self.class == StatusClass::Permanent
    }

    /// True for class 4.
    pub fn is_transient(self) -> bool {
        self.class == StatusClass::Transient
    }

    /// Parses a code at the start of `text` (as in an SMTP reply `250 2.1.0 ok`), returning
    /// the code and the number of bytes it used (not counting a following space).
    pub fn parse_prefix(text: &[u8]) -> Option<(Self, usize)> {
        let class = match text.first()? {
            b'2' => StatusClass::Success,
            b'4' => StatusClass::Transient,
            b'5' => StatusClass::Permanent,
            _ => return None,
        };
        if text.get(1) != Some(&b'.') {
            return None;
        }
        let (subject, n1) = digits(&text[2..])?;
        let pos = 2 + n1;
        if text.get(pos) != Some(&b'.') {
            return None;
        }
        let (detail, n2) = digits(&text[pos + 1..])?;
        let end = pos + 1 + n2;
        match text.get(end) {
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b')') => {}
            Some(_) => return None,
        }
        Some((
            EnhancedStatus {
                class,
                subject,
                detail,
            },
            end,
        ))
    }
}

fn digits(s: &[u8]) -> Option<(u16, usize)> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 3 {
        return None;
    }
    let mut v = 0u16;
    for &b in &s[..n] {
        v = v * 10 + u16::from(b - b'0');
    }
    Some((v, n))
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.class {
            StatusClass::Success => 2,
            StatusClass::Transient => 4,
            StatusClass::Permanent => 5,
        };
        write!(f, "{c}.{}.{}", self.subject, self.detail)
    }
}

/// The text was not an RFC 3463 `class.subject.detail` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseStatusError;

impl fmt::Display for ParseStatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an enhanced status code (RFC 3463 class.subject.detail)")
    }
}

impl std::error::Error for ParseStatusError {}

impl FromStr for EnhancedStatus {
    type Err = ParseStatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match EnhancedStatus::parse_prefix(s.as_bytes()) {
            Some((code, n)) if n == s.len() => Ok(code),
            _ => Err(ParseStatusError),
        }
    }
}

/// The outcome of one delivery attempt for one recipient: qmail's K, Z and D.
///
/// `text` is the full human-readable report (for remote deliveries, the remote server's
/// complete reply), which ends up in logs and in bounces.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryResult {
    /// K: the message was delivered (or accepted by the next hop).
    Delivered {
        /// Report text, e.g. `did 1+0+0` or the remote's `250` reply.
        text: String,
    },
    /// Z: temporary failure; the delivery is retried later (exit code 111).
    Deferred {
        /// Why, for the log and, after `queuelifetime`, the bounce.
        text: String,
        /// The enhanced status code, when known.
        status: Option<EnhancedStatus>,
    },
    /// D: permanent failure; the recipient is bounced (exit code 100).
    Failed {
        /// Why, for the bounce.
        text: String,
        /// The enhanced status code, when known.
        status: Option<EnhancedStatus>,
    },
}

impl fmt::Display for DeliveryResult {
    /// qmail's one-letter outcome spelled out, the enhanced status when known, and the
    /// text: `delivered: did 1+0+0`, `deferred (4.4.1): connection refused`,
    /// `failed (5.1.1): 550 no such user`. Control characters in the text are shown as
    /// `\xNN`.
    ///
    /// ```
    /// use mta_core::{DeliveryResult, EnhancedStatus};
    /// let r = DeliveryResult::Failed { text: "550 no such user".into(), status: "5.1.1".parse().ok() };
    /// assert_eq!(r.to_string(), "failed (5.1.1): 550 no such user");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, status) = match self {
            DeliveryResult::Delivered { .. } => ("delivered", None),
            DeliveryResult::Deferred { status, .. } => ("deferred", status.as_ref()),
            DeliveryResult::Failed { status, .. } => ("failed", status.as_ref()),
        };
        f.write_str(word)?;
        if let Some(s) = status {
            write!(f, " ({s})")?;
        }
        f.write_str(": ")?;
        for c in self.text().chars() {
            if c.is_control() {
                write!(f, "\\x{:02x}", u32::from(c))?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl DeliveryResult {
    /// The report text.
    pub fn text(&self) -> &str {
        match self {
            DeliveryResult::Delivered { text }
            | DeliveryResult::Deferred { text, .. }
            | DeliveryResult::Failed { text, .. } => text,
        }
    }

    /// qmail's report letter: `K`, `Z` or `D`.
    pub fn letter(&self) -> char {
        match self {
            DeliveryResult::Delivered { .. } => 'K',
            DeliveryResult::Deferred { .. } => 'Z',
            DeliveryResult::Failed { .. } => 'D',
        }
    }

    /// The exit code a qmail-local style program uses for this result: 0, 111 or 100
    /// (qmail-command.8).
    pub fn exit_code(&self) -> i32 {
        match self {
            DeliveryResult::Delivered { .. } => 0,
            DeliveryResult::Deferred { .. } => 111,
            DeliveryResult::Failed { .. } => 100,
        }
    }

    /// True for [`DeliveryResult::Delivered`].
    pub fn is_delivered(&self) -> bool {
        matches!(self, DeliveryResult::Delivered { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for s in ["2.0.0", "4.4.2", "5.7.1", "5.123.999"] {
            let c: EnhancedStatus = s.parse().expect("valid");
            assert_eq!(c.to_string(), s);
        }
        for s in ["3.1.1", "5.1", "5.1.1.", "5..1", "5.1000.1", "", "5.1.1x"] {
            assert!(s.parse::<EnhancedStatus>().is_err(), "{s}");
        }
    }

    #[test]
    fn prefix_in_reply() {
        let (c, n) = EnhancedStatus::parse_prefix(b"5.1.1 no such user").expect("code");
        assert_eq!((c.subject(), c.detail(), n), (1, 1, 5));
        assert!(EnhancedStatus::parse_prefix(b"user unknown").is_none());
    }

    #[test]
    fn letters_and_codes() {
        let d = DeliveryResult::Failed {
            text: "no".into(),
            status: None,
        };
        assert_eq!((d.letter(), d.exit_code()), ('D', 100));
    }
}
