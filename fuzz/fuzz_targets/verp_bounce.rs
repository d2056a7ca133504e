#![no_main]
//! Bounce parsing (mta-verp): arbitrary bytes must never panic; anything accepted names at
//! least one recipient. The same input is also tried as a VERP return path.
use libfuzzer_sys::fuzz_target;
use mta_core::Address;
use mta_verp::{Verp, parse_bounce};

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = parse_bounce(data) {
        assert!(!b.recipients.is_empty());
    }
    let list = Address::from("list-owner@lists.example.org");
    if let Ok(r) = Verp::QMAIL.decode(&list, &Address::from(data)) {
        let back = Verp::QMAIL.encode(&list, &r).expect("decoded recipient re-encodes");
        assert!(back.as_bytes().eq_ignore_ascii_case(data));
    }
});
