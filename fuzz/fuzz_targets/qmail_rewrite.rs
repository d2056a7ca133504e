#![no_main]
//! qmail-inject's token822 grammar and rewriting (`mta inject`'s header rewriting): never
//! panics, refolding only inserts line breaks after commas, and every address the callback
//! sees can be printed back.
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
    if let Ok(mut t) = tokenize(&quote_address(data)) {
        rw.rewrite(&mut t);
        let _ = unquote(&t);
    }
    let Ok(tokens) = tokenize(data) else { return };
    let Ok(out) = rewrite_list(&tokens, tokens.len().min(2), &mut |a| {
        rw.rewrite(a);
        let _ = unquote(a);
    }) else {
        return;
    };
    let folded = unparse(&out, LINE_LEN);
    assert_eq!(folded.last(), Some(&b'\n'));
    let flat = unparse(&out, usize::MAX);
    let unfolded = String::from_utf8_lossy(&folded).replace(",\n ", ",");
    assert_eq!(unfolded, String::from_utf8_lossy(&flat));
});
