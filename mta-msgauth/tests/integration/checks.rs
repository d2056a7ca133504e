//! SPF, DKIM and DMARC results from records in the fake DNS server, each as seen in the
//! Authentication-Results header; forged headers; a server that never answers.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use mta_msgauth::{
    BlockingVerifier, DkimResult, DmarcPolicy, DmarcResult, KeyKind, SpfIdentity, SpfResult,
    Verifier, VerifierConfig, remove_auth_results,
};

use crate::dns::{FakeDns, Zone, localhost};
use crate::{key_dir, message, message_from, sign, verifier};

const ME: &str = "mx.example.org";

fn spf_zone() -> Zone {
    let mut z = Zone::new();
    z.txt("pass.example", "v=spf1 ip4:127.0.0.0/8 -all")
        .txt("fail.example", "v=spf1 ip4:192.0.2.1 -all")
        .txt("soft.example", "v=spf1 ip4:192.0.2.1 ~all")
        .txt("neutral.example", "v=spf1 ?all")
        // RFC 7208 §5.2: an include: target without a record is a permerror
        .txt("perm.example", "v=spf1 include:nospf.example -all")
        .txt("viaa.example", "v=spf1 a:host.viaa.example -all")
        .a("host.viaa.example", [127, 0, 0, 1])
        .txt("viamx.example", "v=spf1 mx -all")
        .mx("viamx.example", 10, "mx.viamx.example")
        .a("mx.viamx.example", [127, 0, 0, 1])
        .txt("helo.example", "v=spf1 ip4:127.0.0.1 -all")
        .a("none.example", [192, 0, 2, 7])
        .servfail("temp.example");
    z
}

#[test]
fn spf_results() {
    let dns = FakeDns::start(spf_zone());
    let v = verifier(&dns);
    let ip = localhost();
    for (sender, want) in [
        ("a@pass.example", SpfResult::Pass),
        ("a@viaa.example", SpfResult::Pass),
        ("a@viamx.example", SpfResult::Pass),
        ("a@fail.example", SpfResult::Fail),
        ("a@soft.example", SpfResult::SoftFail),
        ("a@neutral.example", SpfResult::Neutral),
        ("a@none.example", SpfResult::None),
        ("a@nxdomain.example", SpfResult::None),
        ("a@temp.example", SpfResult::TempError),
        ("a@perm.example", SpfResult::PermError),
    ] {
        let spf = v.check_spf(ip, "client.example", sender);
        assert_eq!(spf.result(), want, "{sender}");
        assert_eq!(spf.identity(), SpfIdentity::MailFrom);
        assert_eq!(spf.is_fail(), want == SpfResult::Fail);
        let h = v.check_message(&spf, &message()).header(ME);
        assert!(
            h.contains(&format!("spf={want} smtp.mailfrom={sender};")),
            "{sender}: {h}"
        );
    }
    // a different client IP fails where 127/8 passed
    let spf = v.check_spf(
        IpAddr::from([198, 51, 100, 1]),
        "x.example",
        "a@pass.example",
    );
    assert_eq!(spf.result(), SpfResult::Fail);
}

#[test]
fn spf_null_sender_checks_helo() {
    let dns = FakeDns::start(spf_zone());
    let v = verifier(&dns);
    let spf = v.check_spf(localhost(), "helo.example", "");
    assert_eq!(
        (spf.result(), spf.identity()),
        (SpfResult::Pass, SpfIdentity::Helo)
    );
    let h = v.check_message(&spf, &message()).header(ME);
    assert!(h.contains("spf=pass smtp.helo=helo.example;"), "{h}");
    // an address literal or a single label is not checkable: none, without a query
    let before = dns.queries.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        v.check_spf(localhost(), "[127.0.0.1]", "").result(),
        SpfResult::None
    );
    assert_eq!(
        v.check_spf(localhost(), "localhost", "").result(),
        SpfResult::None
    );
    assert_eq!(
        dns.queries.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
}

