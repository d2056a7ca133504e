//! The link between the queue process and the remote delivery process (qmail-send ↔
//! qmail-rspawn): what to deliver, and the results.
//!
//! The remote delivery process runs as its own account and cannot open the queue. For each
//! job the queue process passes the message file's descriptor (`SCM_RIGHTS`, read-only,
//! read with `pread` from the given offset) and one [`mta_core::frame`]:
//!
//! ```text
//! deliver, job, message id, sender, offset, length, targets
//! flush                                  (forget the hosts marked down: qmail-tcpok)
//! ```
//!
//! where `targets` is one field, the [`frame::pack`] of each target's own pack of
//! `delivery, index, attempts, address` (a list is never limited by a frame's field
//! count), and reads back one frame: `results`, the job, and one packed field holding per
//! target, in order, the pack of `letter` (`K` delivered, `Z` deferred, `D` failed), the
//! report text and the RFC 3463 status (or empty). Numbers are plain decimal. Decoding is pure, never panics and believes no count
//! it has no fields for; the queue side treats the results as coming from a process that
//! talks to the Internet.

use mta_core::{DeliveryResult, EnhancedStatus, frame};

use crate::MessageId;

/// One recipient of a [`RemoteJob`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteTarget {
    /// The delivery number in the log.
    pub delivery: u64,
    /// The recipient's index in the envelope.
    pub index: u32,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The recipient address.
    pub address: Vec<u8>,
}

/// One remote delivery: a message to some recipients at one domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteJob {
    /// The scheduler's job number, echoed in the results.
    pub job: u64,
    /// The message.
    pub message: MessageId,
    /// The envelope sender (VERP applied).
    pub sender: Vec<u8>,
    /// Where the message's bytes start in the passed file.
    pub offset: u64,
    /// How many bytes the message has.
    pub len: u64,
    /// The recipients; never empty.
    pub targets: Vec<RemoteTarget>,
}

/// What the queue process asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Deliver this job (the message's descriptor comes with the frame).
    Deliver(RemoteJob),
    /// Forget the hosts marked down (`mta queue flush`).
    Flush,
}

fn num<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// The fields of a request frame.
pub fn encode_request(request: &Request) -> Vec<Vec<u8>> {
    match request {
        Request::Flush => vec![b"flush".to_vec()],
        Request::Deliver(j) => {
            let targets: Vec<Vec<u8>> = j
                .targets
                .iter()
                .map(|t| {
                    let (d, i, a) = (
                        t.delivery.to_string(),
                        t.index.to_string(),
                        t.attempts.to_string(),
                    );
                    frame::pack([d.as_bytes(), i.as_bytes(), a.as_bytes(), &t.address])
                })
                .collect();
            vec![
                b"deliver".to_vec(),
                j.job.to_string().into_bytes(),
                j.message.to_string().into_bytes(),
                j.sender.clone(),
                j.offset.to_string().into_bytes(),
                j.len.to_string().into_bytes(),
                frame::pack(targets.iter().map(Vec::as_slice)),
            ]
        }
    }
}

