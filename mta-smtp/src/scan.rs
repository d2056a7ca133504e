//! Word-at-a-time byte search: the hot loop of DATA streaming.
//!
//! `find_line_byte` finds the first CR, LF or NUL in a slice eight bytes at a time with the
//! classic "has zero byte" bit trick (no `unsafe`, no per-byte branch), so the receivers
//! copy whole runs of ordinary text with one `extend_from_slice` per line.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of every byte of the result is set for each zero byte of `x`. Bytes above the
/// first zero byte may be flagged falsely (borrow), but the lowest flag is always exact.
#[inline]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// Index of the first `\r`, `\n` or NUL byte in `hay`.
#[inline]
pub(crate) fn find_line_byte(hay: &[u8]) -> Option<usize> {
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let w = u64::from_le_bytes(a);
        // Each mask's lowest flag is exact and no mask flags a byte below its own first
        // hit, so the lowest flag of the union is the first special byte.
        let m = zero_bytes(w ^ (LO * u64::from(b'\r')))
            | zero_bytes(w ^ (LO * u64::from(b'\n')))
            | zero_bytes(w);
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| matches!(b, b'\r' | b'\n' | 0))
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(h: &[u8]) -> Option<usize> {
        h.iter().position(|&b| matches!(b, b'\r' | b'\n' | 0))
    }

    #[test]
    fn finds_each_kind_at_each_offset() {
        for special in [b'\r', b'\n', 0u8] {
            for len in 0..40 {
                for at in 0..len {
                    let mut v = vec![b'x'; len];
                    v[at] = special;
                    assert_eq!(find_line_byte(&v), Some(at), "{special} {len} {at}");
                }
                assert_eq!(find_line_byte(&vec![b'a'; len]), None);
            }
        }
    }

    #[test]
    fn high_bytes_are_not_special() {
        let v: Vec<u8> = (0x80..=0xff).chain(0x0e..0x7f).collect();
        assert_eq!(find_line_byte(&v), None);
        // Bytes one above a target (borrow neighbours) are not special either.
        assert_eq!(
            find_line_byte(b"\x0b\x0e\x01\x0b\x0e\x01\x0b\x0e\x01\x0b\x0e\x01"),
            None
        );
    }

    proptest! {
        #[test]
        fn agrees_with_naive(v in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(find_line_byte(&v), naive(&v));
        }
    }
}
