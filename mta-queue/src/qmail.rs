//! qmail-queue's envelope wire format, as an import/export codec (qmail-queue.8).
//!
//! A qmail-queue client writes the envelope on file descriptor 1:
//!
//! ```text
//! F<sender>\0 T<recipient>\0 ... T<recipient>\0 \0
//! ```
//!
//! one `F` record, zero or more `T` records, and one extra NUL that ends the envelope. A
//! client that closes the pipe before that final NUL cancels the message (qmail-queue exits
//! 54 and queues nothing). An address may hold at most 1002 bytes before its NUL (qmail-queue
//! exits 11 beyond that), and a record whose first byte is not the expected letter is an
//! envelope format error (exit 91). Addresses in this format cannot contain NUL, so
//! [`encode`] refuses them; the queue's own format has no such limit.
//!
//! ```
//! use mta_core::Envelope;
//! use mta_queue::qmail;
//! let env = Envelope::new("joe@example.com", ["a@example.org", "b@example.net"]);
//! let wire = qmail::encode(&env)?;
//! assert_eq!(wire, b"Fjoe@example.com\0Ta@example.org\0Tb@example.net\0\0");
//! assert_eq!(qmail::decode(&wire)?, (env, wire.len()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::{self, BufRead, Read};

use mta_core::{Address, Envelope};

/// The longest address qmail-queue accepts, in bytes before its NUL (`ADDR` = 1003 in
/// qmail-queue.c; the man page says "1000").
pub const MAX_ADDRESS_LEN: usize = 1002;

/// Why envelope bytes are not a valid qmail-queue envelope.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeQmailEnvelopeError {
    /// The input ended before the final NUL: the client cancelled (qmail-queue exit 54).
    Truncated,
    /// A record began with `found` where `F` (first) or `T` was required (exit 91).
    BadRecord {
        /// Byte offset of the record.
        offset: usize,
        /// The byte found there.
        found: u8,
    },
    /// An address longer than [`MAX_ADDRESS_LEN`] (exit 11).
    AddressTooLong {
        /// Byte offset of the record.
        offset: usize,
    },
    /// Reading the envelope failed (exit 54).
    Io(io::Error),
}

impl DecodeQmailEnvelopeError {
    /// The exit code qmail-queue uses for this error (qmail-queue.8): 54 for a read error or
    /// a cancelled envelope, 91 for a format error, 11 for an address too long.
    pub fn exit_code(&self) -> i32 {
        match self {
            DecodeQmailEnvelopeError::Truncated | DecodeQmailEnvelopeError::Io(_) => 54,
            DecodeQmailEnvelopeError::BadRecord { .. } => 91,
            DecodeQmailEnvelopeError::AddressTooLong { .. } => 11,
        }
    }
}

impl fmt::Display for DecodeQmailEnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeQmailEnvelopeError::Truncated => {
                f.write_str("envelope ended before its final NUL")
            }
            DecodeQmailEnvelopeError::BadRecord { offset, found } => {
                write!(
                    f,
                    "envelope format error: record at byte {offset} starts with 0x{found:02x}"
                )
            }
            DecodeQmailEnvelopeError::AddressTooLong { offset } => {
                write!(
                    f,
                    "address at byte {offset} is longer than {MAX_ADDRESS_LEN} bytes"
                )
            }
            DecodeQmailEnvelopeError::Io(_) => f.write_str("cannot read envelope"),
        }
    }
}

impl std::error::Error for DecodeQmailEnvelopeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeQmailEnvelopeError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// An envelope that the qmail-queue format cannot carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeQmailEnvelopeError {
    /// An address contains a NUL byte, which would end its record early.
    NulInAddress,
    /// An address is longer than [`MAX_ADDRESS_LEN`]; qmail-queue would refuse it.
    AddressTooLong,
}

impl fmt::Display for EncodeQmailEnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeQmailEnvelopeError::NulInAddress => f.write_str("address contains a NUL byte"),
            EncodeQmailEnvelopeError::AddressTooLong => {
                write!(f, "address is longer than {MAX_ADDRESS_LEN} bytes")
            }
        }
    }
}

impl std::error::Error for EncodeQmailEnvelopeError {}

