//! The local delivery worker protocol: what a spawner (qmail-lspawn's part, running as
//! root) and a per-user worker (qmail-local's part, running as the recipient's account)
//! say to each other over a pipe.
//!
//! Each message is one [`mta_core::frame`] (length-prefixed fields, so no byte of an
//! address or a message can be read as framing). A request carries the message once and
//! then [`REQUEST_FIELDS`] fields per delivery:
//!
//! ```text
//! count, message, { user, uid, gid, home, dash, ext, local, domain, sender,
//!                   default delivery, now } × count
//! ```
//!
//! The answer carries, per delivery and in order, `letter` (`K` delivered, `Z` deferred,
//! `D` failed, as qmail-local's exit status told qmail-lspawn), the report text, the RFC
//! 3463 enhanced status (or empty), and `n` followed by `n` fields: nothing, or the
//! forward's sender, its `Delivered-To:` line and its recipients.
//!
//! While it runs a request, a worker may ask the spawner to make a file system durable
//! for it ([`write_sync_request`]: `sync` and the file system's number, one frame), before
//! each of the two syncs of its maildir batch; the spawner answers with one frame
//! ([`SyncAnswer`]: `synced`, `no` (sync it yourself) or `failed` and a text). A spawner
//! whose own group commit syncs that file system anyway (the queue on the same disk) so
//! shares one flush between the messages it receives and the deliveries. An answer frame
//! never starts with `sync` (its first field is a one-letter status).
//!
//! The worker must treat the request as coming from a more privileged process it trusts;
//! the spawner must treat the answer as coming from the user's account (decoding never
//! panics and never believes a count it cannot see fields for).
//!
//! ```
//! use mta_core::DeliveryResult;
//! use mta_dotqmail::worker::{self, WorkerRequest};
//!
//! let request = WorkerRequest {
//!     user: b"joe", uid: 1000, gid: 1000, home: b"/home/joe", dash: b"", ext: b"",
//!     local: b"joe", domain: b"example.org", sender: b"alice@example.net",
//!     default_delivery: b"./Maildir/\n", now: 1_700_000_000,
//! };
//! let mut pipe = Vec::new();
//! worker::write_requests(&mut pipe, b"Subject: hi\n\nhello\n", &[request])?;
//! let fields = mta_core::frame::read(&mut &pipe[..])?.expect("one frame");
//! let (message, requests) = worker::decode_requests(&fields).expect("well formed");
//! assert_eq!((message, requests.len(), requests[0].uid), (&b"Subject: hi\n\nhello\n"[..], 1, 1000));
//!
//! let answers = vec![(DeliveryResult::Delivered { text: "did 1+0+0".into() }, None)];
//! let mut back = Vec::new();
//! worker::write_answers(&mut back, &answers)?;
//! let fields = mta_core::frame::read(&mut &back[..])?.expect("one frame");
//! assert_eq!(worker::decode_answers(fields, 1), Some(answers));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Write};

use mta_core::{DeliveryResult, frame};

use crate::Forward;

/// Fields per delivery in a request frame, after the count and the message.
pub const REQUEST_FIELDS: usize = 11;

/// One delivery in a request frame (borrowed from the frame or from the spawner's data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerRequest<'a> {
    /// The account's user name (users/assign's second field).
    pub user: &'a [u8],
    /// The account's uid.
    pub uid: u32,
    /// The account's gid.
    pub gid: u32,
    /// The account's home directory.
    pub home: &'a [u8],
    /// The `.qmail` dash (`-` or empty).
    pub dash: &'a [u8],
    /// The `.qmail` extension.
    pub ext: &'a [u8],
    /// The recipient's local part.
    pub local: &'a [u8],
    /// The recipient's domain.
    pub domain: &'a [u8],
    /// The envelope sender.
    pub sender: &'a [u8],
    /// The delivery for a user without a `.qmail` (qmail-start's argument).
    pub default_delivery: &'a [u8],
    /// The time, Unix seconds (for `UFLINE`).
    pub now: i64,
}

