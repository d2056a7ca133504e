#![no_main]
//! mta-core's HTTP request-head parser (the metrics endpoint): any bytes give a request or
//! an error without panicking; a complete request stays the same answer when more bytes
//! follow it, and a prefix of a complete request is never answered as a different one.
use libfuzzer_sys::fuzz_target;
use mta_core::http::{RequestError, parse_request};

fuzz_target!(|data: &[u8]| {
    let whole = parse_request(data);
    if let Ok(request) = whole {
        let mut more = data.to_vec();
        more.extend_from_slice(b"trailing body bytes\r\n");
        assert_eq!(parse_request(&more), Ok(request));
    }
    for n in 0..data.len().min(64) {
        match parse_request(&data[..n]) {
            Ok(r) => assert_eq!(Ok(r), whole, "a prefix answered differently"),
            Err(RequestError::Incomplete) => {}
            Err(_) => assert!(whole.is_err(), "junk prefix of a good request"),
        }
    }
});
