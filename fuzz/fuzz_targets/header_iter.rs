#![no_main]
//! Header-field iterator: never panics, fields tile the header without gaps, the body
//! offset lies after the last field, and unfolding never grows a value; qmail-queue's
//! trace line parses back to what it was written from.
use libfuzzer_sys::fuzz_target;
use mta_core::header;

fuzz_target!(|data: &[u8]| {
    let mut it = header::fields(data);
    let mut end = 0;
    for f in it.by_ref() {
        assert_eq!(f.offset(), end);
        end += f.raw().len();
        assert!(f.unfolded_value().len() <= f.value().len());
        assert!(!f.name().is_empty());
    }
    let body = it.body_offset();
    assert!(body >= end && body <= data.len());
    let _ = header::hop_count(data);
    let _ = header::submission(data);
    // qmail-queue's trace line: what parses writes back to a line that parses the same.
    if let Some((qp, invoker)) = header::parse_received_queue(data) {
        let line = header::received_queue(qp, invoker, 0);
        assert_eq!(header::parse_received_queue(&line), Some((qp, invoker)));
    }
});