/// A zone with DKIM records for the keys, SPF for example.com allowing 127.0.0.1, and a
/// DMARC record.
fn zone_with(records: &[(String, String, mta_msgauth::PrivateKeyPem)], dmarc: &str) -> Zone {
    let mut z = Zone::new();
    for (name, text, _) in records {
        z.txt(name, text);
    }
    z.txt("example.com", "v=spf1 ip4:127.0.0.1 -all")
        .txt("bounces.example.com", "v=spf1 ip4:127.0.0.1 -all")
        .txt("other.example", "v=spf1 ip4:127.0.0.1 -all");
    if !dmarc.is_empty() {
        z.txt("_dmarc.example.com", dmarc);
    }
    z
}

#[test]
fn dkim_pass_fail_none() {
    let (dir, records) = key_dir(&[
        ("example.com", "rsa", KeyKind::default()),
        ("example.com", "ed", KeyKind::Ed25519),
    ]);
    let dns = FakeDns::start(zone_with(&records, ""));
    let v = verifier(&dns);
    let signed = sign(dir.path(), &message());

    let r = v.check(localhost(), "client.example", "", &signed);
    let got: Vec<_> = r
        .dkim()
        .iter()
        .map(|d| (d.result(), d.selector()))
        .collect();
    // the signer writes selectors in name order: ed, then rsa
    assert_eq!(got, [(DkimResult::Pass, "ed"), (DkimResult::Pass, "rsa")]);
    let h = r.header(ME);
    assert!(
        h.contains("dkim=pass header.d=example.com header.s=ed header.a=ed25519-sha256;"),
        "{h}"
    );
    assert!(
        h.contains("dkim=pass header.d=example.com header.s=rsa header.a=rsa-sha256;"),
        "{h}"
    );

    // one byte of the body changed
    let mut tampered = signed.clone();
    let at = tampered.len() - 4;
    tampered[at] ^= 0x20;
    let r = v.check(localhost(), "client.example", "", &tampered);
    assert!(
        r.dkim().iter().all(|d| d.result() == DkimResult::Fail),
        "{:?}",
        r.dkim()
    );
    assert!(r.header(ME).contains("dkim=fail ("), "{}", r.header(ME));

    // a signed header changed
    let s = String::from_utf8(signed.clone()).unwrap();
    let r = v.check(
        localhost(),
        "client.example",
        "",
        s.replace("Subject: DKIM test", "Subject: DKIM best")
            .as_bytes(),
    );
    assert!(r.dkim().iter().all(|d| d.result() == DkimResult::Fail));

    // an unsigned header changed or added: still passes
    let r = v.check(
        localhost(),
        "client.example",
        "",
        s.replace("X-Unsigned: this", "X-Unsigned: that").as_bytes(),
    );
    assert!(r.dkim().iter().all(|d| d.result() == DkimResult::Pass));

    // a second From: field added in transit: From is over-signed, so this fails
    let r = v.check(
        localhost(),
        "client.example",
        "",
        s.replace("To: Bob", "From: mallory@example.com\r\nTo: Bob")
            .as_bytes(),
    );
    assert!(r.dkim().iter().all(|d| d.result() != DkimResult::Pass));

    // no signature
    let r = v.check(localhost(), "client.example", "", &message());
    assert!(r.dkim().is_empty());
    assert!(r.header(ME).contains("dkim=none;"));

    // a signature whose key is not in DNS
    let dns2 = FakeDns::start(Zone::new());
    let r = verifier(&dns2).check(localhost(), "client.example", "", &signed);
    assert!(
        r.dkim().iter().all(|d| d.result() == DkimResult::PermError),
        "{:?}",
        r.dkim()
    );
    assert!(r.header(ME).contains("dkim=permerror"));
}

#[test]
fn unsigned_domain_gives_no_signature() {
    let (dir, _) = key_dir(&[("example.com", "s1", KeyKind::Ed25519)]);
    let signer = mta_msgauth::Signer::new(mta_msgauth::KeyStore::new(dir.path()));
    assert!(
        signer
            .sign(&message_from("a@example.net"))
            .unwrap()
            .is_empty()
    );
    assert!(
        signer
            .sign(b"Subject: no from\r\n\r\nx\r\n")
            .unwrap()
            .is_empty()
    );
    // a subdomain is signed by the parent's keys
    let sig = signer.sign(&message_from("a@news.example.com")).unwrap();
    let sig = String::from_utf8(sig).unwrap();
    assert!(
        sig.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; s=s1; d=example.com;"),
        "{sig}"
    );
    assert!(sig.ends_with("\r\n"));
    let h = sig.split("h=").nth(1).unwrap().split(';').next().unwrap();
    let h: String = h.split_whitespace().collect();
    assert_eq!(
        h, "Content-Type:MIME-Version:Message-ID:Date:Subject:To:From:From",
        "signed in reverse order of appearance, From once more"
    );
}