/// One delivery's answer: its result, and the forward the `.qmail` asked for, if any.
pub type Answer = (DeliveryResult, Option<Forward>);

/// Writes one request frame: `message` once, then every delivery.
///
/// # Errors
/// I/O errors from `w`, or `InvalidInput` when a field exceeds the frame's limits.
pub fn write_requests(
    w: &mut dyn Write,
    message: &[u8],
    requests: &[WorkerRequest<'_>],
) -> io::Result<()> {
    let count = requests.len().to_string();
    let numbers: Vec<[String; 3]> = requests.iter().map(numbers_of).collect();
    let mut fields: Vec<&[u8]> = Vec::with_capacity(2 + REQUEST_FIELDS * requests.len());
    fields.push(count.as_bytes());
    fields.push(message);
    for (r, n) in requests.iter().zip(&numbers) {
        push_request(&mut fields, r, n);
    }
    frame::write(w, &fields)
}

/// The decimal fields of one delivery: uid, gid, time.
fn numbers_of(r: &WorkerRequest<'_>) -> [String; 3] {
    [r.uid.to_string(), r.gid.to_string(), r.now.to_string()]
}

/// Appends one delivery's [`REQUEST_FIELDS`] fields (`n` from [`numbers_of`]).
fn push_request<'a>(fields: &mut Vec<&'a [u8]>, r: &WorkerRequest<'a>, n: &'a [String; 3]) {
    fields.extend_from_slice(&[
        r.user,
        n[0].as_bytes(),
        n[1].as_bytes(),
        r.home,
        r.dash,
        r.ext,
        r.local,
        r.domain,
        r.sender,
        r.default_delivery,
        n[2].as_bytes(),
    ]);
}

