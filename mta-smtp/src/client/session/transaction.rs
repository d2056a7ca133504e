//! The mail transaction part of [`ClientSession`]: MAIL, RCPT (pipelined or not), DATA
//! and the final reply (RFC 5321 §3.3, RFC 2920).

use mta_core::DeliveryResult;
use mta_core::StatusClass;

use crate::client::ClientEvent;
use crate::client::path::path_text;
use crate::reply::Reply;

use super::{ClientSession, Expect, MAX_COMMAND, State, status};

impl ClientSession {
    pub(super) fn start_mail(&mut self) {
        let peer = self.config.peer.clone();
        let Ok((sender, mut utf8)) = path_text(&self.envelope.sender) else {
            let text = "Sender address cannot be sent (control bytes or bad domain).".to_owned();
            return self.fail_all(&text, status(StatusClass::Permanent, 1, 7), true);
        };
        if utf8 && !self.caps.smtputf8 {
            let text = format!("{peer} does not support SMTPUTF8, which the sender address needs.");
            return self.fail_all(&text, status(StatusClass::Permanent, 6, 7), true);
        }
        let mut rcpt_lines = Vec::new();
        for i in 0..self.envelope.recipients.len() {
            let (text, st) = match path_text(&self.envelope.recipients[i]) {
                Ok((p, u)) if p.len() + 11 <= MAX_COMMAND && !p.is_empty() => {
                    if u && !self.caps.smtputf8 {
                        // RFC 6531 §3.2: without SMTPUTF8 this recipient cannot be sent.
                        let text =
                            format!("{peer} does not support SMTPUTF8, which this address needs.");
                        (text, status(StatusClass::Permanent, 6, 7))
                    } else {
                        utf8 |= u;
                        let mut line = b"RCPT TO:<".to_vec();
                        line.extend_from_slice(&p);
                        line.push(b'>');
                        rcpt_lines.push((i, line));
                        continue;
                    }
                }
                _ => (
                    "Recipient address cannot be sent (control bytes, bad domain or too long)."
                        .to_owned(),
                    status(StatusClass::Permanent, 1, 3),
                ),
            };
            self.results[i] = Some(DeliveryResult::Failed { text, status: st });
        }
        if let (Some(max), Some(size)) = (self.caps.size, self.config.message_size)
            && max > 0
            && size > max
        {
            let text = format!("Message is too big for {peer} (limit {max} bytes).");
            return self.fail_all(&text, status(StatusClass::Permanent, 3, 4), true);
        }
        let mut mail = b"MAIL FROM:<".to_vec();
        mail.extend_from_slice(&sender);
        mail.push(b'>');
        if let (Some(_), Some(size)) = (self.caps.size, self.config.message_size) {
            mail.extend_from_slice(format!(" SIZE={size}").as_bytes());
        }
        if self.config.eight_bit && self.caps.eight_bit {
            mail.extend_from_slice(b" BODY=8BITMIME");
        }
        if utf8 {
            mail.extend_from_slice(b" SMTPUTF8");
        }
        if mail.len() + 2 > MAX_COMMAND {
            let text = "Sender address is too long to send.".to_owned();
            return self.fail_all(&text, status(StatusClass::Permanent, 1, 7), true);
        }
        if rcpt_lines.is_empty() {
            return self.quit();
        }
        self.state = State::Transaction;
        self.send(&mail);
        self.expect.push_back(Expect::Mail);
        self.sendable = rcpt_lines.iter().map(|(i, _)| *i).collect();
        self.pipelined = self.caps.pipelining && self.config.pipelining;
        if self.pipelined {
            for (i, line) in &rcpt_lines {
                self.send(line);
                self.expect.push_back(Expect::Rcpt(*i));
            }
            self.send(b"DATA");
            self.expect.push_back(Expect::Data);
            self.next_rcpt = self.sendable.len();
        }
    }

    /// Without pipelining: the next RCPT, or DATA, or give up.
    pub(super) fn send_next(&mut self) {
        if let Some(&i) = self.sendable.get(self.next_rcpt) {
            self.next_rcpt += 1;
            let (p, _) = path_text(&self.envelope.recipients[i]).unwrap_or_default();
            let mut line = b"RCPT TO:<".to_vec();
            line.extend_from_slice(&p);
            line.push(b'>');
            self.send(&line);
            self.expect.push_back(Expect::Rcpt(i));
        } else if self.accepted.iter().any(|&a| a) {
            self.send(b"DATA");
            self.expect.push_back(Expect::Data);
        } else {
            self.quit();
        }
    }

    pub(super) fn on_transaction_reply(&mut self, reply: &Reply) {
        let peer = self.config.peer.clone();
        let ok = reply.code() / 100 == 2;
        let Some(exp) = self.expect.pop_front() else {
            return self.settle_temp(reply, &format!("{peer} sent an unexpected reply."));
        };
        let any_accepted = self.accepted.iter().any(|&a| a);
        match exp {
            Expect::Mail => {
                if !ok {
                    self.mail_failed = true;
                    let what = format!("Connected to {peer} but sender was rejected.");
                    self.settle(reply, &what, false);
                }
                if !self.pipelined {
                    if ok { self.send_next() } else { self.quit() }
                }
            }
            Expect::Rcpt(i) => {
                if !self.mail_failed {
                    if ok {
                        self.accepted[i] = true;
                    } else {
                        let what = format!("{peer} does not like recipient.");
                        self.results[i] = Some(Self::result_for(reply, &what));
                    }
                }
                if !self.pipelined {
                    self.send_next();
                }
            }
            Expect::Data => {
                if self.mail_failed || !any_accepted {
                    if reply.code() == 354 {
                        // RFC 2920 §3.1: DATA was accepted with no recipient; send an
                        // empty message and ignore the answer.
                        self.out.extend_from_slice(b".\r\n");
                        self.expect.push_back(Expect::Ignored);
                    } else {
                        self.quit();
                    }
                } else if reply.code() == 354 {
                    self.state = State::Body;
                    self.events.push_back(ClientEvent::SendBody);
                } else {
                    let what = format!("{peer} failed on DATA command.");
                    self.settle_non_delivery(reply, &what);
                    self.quit();
                }
            }
            Expect::DataEnd => {
                let what = if ok {
                    format!("{peer} accepted message.")
                } else {
                    format!("{peer} failed after I sent the message.")
                };
                if ok {
                    self.settle(reply, &what, true);
                } else {
                    self.settle_non_delivery(reply, &what);
                }
                if self.config.reuse_connection {
                    // The final reply ends the transaction on both sides (RFC 5321
                    // §4.1.1.4): the connection can carry the next MAIL.
                    self.settle_undecided();
                    self.state = State::Idle;
                    self.events.push_back(ClientEvent::Idle);
                } else {
                    self.quit();
                }
            }
            Expect::Ignored => self.quit(),
        }
    }

    /// A non-2xx reply where 2xx (or 354) was needed: 5xx fails, anything else defers.
    pub(super) fn settle_non_delivery(&mut self, reply: &Reply, what: &str) {
        let text = format!("{what}\nRemote host said: {reply}");
        let r = if reply.is_permanent() {
            DeliveryResult::Failed {
                text,
                status: reply.status(),
            }
        } else {
            DeliveryResult::Deferred {
                text,
                status: reply.status().filter(|s| s.is_transient()),
            }
        };
        for (i, slot) in self.results.iter_mut().enumerate() {
            if slot.is_none() && self.accepted[i] {
                *slot = Some(r.clone());
            }
        }
    }
}
