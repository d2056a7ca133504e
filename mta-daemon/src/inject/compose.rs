//! The message and envelope qmail-inject produces from the input, the flags and the
//! environment (qmail-inject.c's `doheaderfield`, `finishheader` and defaults).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use mta_core::address_list::token822::{self, LINE_LEN, Rewriter, Token};
use mta_core::header::inject::{Field, Header};
use mta_core::{Address, Envelope};

use super::config::{Hosts, read_list};
use super::{Env, Fatal, Options, Strategy, tz};

/// Everything read from the control directory and `QMAILMFTFILE`.
#[derive(Debug)]
pub(crate) struct Settings {
    hosts: Hosts,
    rewriter: Rewriter,
    /// Mailing-list addresses from `QMAILMFTFILE`, when the variable names a file.
    mft: Option<Vec<Vec<u8>>>,
}

impl Settings {
    /// Reads the controls and the `QMAILMFTFILE` list.
    ///
    /// # Errors
    /// [`Fatal::Temporary`] when a file exists but cannot be read; [`Fatal::Permanent`]
    /// when defaulthost, defaultdomain or plusdomain does not tokenise.
    pub(crate) fn load(control: &Path, env: &Env) -> Result<Settings, Fatal> {
        let hosts = Hosts::load(control, env)
            .map_err(|e| Fatal::Temporary(format!("unable to read control files: {e}")))?;
        let rewriter = Rewriter::new(
            &hosts.default_host,
            &hosts.default_domain,
            &hosts.plus_domain,
        )
        .map_err(|_| {
            Fatal::Permanent("unable to parse defaulthost, defaultdomain or plusdomain".into())
        })?;
        let mft = match env.var("QMAILMFTFILE") {
            Some(p) => read_list(Path::new(OsStr::from_bytes(p)))
                .map_err(|e| Fatal::Temporary(format!("unable to read QMAILMFTFILE: {e}")))?,
            None => None,
        };
        Ok(Settings {
            hosts,
            rewriter,
            mft,
        })
    }
}

/// `QMAILINJECT`'s letters.
#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    /// `c`: `From: user@host (Full Name)` instead of `"Full Name" <user@host>`.
    name_comment: bool,
    /// `s`: ignore (and remove) Return-Path fields.
    delete_sender: bool,
    /// `f`: remove From fields (a new one is added).
    delete_from: bool,
    /// `i`: remove Message-ID fields (a new one is added).
    delete_message_id: bool,
    /// `r`: per-recipient VERP sender `user-@host-@[]`.
    verp_recipient: bool,
    /// `m`: per-message VERP: `-TIME.PID` appended to the user.
    verp_message: bool,
}

impl Flags {
    fn parse(s: Option<&[u8]>) -> Flags {
        let mut f = Flags::default();
        for &b in s.unwrap_or_default() {
            match b {
                b'c' => f.name_comment = true,
                b's' => f.delete_sender = true,
                b'f' => f.delete_from = true,
                b'i' => f.delete_message_id = true,
                b'r' => f.verp_recipient = true,
                b'm' => f.verp_message = true,
                _ => {}
            }
        }
        f
    }
}

/// What a field's addresses are used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// To, Cc: header recipients, and candidates for Mail-Followup-To.
    ToCc,
    /// Bcc, Apparently-To: header recipients.
    Recipient,
    /// Resent-To, Resent-Cc, Resent-Bcc: header recipients of a resent message.
    ResentRecipient,
    /// Return-Path: the envelope sender, if none was chosen yet.
    ReturnPath,
    /// From, Sender, Reply-To and the like: rewritten only.
    Sender,
}

impl Role {
    fn of(f: Field) -> Option<Role> {
        Some(match f {
            Field::To | Field::Cc => Role::ToCc,
            Field::Bcc | Field::ApparentlyTo => Role::Recipient,
            Field::ResentTo | Field::ResentCc | Field::ResentBcc => Role::ResentRecipient,
            Field::ReturnPath => Role::ReturnPath,
            Field::Sender
            | Field::From
            | Field::ReplyTo
            | Field::ReturnReceiptTo
            | Field::ErrorsTo
            | Field::ResentSender
            | Field::ResentFrom
            | Field::ResentReplyTo => Role::Sender,
            _ => return None,
        })
    }
}

/// The result: the envelope and the message head as qmail-inject writes it (no Received
/// line); the rest of the body follows it unchanged.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Prepared {
    /// Sender and recipients, rewritten.
    pub(crate) envelope: Envelope,
    /// The added fields, the kept (rewritten) fields and the header/body separator, LF line
    /// ends.
    pub(crate) head: Vec<u8>,
}

/// `-f ''` and `-f '<>'` (blanks around allowed): the null sender, kept as it is, as qmail
/// keeps it (bounces and autoresponders send with `sendmail -f '<>'`).
pub(crate) fn is_null_sender(arg: &[u8]) -> bool {
    matches!(arg.trim_ascii(), b"" | b"<>")
}

fn cannot_parse(line: &[u8]) -> Fatal {
    Fatal::Permanent(format!(
        "unable to parse this line: {}",
        String::from_utf8_lossy(line).trim_end()
    ))
}

