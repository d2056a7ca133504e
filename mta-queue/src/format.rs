//! The on-disk message file: a fixed header, the message bytes, the envelope section, then
//! an append-only log of status records.
//!
//! ```text
//! offset 0          header (32 bytes): "MTAQMSG2" | body_len u64 | meta_len u32 | nrcpt u32
//!                                       | body crc32 | crc32 of the previous 28 bytes
//! 32                message bytes (body_len)
//! 32 + body_len     envelope section (meta_len): birth secs i64 | birth nanos u32
//!                                       | sender len u32 | sender | nrcpt u32
//!                                       | (len u32 | recipient) * nrcpt | id u64
//!                                       | crc32 of all before
//! after that        status records, each: len u32 | index u32 | tag u8 | payload | crc32
//! ```
//!
//! Format 1 (`"MTAQMSG1"`, still read) has 0 where format 2 has the body's CRC and no `id`
//! in its envelope section. Format 2 lets a file be checked whole: a commit round links a
//! message's name before its data is durable (one `syncfs` for both), so after a power loss
//! a name may point at a file whose bytes did not all reach the disk, or, for a reused
//! file, still hold the previous message; the body's CRC and the id tell
//! (`Queue::open`'s check after a reboot, `verify.rs`).
//!
//! All integers are little-endian. Every variable-length field is length-prefixed, so no
//! byte an attacker puts in an address or a reply text (CR, LF, NUL, `T`, non-UTF-8) can be
//! read back as structure. Every section carries a CRC-32, so a torn status record at the
//! tail (a crash during [`Queue::mark`](crate::Queue::mark)) is recognised and ignored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mta_core::{Address, Envelope};

use crate::Status;

/// Length of the fixed header.
pub(crate) const HEADER_LEN: u64 = 32;
const MAGIC: &[u8; 8] = b"MTAQMSG1";
const MAGIC2: &[u8; 8] = b"MTAQMSG2";

/// Why bytes read from a message file were rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// Fewer bytes than a length field promised.
    Truncated,
    /// A magic number, checksum, count or time field is wrong.
    Invalid(&'static str),
    /// A field is too long for its length prefix (over 4 GiB).
    TooLarge,
}

impl FormatError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            FormatError::Truncated => "truncated",
            FormatError::Invalid(what) => what,
            FormatError::TooLarge => "field too large",
        }
    }
}

/// The fixed header of a message file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) body_len: u64,
    pub(crate) meta_len: u32,
    pub(crate) nrcpt: u32,
    /// Format 2: the CRC-32 of the message bytes (and the envelope section names the id);
    /// `None` for a format 1 file.
    pub(crate) body_crc: Option<u32>,
}

impl Header {
    /// Offset of the first status record.
    pub(crate) fn status_offset(&self) -> u64 {
        HEADER_LEN + self.body_len + u64::from(self.meta_len)
    }
}

pub(crate) fn encode_header(h: &Header) -> [u8; HEADER_LEN as usize] {
    let mut out = [0u8; HEADER_LEN as usize];
    out[..8].copy_from_slice(if h.body_crc.is_some() { MAGIC2 } else { MAGIC });
    out[8..16].copy_from_slice(&h.body_len.to_le_bytes());
    out[16..20].copy_from_slice(&h.meta_len.to_le_bytes());
    out[20..24].copy_from_slice(&h.nrcpt.to_le_bytes());
    out[24..28].copy_from_slice(&h.body_crc.unwrap_or(0).to_le_bytes());
    let crc = crc32(&out[..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    out
}

/// True when `bytes` start with format 2's magic: the file names its message (its id is in
/// the envelope section), so its contents can be told from another message's.
pub(crate) fn is_format2(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC2)
}

pub(crate) fn decode_header(bytes: &[u8]) -> Result<Header, FormatError> {
    let mut r = Reader(bytes);
    let all = r.take(HEADER_LEN as usize)?;
    let version2 = match &all[..8] {
        m if m == MAGIC => false,
        m if m == MAGIC2 => true,
        _ => return Err(FormatError::Invalid("bad magic")),
    };
    let mut r = Reader(&all[8..]);
    let body_len = r.u64()?;
    let meta_len = r.u32()?;
    let nrcpt = r.u32()?;
    let body_crc = r.u32()?;
    if (!version2 && body_crc != 0) || r.u32()? != crc32(&all[..28]) {
        return Err(FormatError::Invalid("bad header checksum"));
    }
    // Every offset computed from the header must fit in a u64.
    if body_len
        .checked_add(HEADER_LEN + u64::from(meta_len))
        .is_none()
    {
        return Err(FormatError::Invalid("message length out of range"));
    }
    Ok(Header {
        body_len,
        meta_len,
        nrcpt,
        body_crc: version2.then_some(body_crc),
    })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), FormatError> {
    let len = u32::try_from(b.len()).map_err(|_| FormatError::TooLarge)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn put_time(out: &mut Vec<u8>, t: SystemTime) {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            if d.subsec_nanos() == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    };
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&nanos.to_le_bytes());
}