fn number<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    // Digits only (and a leading '-' for the time): no '+', no spaces.
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Decodes a request frame's fields into the message and its deliveries; `None` when the
/// count does not match the fields or a number is malformed.
pub fn decode_requests(fields: &[Vec<u8>]) -> Option<(&[u8], Vec<WorkerRequest<'_>>)> {
    let [count, message, rest @ ..] = fields else {
        return None;
    };
    let count: usize = number(count)?;
    if rest.len() != count.checked_mul(REQUEST_FIELDS)? {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for r in rest.chunks_exact(REQUEST_FIELDS) {
        let [
            user,
            uid,
            gid,
            home,
            dash,
            ext,
            local,
            domain,
            sender,
            default_delivery,
            now,
        ] = r
        else {
            return None;
        };
        out.push(WorkerRequest {
            user,
            uid: number(uid)?,
            gid: number(gid)?,
            home,
            dash,
            ext,
            local,
            domain,
            sender,
            default_delivery,
            now: number(now)?,
        });
    }
    Some((message.as_slice(), out))
}

/// The first field of a request frame that carries several messages
/// ([`write_batch`]); a single-message frame starts with its count instead.
pub const BATCH_TAG: &[u8] = b"batch";

/// Writes one request frame carrying several messages, each with its deliveries:
///
/// ```text
/// "batch", messages, { count, message, { 11 fields } × count } × messages
/// ```
///
/// The worker answers with one frame holding every delivery's answer, in order, as for
/// [`write_requests`] (so the spawner expects the sum of the counts), and may commit all of
/// them together (one `syncfs` for a frame's maildir lines instead of two fsyncs each).
///
/// # Errors
/// I/O errors from `w`, or `InvalidInput` when a field exceeds the frame's limits.
pub fn write_batch(w: &mut dyn Write, batch: &[(&[u8], &[WorkerRequest<'_>])]) -> io::Result<()> {
    let numbers: Vec<(String, Vec<[String; 3]>)> = batch
        .iter()
        .map(|(_, requests)| {
            let n = requests.iter().map(numbers_of).collect();
            (requests.len().to_string(), n)
        })
        .collect();
    let messages = batch.len().to_string();
    let mut fields: Vec<&[u8]> = vec![BATCH_TAG, messages.as_bytes()];
    for ((message, requests), (count, n)) in batch.iter().zip(&numbers) {
        fields.push(count.as_bytes());
        fields.push(message);
        for (r, n) in requests.iter().zip(n) {
            push_request(&mut fields, r, n);
        }
    }
    frame::write(w, &fields)
}

/// One message of a request frame and its deliveries.
pub type MessageRequests<'a> = (&'a [u8], Vec<WorkerRequest<'a>>);

/// Decodes a request frame of either kind ([`write_requests`]' single message or
/// [`write_batch`]'s several) into its messages and their deliveries; `None` when a count
/// does not match the fields or a number is malformed.
pub fn decode_batch(fields: &[Vec<u8>]) -> Option<Vec<MessageRequests<'_>>> {
    let [tag, messages, rest @ ..] = fields else {
        return decode_requests(fields).map(|one| vec![one]);
    };
    let mut rest: &[Vec<u8>] = rest;
    if tag.as_slice() != BATCH_TAG {
        return decode_requests(fields).map(|one| vec![one]);
    }
    let messages: usize = number(messages)?;
    // Each message takes at least two fields: never believe a count the fields cannot hold.
    if messages > rest.len() / 2 {
        return None;
    }
    let mut out = Vec::with_capacity(messages);
    for _ in 0..messages {
        let count: usize = number(rest.first()?)?;
        let len = count.checked_mul(REQUEST_FIELDS)?.checked_add(2)?;
        if len > rest.len() {
            return None;
        }
        let (one, tail) = rest.split_at(len);
        out.push(decode_requests(one)?);
        rest = tail;
    }
    rest.is_empty().then_some(out)
}

/// Writes one answer frame.
///
/// # Errors
/// I/O errors from `w`.
pub fn write_answers(w: &mut dyn Write, answers: &[Answer]) -> io::Result<()> {
    let mut owned: Vec<Vec<u8>> = Vec::new();
    for (result, forward) in answers {
        let (letter, status) = match result {
            DeliveryResult::Delivered { .. } => (b"K", None),
            DeliveryResult::Failed { status, .. } => (b"D", *status),
            DeliveryResult::Deferred { status, .. } => (b"Z", *status),
            // A kind added later: tried again, never dropped.
            _ => (b"Z", None),
        };
        owned.push(letter.to_vec());
        owned.push(result.text().as_bytes().to_vec());
        owned.push(
            status
                .map(|s| s.to_string())
                .unwrap_or_default()
                .into_bytes(),
        );
        match forward {
            Some(f) => {
                owned.push((2 + f.recipients.len()).to_string().into_bytes());
                owned.push(f.sender.clone());
                owned.push(f.dtline.clone());
                owned.extend(f.recipients.iter().cloned());
            }
            None => owned.push(b"0".to_vec()),
        }
    }
    let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    frame::write(w, &refs)
}

/// The spawner's answer to a [`write_sync_request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncAnswer {
    /// Everything written to that file system before the request is durable.
    Synced,
    /// Not done: the worker syncs by itself (another file system than the spawner's, or
    /// the spawner does not share its syncs).
    NotShared,
    /// The sync failed (the text says why): what was written may not be durable.
    Failed(String),
}

/// Writes a worker's request that the spawner make the file system numbered `device`
/// (`st_dev`) durable, in the middle of a request.
///
/// # Errors
/// I/O errors from `w`.
pub fn write_sync_request(w: &mut dyn Write, device: u64) -> io::Result<()> {
    frame::write(w, &[b"sync", device.to_string().as_bytes()])
}

/// The file system a worker's frame asks the spawner to sync, or `None` when the frame is
/// not a sync request (it is then the answer frame).
pub fn decode_sync_request(fields: &[Vec<u8>]) -> Option<u64> {
    match fields {
        [tag, device] if tag.as_slice() == b"sync" => number(device),
        _ => None,
    }
}

/// Writes the spawner's answer to a sync request.
///
/// # Errors
/// I/O errors from `w`.
pub fn write_sync_answer(w: &mut dyn Write, answer: &SyncAnswer) -> io::Result<()> {
    match answer {
        SyncAnswer::Synced => frame::write(w, &[b"synced"]),
        SyncAnswer::NotShared => frame::write(w, &[b"no"]),
        SyncAnswer::Failed(text) => frame::write(w, &[b"failed", text.as_bytes()]),
    }
}

/// Decodes the spawner's answer to a sync request; `None` when malformed.
pub fn decode_sync_answer(fields: &[Vec<u8>]) -> Option<SyncAnswer> {
    match fields {
        [tag] if tag.as_slice() == b"synced" => Some(SyncAnswer::Synced),
        [tag] if tag.as_slice() == b"no" => Some(SyncAnswer::NotShared),
        [tag, text] if tag.as_slice() == b"failed" => Some(SyncAnswer::Failed(
            String::from_utf8_lossy(text).into_owned(),
        )),
        _ => None,
    }
}

/// Decodes an answer frame for `count` deliveries; `None` when it is malformed, short or
/// longer than `count` answers.
pub fn decode_answers(fields: Vec<Vec<u8>>, count: usize) -> Option<Vec<Answer>> {
    let mut it = fields.into_iter();
    let mut out = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let letter = it.next()?;
        let text = String::from_utf8_lossy(&it.next()?).into_owned();
        let status_field = it.next()?;
        let status = if status_field.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(&status_field).ok()?.parse().ok()?)
        };
        let n: usize = number(&it.next()?)?;
        let result = match letter.as_slice() {
            b"K" => DeliveryResult::Delivered { text },
            b"Z" => DeliveryResult::Deferred { text, status },
            b"D" => DeliveryResult::Failed { text, status },
            _ => return None,
        };
        let forward = match n {
            0 => None,
            1 => return None,
            _ => {
                let sender = it.next()?;
                let dtline = it.next()?;
                let recipients = (0..n - 2).map(|_| it.next()).collect::<Option<Vec<_>>>()?;
                Some(Forward {
                    recipients,
                    sender,
                    dtline,
                })
            }
        };
        out.push((result, forward));
    }
    it.next().is_none().then_some(out)
}

