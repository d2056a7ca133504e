//! The link between the queue process and the remote delivery process (qmail-send ↔
//! qmail-rspawn): what to deliver, and the results.
//!
//! The remote delivery process runs as its own account and cannot open the queue. For each
//! job the queue process passes the message file's descriptor (`SCM_RIGHTS`, read-only,
//! read with `pread` from the given offset) and one [`mta_core::frame`]:
//!
//! ```text
//! deliver, job, message id, sender, offset, length, { delivery, index, attempts, address } × n
//! flush                                  (forget the hosts marked down: qmail-tcpok)
//! ```
//!
//! and reads back one frame: `results`, the job, then per target in order `letter`
//! (`K` delivered, `Z` deferred, `D` failed), the report text and the RFC 3463 status (or
//! empty). Numbers are plain decimal. Decoding is pure, never panics and believes no count
//! it has no fields for; the queue side treats the results as coming from a process that
//! talks to the Internet.

use mta_core::{DeliveryResult, EnhancedStatus};

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
            let mut f = vec![
                b"deliver".to_vec(),
                j.job.to_string().into_bytes(),
                j.message.to_string().into_bytes(),
                j.sender.clone(),
                j.offset.to_string().into_bytes(),
                j.len.to_string().into_bytes(),
            ];
            for t in &j.targets {
                f.push(t.delivery.to_string().into_bytes());
                f.push(t.index.to_string().into_bytes());
                f.push(t.attempts.to_string().into_bytes());
                f.push(t.address.clone());
            }
            f
        }
    }
}

/// A request from a frame's fields; `None` unless exactly one of the two forms (a job
/// needs at least one target, and whole groups of four target fields).
pub fn decode_request(fields: &[Vec<u8>]) -> Option<Request> {
    match fields {
        [verb] if verb == b"flush" => Some(Request::Flush),
        [verb, job, message, sender, offset, len, rest @ ..]
            if verb == b"deliver" && !rest.is_empty() && rest.len() % 4 == 0 =>
        {
            let targets = rest
                .chunks_exact(4)
                .map(|t| {
                    Some(RemoteTarget {
                        delivery: num(&t[0])?,
                        index: num(&t[1])?,
                        attempts: num(&t[2])?,
                        address: t[3].clone(),
                    })
                })
                .collect::<Option<Vec<_>>>()?;
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
    let mut f = Vec::with_capacity(2 + 3 * results.len());
    f.push(b"results".to_vec());
    f.push(job.to_string().into_bytes());
    for r in results {
        let (letter, status) = match r {
            DeliveryResult::Delivered { .. } => (b'K', None),
            DeliveryResult::Failed { status, .. } => (b'D', *status),
            DeliveryResult::Deferred { status, .. } => (b'Z', *status),
            // A kind added later: tried again, never dropped.
            _ => (b'Z', None),
        };
        f.push(vec![letter]);
        f.push(r.text().as_bytes().to_vec());
        f.push(
            status
                .map(|s| s.to_string().into_bytes())
                .unwrap_or_default(),
        );
    }
    f
}

/// The results for `job`, `expected` of them; `None` for anything else (another job, a
/// wrong count, an unknown letter or status).
pub fn decode_results(
    fields: &[Vec<u8>],
    job: u64,
    expected: usize,
) -> Option<Vec<DeliveryResult>> {
    let [verb, got, rest @ ..] = fields else {
        return None;
    };
    if verb != b"results" || num::<u64>(got)? != job || rest.len() != 3 * expected {
        return None;
    }
    rest.chunks_exact(3)
        .map(|r| {
            let text = String::from_utf8_lossy(&r[1]).into_owned();
            let status: Option<EnhancedStatus> = if r[2].is_empty() {
                None
            } else {
                Some(std::str::from_utf8(&r[2]).ok()?.parse().ok()?)
            };
            Some(match r[0].as_slice() {
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
        f.pop();
        assert_eq!(decode_request(&f), None, "a partial target");
        let f: Vec<Vec<u8>> = encode_request(&Request::Deliver(job()))
            .into_iter()
            .take(6)
            .collect();
        assert_eq!(decode_request(&f), None, "no target");
        let mut f = encode_request(&Request::Deliver(job()));
        f[4] = b"-1".to_vec();
        assert_eq!(decode_request(&f), None, "a signed number");
        assert_eq!(decode_request(&[b"flush".to_vec(), b"x".to_vec()]), None);
    }
}
