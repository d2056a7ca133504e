//! # mta-core
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
//! ```
//! use mta_core::{Address, Envelope};
//! let env = Envelope::new(Address::null(), ["postmaster@example.com"]);
//! assert!(env.sender.is_bounce_sender());
//! ```

#![forbid(unsafe_code)]

pub mod address_list;
pub mod control;
pub mod date;
mod domain;
mod envelope;
pub mod header;
pub mod path;
mod status;

pub use domain::Domain;
pub use envelope::{Address, Envelope};
pub use status::{DeliveryResult, EnhancedStatus, ParseStatusError, StatusClass};
