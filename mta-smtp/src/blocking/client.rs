//! The blocking client driver: [`deliver`] and [`deliver_with`] run a [`ClientSession`]
//! over a connected `TcpStream` or any other [`Transport`].

// The driver owns the clock; the state machines never read it (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mta_core::{DeliveryResult, Envelope};

use super::{BUF, Conn, TlsUpgrade, Transport};
use crate::{ClientConfig, ClientEvent, ClientSession};

/// Delivers one message over a connected `stream` with qmail-remote's defaults (no TLS,
/// `helo` as the EHLO name, the peer's IP from [`Transport::peer`] in report texts, else `unknown`), returning one result per
/// recipient of `envelope`, in order. `message` is the stored message (LF line ends).
pub fn deliver<S: Transport>(
    stream: S,
    envelope: &Envelope,
    message: impl Read,
    helo: &str,
) -> Vec<DeliveryResult> {
    let peer = stream
        .peer()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    deliver_with(
        stream,
        envelope,
        message,
        ClientConfig::new(helo, peer),
        None,
    )
}

/// [`deliver`] over any [`Transport`] (a `TcpStream`, a `UnixStream`, an in-memory pipe),
/// with a full [`ClientConfig`] and an optional STARTTLS hook (required when `config.tls`
/// is not `Never`; without it STARTTLS is treated as failed). `config`'s peer name is what
/// the report texts say (`deliver` puts the TCP peer's IP there).
///
/// Read and write timeouts are set to `config.timeout` through [`Transport::timeouts`]
/// (a transport without timeouts waits as long as the other side does). I/O errors never escape:
/// they become deferrals (qmail's "connection died", with "Possible duplicate!" after the
/// final dot), and an unreadable message defers every recipient.
pub fn deliver_with<S: Transport>(
    stream: S,
    envelope: &Envelope,
    mut message: impl Read,
    config: ClientConfig,
    mut tls: Option<TlsUpgrade<'_, S>>,
) -> Vec<DeliveryResult> {
    let timeout = config.timeout.max(Duration::from_millis(1));
    let mut s = ClientSession::new(config, envelope.clone(), Instant::now());
    let set = stream.timeouts().and_then(|t| {
        t.set_read_timeout(Some(timeout))?;
        t.set_write_timeout(Some(timeout))
    });
    if set.is_err() {
        s.abort("Unable to set socket timeouts.");
        return s.results();
    }
    let mut conn = Conn::Plain(stream);
    let mut buf = vec![0u8; BUF];
    let mut out = Vec::with_capacity(BUF * 2);
    while !s.is_finished() {
        while let Some(ev) = s.poll_event() {
            match ev {
                ClientEvent::StartTls => {
                    flush(&mut s, &mut conn, &mut out);
                    if conn.start_tls(tls.as_mut()) {
                        s.tls_established(Instant::now());
                    } else {
                        conn = Conn::Gone;
                        s.handle_eof();
                    }
                }
                ClientEvent::SendBody => loop {
                    match message.read(&mut buf) {
                        Ok(0) => {
                            s.finish_body(Instant::now());
                            break;
                        }
                        Ok(n) => {
                            s.send_body(&buf[..n]);
                            if !flush(&mut s, &mut conn, &mut out) {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            s.abort(&format!("Unable to read message: {e}."));
                            break;
                        }
                    }
                },
                _ => {}
            }
        }
        flush(&mut s, &mut conn, &mut out);
        if s.is_finished() {
            break;
        }
        let read = conn.io().and_then(|io| io.read(&mut buf));
        match read {
            Ok(0) => s.handle_eof(),
            Ok(n) => s.handle_input(&buf[..n], Instant::now()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => s.handle_eof(),
        }
    }
    s.results()
}

/// Writes pending output; on failure the session learns the connection died.
fn flush<S: Read + Write>(s: &mut ClientSession, conn: &mut Conn<S>, out: &mut Vec<u8>) -> bool {
    if !s.poll_transmit(out) {
        return true;
    }
    if conn.write_out(out).is_err() {
        s.handle_eof();
        return false;
    }
    true
}
