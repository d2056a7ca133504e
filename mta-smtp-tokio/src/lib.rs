#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod handler;
mod server;
mod stream;

pub use client::{ClientConnection, deliver, deliver_batch};
pub use handler::{Handler, MessageMode, SessionInfo};
pub use server::Server;
pub use stream::TlsConnect;

pub use mta_core;
pub use mta_core::{DeliveryResult, Envelope};
pub use mta_smtp;
pub use mta_smtp::{
    ClientAuth, ClientConfig, Credentials, DataError, DataSummary, MailParams, RcptParams, Reply,
    ServerConfig, TlsPolicy, Verdict,
};
pub use tokio_rustls;
pub use tokio_rustls::rustls;
