#![doc = include_str!("../README.md")]
//!
//! ## API overview
//!
//! qmail's local delivery, as a library: `users/assign`, the `.qmail` file search and the
//! qmail-local interpreter, so that an existing qmail user's `.qmail` files and
//! `users/assign` work unchanged.
//!
//! - [`UsersAssign`] parses `users/assign` (qmail-users.9) and looks a local part up as
//!   qmail-lspawn does (exact `=` entries, then the longest `+` wildcard prefix).
//!   [`UserTable`] adds the system-user fallback ([`SystemUsers`], e.g. [`PasswdFile`]
//!   with qmail-getpw's rules) and the alias user, giving a [`LocalUser`]: account, dash
//!   and extension. [`AssignFile`] re-reads `users/assign` when it changes.
//! - [`candidates`] / [`search`] are qmail-local's `.qmail` search (`.qmail-ext`, then
//!   `-default` files stepping back one dash-separated piece at a time); [`check_address`]
//!   (user lookup + [`find_mailbox`]) answers "does this address exist?" at SMTP time
//!   without delivering.
//! - [`parse`] turns `.qmail` text into [`Instruction`]s (comment, program, forward, mbox,
//!   maildir, `+list`).
//! - [`deliver`] runs them with qmail-local's rules (loop refusal, permissions, exit codes
//!   0/99/100/111 and the sysexits mapping, the program environment, `NEWSENDER`) and
//!   returns an [`Outcome`]: [`DeliveryStatus`] (delivered, deferred, bounced), qmail's
//!   report text (`did N+M+P`) and the [`Forward`] the caller enqueues. [`explain`] is
//!   `qmail-local -n`.
//! - Side effects go through [`Executor`] (and [`FileLookup`] for the search), so every
//!   decision is tested without a filesystem. [`SystemExecutor`] is the real one: mta-maildir
//!   for maildir and mbox lines, `/bin/sh -c` for programs (when the message is in memory, a
//!   scoped thread feeds the program's stdin while the caller's thread reads its output).
//!   [`SystemExecutor::with_lookup_memo`] lets a batch of deliveries share their lookups,
//!   and [`AbsentNames`] rules out `.qmail` names from one directory listing (for a list's
//!   thousands of `user-N` addresses, each a name tried and not found).
//!
//! The daemon runs [`deliver`] in a child process as the resolved user (uid/gid from
//! [`Account`]), like qmail-lspawn: [`LocalArgs`] is the child's command line and
//! [`Outcome::to_record`] / [`Outcome::from_record`] carry the result (forwards included)
//! back; `examples/dotqmail_deliver.rs` is such a child.
//!
//! Security: as in qmail, files and programs come only from the user's own `.qmail`
//! files, never from an address; but every variable added to a program's environment
//! (`SENDER`, `RECIPIENT`, `EXT`, `DEFAULT`, ...) comes from the envelope and is
//! attacker-controlled (Shellshock reached qmail this way). [`BaseEnvironment::Fixed`]
//! at least keeps everything else out of the programs' environment.
//!
//! ```
//! use mta_dotqmail::{
//!     Account, DeliveryOptions, DeliveryRequest, DeliveryStatus, Executor, FileDeliveryError,
//!     FileLookup, FileStatus, Message, ProgramEnv, ProgramRun, Resolved, UserTable,
//!     UsersAssign, deliver,
//! };
//! use std::{io, path::{Path, PathBuf}};
//!
//! /// A pretend filesystem: joe's home holds `.qmail-list` forwarding to two people.
//! struct Fake(Vec<PathBuf>);
//! impl FileLookup for Fake {
//!     fn probe(&mut self, p: &Path) -> io::Result<Option<FileStatus>> {
//!         Ok(match p.to_str() {
//!             Some("/home/joe") => Some(FileStatus::directory(0o755)),
//!             Some("/home/joe/.qmail-list") => Some(FileStatus::regular(0o644)),
//!             _ => None,
//!         })
//!     }
//!     fn exists(&mut self, _: &Path) -> io::Result<bool> { Ok(false) }
//!     fn read(&mut self, _: &Path) -> io::Result<Vec<u8>> {
//!         Ok(b"&ann@example.org\nbob@example.net\n".to_vec())
//!     }
//! }
//! impl Executor for Fake {
//!     fn maildir(&mut self, d: &Path, _: &[u8], _: Message<'_>) -> Result<(), FileDeliveryError> {
//!         self.0.push(d.to_path_buf()); Ok(())
//!     }
//!     fn mbox(&mut self, p: &Path, _: &[u8], _: &[u8], _: Message<'_>) -> Result<(), FileDeliveryError> {
//!         self.0.push(p.to_path_buf()); Ok(())
//!     }
//!     fn program(&mut self, _: &[u8], _: &ProgramEnv, _: &Path, _: Message<'_>) -> io::Result<ProgramRun> {
//!         unreachable!("no program lines here")
//!     }
//! }
//!
//! let assign = UsersAssign::parse(b"+joe-:joe:1001:100:/home/joe:-::\n.\n")?;
//! let users = UserTable::new(Account::new("alias", 7790, 2108, "/var/qmail/alias"))
//!     .with_assign(assign);
//! let Resolved::User(user) = users.resolve(b"joe-list")? else { unreachable!() };
//! let request = DeliveryRequest {
//!     user: &user, local: b"joe-list", domain: b"example.com", sender: b"sue@example.com",
//!     default_delivery: b"./Maildir/\n", now: 0,
//! };
//! let outcome = deliver(&mut Fake(Vec::new()), &request, &DeliveryOptions::default(),
//!                       Message::Bytes(b"Subject: hi\n\nhello\n"));
//! assert_eq!(outcome.status, DeliveryStatus::Delivered);
//! assert_eq!(outcome.report, b"did 0+2+0\n");
//! let forward = outcome.forward.expect("two forwards");
//! assert_eq!(forward.recipients, [b"ann@example.org".to_vec(), b"bob@example.net".to_vec()]);
//! assert_eq!(forward.sender, b"sue@example.com");
//! assert_eq!(forward.dtline, b"Delivered-To: joe-list@example.com\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod absent;
mod assign;
mod child;
mod exec;
mod interp;
pub mod lines;
mod outcome;
mod parse;
mod passwd;
mod rcpt;
mod search;
mod system;
mod user;
pub mod worker;

