//! Length-prefixed frames for the pipe between mta-daemon and its per-user delivery
//! workers (our qmail-lspawn ↔ qmail-local link), or any local pipe between processes that
//! do not trust each other.
//!
//! A frame is a 4-byte big-endian field count, then per field a 4-byte big-endian length
//! and the bytes. Nothing is parsed by delimiter, so no byte an attacker put into an address
//! or message can be read back as framing (the lesson of qmail's NUL records, made
//! length-explicit). Sizes are capped: a frame larger than [`MAX_FRAME`] is an error.

use std::io::{self, Read, Write};

/// The largest frame accepted: the 50 MB default databytes plus headroom. A message bigger
/// than `databytes` never reaches the queue, so this only bounds a corrupt stream.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Writes one frame holding `fields`.
///
/// # Errors
/// I/O errors from `w`, or `InvalidInput` when a field is larger than `u32::MAX`.
pub fn write(w: &mut dyn Write, fields: &[&[u8]]) -> io::Result<()> {
    // One buffer, one write: a pipe round trip per delivery, not one per field.
    let body: usize = fields.iter().map(|f| f.len()).sum();
    let mut buf = Vec::with_capacity(4 + 4 * fields.len() + body);
    let n = u32::try_from(fields.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    buf.extend_from_slice(&n.to_be_bytes());
    for f in fields {
        let len = u32::try_from(f.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        buf.extend_from_slice(&len.to_be_bytes());
    }
    for f in fields {
        buf.extend_from_slice(f);
    }
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one frame. Returns `Ok(None)` on a clean end of stream before a frame starts.
///
/// # Errors
/// I/O errors, a truncated frame (`UnexpectedEof`) or one over [`MAX_FRAME`]
/// (`InvalidData`).
pub fn read(r: &mut dyn Read) -> io::Result<Option<Vec<Vec<u8>>>> {
    read_limited(r, MAX_FRAME)
}

/// [`read`] with a smaller cap: a frame whose fields add up to more than `max` bytes is an
/// error (`InvalidData`) before anything of that size is allocated. For a reader that
/// expects only small frames from a peer it does not trust.
///
/// # Errors
/// As [`read`].
pub fn read_limited(r: &mut dyn Read, max: usize) -> io::Result<Option<Vec<Vec<u8>>>> {
    let max = max.min(MAX_FRAME);
    let mut n = [0u8; 4];
    match r.read(&mut n[..1])? {
        0 => return Ok(None),
        _ => r.read_exact(&mut n[1..])?,
    }
    let count = u32::from_be_bytes(n) as usize;
    if count > 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many fields",
        ));
    }
    let mut lens = Vec::with_capacity(count);
    let mut total = 0usize;
    for _ in 0..count {
        r.read_exact(&mut n)?;
        let len = u32::from_be_bytes(n) as usize;
        total = total
            .checked_add(len)
            .filter(|&t| t <= max)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
        lens.push(len);
    }
    let mut fields = Vec::with_capacity(count);
    for len in lens {
        let mut f = vec![0u8; len];
        r.read_exact(&mut f)?;
        fields.push(f);
    }
    Ok(Some(fields))
}

/// Packs a list into one field: per item a 4-byte big-endian length and the bytes. For
/// lists that may be longer than a frame's field limit (a message's recipients).
///
/// # Panics
/// Never for items under 4 GiB; a longer item is cut at `u32::MAX` bytes' length marker.
pub fn pack<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        let len = u32::try_from(item.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&item[..len as usize]);
    }
    out
}

/// The items of a [`pack`]ed field; `None` when a length runs past the end.
pub fn unpack(mut field: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !field.is_empty() {
        let (len, rest) = field.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (item, rest) = rest.split_at(len);
        out.push(item.to_vec());
        field = rest;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn packed_lists_round_trip_and_truncation_is_refused() {
        let items: [&[u8]; 4] = [b"", b"a@b", &[0u8; 300], b"\xff"];
        let packed = pack(items);
        assert_eq!(unpack(&packed).unwrap(), items.map(<[u8]>::to_vec));
        assert_eq!(unpack(b"").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(unpack(&packed[..packed.len() - 1]), None);
        assert_eq!(unpack(&[0, 0, 0]), None);
    }

    use super::*;

    #[test]
    fn round_trip_any_bytes() {
        let mut buf = Vec::new();
        write(&mut buf, &[b"", b"a\0b\r\n", &[0xff; 300]]).unwrap();
        write(&mut buf, &[b"x"]).unwrap();
        let mut r = &buf[..];
        let f = read(&mut r).unwrap().unwrap();
        assert_eq!(f, vec![b"".to_vec(), b"a\0b\r\n".to_vec(), vec![0xff; 300]]);
        assert_eq!(read(&mut r).unwrap().unwrap(), vec![b"x".to_vec()]);
        assert!(read(&mut r).unwrap().is_none());
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let mut buf = Vec::new();
        write(&mut buf, &[b"hello"]).unwrap();
        assert!(read(&mut &buf[..buf.len() - 1]).is_err());
        let mut big = Vec::new();
        big.extend_from_slice(&1u32.to_be_bytes());
        big.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read(&mut &big[..]).is_err());
    }
}
