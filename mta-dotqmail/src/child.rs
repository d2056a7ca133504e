//! Running a delivery in a child process, as qmail-lspawn runs qmail-local: the
//! command-line arguments, and a record format for handing the [`Outcome`] (with its
//! forwards) back to the parent over a pipe.
//!
//! The daemon spawns a helper as the target uid/gid (no supplementary groups) with
//! [`LocalArgs::to_args`] and the message file as stdin; the helper parses its argv with
//! [`LocalArgs::parse`], calls [`LocalArgs::run`], writes [`Outcome::to_record`] to
//! stdout and exits with [`Outcome::exit_code`]. The parent reads the record back with
//! [`Outcome::from_record`].

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::exec::{Executor, Message};
use crate::interp::{DeliveryOptions, DeliveryRequest, deliver, explain};
use crate::outcome::{Counts, DeliveryStatus, Forward, Outcome};
use crate::user::{Account, LocalUser};

/// qmail-local's arguments: `[-n] user homedir local dash ext domain sender
/// defaultdelivery`, plus the uid and gid the account runs as (after `user`, so the
/// child knows them for its environment; qmail-lspawn only used them to switch ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalArgs {
    /// `-n`: print the instructions instead of delivering.
    pub explain: bool,
    /// The resolved user, dash and ext.
    pub user: LocalUser,
    /// `L`.
    pub local: Vec<u8>,
    /// `D`.
    pub domain: Vec<u8>,
    /// Envelope sender.
    pub sender: Vec<u8>,
    /// Default delivery text (qmail-start's argument).
    pub default_delivery: Vec<u8>,
}

/// The argv did not have the expected shape (qmail-local's usage error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(&'static str);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "usage: [-n] user uid gid homedir local dash ext domain sender defaultdelivery ({})",
            self.0
        )
    }
}

impl std::error::Error for UsageError {}

impl LocalArgs {
    /// The argv for a child (without the program name).
    pub fn to_args(&self) -> Vec<OsString> {
        let a = self.user.account();
        let mut v: Vec<OsString> = Vec::with_capacity(11);
        if self.explain {
            v.push("-n".into());
        }
        for part in [
            a.user(),
            a.uid().to_string().as_bytes(),
            a.gid().to_string().as_bytes(),
            a.home().as_os_str().as_bytes(),
            &self.local,
            self.user.dash(),
            self.user.ext(),
            &self.domain,
            &self.sender,
            &self.default_delivery,
        ] {
            v.push(OsString::from_vec(part.to_vec()));
        }
        v
    }

    /// Parses what [`to_args`](Self::to_args) produced (without the program name).
    ///
    /// # Errors
    /// [`UsageError`] for a wrong argument count or a non-numeric uid/gid.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, UsageError> {
        let mut args: Vec<Vec<u8>> = args.into_iter().map(OsString::into_vec).collect();
        let explain = args.first().is_some_and(|a| a == b"-n");
        if explain {
            args.remove(0);
        }
        let [
            user,
            uid,
            gid,
            home,
            local,
            dash,
            ext,
            domain,
            sender,
            default_delivery,
        ]: [Vec<u8>; 10] = args
            .try_into()
            .map_err(|_| UsageError("expected 10 arguments"))?;
        let id = |v: &[u8]| -> Result<u32, UsageError> {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(UsageError("uid and gid must be numbers"))
        };
        let account = Account::new(user, id(&uid)?, id(&gid)?, home);
        Ok(LocalArgs {
            explain,
            user: LocalUser::new(account, &dash, ext),
            local,
            domain,
            sender,
            default_delivery,
        })
    }

    /// Runs the delivery (or the explanation) at time `now`.
    pub fn run<E: Executor + ?Sized>(
        &self,
        exec: &mut E,
        options: &DeliveryOptions,
        message: Message<'_>,
        now: i64,
    ) -> Outcome {
        let request = DeliveryRequest {
            user: &self.user,
            local: &self.local,
            domain: &self.domain,
            sender: &self.sender,
            default_delivery: &self.default_delivery,
            now,
        };
        if self.explain {
            explain(exec, &request, options)
        } else {
            deliver(exec, &request, options, message)
        }
    }
}

/// A record that does not decode (truncated or not made by [`Outcome::to_record`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeRecordError;

impl fmt::Display for DecodeRecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed delivery outcome record")
    }
}

impl std::error::Error for DecodeRecordError {}

