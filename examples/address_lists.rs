//! Parse and rewrite header address lists with mta-core: strict RFC 5322, and
//! qmail-inject's rules (qmail-reference §7.1).
//!
//! ```text
//! cargo run --example address_lists
//! ```

use mta::core::address_list::token822::{self, LINE_LEN};
use mta::core::address_list::{ParseOptions, QmailRewrite, parse_address_list};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Strict RFC 5322 §3.4: display names, comments, groups.
    let to = b"Mary Smith <mary@x.test>, team: a@y.test, \"Bob (the) Builder\" <bob@y.test>;";
    let list = parse_address_list(to, &ParseOptions::strict())?;
    let rcpts: Vec<String> = list
        .mailboxes()
        .map(|m| m.to_address().to_string())
        .collect();
    println!("strict:   {rcpts:?}");
    assert_eq!(rcpts, ["mary@x.test", "a@y.test", "bob@y.test"]);
    println!("canonical: {list}");

    // A bare name is not an address in RFC 5322 ...
    assert!(parse_address_list(b"djb fred@host+", &ParseOptions::strict()).is_err());

    // ... but qmail-inject accepts it: words without commas are separate addresses, a bare
    // name gets @defaulthost, a host without a dot gets .defaultdomain, a trailing `+`
    // becomes .plusdomain.
    let rules = QmailRewrite::new("mx.example.org", "example.org", "plus.example.org");
    let list = parse_address_list(
        b"djb fred@host+",
        &ParseOptions::qmail_inject(rules.clone()),
    )?;
    let rcpts: Vec<String> = list
        .mailboxes()
        .map(|m| m.to_address().to_string())
        .collect();
    println!("qmail:    {rcpts:?}");
    assert_eq!(rcpts, ["djb@mx.example.org", "fred@host.plus.example.org"]);

    // The same rules at the token level give back the header field exactly as
    // qmail-inject prints it (what `mta inject` writes), refolded at 80 columns.
    let rewriter = rules.token_rewriter()?;
    let field = b"To: djb fred@host+, Joe (work) <joe@sub>";
    let tokens = token822::tokenize(field)?;
    let mut envelope = Vec::new();
    let out = token822::rewrite_list(&tokens, 2, &mut |addr| {
        rewriter.rewrite(addr);
        envelope.push(String::from_utf8_lossy(&token822::unquote(addr)).into_owned());
    })?;
    let out = String::from_utf8(token822::unparse(&out, LINE_LEN))?;
    print!("header:\n{out}");
    assert_eq!(
        out,
        "To: djb@mx.example.org, fred@host.plus.example.org,\n  Joe (work) <joe@sub.example.org>\n"
    );
    // The callback sees the addresses right to left, as qmail's parser walks them.
    envelope.reverse();
    println!("envelope: {envelope:?}");
    assert_eq!(
        envelope,
        [
            "djb@mx.example.org",
            "fred@host.plus.example.org",
            "joe@sub.example.org"
        ]
    );
    println!("ok");
    Ok(())
}
