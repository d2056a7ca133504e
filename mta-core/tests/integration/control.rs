//! Control files: a full directory (tests/data/control/full), qmail's defaults, the
//! lookup vectors (tests/data/control_lookups.txt) and malformed files
//! (tests/data/control_errors.txt).

use std::net::SocketAddr;
use std::path::PathBuf;

use mta_core::Address;
use mta_core::control::{Control, ControlErrorKind, ListenKind, Listener, SmtpRoute};

use super::data;

fn full() -> Control {
    Control::load_with_resolv_conf(
        &data::path("control/full"),
        &data::path("control/resolv.conf"),
    )
    .unwrap()
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn every_file_is_read() {
    let c = full();
    assert_eq!(c.me.as_deref(), Some("mx.example.com"));
    assert_eq!(
        c.locals,
        ["example.com", "localhost", "  Mixed.Case.Example"]
    );
    assert_eq!(c.rcpthosts.as_ref().unwrap().len(), 5);
    assert_eq!(c.percenthack, ["relay.example"]);
    assert_eq!(c.bouncefrom, "bounces");
    assert_eq!(c.bouncehost, "bounce.example.com");
    assert_eq!(c.doublebounceto, "admin");
    assert_eq!(c.doublebouncehost, "db.example.com");
    assert_eq!(c.envnoathost, "noat.example.com");
    assert_eq!(
        (
            c.concurrencylocal,
            c.concurrencyremote,
            c.concurrencyincoming
        ),
        (5, 50, 100)
    );
    assert_eq!(
        (
            c.concurrencyperip,
            c.maxrcpt,
            c.maxerrors,
            c.mindatarate,
            c.timeoutlocal
        ),
        (3, 50, 7, 1000, 60)
    );
    assert_eq!((c.queuelifetime, c.databytes), (86_400, 10_485_760));
    assert_eq!(
        (c.timeoutsmtpd, c.timeoutremote, c.timeoutconnect),
        (300, 600, 30)
    );
    assert_eq!(c.helohost.as_deref(), Some("helo.example.com"));
    assert_eq!(
        c.tlsdestinations.lookup("secure.example"),
        mta_core::control::TlsDestination::Verify
    );
    assert_eq!(
        c.tlsdestinations.lookup("a.corp.example"),
        mta_core::control::TlsDestination::Encrypt
    );
    assert_eq!(
        c.smtpgreeting.as_deref(),
        Some("mx.example.com ESMTP ready")
    );
    assert_eq!(c.localiphost.as_deref(), Some("ip.example.com"));
    assert_eq!(c.defaulthost, "inject.example.com");
    assert_eq!(c.defaultdomain, "example.com");
    assert_eq!(c.plusdomain, "plus.example.com");
    assert_eq!(c.idhost, "id.example.com");
    let kinds: Vec<(SocketAddr, ListenKind)> = c.listen.iter().map(|l| (l.addr, l.kind)).collect();
    assert_eq!(
        kinds,
        addrs(&["0.0.0.0:25", "[::]:25", "127.0.0.1:587", "127.0.0.1:465"])
            .into_iter()
            .zip([
                ListenKind::Smtp,
                ListenKind::Smtp,
                ListenKind::Submission,
                ListenKind::Smtps
            ])
            .collect::<Vec<_>>()
    );
    assert_eq!(c.relayclients.nets().len(), 5);
    assert_eq!(
        c.dnsservers,
        addrs(&[
            "192.0.2.53:53",
            "192.0.2.54:5353",
            "[2001:db8::53]:53",
            "[2001:db8::54]:5353"
        ])
    );
    assert!(c.acceptunknown);
    assert!(c.spfreject && c.dmarcreject);
    let q = c.qmail_rewrite();
    assert_eq!(
        (q.default_host.as_str(), q.plus_domain.as_str()),
        ("inject.example.com", "plus.example.com")
    );
    assert_eq!(q.percent_hack, ["relay.example"]);
}

fn empty_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn qmail_defaults_without_me() {
    let dir = empty_dir();
    let c = Control::load_with_resolv_conf(dir.path(), &data::path("control/resolv.conf")).unwrap();
    assert_eq!(c.me, None);
    assert!(c.locals.is_empty());
    assert!(c.rcpthosts.is_none());
    assert!(
        c.rcpt_allowed(&Address::from("anyone@anywhere.example")),
        "qmail: no rcpthosts accepts all"
    );
    assert_eq!(c.envnoathost, "envnoathost");
    assert_eq!(c.bouncefrom, "MAILER-DAEMON");
    assert_eq!(c.bouncehost, "bouncehost");
    assert_eq!(c.doublebounceto, "postmaster");
    assert_eq!(c.doublebouncehost, "doublebouncehost");
    assert_eq!(
        (
            c.concurrencylocal,
            c.concurrencyremote,
            c.concurrencyincoming
        ),
        (10, 20, 100)
    );
    assert_eq!(
        (
            c.concurrencyperip,
            c.maxrcpt,
            c.maxerrors,
            c.mindatarate,
            c.timeoutlocal
        ),
        (10, 1000, 20, 500, 3600)
    );
    assert_eq!(
        (c.queuelifetime, c.databytes),
        (604_800, mta_core::control::DEFAULT_DATABYTES)
    );
    assert_eq!(
        (c.timeoutsmtpd, c.timeoutremote, c.timeoutconnect),
        (1200, 1200, 60)
    );
    assert_eq!(
        (
            c.helohost.clone(),
            c.smtpgreeting.clone(),
            c.localiphost.clone()
        ),
        (None, None, None)
    );
    assert_eq!(
        [&c.defaulthost, &c.defaultdomain, &c.plusdomain, &c.idhost],
        ["defaulthost", "defaultdomain", "plusdomain", "idhost"]
    );
    assert_eq!(
        c.listen,
        addrs(&["127.0.0.1:2525"])
            .into_iter()
            .map(Listener::smtp)
            .collect::<Vec<_>>()
    );
    assert!(c.is_relay_client("127.0.0.1".parse().unwrap()));
    assert!(c.is_relay_client("::1".parse().unwrap()));
    assert!(!c.is_relay_client("192.0.2.1".parse().unwrap()));
    // resolv.conf: the fe80::1%eth0 entry is skipped.
    assert_eq!(c.dnsservers, addrs(&["192.0.2.1:53", "[2001:db8::1]:53"]));
    assert!(!c.acceptunknown);
    assert!(!c.spfreject && !c.dmarcreject);
    assert!(c.virtualdomains.is_empty() && c.smtproutes.is_empty());
}

#[test]
fn me_becomes_the_default() {
    let c = Control::load_with_resolv_conf(
        &data::path("control/me_only"),
        &PathBuf::from("/nonexistent/resolv.conf"),
    )
    .unwrap();
    assert_eq!(c.locals, ["host.example.org"]);
    for v in [
        &c.envnoathost,
        &c.bouncehost,
        &c.doublebouncehost,
        &c.defaulthost,
        &c.defaultdomain,
        &c.plusdomain,
        &c.idhost,
    ] {
        assert_eq!(v, "host.example.org");
    }
    assert_eq!(c.helohost.as_deref(), Some("host.example.org"));
    assert_eq!(c.smtpgreeting.as_deref(), Some("host.example.org"));
    assert_eq!(c.localiphost.as_deref(), Some("host.example.org"));
    assert_eq!(c.bouncefrom, "MAILER-DAEMON");
    // No resolv.conf: the local resolver.
    assert_eq!(c.dnsservers, addrs(&["127.0.0.1:53"]));
}

#[test]
fn single_value_rules() {
    let c = Control::from_texts(
        [
            ("me", &b"  spaced.example \t\r\nsecond\n"[..]),
            ("bouncefrom", b""),
            ("bouncehost", b"\nignored\n"),
            ("concurrencylocal", b"12abc\n"),
            ("morercpthosts", b"only.example\n"),
            ("acceptunknown", b"0\n"),
        ],
        "",
    )
    .unwrap();
    // Leading white space stays, trailing goes; an empty first line is an empty value.
    assert_eq!(c.me.as_deref(), Some("  spaced.example"));
    assert_eq!(c.bouncefrom, "");
    assert_eq!(c.bouncehost, "");
    assert_eq!(c.concurrencylocal, 12);
    // morercpthosts counts only when rcpthosts exists.
    assert!(c.rcpthosts.is_none());
    assert!(!c.acceptunknown);
}

#[test]
fn lookup_vectors() {
    let c = full();
    let rows = data::lines("control_lookups.txt");
    assert!(rows.len() > 40);
    for (line, text) in rows {
        let f: Vec<&str> = text.split('\t').collect();
        let ctx = format!("control_lookups.txt line {line}: {text}");
        let yes = || match f[2] {
            "yes" => true,
            "no" => false,
            other => panic!("{ctx}: {other}"),
        };
        match f[0] {
            "local" => assert_eq!(c.is_local(f[1]), yes(), "{ctx}"),
            "rcpt" => assert_eq!(c.rcpt_allowed(&Address::from(f[1])), yes(), "{ctx}"),
            "bmf" => assert_eq!(c.badmailfrom_matches(&Address::from(f[1])), yes(), "{ctx}"),
            "relay" => assert_eq!(c.is_relay_client(f[1].parse().unwrap()), yes(), "{ctx}"),
            "virtual" => {
                let got = c
                    .virtual_rewrite(&Address::from(f[1]))
                    .map(|a| a.to_string_lossy());
                let want = (f[2] != "none").then(|| f[2].to_owned());
                assert_eq!(got, want, "{ctx}");
            }
            "route" => {
                let got = match c.smtp_route(f[1]) {
                    None => "none".to_owned(),
                    Some(SmtpRoute::Mx) => "mx".to_owned(),
                    Some(SmtpRoute::Relay { host, port: None }) => host.clone(),
                    Some(SmtpRoute::Relay {
                        host,
                        port: Some(p),
                    }) => format!("{host}:{p}"),
                };
                assert_eq!(got, f[2], "{ctx}");
            }
            other => panic!("{ctx}: unknown query {other}"),
        }
    }
}

#[test]
fn malformed_files_name_file_and_line() {
    let rows = data::lines("control_errors.txt");
    assert!(rows.len() >= 15);
    for (line, text) in rows {
        let f: Vec<&str> = text.split('\t').collect();
        let ctx = format!("control_errors.txt line {line}: {text}");
        let contents = data::expand(&f[1].replace("\\n", "\n"));
        let err = Control::from_texts([(f[0], &contents[..])], "").expect_err(&ctx);
        assert_eq!(err.path, PathBuf::from(f[0]), "{ctx}");
        assert_eq!(err.line, Some(f[2].parse().unwrap()), "{ctx}");
        let what = match &err.kind {
            ControlErrorKind::Invalid { expected, .. } => (*expected).to_owned(),
            ControlErrorKind::NotUtf8 => "UTF-8".to_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(what, f[3], "{ctx}");
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}:{}: ", f[0], f[2])),
            "{ctx}: {shown}"
        );
    }
}

