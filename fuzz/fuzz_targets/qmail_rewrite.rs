#![no_main]
//! qmail-inject's token822 grammar and rewriting (`mta inject`'s header rewriting): never
//! panics, refolding only inserts line breaks after commas, and `Rewriter::rewrite_field`
//! and `rewrite_address` agree with the token functions they are built from.
use libfuzzer_sys::fuzz_target;
use mta_core::address_list::QmailRewrite;
use mta_core::address_list::token822::{
    LINE_LEN, quote_address, rewrite_list, tokenize, unparse, unquote,
};

fuzz_target!(|data: &[u8]| {
    let rw = QmailRewrite::new("host", "example.org", "plus.example")
        .token_rewriter()
        .expect("host values tokenise");
    // A command-line address, as `mta inject -f` and argument recipients take it.
    let by_hand = tokenize(&quote_address(data)).map(|mut t| {
        rw.rewrite(&mut t);
        unquote(&t)
    });
    assert_eq!(rw.rewrite_address(data), by_hand);
    // A header field.
    let whole = rw.rewrite_field(data);
    let Ok(tokens) = tokenize(data) else {
        assert!(whole.is_err());
        return;
    };
    let mut addrs = Vec::new();
    let Ok(out) = rewrite_list(&tokens, tokens.len().min(2), &mut |a| {
        rw.rewrite(a);
        addrs.push(unquote(a));
    }) else {
        assert!(whole.is_err());
        return;
    };
    addrs.reverse();
    let folded = unparse(&out, LINE_LEN);
    assert_eq!(folded.last(), Some(&b'\n'));
    let flat = unparse(&out, usize::MAX);
    let unfolded = String::from_utf8_lossy(&folded).replace(",\n ", ",");
    assert_eq!(unfolded, String::from_utf8_lossy(&flat));
    assert_eq!(whole, Ok((folded, addrs)));
});