/// The request to the spawner that starts workers (qmail-lspawn's part, root): a worker for
/// the recipient whose local part is `local`, whose `.qmail` programs may run for at most
/// `timeout_secs`. The spawner resolves `local` itself (users/assign, then the alias
/// user): the requester never names the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnRequest<'a> {
    /// The recipient's local part.
    pub local: &'a [u8],
    /// `timeoutlocal`, seconds.
    pub timeout_secs: u64,
}

/// The spawner's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpawnAnswer {
    /// A worker runs with this uid and gid; from here on the connection speaks the worker
    /// protocol above.
    Started {
        /// Its uid.
        uid: u32,
        /// Its gid.
        gid: u32,
    },
    /// No worker: the deferral (or failure) text to report, qmail style (`... (#4.3.0)`).
    Refused(String),
}

/// Writes a [`SpawnRequest`] frame: `spawn`, the local part, the timeout in decimal.
///
/// # Errors
/// I/O errors from `w`.
pub fn write_spawn(w: &mut dyn Write, request: &SpawnRequest<'_>) -> io::Result<()> {
    let secs = request.timeout_secs.to_string();
    frame::write(w, &[b"spawn", request.local, secs.as_bytes()])
}

/// A [`SpawnRequest`] from a frame's fields; `None` unless exactly `spawn LOCAL SECS`.
pub fn decode_spawn(fields: &[Vec<u8>]) -> Option<SpawnRequest<'_>> {
    match fields {
        [verb, local, secs] if verb == b"spawn" => Some(SpawnRequest {
            local,
            timeout_secs: number(secs)?,
        }),
        _ => None,
    }
}