/// The `mta-core` crate, re-exported: this crate's public API takes and returns its types
/// ([`DeliveryResult`](mta_core::DeliveryResult) from [`Outcome::to_delivery_result`]), so callers can name them as `mta_dotqmail::mta_core::...` without a
/// dependency of their own that could drift to another version.
pub use mta_core;

pub use absent::AbsentNames;
pub use assign::{
    AssignFile, LoadAssignError, ParseAssignError, ParseAssignErrorKind, UsersAssign,
};
pub use child::{DecodeRecordError, LocalArgs, UsageError};
pub use exec::{
    Executor, FileDeliveryError, FileKind, FileLookup, FileStatus, Message, MessageReader,
    ProgramEnv, ProgramRun, ProgramStatus,
};
pub use interp::{DeliveryOptions, DeliveryRequest, deliver, explain};
pub use outcome::{Counts, DeliveryStatus, Forward, Outcome};
pub use parse::{Instruction, Line, ParseInstructionError, ParseInstructionErrorKind, parse};
pub use passwd::{GETPW_USERLEN, PasswdEntry, PasswdFile, SystemUsers, getpw_search, parse_passwd};
pub use rcpt::{AddressCheck, CheckAddressError, check_address};
pub use search::{
    Candidate, Found, Mailbox, SearchError, candidates, find_mailbox, owner_file_exists, safe_ext,
    search,
};
pub use system::{BaseEnvironment, MaildirCommit, SystemExecutor};
pub use user::{Account, LocalUser, ResolveError, Resolved, UserTable};