/// Encodes the envelope section; its length goes into [`Header::meta_len`]. `id` is the
/// message's own id (format 2), `None` for format 1's section.
pub(crate) fn encode_meta(
    birth: SystemTime,
    env: &Envelope,
    id: Option<u64>,
) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(
        32 + env.sender.len() + env.recipients.iter().map(|r| r.len() + 4).sum::<usize>(),
    );
    put_time(&mut out, birth);
    put_bytes(&mut out, env.sender.as_bytes())?;
    let n = u32::try_from(env.recipients.len()).map_err(|_| FormatError::TooLarge)?;
    out.extend_from_slice(&n.to_le_bytes());
    for r in &env.recipients {
        put_bytes(&mut out, r.as_bytes())?;
    }
    if let Some(id) = id {
        out.extend_from_slice(&id.to_le_bytes());
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    u32::try_from(out.len()).map_err(|_| FormatError::TooLarge)?;
    Ok(out)
}

/// A decoded envelope section: birth time, envelope, and (format 2) the message's id.
pub(crate) type Meta = (SystemTime, Envelope, Option<u64>);

/// Decodes an envelope section of exactly `bytes.len()` bytes; `nrcpt` is the header's count,
/// `with_id` whether the file is format 2 (its section ends in the message's id).
pub(crate) fn decode_meta(bytes: &[u8], nrcpt: u32, with_id: bool) -> Result<Meta, FormatError> {
    let body_len = bytes.len().checked_sub(4).ok_or(FormatError::Truncated)?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32(body).to_le_bytes() != crc {
        return Err(FormatError::Invalid("bad envelope checksum"));
    }
    let mut r = Reader(body);
    let birth = r.time()?;
    let sender = Address::from_bytes(r.bytes()?);
    let n = r.u32()?;
    if n != nrcpt {
        return Err(FormatError::Invalid("recipient count mismatch"));
    }
    // Each recipient takes at least 4 bytes, so `n` is bounded by the input before allocating.
    if u64::from(n) * 4 > r.0.len() as u64 {
        return Err(FormatError::Truncated);
    }
    let mut recipients = Vec::with_capacity(n as usize);
    for _ in 0..n {
        recipients.push(Address::from_bytes(r.bytes()?));
    }
    let id = if with_id { Some(r.u64()?) } else { None };
    if !r.0.is_empty() {
        return Err(FormatError::Invalid("trailing bytes in envelope"));
    }
    Ok((birth, Envelope { sender, recipients }, id))
}

const TAG_PENDING: u8 = 0;
const TAG_DELIVERED: u8 = 1;
const TAG_FAILED: u8 = 2;
const TAG_DEFERRED: u8 = 3;

/// Appends one status record for recipient `index` to `out`.
pub(crate) fn encode_status(
    index: u32,
    status: &Status,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&index.to_le_bytes());
    match status {
        Status::Pending => out.push(TAG_PENDING),
        Status::Delivered => out.push(TAG_DELIVERED),
        Status::Failed(text) => {
            out.push(TAG_FAILED);
            out.extend_from_slice(text);
        }
        Status::Deferred {
            attempts,
            next_attempt,
            reason,
        } => {
            out.push(TAG_DEFERRED);
            out.extend_from_slice(&attempts.to_le_bytes());
            put_time(out, *next_attempt);
            // The reason runs to the end of the record (its length is the record's); a
            // record without one, as format version 1 wrote, decodes with an empty reason.
            out.extend_from_slice(reason);
        }
    }
    let Ok(len) = u32::try_from(out.len() - start - 4) else {
        out.truncate(start);
        return Err(FormatError::TooLarge);
    };
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decodes status records from the start of `bytes`, stopping at the first one that is
/// incomplete, fails its checksum or names a recipient `>= nrcpt` (a torn tail).
/// Returns the records and the length of the valid prefix.
pub(crate) fn decode_statuses(bytes: &[u8], nrcpt: u32) -> (Vec<(u32, Status)>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some((rec, used)) = decode_one_status(&bytes[pos..], nrcpt) {
        out.push(rec);
        pos += used;
    }
    (out, pos)
}

fn decode_one_status(bytes: &[u8], nrcpt: u32) -> Option<((u32, Status), usize)> {
    let mut r = Reader(bytes);
    let len = r.u32().ok()? as usize;
    let body = r.take(len).ok()?;
    let crc = r.u32().ok()?;
    if crc32(&bytes[..4 + len]) != crc {
        return None;
    }
    let mut r = Reader(body);
    let index = r.u32().ok()?;
    if index >= nrcpt {
        return None;
    }
    let status = match r.take(1).ok()?[0] {
        TAG_PENDING => Status::Pending,
        TAG_DELIVERED => Status::Delivered,
        TAG_FAILED => Status::Failed(std::mem::take(&mut r.0).to_vec()),
        TAG_DEFERRED => Status::Deferred {
            attempts: r.u32().ok()?,
            next_attempt: r.time().ok()?,
            reason: std::mem::take(&mut r.0).to_vec(),
        },
        _ => return None,
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(((index, status), len + 8))
}

/// A cursor that never panics: every read checks the remaining length first.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.0.len() {
            return Err(FormatError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        let lo = u64::from(self.u32()?);
        let hi = u64::from(self.u32()?);
        Ok(lo | (hi << 32))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, FormatError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn time(&mut self) -> Result<SystemTime, FormatError> {
        let secs = self.u64()? as i64;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(FormatError::Invalid("bad time"));
        }
        let t = if secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs.unsigned_abs()))
                .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        };
        t.ok_or(FormatError::Invalid("bad time"))
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

