#![no_main]
//! Header scanner (mta-verp): never panics, and feeding the input in two pieces (split at
//! a point taken from the first byte) gives the same result as feeding it whole.
use libfuzzer_sys::fuzz_target;
use mta_core::Address;
use mta_verp::{HeaderScanner, scan_header};

fuzz_target!(|data: &[u8]| {
    let me = Address::from("joe@example.com");
    let whole = scan_header(data, Some(&me));
    assert!(whole.header_len <= data.len());
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut s = HeaderScanner::new().watch_delivered_to(&me);
    if s.feed(&data[..cut]).is_none() {
        s.feed(&data[cut..]);
    }
    assert_eq!(s.finish(), whole);
});