impl Outcome {
    /// Encodes as NUL-terminated fields, qmail-style: the letter `K`, `Z` or `D`; the
    /// report; the three counts; then, when there are forwards, the new sender, the
    /// Delivered-To line and each recipient. The report never holds a NUL (it is cut at
    /// the first one, as qmail-lspawn does); recipients and senders come from C-string
    /// arguments or `.qmail` lines cut at NUL, so they hold none either.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.report.len() + 64);
        let mut field = |b: &[u8]| {
            out.extend_from_slice(b);
            out.push(0);
        };
        field(match self.status {
            DeliveryStatus::Delivered => b"K",
            DeliveryStatus::Deferred(_) => b"Z",
            DeliveryStatus::Bounced(_) => b"D",
        });
        field(&self.report);
        let c = self.counts;
        field(format!("{} {} {}", c.files, c.forwards, c.programs).as_bytes());
        if let Some(f) = &self.forward {
            field(&f.sender);
            field(&f.dtline);
            for r in &f.recipients {
                field(r);
            }
        }
        out
    }

    /// Decodes [`to_record`](Self::to_record).
    ///
    /// # Errors
    /// [`DecodeRecordError`] when the record is truncated or malformed.
    pub fn from_record(record: &[u8]) -> Result<Outcome, DecodeRecordError> {
        let body = record.strip_suffix(&[0]).ok_or(DecodeRecordError)?;
        let mut fields = body.split(|&b| b == 0);
        let letter = fields.next().ok_or(DecodeRecordError)?;
        let report = fields.next().ok_or(DecodeRecordError)?.to_vec();
        let text = String::from_utf8_lossy(&report).into_owned();
        let status = match letter {
            b"K" => DeliveryStatus::Delivered,
            b"Z" => DeliveryStatus::Deferred(text),
            b"D" => DeliveryStatus::Bounced(text),
            _ => return Err(DecodeRecordError),
        };
        let counts = std::str::from_utf8(fields.next().ok_or(DecodeRecordError)?)
            .map_err(|_| DecodeRecordError)?
            .split(' ')
            .map(str::parse::<u32>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| DecodeRecordError)?;
        let [files, forwards, programs] = counts[..] else {
            return Err(DecodeRecordError);
        };
        let forward = match (fields.next(), fields.next()) {
            (None, _) => None,
            (Some(sender), Some(dtline)) => Some(Forward {
                sender: sender.to_vec(),
                dtline: dtline.to_vec(),
                recipients: fields.map(<[u8]>::to_vec).collect(),
            }),
            (Some(_), None) => return Err(DecodeRecordError),
        };
        Ok(Outcome {
            status,
            report,
            forward,
            counts: Counts {
                files,
                forwards,
                programs,
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = LocalArgs {
            explain: true,
            user: LocalUser::new(Account::new("joe", 1001, 100, "/home/joe"), b"-", "List"),
            local: b"joe-List".to_vec(),
            domain: b"example.com".to_vec(),
            sender: Vec::new(),
            default_delivery: b"./Maildir/\n".to_vec(),
        };
        assert_eq!(LocalArgs::parse(a.to_args()).unwrap(), a);
        let no_n = LocalArgs {
            explain: false,
            ..a
        };
        assert_eq!(LocalArgs::parse(no_n.to_args()).unwrap(), no_n);
        assert!(LocalArgs::parse(vec![OsString::from("x")]).is_err());
    }

    #[test]
    fn record_round_trip() {
        let with_forward = Outcome {
            status: DeliveryStatus::Delivered,
            report: b"hello\ndid 1+2+0\n".to_vec(),
            forward: Some(Forward {
                recipients: vec![b"a@x".to_vec(), b"".to_vec()],
                sender: b"l-owner@x".to_vec(),
                dtline: b"Delivered-To: l@x\n".to_vec(),
            }),
            counts: Counts {
                files: 1,
                forwards: 2,
                programs: 0,
            },
        };
        let bounced = Outcome {
            status: DeliveryStatus::Bounced("no (#5.1.1)\n".into()),
            report: b"no (#5.1.1)\n".to_vec(),
            forward: None,
            counts: Counts::default(),
        };
        for o in [with_forward, bounced] {
            assert_eq!(Outcome::from_record(&o.to_record()).unwrap(), o);
        }
        assert!(Outcome::from_record(b"K\0x").is_err());
        assert!(Outcome::from_record(b"Q\0\x000 0 0\0").is_err());
        assert!(Outcome::from_record(b"K\0\x000 0 0\0s\0").is_err());
    }
}
