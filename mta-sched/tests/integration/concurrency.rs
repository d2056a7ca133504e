//! concurrencylocal / concurrencyremote, fairness across domains, batching.

use mta_sched::{Channel, Config, Scheduler};

use crate::util::*;

#[test]
fn concurrencylocal_limits_local_jobs() {
    let mut s = Scheduler::new(config(2, 20));
    for n in 1..=5 {
        add(
            &mut s,
            message(n, "a@x", vec![local("bob@here", "bob")]),
            t(0),
        );
    }
    let first = jobs(&mut s, t(0));
    assert_eq!(first.len(), 2);
    assert_eq!(s.running(Channel::Local), 2);
    assert_eq!(s.waiting(Channel::Local), 3);
    finish(&mut s, &first[0], &delivered(), t(1));
    assert_eq!(jobs(&mut s, t(1)).len(), 1);
    assert!(s.poll_job(t(1)).is_none());
}

#[test]
fn concurrencyremote_limits_remote_jobs() {
    let mut s = Scheduler::new(config(10, 3));
    for n in 1..=5 {
        add(
            &mut s,
            message(n, "a@x", vec![remote(&format!("u@d{n}.example"))]),
            t(0),
        );
    }
    let first = jobs(&mut s, t(0));
    assert_eq!(first.len(), 3);
    assert_eq!(s.running(Channel::Remote), 3);
    finish(&mut s, &first[1], &delivered(), t(1));
    assert_eq!(jobs(&mut s, t(1)).len(), 1);
    assert_eq!(s.running(Channel::Remote), 3);
}

#[test]
fn zero_concurrency_holds_the_channel() {
    let mut s = Scheduler::new(config(0, 5));
    add(
        &mut s,
        message(
            1,
            "a@x",
            vec![local("bob@here", "bob"), remote("c@d.example")],
        ),
        t(0),
    );
    let started = jobs(&mut s, t(0));
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].channel(), Channel::Remote);
    assert_eq!(s.waiting(Channel::Local), 1);
}

#[test]
fn no_domain_holds_more_than_half_the_remote_slots_while_others_wait() {
    let mut s = Scheduler::new(config(10, 4));
    for n in 1..=10 {
        add(
            &mut s,
            message(n, "a@x", vec![remote("u@slow.example")]),
            t(0),
        );
    }
    for n in 11..=20 {
        add(
            &mut s,
            message(n, "a@x", vec![remote("u@other.example")]),
            t(0),
        );
    }
    let started = jobs(&mut s, t(0));
    assert_eq!(started.len(), 4);
    assert_eq!(s.running_at(b"slow.example"), 2);
    assert_eq!(s.running_at(b"OTHER.example"), 2);
    // A slot freed by slow.example goes back to it only while the split stays half/half.
    let slow = started
        .iter()
        .find(|j| j.targets[0].address.as_bytes().ends_with(b"slow.example"))
        .expect("a slow job");
    finish(&mut s, slow, &deferred(), t(1));
    let next = one_job(&mut s, t(1));
    assert_eq!(addresses(&next), ["u@slow.example"]);
    assert_eq!(s.running_at(b"slow.example"), 2);
    // Both other.example jobs end: slow.example is at its half, so both free slots go to
    // other.example, whose turn it would not be by round robin alone.
    for job in started
        .iter()
        .filter(|j| j.targets[0].address.as_bytes().ends_with(b"other.example"))
    {
        finish(&mut s, job, &delivered(), t(2));
    }
    let next = jobs(&mut s, t(2));
    let all: Vec<String> = next.iter().flat_map(addresses).collect();
    assert_eq!(all, ["u@other.example", "u@other.example"]);
    assert_eq!(s.running_at(b"slow.example"), 2);
}

#[test]
fn a_domain_alone_uses_every_remote_slot() {
    let mut s = Scheduler::new(config(10, 4));
    for n in 1..=10 {
        add(
            &mut s,
            message(n, "a@x", vec![remote("u@slow.example")]),
            t(0),
        );
    }
    let started = jobs(&mut s, t(0));
    assert_eq!(started.len(), 4);
    assert_eq!(s.running_at(b"slow.example"), 4);
    // Work for another domain arrives: the next free slot is its, not slow.example's.
    add(
        &mut s,
        message(11, "a@x", vec![remote("u@fast.example")]),
        t(1),
    );
    assert!(s.poll_job(t(1)).is_none());
    finish(&mut s, &started[0], &delivered(), t(2));
    let next = one_job(&mut s, t(2));
    assert_eq!(addresses(&next), ["u@fast.example"]);
    // fast.example has nothing left waiting: slow.example is alone again.
    finish(&mut s, &started[1], &delivered(), t(3));
    let next = one_job(&mut s, t(3));
    assert_eq!(addresses(&next), ["u@slow.example"]);
}

#[test]
fn remote_per_domain_keeps_slots_free_for_mail_that_arrives_later() {
    let mut s = Scheduler::new(Config {
        remote_per_domain: Some(2),
        ..config(10, 4)
    });
    for n in 1..=10 {
        add(
            &mut s,
            message(n, "a@x", vec![remote("u@slow.example")]),
            t(0),
        );
    }
    // Alone, slow.example still gets only two of the four slots.
    assert_eq!(jobs(&mut s, t(0)).len(), 2);
    assert_eq!(s.running_at(b"slow.example"), 2);
    // Mail for another domain starts at once, without waiting for slow.example's jobs.
    add(
        &mut s,
        message(11, "a@x", vec![remote("u@fast.example")]),
        t(1),
    );
    let next = one_job(&mut s, t(1));
    assert_eq!(addresses(&next), ["u@fast.example"]);
}

