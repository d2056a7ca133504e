//! VERP round trips: named cases and properties.

use mta_core::Address;
use mta_verp::{Verp, VerpError, is_verp_request, sender_for_recipient, strip_verp_marker};
use proptest::prelude::*;

/// Bytes a local part may hold once unquoted into qmail's internal form, including the
/// troublesome ones: both VERP delimiters, the separator, `@`, quotes, backslash, space.
const LOCAL: &[u8] = b"abcXYZ019=-+@._\"\\ !#$%&'*/?^`{|}~";

fn local_part() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(LOCAL.to_vec()), 0..24)
}

fn label() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(b"abcxyz0189-".to_vec()), 1..12)
        .prop_map(|v| String::from_utf8(v).unwrap())
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(label(), 1..4).prop_map(|l| l.join(".")),
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("[{a}.{b}.{c}.{d}]")),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("[IPv6:2001:db8::{a:x}:{b:x}]")),
    ]
}

fn conventions() -> impl Strategy<Value = Verp> {
    prop_oneof![
        Just(Verp::QMAIL),
        Just(Verp::PLUS),
        Just(Verp::new(b'#', b'%').unwrap()),
        Just(Verp::new(b'.', b'+').unwrap()),
    ]
}

fn addr(local: &[u8], domain: &str) -> Address {
    Address::from_parts(local, domain.as_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// decode(encode(r)) == r for every recipient encode accepts, under every convention;
    /// encode refuses only recipients whose domain holds the separator.
    #[test]
    fn encode_decode_round_trip(
        verp in conventions(),
        list_local in local_part(),
        list_host in domain(),
        rbox in local_part(),
        rdomain in domain(),
    ) {
        let list = addr(&list_local, &list_host);
        let rcpt = addr(&rbox, &rdomain);
        match verp.encode(&list, &rcpt) {
            Ok(v) => {
                prop_assert_eq!(verp.decode(&list, &v), Ok(rcpt.clone()));
                // The host and prefix compare without case; the recipient keeps its case.
                let upper = Address::from_bytes(list.as_bytes().to_ascii_uppercase());
                let upper_v = {
                    let n = list_local.len();
                    let mut b = v.as_bytes().to_vec();
                    b[..n].make_ascii_uppercase();
                    let at = b.iter().rposition(|&c| c == b'@').unwrap();
                    b[at..].make_ascii_uppercase();
                    Address::from_bytes(b)
                };
                prop_assert_eq!(verp.decode(&upper, &upper_v), Ok(rcpt.clone()));
                // The extension alone (DEFAULT in .qmail-owner-default) decodes too.
                let local = v.local_part();
                prop_assert_eq!(verp.decode_extension(&local[list_local.len() + 1..]), Ok(rcpt));
            }
            Err(e) => {
                prop_assert_eq!(e, VerpError::SeparatorInDomain);
                prop_assert!(rdomain.as_bytes().contains(&verp.separator()));
            }
        }
    }

    /// The qmail scheduler path (request sender `L-@H-@[]`, then senderadd) produces the
    /// same address as encode, for both `=` conventions.
    #[test]
    fn scheduler_agrees_with_encode(
        plus in any::<bool>(),
        list_local in local_part(),
        list_host in domain(),
        rbox in local_part(),
        rdomain in domain(),
    ) {
        let verp = if plus { Verp::PLUS } else { Verp::QMAIL };
        let list = addr(&list_local, &list_host);
        let rcpt = addr(&rbox, &rdomain);
        let req = verp.request_sender(&list).unwrap();
        prop_assert!(is_verp_request(&req));
        prop_assert_eq!(sender_for_recipient(&req, &rcpt), verp.encode(&list, &rcpt).unwrap());
        // qmail-send's own bounce of the VERP message goes to `L-@H`.
        let mut expect = list_local.clone();
        expect.push(verp.delimiter());
        prop_assert_eq!(strip_verp_marker(&req), addr(&expect, &list_host));
    }

    /// Decoding arbitrary bytes never panics, and anything it accepts re-encodes to the input.
    #[test]
    fn decode_total(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let list = Address::from("list-owner@lists.example.org");
        let a = Address::from_bytes(bytes);
        if let Ok(r) = Verp::QMAIL.decode(&list, &a) {
            let back = Verp::QMAIL.encode(&list, &r).unwrap();
            prop_assert!(back.as_bytes().eq_ignore_ascii_case(a.as_bytes()));
        }
    }
}

#[test]
fn named_cases() {
    let list = Address::from("list-owner@lists.example.org");
    let cases = [
        (
            "a=b@example.com",
            "list-owner-a=b=example.com@lists.example.org",
        ),
        (
            "a-b-c@example.com",
            "list-owner-a-b-c=example.com@lists.example.org",
        ),
        (
            "user+tag@example.com",
            "list-owner-user+tag=example.com@lists.example.org",
        ),
        (
            "\"john doe\"@example.com",
            "list-owner-\"john doe\"=example.com@lists.example.org",
        ),
        (
            "john doe@example.com",
            "list-owner-john doe=example.com@lists.example.org",
        ),
        (
            "\"a@b\"@example.com",
            "list-owner-\"a@b\"=example.com@lists.example.org",
        ),
        (
            "postmaster@[192.0.2.1]",
            "list-owner-postmaster=[192.0.2.1]@lists.example.org",
        ),
        (
            "x@[IPv6:2001:db8::1]",
            "list-owner-x=[IPv6:2001:db8::1]@lists.example.org",
        ),
        (
            "=@example.com",
            "list-owner-==example.com@lists.example.org",
        ),
        ("@example.com", "list-owner-=example.com@lists.example.org"),
    ];
    for (rcpt, encoded) in cases {
        let r = Address::from(rcpt);
        let e = Verp::QMAIL.encode(&list, &r).unwrap();
        assert_eq!(e, Address::from(encoded), "{rcpt}");
        assert_eq!(Verp::QMAIL.decode(&list, &e).unwrap(), r, "{rcpt}");
    }
    let plus = Verp::PLUS
        .encode(
            &Address::from("list-bounces@example.org"),
            &Address::from("u-v=w@d.example"),
        )
        .unwrap();
    assert_eq!(
        plus,
        Address::from("list-bounces+u-v=w=d.example@example.org")
    );
}
