#![no_main]
//! mta-queue's submission protocol (SMTP process → queue process) and remote link (queue
//! process ↔ remote process): any bytes read as frames
//! decode to requests or replies, or to `None`, without panicking; whatever decodes encodes
//! back to the same value. The queue side also serves the raw bytes as a connection
//! against an in-memory queue: it never panics, and commits only what a well-formed
//! `begin`/`data`/`commit` sequence asked for.
use libfuzzer_sys::fuzz_target;
use mta_core::frame;
use mta_queue::{rspawn, submit};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Ok(Some(fields)) = frame::read_limited(&mut input, submit::MAX_REQUEST) {
        if let Some(request) = submit::decode_request(fields.clone()) {
            assert_eq!(
                submit::decode_request(submit::encode_request(&request)),
                Some(request)
            );
        }
        if let Some(reply) = submit::decode_reply(&fields) {
            assert_eq!(submit::decode_reply(&submit::encode_reply(&reply)), Some(reply));
        }
        // The queue ↔ remote link too.
        if let Some(request) = rspawn::decode_request(&fields) {
            assert_eq!(
                rspawn::decode_request(&rspawn::encode_request(&request)),
                Some(request)
            );
        }
        if let [_, job, packed] = fields.as_slice() {
            let job = std::str::from_utf8(job).ok().and_then(|j| j.parse().ok());
            let n = frame::unpack(packed).map(|v| v.len());
            if let (Some(job), Some(n)) = (job, n)
                && let Some(results) = rspawn::decode_results(&fields, job, n)
            {
                let again = rspawn::encode_results(job, &results);
                assert_eq!(rspawn::decode_results(&again, job, n), Some(results));
            }
        }
    }
    let fs = mta_queue::sim::SimFs::new();
    let options = mta_queue::QueueOptions::default().split(4);
    if let Ok(queue) = mta_queue::Queue::open_with(fs, options) {
        let mut out = Vec::new();
        let mut committed = 0usize;
        let _ = submit::serve(&queue, data, &mut out, |_| committed += 1);
        assert_eq!(queue.scan().map(|ids| ids.len()).unwrap_or(0), committed);
    }
});