/// Continues a CRC-32: `crc32_update(crc32(a), b) == crc32(a ++ b)`, for data that arrives
/// in pieces (a message body during SMTP DATA). Computed by `crc32fast`, which uses the
/// CPU's carry-less multiply where it has one (every message byte passes through here
/// once at enqueue and again when a restart verifies the queue).
pub(crate) fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(data);
    h.finalize()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        for cut in 0..=9 {
            let (a, b) = b"123456789".split_at(cut);
            assert_eq!(crc32_update(crc32(a), b), 0xCBF4_3926, "split at {cut}");
        }
        // Long enough for the vectorised path, checked against Python's zlib.crc32 of the
        // same bytes, whole and cut at several offsets: queue files whose checksums the
        // byte-at-a-time code computed must still verify.
        let long: Vec<u8> = (0..100_000u32).map(|i| ((i * 7 + 3) % 256) as u8).collect();
        assert_eq!(crc32(&long), 0xF730_CAA8);
        for cut in [1, 15, 16, 63, 64, 65, 4095, 65_536, 99_999] {
            let (a, b) = long.split_at(cut);
            assert_eq!(crc32_update(crc32(a), b), 0xF730_CAA8, "split at {cut}");
        }
    }

    #[test]
    fn header_round_trip_and_corruption() {
        for body_crc in [None, Some(0x1234_5678)] {
            let h = Header {
                body_len: 12345,
                meta_len: 77,
                nrcpt: 3,
                body_crc,
            };
            let bytes = encode_header(&h);
            assert_eq!(decode_header(&bytes), Ok(h));
            for i in 0..bytes.len() {
                let mut bad = bytes;
                bad[i] ^= 0x40;
                assert!(decode_header(&bad).is_err(), "flip at {i}");
            }
        }
        let h = Header {
            body_len: 12345,
            meta_len: 77,
            nrcpt: 3,
            body_crc: None,
        };
        let bytes = encode_header(&h);
        assert_eq!(decode_header(&bytes[..31]), Err(FormatError::Truncated));
        let huge = encode_header(&Header {
            body_len: u64::MAX - 40,
            meta_len: 9,
            nrcpt: 0,
            body_crc: None,
        });
        assert!(decode_header(&huge).is_err());
    }

    #[test]
    fn meta_round_trip_with_hostile_bytes() {
        let env = Envelope::new(&b"a\0b\r\nT@x"[..], [&b"\xff\xfe@\0"[..], b"", b"F"]);
        let birth = UNIX_EPOCH + Duration::new(1_764_389_285, 123);
        let m = encode_meta(birth, &env, None).unwrap();
        assert_eq!(decode_meta(&m, 3, false), Ok((birth, env.clone(), None)));
        assert!(decode_meta(&m, 2, false).is_err());
        assert!(decode_meta(&m, 3, true).is_err(), "format 1 read as 2");
        assert!(decode_meta(&m[..m.len() - 1], 3, false).is_err());
        let before = UNIX_EPOCH - Duration::new(5, 7);
        let m = encode_meta(before, &env, None).unwrap();
        assert_eq!(decode_meta(&m, 3, false).unwrap().0, before);
        let m = encode_meta(birth, &env, Some(u64::MAX - 1)).unwrap();
        assert_eq!(
            decode_meta(&m, 3, true),
            Ok((birth, env.clone(), Some(u64::MAX - 1)))
        );
        assert!(decode_meta(&m, 3, false).is_err(), "format 2 read as 1");
    }

    #[test]
    fn torn_status_tail_is_ignored() {
        let mut log = Vec::new();
        encode_status(0, &Status::Delivered, &mut log).unwrap();
        let next = UNIX_EPOCH + Duration::from_secs(400);
        encode_status(
            1,
            &Status::Deferred {
                attempts: 2,
                next_attempt: next,
                reason: b"451 try later\r\n\0".to_vec(),
            },
            &mut log,
        )
        .unwrap();
        let full = log.len();
        encode_status(1, &Status::Failed(b"550 no\r\n\0".to_vec()), &mut log).unwrap();
        let (recs, used) = decode_statuses(&log, 2);
        assert_eq!(recs.len(), 3);
        assert_eq!(used, log.len());
        for cut in full..log.len() {
            let (recs, used) = decode_statuses(&log[..cut], 2);
            assert_eq!((recs.len(), used), (2, full), "cut at {cut}");
        }
        // An index beyond the recipient count is rejected, not trusted.
        assert_eq!(decode_statuses(&log, 1).0.len(), 1);
    }
}