/// Encodes `env` as qmail-queue reads it: `F<sender>\0`, `T<rcpt>\0` per recipient, `\0`.
///
/// # Errors
/// An address containing NUL or longer than [`MAX_ADDRESS_LEN`].
pub fn encode(env: &Envelope) -> Result<Vec<u8>, EncodeQmailEnvelopeError> {
    let mut out = Vec::with_capacity(
        3 + env.sender.len() + env.recipients.iter().map(|r| r.len() + 2).sum::<usize>(),
    );
    let mut record = |letter: u8, a: &Address| {
        if a.as_bytes().contains(&0) {
            return Err(EncodeQmailEnvelopeError::NulInAddress);
        }
        if a.len() > MAX_ADDRESS_LEN {
            return Err(EncodeQmailEnvelopeError::AddressTooLong);
        }
        out.push(letter);
        out.extend_from_slice(a.as_bytes());
        out.push(0);
        Ok(())
    };
    record(b'F', &env.sender)?;
    for r in &env.recipients {
        record(b'T', r)?;
    }
    out.push(0);
    Ok(out)
}

/// Decodes one envelope from the start of `bytes`, returning it and the number of bytes used
/// (through the final NUL). Bytes after the final NUL are left to the caller, as
/// qmail-queue never reads them.
///
/// # Errors
/// [`DecodeQmailEnvelopeError::Truncated`] if the final NUL is missing,
/// [`BadRecord`](DecodeQmailEnvelopeError::BadRecord) if a record has the wrong letter,
/// [`AddressTooLong`](DecodeQmailEnvelopeError::AddressTooLong) for an address over the limit.
pub fn decode(bytes: &[u8]) -> Result<(Envelope, usize), DecodeQmailEnvelopeError> {
    let mut cursor = bytes;
    let env = read_from(&mut cursor)?;
    Ok((env, bytes.len() - cursor.len()))
}

/// Reads one envelope from `input`, consuming exactly its bytes through the final NUL (so
/// the same reader can go on to something else). Memory use is bounded by the addresses'
/// length limit.
///
/// # Errors
/// As [`decode`], plus [`DecodeQmailEnvelopeError::Io`] when reading fails.
pub fn read_from(mut input: impl BufRead) -> Result<Envelope, DecodeQmailEnvelopeError> {
    let mut offset = 0;
    let mut sender = None;
    let mut recipients = Vec::new();
    loop {
        let mut letter = [0u8; 1];
        match input.read(&mut letter) {
            Ok(0) => return Err(DecodeQmailEnvelopeError::Truncated),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeQmailEnvelopeError::Io(e)),
        }
        let expected = if sender.is_none() { b'F' } else { b'T' };
        if sender.is_some() && letter[0] == 0 {
            return Ok(Envelope {
                sender: sender.unwrap_or_default(),
                recipients,
            });
        }
        if letter[0] != expected {
            return Err(DecodeQmailEnvelopeError::BadRecord {
                offset,
                found: letter[0],
            });
        }
        let mut addr = Vec::new();
        let limit = MAX_ADDRESS_LEN as u64 + 1;
        (&mut input)
            .take(limit)
            .read_until(0, &mut addr)
            .map_err(DecodeQmailEnvelopeError::Io)?;
        match addr.pop() {
            Some(0) => {}
            _ if addr.len() as u64 >= limit - 1 => {
                return Err(DecodeQmailEnvelopeError::AddressTooLong { offset });
            }
            _ => return Err(DecodeQmailEnvelopeError::Truncated),
        }
        offset += addr.len() + 2;
        let addr = Address::from_bytes(addr);
        if sender.is_none() {
            sender = Some(addr);
        } else {
            recipients.push(addr);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn zero_recipients_and_null_sender() {
        let (env, used) = decode(b"F\0\0trailing").unwrap();
        assert_eq!(env, Envelope::default());
        assert_eq!(used, 3);
    }

    #[test]
    fn errors_map_to_qmail_exit_codes() {
        assert_eq!(decode(b"").unwrap_err().exit_code(), 54);
        assert_eq!(decode(b"Fa@b\0Tc@d\0").unwrap_err().exit_code(), 54);
        assert_eq!(decode(b"Fa@b").unwrap_err().exit_code(), 54);
        assert_eq!(decode(b"Ta@b\0\0").unwrap_err().exit_code(), 91);
        assert_eq!(decode(b"Fa@b\0Xc\0\0").unwrap_err().exit_code(), 91);
        let mut long = b"F".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_ADDRESS_LEN));
        long.extend_from_slice(b"\0\0");
        assert!(decode(&long).is_ok());
        long.insert(1, b'a');
        assert_eq!(decode(&long).unwrap_err().exit_code(), 11);
    }

    #[test]
    fn encode_refuses_nul() {
        let env = Envelope::new("a@b", [&b"c\0d"[..]]);
        assert_eq!(encode(&env), Err(EncodeQmailEnvelopeError::NulInAddress));
    }
}
