//! `mta check` and `mta queue stat|list|flush`.

use crate::support::*;

#[test]
fn check_reports_file_and_line() {
    let root = TestRoot::new();
    let ok = mta(&root.dir, &["check"]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    std::fs::write(
        root.path("users/assign"),
        "=joe:joe:1000:1000:/home/joe:::\n=bad:line\n.\n",
    )
    .unwrap();
    root.control("relayclients", "127.0.0.1\nnot-an-ip\n");
    let bad = mta(&root.dir, &["check"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains("control/relayclients:2: "), "{err}");
    assert!(err.contains("users/assign:2: "), "{err}");
}

#[test]
fn queue_stat_and_list_show_held_messages() {
    let root = TestRoot::new();
    // concurrencyremote 0 holds the remote channel (qmail): the message stays queued.
    root.control("concurrencyremote", "0\n");
    let out = mta_input(
        &root.dir,
        &["inject", "-f", "joe@example.org", "someone@remote.example"],
        b"Subject: held\n\nbody\n",
    );
    assert!(out.status.success(), "{out:?}");
    let stat = mta(&root.dir, &["queue", "stat"]);
    assert_eq!(
        String::from_utf8_lossy(&stat.stdout),
        "messages in queue: 1\nmessages in queue but not yet preprocessed: 1\n"
    );
    let list = mta(&root.dir, &["queue", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(" GMT  #"), "{text}");
    assert!(text.contains("  <joe@example.org> \n"), "{text}");
    assert!(
        text.contains("\tremote\tsomeone@remote.example\n"),
        "{text}"
    );
    let flush = mta(&root.dir, &["queue", "flush"]);
    assert_eq!(flush.status.code(), Some(0));
    // The same while `mta serve` owns the queue.
    let server = root.serve();
    let stat = mta(&root.dir, &["queue", "stat"]);
    assert_eq!(
        String::from_utf8_lossy(&stat.stdout),
        "messages in queue: 1\nmessages in queue but not yet preprocessed: 1\n",
        "{}",
        server.log_text()
    );
    let list = mta(&root.dir, &["queue", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("\tremote\tsomeone@remote.example\n"));
    drop(server);
}