struct Composer<'a> {
    env: &'a Env,
    settings: &'a Settings,
    flags: Flags,
    seen: Vec<Field>,
    kept: Vec<Vec<u8>>,
    header_rcpts: Vec<Vec<u8>>,
    resent_rcpts: Vec<Vec<u8>>,
    to_cc: Vec<Vec<u8>>,
    sender: Option<Vec<u8>>,
}

impl Composer<'_> {
    fn user(&self) -> &[u8] {
        self.env
            .first(&["QMAILUSER", "MAILUSER", "USER", "LOGNAME"])
            .unwrap_or(b"anonymous")
    }

    fn host(&self) -> Option<&[u8]> {
        self.env.first(&["QMAILHOST", "MAILHOST"])
    }

    /// Rewrites one address given on the command line (`-f`, recipients): qmail quotes its
    /// local part if needed, tokenises and rewrites it.
    fn rewrite_argument(&self, raw: &[u8]) -> Option<Vec<u8>> {
        self.settings.rewriter.rewrite_address(raw).ok()
    }

    /// Rewrites every address in a field; returns the refolded field and the envelope form
    /// of each address, left to right.
    fn rewrite_field(&self, field: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), Fatal> {
        self.settings
            .rewriter
            .rewrite_field(field)
            .map_err(|_| cannot_parse(field))
    }

    /// Applies a field's role to its addresses.
    fn take_addresses(&mut self, role: Role, addrs: Vec<Vec<u8>>) {
        match role {
            Role::ToCc => {
                self.to_cc.extend(addrs.iter().cloned());
                self.header_rcpts.extend(addrs);
            }
            Role::Recipient => self.header_rcpts.extend(addrs),
            Role::ResentRecipient => self.resent_rcpts.extend(addrs),
            Role::ReturnPath => {
                if let (None, Some(mut s)) = (&self.sender, addrs.into_iter().next()) {
                    if self.flags.verp_recipient {
                        s.extend_from_slice(b"-@[]");
                    }
                    self.sender = Some(s);
                }
            }
            Role::Sender => {}
        }
    }

    /// One header field (qmail-inject `doheaderfield`).
    fn field(&mut self, mut field: Vec<u8>) -> Result<(), Fatal> {
        let kind = Field::of(&field);
        if (self.flags.delete_from && kind == Field::From)
            || (self.flags.delete_message_id && kind == Field::MessageId)
            || (self.flags.delete_sender && kind == Field::ReturnPath)
        {
            return Ok(());
        }
        if kind != Field::Other {
            self.seen.push(kind);
        }
        if let Some(role) = Role::of(kind) {
            let (text, addrs) = self.rewrite_field(&field)?;
            field = text;
            self.take_addresses(role, addrs);
        }
        if !matches!(
            kind,
            Field::Bcc | Field::ResentBcc | Field::ReturnPath | Field::ContentLength
        ) {
            self.kept.push(field);
        }
        Ok(())
    }

    fn seen(&self, f: Field) -> bool {
        self.seen.contains(&f)
    }

    /// The default envelope sender (qmail-inject `dodefaultreturnpath`):
    /// `QMAILSUSER@QMAILSHOST`, with the `m` and `r` VERP suffixes, rewritten.
    fn default_sender(&mut self) -> Result<(), Fatal> {
        let mut user = self.env.var("QMAILSUSER").unwrap_or(self.user()).to_vec();
        if self.flags.verp_message {
            user.extend_from_slice(format!("-{}.{}", self.env.now, self.env.pid).as_bytes());
        }
        if self.flags.verp_recipient {
            user.push(b'-');
        }
        let mut t = vec![
            Token::Atom(b"Return-Path".to_vec()),
            Token::Colon,
            Token::Quote(user),
        ];
        if let Some(h) = self.env.var("QMAILSHOST").or(self.host()) {
            t.extend([Token::At, Token::Atom(h.to_vec())]);
        }
        let (_, addrs) = self.rewrite_field(&token822::unparse(&t, LINE_LEN))?;
        self.take_addresses(Role::ReturnPath, addrs);
        Ok(())
    }

    /// The default From field (qmail-inject `defaultfrommake`), rewritten like any sender
    /// field: `From: "Full Name" <user@host>` or `From: user@host (Full Name)`.
    fn default_from(&self) -> Result<Vec<u8>, Fatal> {
        let name = self.env.first(&["QMAILNAME", "MAILNAME", "NAME"]);
        let angle = name.is_some() && !self.flags.name_comment;
        let user = self.user().to_vec();
        let mut t = vec![Token::Atom(b"From".to_vec()), Token::Colon];
        if let (Some(n), true) = (name, angle) {
            t.extend([Token::Quote(n.to_vec()), Token::Left]);
        }
        t.push(if token822::quote_needed(&user) {
            Token::Quote(user)
        } else {
            Token::Atom(user)
        });
        if let Some(h) = self.host() {
            t.extend([Token::At, Token::Atom(h.to_vec())]);
        }
        match name {
            Some(_) if angle => t.push(Token::Right),
            Some(n) => t.push(Token::Comment(n.to_vec())),
            None => {}
        }
        Ok(self.rewrite_field(&token822::unparse(&t, LINE_LEN))?.0)
    }

    fn message_id(&self) -> Vec<u8> {
        let mut v = format!(
            "Message-ID: <{}.{}.qmail@",
            mta_core::date::utc_stamp(self.env.now),
            self.env.pid
        )
        .into_bytes();
        v.extend_from_slice(&self.settings.hosts.id_host);
        v.extend_from_slice(b">\n");
        v
    }

    fn date(&self) -> Vec<u8> {
        let offset = tz::local_offset(self.env.var("TZ"), self.env.now);
        format!("Date: {}\n", mta_core::date::rfc5322(self.env.now, offset)).into_bytes()
    }

    /// `Mail-Followup-To` when To or Cc names a list from `QMAILMFTFILE` (qmail-inject
    /// `finishmft`).
    fn mail_followup_to(&self) -> Option<Vec<u8>> {
        let lists = self.settings.mft.as_ref()?;
        if self.seen(Field::MailFollowupTo)
            || !self
                .to_cc
                .iter()
                .any(|a| lists.iter().any(|l| l.eq_ignore_ascii_case(a)))
        {
            return None;
        }
        let mut v = b"Mail-Followup-To: ".to_vec();
        for (i, a) in self.to_cc.iter().enumerate() {
            if i > 0 {
                v.extend_from_slice(b",\n  ");
            }
            v.extend_from_slice(&token822::quote_address(a));
        }
        v.push(b'\n');
        Some(v)
    }

    /// The fields added in front of the header (qmail-inject `finishheader`).
    fn added_fields(&self, resent: bool) -> Result<Vec<u8>, Fatal> {
        let mut out = Vec::new();
        let (prefix, date, id, from, to, cc): (&[u8], _, _, _, _, _) = if resent {
            (
                b"Resent-",
                Field::ResentDate,
                Field::ResentMessageId,
                Field::ResentFrom,
                Field::ResentTo,
                Field::ResentCc,
            )
        } else {
            (
                b"",
                Field::Date,
                Field::MessageId,
                Field::From,
                Field::To,
                Field::Cc,
            )
        };
        if !self.seen(date) {
            out.extend_from_slice(prefix);
            out.extend(self.date());
        }
        if !self.seen(id) {
            out.extend_from_slice(prefix);
            out.extend(self.message_id());
        }
        if !self.seen(from) {
            out.extend_from_slice(prefix);
            out.extend(self.default_from()?);
        }
        if !self.seen(to) && !self.seen(cc) {
            out.extend_from_slice(prefix);
            out.extend_from_slice(b"Cc: recipient list not shown: ;\n");
        }
        if !resent {
            out.extend(self.mail_followup_to().unwrap_or_default());
        }
        Ok(out)
    }
}

