#![no_main]
//! qmail-inject's header/body split (`mta_core::header::inject`): never panics, every field
//! and the body end in LF (one CR before an LF is dropped, as qmail drops it; `\r\r\n`
//! keeps one CR), every field is a valid field or an `MBOX-Line:`, and reading the body in
//! small pieces gives the same bytes.
use std::io::{BufReader, Read};

use libfuzzer_sys::fuzz_target;
use mta_core::header::inject::{Body, Field, is_valid_field, read_header, split};

fuzz_target!(|data: &[u8]| {
    let (fields, body) = split(data);
    for f in &fields {
        assert!(f.ends_with(b"\n"));
        assert!(f.starts_with(b"MBOX-Line: ") || is_valid_field(f));
        let _ = Field::of(f);
    }
    assert!(body.is_empty() || body.ends_with(b"\n"));
    let mut r = data;
    let head = read_header(&mut r).expect("reading a slice cannot fail");
    assert_eq!(head.fields, fields);
    let mut small = head.separator;
    let mut b = Body::new(BufReader::with_capacity(3, r));
    let mut buf = [0u8; 2];
    loop {
        let n = b.read(&mut buf).expect("reading a slice cannot fail");
        if n == 0 {
            break;
        }
        small.extend_from_slice(&buf[..n]);
    }
    assert_eq!(small, body);
});
