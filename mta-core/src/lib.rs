#![doc = include_str!("../README.md")]
//!
//! ## API overview
//!
//! The types every other `mta-*` crate shares, and the parsers they rest on:
//!
//! - [`Domain`]: case-insensitive domain names (RFC 5321 §2.4), trailing dot dropped.
//! - [`Address`] and [`Envelope`]: envelope addresses in qmail's internal form
//!   (`local@domain`, `""` for `<>`, `#@[]` for double bounces).
//! - [`EnhancedStatus`] and [`DeliveryResult`]: RFC 3463 codes and qmail's K/Z/D outcomes.
//! - [`address_list`]: RFC 5322 §3.4 address lists (groups, comments, obsolete syntax) and
//!   qmail-inject's lenient rewriting.
//! - [`control`]: typed qmail control files with qmail's defaults and syntax.
//! - [`date`]: RFC 5322 §3.3 dates and qmail's `date822fmt`/`myctime`, from plain numbers.
//! - [`header`]: header-field iteration, qmail's hop count and its Return-Path,
//!   Delivered-To and Received lines.
//! - [`path`]: RFC 5321 §4.1.2 `Reverse-path` / `Forward-path` parsing with the §4.5.3.1
//!   size limits and RFC 6531 SMTPUTF8.
//!
//! Every parser takes bytes, returns a `Result` whose error carries a byte offset and a
//! reason, never panics and runs in linear time. Nothing here reads a clock or opens a
//! socket; [`control::Control::load`] and its resolv.conf variant are the only functions
//! that touch the filesystem.
//!
//! ```
//! use mta_core::address_list::{parse_address_list, ParseOptions};
//! use mta_core::path::{parse_reverse_path, PathOptions, ReversePath};
//! use mta_core::{header, Address, Envelope};
//!
//! // MAIL FROM:<> and a recipient: the envelope of a bounce.
//! let (sender, _) = parse_reverse_path(b"<>", PathOptions::default())?;
//! assert_eq!(sender, ReversePath::Null);
//! let env = Envelope::new(sender.to_address(), ["postmaster@example.com"]);
//! assert!(env.sender.is_bounce_sender());
//!
//! // The recipients a To: field names, groups flattened.
//! let to = parse_address_list(b"Mary <mary@x.test>, team: a@y.test, b@y.test;", &ParseOptions::strict())?;
//! assert_eq!(to.mailboxes().count(), 3);
//!
//! // qmail-local's Return-Path line for the bounce.
//! assert_eq!(header::return_path_line(&Address::null()), b"Return-Path: <>\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod address_list;
pub mod control;
pub mod date;
mod domain;
mod envelope;
pub mod frame;
pub mod header;
pub mod http;
pub mod path;
mod status;

pub use domain::Domain;
pub use envelope::{Address, Envelope};
pub use status::{DeliveryResult, EnhancedStatus, ParseStatusError, StatusClass};