/// Builds the message head and the envelope from the header (qmail-inject's whole run
/// short of copying the body and queueing).
///
/// # Errors
/// [`Fatal::Permanent`] for an address or address field that does not parse.
pub(crate) fn prepare(
    opts: &Options,
    env: &Env,
    settings: &Settings,
    header: Header,
) -> Result<Prepared, Fatal> {
    let mut c = Composer {
        env,
        settings,
        flags: Flags::parse(env.var("QMAILINJECT")),
        seen: Vec::new(),
        kept: Vec::new(),
        header_rcpts: Vec::new(),
        resent_rcpts: Vec::new(),
        to_cc: Vec::new(),
        sender: None,
    };
    if let Some(f) = &opts.sender {
        c.sender = Some(if is_null_sender(f) {
            Vec::new()
        } else {
            c.rewrite_argument(f).ok_or_else(|| cannot_parse(f))?
        });
    }
    let strategy = match opts.strategy {
        Strategy::Default if opts.recipients.is_empty() => Strategy::Header,
        Strategy::Default => Strategy::Args,
        s => s,
    };
    let mut recipients = Vec::new();
    if strategy != Strategy::Header {
        for r in &opts.recipients {
            recipients.push(c.rewrite_argument(r).ok_or_else(|| {
                Fatal::Permanent(format!(
                    "unable to parse address: {}",
                    String::from_utf8_lossy(r)
                ))
            })?);
        }
    }
    for f in header.fields {
        c.field(f)?;
    }
    let resent = c.seen.iter().any(|f| f.is_resent());
    if c.sender.is_none() {
        c.default_sender()?;
    }
    let mut head = c.added_fields(resent)?;
    for f in &c.kept {
        head.extend_from_slice(f);
    }
    head.extend_from_slice(&header.separator);
    if strategy != Strategy::Args {
        recipients.extend(if resent {
            c.resent_rcpts
        } else {
            c.header_rcpts
        });
    }
    // An empty address (a `<>` in To:) names nobody; qmail would queue it as is.
    recipients.retain(|r| !r.is_empty());
    Ok(Prepared {
        envelope: Envelope::new(
            Address::from_bytes(c.sender.unwrap_or_default()),
            recipients.into_iter().map(Address::from_bytes),
        ),
        head,
    })
}
