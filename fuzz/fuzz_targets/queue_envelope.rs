#![no_main]
//! Fuzzes mta-queue's decoders: the message-file header and envelope section, the status
//! record log, and the qmail-queue `F`/`T` envelope codec. Whatever decodes must re-encode to
//! the same bytes; nothing may panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mta_queue::fuzzing::decode_all(data);
});
