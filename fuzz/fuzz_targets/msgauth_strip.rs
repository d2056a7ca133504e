#![no_main]
//! Authentication-Results removal (RFC 8601 §5) and key-file names: never panics, only
//! removes bytes, leaves a message it did not change borrowed, and a second pass removes
//! nothing more.
use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use mta_msgauth::{fuzz_names, remove_auth_results};

fuzz_target!(|data: &[u8]| {
    let (&n, rest) = data.split_first().unwrap_or((&0, &[]));
    let n = usize::from(n % 32).min(rest.len());
    let (id, message) = rest.split_at(n);
    let id = String::from_utf8_lossy(id);
    let once = remove_auth_results(message, &id);
    assert!(once.len() <= message.len());
    if let Cow::Borrowed(b) = &once {
        assert_eq!(*b, message);
    }
    let twice = remove_auth_results(&once, &id);
    assert_eq!(&*twice, &*once);
    fuzz_names(&String::from_utf8_lossy(message));
});