#[test]
fn unreadable_file_is_an_error_and_path_is_full() {
    let dir = empty_dir();
    std::fs::create_dir(dir.path().join("locals")).unwrap();
    let err = Control::load(dir.path()).unwrap_err();
    assert!(matches!(err.kind, ControlErrorKind::Io(_)));
    assert_eq!(err.path, dir.path().join("locals"));
    assert!(std::error::Error::source(&err).is_some());
    std::fs::write(dir.path().join("me"), "x\n").unwrap();
    std::fs::remove_dir(dir.path().join("locals")).unwrap();
    std::fs::write(dir.path().join("listen"), "nope\n").unwrap();
    let err = Control::load(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1: expected ADDR:PORT or [IPv6]:PORT, then smtp, submission or smtps, found \"nope\"",
            dir.path().join("listen").display()
        )
    );
}

mod props {
    use mta_core::control::Control;
    use proptest::prelude::*;

    const NAMES: [&str; 14] = [
        "me",
        "locals",
        "rcpthosts",
        "virtualdomains",
        "smtproutes",
        "badmailfrom",
        "listen",
        "relayclients",
        "dnsservers",
        "concurrencylocal",
        "acceptunknown",
        "percenthack",
        "morercpthosts",
        "databytes",
    ];

    proptest! {
        #[test]
        fn arbitrary_files_never_panic(name in 0..NAMES.len(), bytes in proptest::collection::vec(any::<u8>(), 0..200), resolv in "[ -~\n]{0,80}") {
            let rcpt: &[u8] = b"example.com\n";
            if let Ok(c) = Control::from_texts([(NAMES[name], &bytes[..]), ("rcpthosts", rcpt)], &resolv) {
                let _ = c.smtp_route("a.example.com");
                let _ = c.virtual_rewrite(&mta_core::Address::from("x@y.z"));
            }
        }

        #[test]
        fn list_lines_keep_their_text(lines in proptest::collection::vec("[a-z.]{1,10}", 1..10)) {
            let text: String = lines.iter().flat_map(|l| [l.as_str(), "  \n\n# c\n"]).collect();
            let c = Control::from_texts([("percenthack", text.as_bytes())], "").unwrap();
            prop_assert_eq!(c.percenthack, lines);
        }
    }
}