/// A request from a frame's fields; `None` unless exactly one of the two forms (a job
/// needs at least one target, each of exactly four fields).
pub fn decode_request(fields: &[Vec<u8>]) -> Option<Request> {
    match fields {
        [verb] if verb == b"flush" => Some(Request::Flush),
        [verb, job, message, sender, offset, len, targets] if verb == b"deliver" => {
            let targets = frame::unpack(targets)?
                .iter()
                .map(|t| {
                    let [delivery, index, attempts, address] =
                        <[Vec<u8>; 4]>::try_from(frame::unpack(t)?).ok()?;
                    Some(RemoteTarget {
                        delivery: num(&delivery)?,
                        index: num(&index)?,
                        attempts: num(&attempts)?,
                        address,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            if targets.is_empty() {
                return None;
            }
            Some(Request::Deliver(RemoteJob {
                job: num(job)?,
                message: MessageId::from_u64(num(message)?),
                sender: sender.clone(),
                offset: num(offset)?,
                len: num(len)?,
                targets,
            }))
        }
        _ => None,
    }
}

/// The fields of a results frame for `job`.
pub fn encode_results(job: u64, results: &[DeliveryResult]) -> Vec<Vec<u8>> {
    let mut packed = Vec::with_capacity(results.len());
    for r in results {
        let (letter, status) = match r {
            DeliveryResult::Delivered { .. } => (b'K', None),
            DeliveryResult::Failed { status, .. } => (b'D', *status),
            DeliveryResult::Deferred { status, .. } => (b'Z', *status),
            // A kind added later: tried again, never dropped.
            _ => (b'Z', None),
        };
        let status = status.map(|s| s.to_string()).unwrap_or_default();
        packed.push(frame::pack([
            &[letter][..],
            r.text().as_bytes(),
            status.as_bytes(),
        ]));
    }
    vec![
        b"results".to_vec(),
        job.to_string().into_bytes(),
        frame::pack(packed.iter().map(Vec::as_slice)),
    ]
}

/// The results for `job`, `expected` of them; `None` for anything else (another job, a
/// wrong count, an unknown letter or status).
pub fn decode_results(
    fields: &[Vec<u8>],
    job: u64,
    expected: usize,
) -> Option<Vec<DeliveryResult>> {
    let [verb, got, packed] = fields else {
        return None;
    };
    let results = frame::unpack(packed)?;
    if verb != b"results" || num::<u64>(got)? != job || results.len() != expected {
        return None;
    }
    results
        .iter()
        .map(|r| {
            let [letter, text, status] = <[Vec<u8>; 3]>::try_from(frame::unpack(r)?).ok()?;
            let text = String::from_utf8_lossy(&text).into_owned();
            let status: Option<EnhancedStatus> = if status.is_empty() {
                None
            } else {
                Some(std::str::from_utf8(&status).ok()?.parse().ok()?)
            };
            Some(match letter.as_slice() {
                b"K" if status.is_none() => DeliveryResult::Delivered { text },
                b"Z" => DeliveryResult::Deferred { text, status },
                b"D" => DeliveryResult::Failed { text, status },
                _ => return None,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn job() -> RemoteJob {
        RemoteJob {
            job: 7,
            message: MessageId::from_u64(123_456),
            sender: b"a@example.org".to_vec(),
            offset: 32,
            len: 1000,
            targets: vec![
                RemoteTarget {
                    delivery: 1,
                    index: 0,
                    attempts: 2,
                    address: b"x@example.net".to_vec(),
                },
                RemoteTarget {
                    delivery: 2,
                    index: 3,
                    attempts: 0,
                    address: b"y\0z@example.net".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn requests_and_results_round_trip() {
        for r in [Request::Flush, Request::Deliver(job())] {
            assert_eq!(decode_request(&encode_request(&r)), Some(r));
        }
        let results = vec![
            DeliveryResult::Delivered {
                text: "127.0.0.1 accepted message./Remote host said: 250 ok\n".into(),
            },
            DeliveryResult::Deferred {
                text: "Connection refused. (#4.4.1)".into(),
                status: Some("4.4.1".parse().unwrap()),
            },
            DeliveryResult::Failed {
                text: "Sorry. (#5.1.1)".into(),
                status: None,
            },
        ];
        let f = encode_results(7, &results);
        assert_eq!(decode_results(&f, 7, 3), Some(results));
        assert_eq!(decode_results(&f, 8, 3), None, "another job");
        assert_eq!(decode_results(&f, 7, 2), None, "another count");
    }

    #[test]
    fn malformed_requests_are_refused() {
        let mut f = encode_request(&Request::Deliver(job()));
        let last = f.len() - 1;
        f[last].pop();
        assert_eq!(decode_request(&f), None, "a partial target");
        f[last] = Vec::new();
        assert_eq!(decode_request(&f), None, "no target");
        f[last] = frame::pack([frame::pack([&b"1"[..], b"2", b"3"]).as_slice()]);
        assert_eq!(decode_request(&f), None, "a target of three fields");
        let mut f = encode_request(&Request::Deliver(job()));
        f[4] = b"-1".to_vec();
        assert_eq!(decode_request(&f), None, "a signed number");
        assert_eq!(decode_request(&[b"flush".to_vec(), b"x".to_vec()]), None);
    }
}