/// (From: address, MAIL FROM, signed?, DMARC record) → expected result, policy, reject?
#[allow(clippy::type_complexity)]
type Case<'a> = (
    &'a str,
    &'a str,
    bool,
    &'a str,
    DmarcResult,
    Option<DmarcPolicy>,
    bool,
);

/// Each DMARC case in its own fake DNS server.
#[test]
fn dmarc_results_and_policies() {
    let (dir, records) = key_dir(&[("example.com", "s1", KeyKind::Ed25519)]);
    let cases: &[Case<'_>] = &[
        // aligned DKIM pass
        (
            "a@example.com",
            "",
            true,
            "v=DMARC1; p=reject",
            DmarcResult::Pass,
            Some(DmarcPolicy::Reject),
            false,
        ),
        // aligned SPF pass, no signature
        (
            "a@example.com",
            "b@example.com",
            false,
            "v=DMARC1; p=reject",
            DmarcResult::Pass,
            Some(DmarcPolicy::Reject),
            false,
        ),
        // nothing aligned: fail under each policy
        (
            "a@example.com",
            "b@other.example",
            false,
            "v=DMARC1; p=reject",
            DmarcResult::Fail,
            Some(DmarcPolicy::Reject),
            true,
        ),
        (
            "a@example.com",
            "b@other.example",
            false,
            "v=DMARC1; p=quarantine",
            DmarcResult::Fail,
            Some(DmarcPolicy::Quarantine),
            false,
        ),
        (
            "a@example.com",
            "b@other.example",
            false,
            "v=DMARC1; p=none",
            DmarcResult::Fail,
            Some(DmarcPolicy::None),
            false,
        ),
        // t=y (testing) lowers reject to quarantine
        (
            "a@example.com",
            "b@other.example",
            false,
            "v=DMARC1; p=reject; t=y",
            DmarcResult::Fail,
            Some(DmarcPolicy::Quarantine),
            false,
        ),
        // relaxed alignment: d=example.com signs for news.example.com (the parent's keys)
        (
            "a@news.example.com",
            "",
            true,
            "v=DMARC1; p=reject",
            DmarcResult::Pass,
            Some(DmarcPolicy::Reject),
            false,
        ),
        // strict DKIM alignment: the same signature no longer aligns
        (
            "a@news.example.com",
            "",
            true,
            "v=DMARC1; p=reject; sp=reject; adkim=s",
            DmarcResult::Fail,
            Some(DmarcPolicy::Reject),
            true,
        ),
        // relaxed SPF alignment: bounces.example.com with From example.com
        (
            "a@example.com",
            "b@bounces.example.com",
            false,
            "v=DMARC1; p=reject",
            DmarcResult::Pass,
            Some(DmarcPolicy::Reject),
            false,
        ),
        // strict SPF alignment
        (
            "a@example.com",
            "b@bounces.example.com",
            false,
            "v=DMARC1; p=reject; aspf=s",
            DmarcResult::Fail,
            Some(DmarcPolicy::Reject),
            true,
        ),
        // no record
        (
            "a@example.com",
            "b@other.example",
            false,
            "",
            DmarcResult::None,
            None,
            false,
        ),
    ];
    for &(from, mail_from, signed, record, want, policy, reject) in cases {
        let dns = FakeDns::start(zone_with(&records, record));
        let v = verifier(&dns);
        let mut msg = message_from(from);
        if signed {
            msg = sign(dir.path(), &msg);
        }
        let r = v.check(localhost(), "client.example", mail_from, &msg);
        let what = format!("{from} {mail_from} signed={signed} {record:?}");
        assert_eq!(r.dmarc().result(), want, "{what}: {r:?}");
        assert_eq!(r.dmarc().policy(), policy, "{what}");
        assert_eq!(r.dmarc_reject(), reject, "{what}");
        let domain = from.split('@').nth(1).unwrap();
        assert_eq!(r.dmarc().from_domain(), domain);
        let h = r.header(ME);
        let p = policy
            .map(|p| format!(" (p={})", p.as_str()))
            .unwrap_or_default();
        assert!(
            h.contains(&format!("dmarc={want}{p} header.from={domain}\r\n")),
            "{what}: {h}"
        );
    }
}