/// Writes a [`SpawnAnswer`] frame: `ok UID GID` or `refused TEXT`.
///
/// # Errors
/// I/O errors from `w`.
pub fn write_spawn_answer(w: &mut dyn Write, answer: &SpawnAnswer) -> io::Result<()> {
    match answer {
        SpawnAnswer::Started { uid, gid } => frame::write(
            w,
            &[
                b"ok",
                uid.to_string().as_bytes(),
                gid.to_string().as_bytes(),
            ],
        ),
        SpawnAnswer::Refused(text) => frame::write(w, &[b"refused", text.as_bytes()]),
    }
}

/// A [`SpawnAnswer`] from a frame's fields; `None` for anything else.
pub fn decode_spawn_answer(fields: &[Vec<u8>]) -> Option<SpawnAnswer> {
    match fields {
        [verb, uid, gid] if verb == b"ok" => Some(SpawnAnswer::Started {
            uid: number(uid)?,
            gid: number(gid)?,
        }),
        [verb, text] if verb == b"refused" => Some(SpawnAnswer::Refused(
            String::from_utf8_lossy(text).into_owned(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> Vec<Vec<u8>> {
        let mut buf = Vec::new();
        write(&mut buf).expect("write to a Vec");
        frame::read(&mut &buf[..])
            .expect("read")
            .expect("one frame")
    }

    #[test]
    fn answers_round_trip() {
        let answers = vec![
            (
                DeliveryResult::Failed {
                    text: "no (#5.1.1)".into(),
                    status: "5.1.1".parse().ok(),
                },
                None,
            ),
            (
                DeliveryResult::Delivered {
                    text: "did 0+1+0".into(),
                },
                Some(Forward {
                    sender: b"s@x".to_vec(),
                    dtline: b"Delivered-To: a@b\n".to_vec(),
                    recipients: vec![b"c@d".to_vec(), b"e@f".to_vec()],
                }),
            ),
        ];
        let fields = frame_of(|w| write_answers(w, &answers));
        assert_eq!(decode_answers(fields, 2), Some(answers));
    }

    #[test]
    fn sync_requests_and_answers_round_trip_and_never_pass_for_answers() {
        let f = frame_of(|w| write_sync_request(w, 2049));
        assert_eq!(decode_sync_request(&f), Some(2049));
        assert_eq!(decode_answers(f, 1), None, "a sync request is no answer");
        for a in [
            SyncAnswer::Synced,
            SyncAnswer::NotShared,
            SyncAnswer::Failed("EIO\r\n\0".into()),
        ] {
            let f = frame_of(|w| write_sync_answer(w, &a));
            assert_eq!(decode_sync_answer(&f), Some(a));
            assert_eq!(decode_sync_request(&f), None);
        }
        let answers = vec![(DeliveryResult::Delivered { text: "ok".into() }, None)];
        let f = frame_of(|w| write_answers(w, &answers));
        assert_eq!(
            decode_sync_request(&f),
            None,
            "an answer is no sync request"
        );
        assert_eq!(
            decode_sync_request(&[b"sync".to_vec(), b"x".to_vec()]),
            None
        );
        assert_eq!(
            decode_sync_answer(&[b"synced".to_vec(), b"".to_vec()]),
            None
        );
    }

    #[test]
    fn malformed_answers_are_refused() {
        let answer = |letter: &[u8], status: &[u8], n: &[u8]| {
            vec![letter.to_vec(), vec![], status.to_vec(), n.to_vec()]
        };
        assert!(
            decode_answers(answer(b"K", b"", b"0"), 2).is_none(),
            "short"
        );
        assert!(
            decode_answers(answer(b"X", b"", b"0"), 1).is_none(),
            "letter"
        );
        assert!(
            decode_answers(answer(b"K", b"", b"5"), 1).is_none(),
            "missing forward"
        );
        assert!(
            decode_answers(answer(b"K", b"", b"1"), 1).is_none(),
            "n = 1"
        );
        assert!(
            decode_answers(answer(b"K", b"", b"+0"), 1).is_none(),
            "sign"
        );
        assert!(
            decode_answers(answer(b"Z", b"9.9", b"0"), 1).is_none(),
            "status"
        );
        assert!(decode_answers(answer(b"K", b"", b"0"), 0).is_none(), "long");
        assert!(decode_answers(answer(b"K", b"", b"0"), 1).is_some());
    }

    #[test]
    fn requests_round_trip_and_counts_must_match() {
        let r = WorkerRequest {
            user: b"joe",
            uid: 1000,
            gid: 100,
            home: b"/home/joe",
            dash: b"-",
            ext: b"list",
            local: b"joe-list",
            domain: b"example.org",
            sender: b"",
            default_delivery: b"./Maildir/\n",
            now: -5,
        };
        let fields = frame_of(|w| write_requests(w, b"msg", &[r, r]));
        let (message, back) = decode_requests(&fields).expect("decodes");
        assert_eq!((message, back), (&b"msg"[..], vec![r, r]));
        let mut short = fields.clone();
        short.pop();
        assert!(decode_requests(&short).is_none());
        let mut bad = fields;
        bad[3] = b"x".to_vec(); // the first uid
        assert!(decode_requests(&bad).is_none());
    }

    #[test]
    fn batches_round_trip_and_single_frames_decode_as_one() {
        let r = WorkerRequest {
            user: b"joe",
            uid: 1000,
            gid: 100,
            home: b"/home/joe",
            dash: b"",
            ext: b"",
            local: b"joe",
            domain: b"example.org",
            sender: b"a@b",
            default_delivery: b"./Maildir/\n",
            now: 7,
        };
        let (one, two) = ([r], [r, r]);
        let batch: Vec<(&[u8], &[WorkerRequest<'_>])> =
            vec![(b"one", &one[..]), (b"two", &two[..]), (b"batch", &[][..])];
        let fields = frame_of(|w| write_batch(w, &batch));
        let back = decode_batch(&fields).expect("decodes");
        let want: Vec<MessageRequests<'_>> =
            batch.iter().map(|(m, rs)| (*m, rs.to_vec())).collect();
        assert_eq!(back, want);
        for cut in 1..fields.len() {
            assert!(decode_batch(&fields[..cut]).is_none(), "cut at {cut}");
        }
        let mut huge = fields.clone();
        huge[1] = b"99999999999".to_vec();
        assert!(decode_batch(&huge).is_none());
        let single = frame_of(|w| write_requests(w, b"msg", &[r]));
        assert_eq!(decode_batch(&single), Some(vec![(&b"msg"[..], vec![r])]));
    }

    #[test]
    fn spawn_requests_and_answers_round_trip_and_refuse_junk() {
        let r = SpawnRequest {
            local: b"joe-list",
            timeout_secs: 3600,
        };
        assert_eq!(decode_spawn(&frame_of(|w| write_spawn(w, &r))), Some(r));
        for a in [
            SpawnAnswer::Started {
                uid: 1000,
                gid: 100,
            },
            SpawnAnswer::Refused("Not allowed. (#4.3.0)".into()),
        ] {
            assert_eq!(
                decode_spawn_answer(&frame_of(|w| write_spawn_answer(w, &a))),
                Some(a)
            );
        }
        let f = |v: &[&[u8]]| v.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
        assert_eq!(decode_spawn(&f(&[b"spawn", b"joe"])), None);
        assert_eq!(decode_spawn(&f(&[b"spawn", b"joe", b"-1"])), None);
        assert_eq!(decode_spawn(&f(&[b"spawn", b"joe", b" 1"])), None);
        assert_eq!(decode_spawn_answer(&f(&[b"ok", b"4294967296", b"1"])), None);
        assert_eq!(decode_spawn_answer(&f(&[b"ok", b"x", b"1"])), None);
    }
}
