#![no_main]
//! mta-sched's control protocol (`mta queue ...` to a running server): any bytes decode to
//! a request or an error without panicking, and every decoded request encodes back to
//! bytes that decode to the same request. Replies too.
use libfuzzer_sys::fuzz_target;
use mta_sched::control;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = control::decode_request(data) {
        let again = control::encode_request(&request);
        assert_eq!(control::decode_request(&again), Ok(request));
    }
    if let Some((ok, text)) = control::decode_reply(data) {
        assert_eq!(control::encode_reply(ok, text), data);
    }
});