#[test]
fn forged_auth_results_removed() {
    let forged = format!(
        "Authentication-Results: {ME};\r\n\tspf=pass smtp.mailfrom=a@example.com;\r\n\tdkim=pass\r\n\
         Authentication-Results: MX.EXAMPLE.ORG; dmarc=pass\r\n\
         Authentication-Results: relay.example.net; spf=fail\r\n"
    );
    let mut msg = forged.into_bytes();
    msg.extend_from_slice(&message());
    let cleaned = remove_auth_results(&msg, ME);
    let text = String::from_utf8(cleaned.to_vec()).unwrap();
    assert!(text.starts_with("Authentication-Results: relay.example.net; spf=fail\r\nFrom: Alice"));
    assert_eq!(text.matches("Authentication-Results").count(), 1);
    assert!(text.ends_with(&String::from_utf8(message()).unwrap()));
}

#[test]
fn silent_dns_gives_temperror_within_timeout() {
    let dns = FakeDns::silent();
    let (dir, _) = key_dir(&[("example.com", "s1", KeyKind::Ed25519)]);
    let signed = sign(dir.path(), &message());
    let v = BlockingVerifier::new(
        VerifierConfig::new(dns.servers())
            .query_timeout(Duration::from_millis(200))
            .check_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    // The bounds leave a loaded machine room and still rule out the 5 s default query
    // timeout (the 1 s check timeout is what ends the wait).
    let t = Instant::now();
    let spf = v.check_spf(localhost(), "client.example", "a@example.com");
    assert_eq!(spf.result(), SpfResult::TempError);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    let t = Instant::now();
    let r = v.check_message(&spf, &signed);
    assert!(
        t.elapsed() < Duration::from_millis(4500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.dkim()[0].result(), DkimResult::TempError);
    assert_eq!(r.dmarc().result(), DmarcResult::TempError);
    let h = r.header(ME);
    assert!(
        h.contains("spf=temperror smtp.mailfrom=a@example.com;"),
        "{h}"
    );
    assert!(h.contains("dkim=temperror"), "{h}");
    assert!(h.contains("dmarc=temperror"), "{h}");
    assert!(
        dns.queries.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the server was asked"
    );
}

#[test]
fn async_api_on_callers_runtime() {
    let (dir, records) = key_dir(&[("example.com", "s1", KeyKind::Ed25519)]);
    let dns = FakeDns::start(zone_with(&records, "v=DMARC1; p=reject"));
    let signed = sign(dir.path(), &message());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(async {
        let v = Verifier::new(VerifierConfig::new(dns.servers())).unwrap();
        v.check(localhost(), "client.example", "a@example.com", &signed)
            .await
    });
    assert_eq!(r.spf().result(), SpfResult::Pass);
    assert_eq!(r.dkim()[0].result(), DkimResult::Pass);
    assert_eq!(r.dmarc().result(), DmarcResult::Pass);
    assert!(Verifier::new(VerifierConfig::new(vec![])).is_err());
}

#[test]
fn blocking_verifier_shared_by_threads() {
    let (dir, records) = key_dir(&[("example.com", "s1", KeyKind::Ed25519)]);
    let dns = FakeDns::start(zone_with(&records, "v=DMARC1; p=reject"));
    let signed = sign(dir.path(), &message());
    let v = verifier(&dns);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    let r = v.check(localhost(), "client.example", "a@example.com", &signed);
                    assert_eq!(r.dmarc().result(), DmarcResult::Pass);
                }
            });
        }
    });
}
