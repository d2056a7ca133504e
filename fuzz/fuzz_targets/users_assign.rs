#![no_main]
//! users/assign parser: never panics; in every accepted file each exact key resolves (in
//! any case, to the same entry) and each wildcard prefix resolves the addresses under it.
use libfuzzer_sys::fuzz_target;
use mta_dotqmail::UsersAssign;

fuzz_target!(|data: &[u8]| {
    let Ok(assign) = UsersAssign::parse(data) else {
        return;
    };
    for line in data.split(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            break;
        }
        // invariant: an accepted file has a key and a colon on every line before the `.`.
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .expect("accepted line has a key");
        let key = &line[1..colon];
        if line[0] == b'+' {
            let mut under = key.to_vec();
            under.extend_from_slice(b"-Tail");
            assert!(
                assign.lookup(&under).is_some(),
                "wildcard does not cover its addresses"
            );
        } else {
            let lower = assign
                .lookup(&key.to_ascii_lowercase())
                .expect("exact key resolves");
            let upper = assign
                .lookup(&key.to_ascii_uppercase())
                .expect("exact key resolves");
            assert_eq!(lower.account(), upper.account());
        }
    }
});
