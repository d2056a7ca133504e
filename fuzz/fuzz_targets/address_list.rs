#![no_main]
//! RFC 5322 address-list parser, strict and with qmail-inject's leniency: never panics,
//! error offsets stay in the input, and a parsed list renders to text that parses back to
//! the same value.
use libfuzzer_sys::fuzz_target;
use mta_core::address_list::{
    ParseOptions, QmailRewrite, parse_address_list, parse_header_mailbox, parse_mailbox_list,
};

fuzz_target!(|data: &[u8]| {
    let qmail = ParseOptions::qmail_inject(
        QmailRewrite::new("host", "example.org", "example.org")
            .with_percent_hack(vec!["relay.example".into()]),
    );
    for opts in [ParseOptions::strict(), qmail] {
        match parse_address_list(data, &opts) {
            Ok(list) => {
                let shown = list.to_string();
                if !shown.contains("<>") {
                    let again = parse_address_list(shown.as_bytes(), &ParseOptions::strict())
                        .expect("rendered list parses");
                    assert_eq!(again, list);
                }
            }
            Err(e) => assert!(e.offset <= data.len()),
        }
        let _ = parse_mailbox_list(data, &opts);
        let _ = parse_header_mailbox(data, &opts);
    }
});
