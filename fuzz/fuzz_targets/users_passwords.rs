#![no_main]
//! users/passwords parser: never panics; every accepted file renders back (`mta passwd`'s
//! rewrite) to a file that parses to the same entries, with the changed hash in place.
use libfuzzer_sys::fuzz_target;
use mta_core::control::Passwords;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Passwords::parse(text, "passwords") else {
        return;
    };
    let login = p.entries().first().map_or("new", |e| e.login.as_str()).to_owned();
    let again = p.render_with(&login, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA");
    // invariant: render_with writes only what parse accepted, plus a valid hash.
    let back = Passwords::parse(&again, "passwords").expect("rendered file parses");
    assert_eq!(
        back.get(&login).map(|e| e.hash.as_str()),
        Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA")
    );
    for e in p.entries() {
        let b = back.get(&e.login).expect("every login kept");
        assert_eq!(b.senders, e.senders);
    }
});
