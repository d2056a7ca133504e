#![no_main]
//! Control-file parsing: the first byte picks a file name, the rest is its contents (and
//! doubles as resolv.conf text). Loading never panics, an error names the chosen file
//! with a line inside the text, and the lookups run on whatever loaded.
use libfuzzer_sys::fuzz_target;
use mta_core::Address;
use mta_core::control::Control;

const NAMES: [&str; 30] = [
    "me",
    "accounts",
    "locals",
    "rcpthosts",
    "morercpthosts",
    "virtualdomains",
    "smtproutes",
    "badmailfrom",
    "percenthack",
    "listen",
    "relayclients",
    "dnsservers",
    "acceptunknown",
    "concurrencylocal",
    "concurrencyremote",
    "concurrencyincoming",
    "concurrencyperip",
    "maxrcpt",
    "maxerrors",
    "mindatarate",
    "timeoutlocal",
    "tlsdestinations",
    "smtpauth",
    "checkpassword",
    "authfailmax",
    "databytes",
    "queuelifetime",
    "timeoutsmtpd",
    "bouncehost",
    "helohost",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, contents)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let resolv = String::from_utf8_lossy(contents);
    let rcpt: &[u8] = b"example.com\n.example.net\n";
    match Control::from_texts([(name, contents), ("rcpthosts", rcpt)], &resolv) {
        Ok(c) => {
            let a = Address::from_bytes(contents.to_vec());
            let _ = c.rcpt_allowed(&a);
            let _ = c.badmailfrom_matches(&a);
            let _ = c.virtual_rewrite(&a);
            let _ = c.smtp_route(&resolv);
        }
        Err(e) => {
            assert_eq!(e.path.to_str(), Some(name));
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= contents.split(|&b| b == b'\n').count());
            }
        }
    }
});
