#![no_main]
//! RFC 5321 path parser: never panics, consumed length stays in bounds, and a parsed
//! mailbox's display form parses back to the same value.
use libfuzzer_sys::fuzz_target;
use mta_core::path::{
    ForwardPath, PathOptions, parse_forward_path, parse_mailbox, parse_reverse_path,
};

fuzz_target!(|data: &[u8]| {
    let Some((&flag, input)) = data.split_first() else {
        return;
    };
    let opts = PathOptions::with_smtputf8(flag & 1 == 1);
    if let Ok((p, n)) = parse_forward_path(input, opts) {
        assert!(n <= input.len());
        let shown = p.to_string();
        if let ForwardPath::Mailbox(_) = p {
            let (again, _) = parse_forward_path(shown.as_bytes(), opts).expect("display parses");
            assert_eq!(again, p);
        }
    }
    if let Ok((p, n)) = parse_reverse_path(input, opts) {
        assert!(n <= input.len());
        let (again, _) =
            parse_reverse_path(p.to_string().as_bytes(), opts).expect("display parses");
        assert_eq!(again, p);
    }
    if let Ok((_, n)) = parse_mailbox(input, opts) {
        assert!(n <= input.len());
    }
});