#[test]
fn domains_take_turns() {
    let mut s = Scheduler::new(config(10, 1));
    for (n, d) in [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c")] {
        add(
            &mut s,
            message(n, "x@y", vec![remote(&format!("u@{d}.example"))]),
            t(0),
        );
    }
    let mut order = Vec::new();
    for i in 0..5 {
        let job = one_job(&mut s, t(i));
        order.push(addresses(&job)[0].clone());
        finish(&mut s, &job, &delivered(), t(i));
    }
    assert_eq!(
        order,
        [
            "u@a.example",
            "u@b.example",
            "u@c.example",
            "u@a.example",
            "u@a.example"
        ]
    );
}

#[test]
fn local_jobs_batch_one_messages_recipients_per_user() {
    let mut s = Scheduler::new(config(1, 20));
    add(
        &mut s,
        message(
            1,
            "a@x",
            vec![
                local("joe@here", "joe"),
                local("ann@here", "ann"),
                local("joe-list@here", "joe"),
                local("bob@here", "bob"),
                local("ann-x@here", "ann"),
                local("joe-y@here", "joe"),
            ],
        ),
        t(0),
    );
    add(
        &mut s,
        message(2, "a@x", vec![local("joe@here", "joe")]),
        t(0),
    );
    let mut batches = Vec::new();
    for i in 0..4 {
        let job = one_job(&mut s, t(i));
        assert_eq!(s.running(Channel::Local), 1);
        batches.push((job.message.as_u64(), addresses(&job)));
        finish(&mut s, &job, &delivered(), t(i));
    }
    assert_eq!(
        batches,
        [
            (
                1,
                vec![
                    "joe@here".into(),
                    "joe-list@here".into(),
                    "joe-y@here".into()
                ]
            ),
            (1, vec!["ann@here".into(), "ann-x@here".into()]),
            (1, vec!["bob@here".into()]),
            (2, vec!["joe@here".to_string()]),
        ]
    );
    assert!(s.poll_job(t(9)).is_none());
}

#[test]
fn a_long_local_list_is_spread_over_the_free_slots() {
    let mut s = Scheduler::new(config(2, 20));
    let rcpts = (0..8)
        .map(|i| local(&format!("u{i}@list"), "alias"))
        .collect();
    add(&mut s, message(1, "a@x", rcpts), t(0));
    let started = jobs(&mut s, t(0));
    let sizes: Vec<usize> = started.iter().map(|j| j.targets.len()).collect();
    assert_eq!(sizes, [4, 2]);
    assert!(!started[0].whole);
    finish(&mut s, &started[0], &delivered(), t(1));
    // Two waiting, two slots: one each (the other slot is still busy).
    let rest = jobs(&mut s, t(1));
    assert_eq!(
        rest.iter().map(|j| j.targets.len()).collect::<Vec<_>>(),
        [1]
    );
}

#[test]
fn a_single_user_message_is_one_whole_job() {
    let mut s = Scheduler::new(config(1, 20));
    add(
        &mut s,
        message(1, "a@x", vec![local("a@here", "u"), local("b@here", "u")]),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    assert!(job.whole);
    let r = finish(&mut s, &job, &delivered(), t(0));
    assert!(r.finished);
    assert_eq!(s.poll_remove(), Some(id(1)));
}

#[test]
fn remote_jobs_batch_per_domain_and_verp_splits_them() {
    let rcpts = || {
        vec![
            remote("a@net.example"),
            remote("b@NET.example"),
            remote("c@com.example"),
            remote("d@net.example"),
        ]
    };
    let mut s = Scheduler::new(config(10, 20));
    add(&mut s, message(1, "alice@x", rcpts()), t(0));
    let mut sizes: Vec<usize> = jobs(&mut s, t(0)).iter().map(|j| j.targets.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 3]);

    let mut s = Scheduler::new(config(10, 20));
    add(&mut s, message(1, "list-@x.example-@[]", rcpts()), t(0));
    let sizes: Vec<usize> = jobs(&mut s, t(0)).iter().map(|j| j.targets.len()).collect();
    assert_eq!(sizes, [1, 1, 1, 1]);
}

#[test]
fn remote_batch_caps_a_transaction() {
    let mut s = Scheduler::new(Config {
        remote_batch: 2,
        ..config(10, 20)
    });
    let rcpts = (0..5)
        .map(|i| remote(&format!("u{i}@big.example")))
        .collect();
    add(&mut s, message(1, "a@x", rcpts), t(0));
    let sizes: Vec<usize> = jobs(&mut s, t(0)).iter().map(|j| j.targets.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
}

#[test]
fn a_long_local_list_takes_turns_with_other_messages() {
    let mut s = Scheduler::new(Config {
        local_batch: 2,
        ..config(1, 20)
    });
    let rcpts = (0..6)
        .map(|i| local(&format!("u{i}@list"), "alias"))
        .collect();
    add(&mut s, message(1, "a@x", rcpts), t(0));
    add(
        &mut s,
        message(2, "a@x", vec![local("bob@here", "bob")]),
        t(0),
    );
    let mut order = Vec::new();
    for i in 0..4 {
        let job = one_job(&mut s, t(i));
        order.push((job.message.as_u64(), job.targets.len()));
        finish(&mut s, &job, &delivered(), t(i));
    }
    assert_eq!(order, [(1, 2), (2, 1), (1, 2), (1, 2)]);
}
