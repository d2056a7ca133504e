//! The table-driven search-order test (tests/data/search_order.txt).

use mta_dotqmail::{
    Account, DeliveryOptions, DeliveryRequest, DeliveryStatus, Mailbox, Message, Resolved,
    UserTable, UsersAssign, deliver, find_mailbox,
};

use crate::mock::{Call, Mock, Node};

fn users() -> UserTable {
    let assign = UsersAssign::parse(
        b"=joe:joe:1001:100:/home/joe:::\n+joe-:joe:1001:100:/home/joe:-::\n.\n",
    )
    .unwrap();
    UserTable::new(Account::new("alias", 7790, 2108, "/var/qmail/alias")).with_assign(assign)
}

#[test]
fn search_order_table() {
    let table = include_str!("../data/search_order.txt");
    let users = users();
    let mut rows = 0;
    for (n, line) in table.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        rows += 1;
        let cols: Vec<&str> = line.splitn(4, " | ").map(str::trim).collect();
        let [local, files, expected, default] = cols[..] else {
            panic!("line {}: bad row", n + 1)
        };
        let ctx = format!("line {}: {local}", n + 1);
        let mut mock = Mock::new();
        for f in files.split(',').filter(|f| !f.is_empty()) {
            if let Some(p) = f.strip_prefix('!') {
                mock.node(p, Node::Error(13)); // EACCES
            } else if let Some(p) = f.strip_prefix('|') {
                mock.node(p, Node::Fifo);
            } else if let Some(p) = f.strip_suffix('/') {
                mock.dir(p, 0o755);
            } else {
                mock.file(f, 0o644, b"|prog\n");
            }
        }
        let Resolved::User(user) = users.resolve(local.as_bytes()).unwrap() else {
            panic!("{ctx}: trash")
        };
        let found = find_mailbox(&mut mock, &user, &DeliveryOptions::default());
        let got = match &found {
            Ok(Mailbox::File(f)) => f.path.display().to_string(),
            Ok(Mailbox::DefaultDelivery) => "DEFAULT-DELIVERY".into(),
            Ok(Mailbox::NotFound) => "NOT-FOUND".into(),
            Ok(other) => panic!("{ctx}: {other:?}"),
            Err(_) => "DEFERRED".into(),
        };
        assert_eq!(got, expected, "{ctx}");

        // The same row through the interpreter: which file ran, and DEFAULT.
        let request = DeliveryRequest {
            user: &user,
            local: local.as_bytes(),
            domain: b"example.com",
            sender: b"s@example.org",
            default_delivery: b"./Maildir/\n",
            now: 0,
        };
        let outcome = deliver(
            &mut mock,
            &request,
            &DeliveryOptions::default(),
            Message::Bytes(b"\n"),
        );
        match expected {
            "NOT-FOUND" => {
                assert_eq!(
                    outcome.status,
                    DeliveryStatus::Bounced(
                        "Sorry, no mailbox here by that name. (#5.1.1)\n".into()
                    ),
                    "{ctx}"
                );
            }
            "DEFERRED" => {
                let DeliveryStatus::Deferred(text) = &outcome.status else {
                    panic!("{ctx}: {:?}", outcome.status)
                };
                assert!(text.starts_with("Unable to open .qmail-"), "{ctx}: {text}");
                assert!(
                    text.ends_with("permission denied. (#4.3.0)\n"),
                    "{ctx}: {text}"
                );
            }
            "DEFAULT-DELIVERY" => {
                assert_eq!(outcome.status, DeliveryStatus::Delivered, "{ctx}");
                assert_eq!(mock.trace(), ["maildir /home/joe/Maildir"], "{ctx}");
            }
            _ => {
                assert_eq!(outcome.status, DeliveryStatus::Delivered, "{ctx}");
                let [Call::Program { env, .. }] = &mock.calls[..] else {
                    panic!("{ctx}: {:?}", mock.trace())
                };
                let got = env
                    .iter()
                    .find(|(k, _)| *k == "DEFAULT")
                    .map(|(_, v)| String::from_utf8(v.clone()).unwrap());
                let want = match default {
                    "-" => None,
                    "\"\"" => Some(String::new()),
                    v => Some(v.to_owned()),
                };
                assert_eq!(got, want, "{ctx}: DEFAULT");
            }
        }
    }
    assert!(rows >= 40, "table has {rows} rows");
}

#[test]
fn rcpt_time_check() {
    use mta_dotqmail::{AddressCheck, check_address};
    let users = users();
    let mut mock = Mock::new();
    mock.file("/home/joe/.qmail-list-default", 0o644, b"&x@y\n");
    mock.file("/var/qmail/alias/.qmail-postmaster", 0o644, b"&x@y\n");
    let opts = DeliveryOptions::default();
    let check = |mock: &mut Mock, local: &str| check_address(&users, mock, local.as_bytes(), &opts);
    assert_eq!(check(&mut mock, "").unwrap(), AddressCheck::Trash);
    let AddressCheck::Exists {
        user,
        mailbox: Mailbox::File(f),
    } = check(&mut mock, "joe-list-Ann").unwrap()
    else {
        panic!()
    };
    assert_eq!((user.account().uid(), user.account().gid()), (1001, 100));
    assert_eq!(f.name, b".qmail-list-default");
    assert!(matches!(
        check(&mut mock, "joe").unwrap(),
        AddressCheck::Exists {
            mailbox: Mailbox::DefaultDelivery,
            ..
        }
    ));
    assert!(matches!(
        check(&mut mock, "PostMaster").unwrap(),
        AddressCheck::Exists {
            mailbox: Mailbox::File(_),
            ..
        }
    ));
    let AddressCheck::NotFound { user } = check(&mut mock, "joe-other").unwrap() else {
        panic!()
    };
    assert_eq!(user.account().user(), b"joe");
    assert!(matches!(
        check(&mut mock, "nobody").unwrap(),
        AddressCheck::NotFound { .. }
    ));
    mock.node("/var/qmail/alias/.qmail-default", Node::Error(5));
    assert!(check(&mut mock, "nobody").is_err(), "EIO defers");
    // A home the checking process may not search (EACCES): the user exists, delivery
    // (as the user) decides; never a 451 that repeats forever.
    mock.node("/home/joe/.qmail-private", Node::Error(13));
    assert!(matches!(
        check(&mut mock, "joe-private").unwrap(),
        AddressCheck::Unverifiable { .. }
    ));
    assert!(mock.calls.is_empty(), "a check delivers nothing");
}
