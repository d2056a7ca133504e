//! What a delivery returns: the status, qmail's report text, and the forwards the caller
//! must enqueue.

use mta_core::{DeliveryResult, EnhancedStatus};

/// The result of one local delivery, qmail's K / Z / D.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Every instruction succeeded (qmail-local exit 0, report letter K).
    Delivered,
    /// Temporary failure (exit 111, Z): the report text, e.g.
    /// `Uh-oh: .qmail file is writable. (#4.7.0)`.
    Deferred(String),
    /// Permanent failure (exit 100, D): the report text, e.g.
    /// `Sorry, no mailbox here by that name. (#5.1.1)`.
    Bounced(String),
}

/// Forwards collected from `&address` and bare-address lines: one new message, sent by
/// the caller, whose content is `dtline` followed by the original message (qmail-local
/// `mailforward`; no new Return-Path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Recipients, verbatim from the `.qmail` lines (qmail-send adds `envnoathost` to a
    /// recipient without `@`).
    pub recipients: Vec<Vec<u8>>,
    /// The envelope sender of the forward: `NEWSENDER` (the `-owner` rule, §2.9).
    pub sender: Vec<u8>,
    /// The `Delivered-To:` line to put before the message.
    pub dtline: Vec<u8>,
}

/// Lines carried out, for qmail-local's `did <files>+<forwards>+<programs>` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// mbox and maildir lines.
    pub files: u32,
    /// Forward lines.
    pub forwards: u32,
    /// Program lines.
    pub programs: u32,
}

/// A finished delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Delivered, deferred or bounced.
    pub status: DeliveryStatus,
    /// Everything qmail-local and its programs printed, capped (qmail-lspawn: 3000 bytes,
    /// then `Error report too long, sorry.`); on success it ends with the `did` line.
    /// (qmail-local then adds `qp <pid>` when it forwarded; the caller may append its own
    /// queue id for the forward the same way.)
    pub report: Vec<u8>,
    /// Set only on success when there were forwards. If enqueueing it fails, the caller
    /// must treat the whole delivery as failed (a permanent enqueue refusal as bounced,
    /// anything else as deferred), as qmail-local exits 100 or 111 then.
    pub forward: Option<Forward>,
    /// What ran.
    pub counts: Counts,
}

impl Outcome {
    /// The report as text (invalid UTF-8 replaced).
    pub fn report_text(&self) -> String {
        String::from_utf8_lossy(&self.report).into_owned()
    }

    /// qmail-command.8 exit code: 0, 111 or 100.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            DeliveryStatus::Delivered => 0,
            DeliveryStatus::Deferred(_) => 111,
            DeliveryStatus::Bounced(_) => 100,
        }
    }

    /// As an [`mta_core::DeliveryResult`], with the last `(#x.y.z)` code of the report as
    /// its enhanced status (RFCHCSC).
    pub fn to_delivery_result(&self) -> DeliveryResult {
        let text = self.report_text();
        let status = last_status_code(&text);
        match self.status {
            DeliveryStatus::Delivered => DeliveryResult::Delivered { text },
            DeliveryStatus::Deferred(_) => DeliveryResult::Deferred { text, status },
            DeliveryStatus::Bounced(_) => DeliveryResult::Failed { text, status },
        }
    }
}

/// The code in the last `(#x.y.z)` of `text`.
fn last_status_code(text: &str) -> Option<EnhancedStatus> {
    text.rmatch_indices("(#").find_map(|(i, _)| {
        let rest = &text[i + 2..];
        let end = rest.find(')')?;
        rest[..end].parse().ok()
    })
}

/// The report buffer with qmail-lspawn's cap: when it grows past the limit it is cut to
/// `limit - 34` bytes and `\nError report too long, sorry.\n` is appended.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    buf: Vec<u8>,
    limit: usize,
}

const TOO_LONG: &[u8] = b"\nError report too long, sorry.\n";

impl Report {
    pub(crate) fn new(limit: usize) -> Self {
        Report {
            buf: Vec::new(),
            limit,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // qmail-spawn truncates only when the cap exceeds 100 bytes.
        if self.limit > 100 && self.buf.len() > self.limit {
            self.buf.truncate(self.limit - TOO_LONG.len() - 3);
            self.buf.extend_from_slice(TOO_LONG);
        }
    }

    /// One line, pushed as a single write (qmail prints a message and its newline together).
    pub(crate) fn push_line(&mut self, text: &str) {
        let mut line = Vec::with_capacity(text.len() + 1);
        line.extend_from_slice(text.as_bytes());
        line.push(b'\n');
        self.push(&line);
    }

    /// The report as qmail-lspawn passes it on: up to the first NUL byte.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(cut_at_nul(&self.buf)).into_owned()
    }

    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        let n = cut_at_nul(&self.buf).len();
        self.buf.truncate(n);
        self.buf
    }
}

fn cut_at_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn report_cap_like_qmail_spawn() {
        let mut r = Report::new(3000);
        r.push(&[b'a'; 2999]);
        assert_eq!(r.buf.len(), 2999);
        r.push(b"bb");
        assert_eq!(r.buf.len(), 3000 - 3);
        assert!(r.buf.ends_with(TOO_LONG));
        r.push(&[b'c'; 10_000]);
        assert!(r.buf.len() <= 3000);
        assert!(r.buf.ends_with(TOO_LONG));
        let mut r = Report::new(3000);
        r.push(b"ab\0cd");
        assert_eq!(r.into_bytes(), b"ab");
    }

    #[test]
    fn status_code_from_report() {
        let o = Outcome {
            status: DeliveryStatus::Bounced(String::new()),
            report: b"x (#4.3.0)\nSorry, no mailbox here by that name. (#5.1.1)\n".to_vec(),
            forward: None,
            counts: Counts::default(),
        };
        let r = o.to_delivery_result();
        assert_eq!(r.letter(), 'D');
        assert!(
            matches!(r, DeliveryResult::Failed { status: Some(s), .. } if s.to_string() == "5.1.1")
        );
        assert_eq!(o.exit_code(), 100);
    }
}
