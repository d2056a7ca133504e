//! `mta queue hold` / `release`: no job while held (not even after a flush), no expiry
//! while held, a job after the release.

use std::time::Duration;

use mta_queue::Status;
use mta_sched::{Config, Scheduler};

use crate::util::*;

fn short_lifetime() -> Scheduler {
    Scheduler::new(Config {
        queue_lifetime: Duration::from_secs(1000),
        ..Config::default()
    })
}

#[test]
fn a_held_message_gets_no_job_even_after_a_flush() {
    let mut s = short_lifetime();
    add(
        &mut s,
        message(1, "a@x", vec![local("bob@here", "bob")]),
        t(0),
    );
    s.hold(id(1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.is_held(id(1)));
    assert!(s.poll_job(t(0)).is_none());
    s.flush(t(5));
    assert!(s.poll_job(t(5)).is_none());
    assert_eq!(s.poll_timeout(), None);
    s.release(id(1), t(6)).unwrap_or_else(|e| panic!("{e}"));
    let job = one_job(&mut s, t(6));
    assert_eq!(addresses(&job), ["bob@here"]);
}

#[test]
fn a_held_message_does_not_expire_and_is_checked_at_its_first_attempt_after_release() {
    let mut s = short_lifetime();
    add(
        &mut s,
        message(1, "a@x", vec![remote("bob@there.example")]),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    finish(&mut s, &job, &deferred(), t(0));
    s.hold(id(1)).unwrap_or_else(|e| panic!("{e}"));
    // Far past the lifetime: nothing happens while held.
    for now in [t(400), t(5000), t(100_000)] {
        s.flush(now);
        assert!(s.poll_job(now).is_none());
        assert!(s.poll_bounce().is_none());
        assert!(s.poll_remove().is_none());
    }
    assert_eq!(s.messages(), 1);
    // Released: the retry time (400 s) has passed, so it is tried at once; that deferral
    // is past the lifetime and bounces.
    s.release(id(1), t(100_000))
        .unwrap_or_else(|e| panic!("{e}"));
    let job = one_job(&mut s, t(100_000));
    assert_eq!(job.targets[0].attempts, 1);
    let r = finish(&mut s, &job, &deferred(), t(100_000));
    assert!(matches!(&r.marks[..], [(0, Status::Failed(_))]));
    assert!(s.poll_bounce().is_some());
}

#[test]
fn a_job_running_when_the_hold_comes_finishes_but_does_not_expire_or_retry() {
    let mut s = short_lifetime();
    add(
        &mut s,
        message(1, "a@x", vec![remote("bob@there.example")]),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    s.hold(id(1)).unwrap_or_else(|e| panic!("{e}"));
    let r = finish(&mut s, &job, &deferred(), t(2000));
    assert!(matches!(&r.marks[..], [(0, Status::Deferred { .. })]));
    assert_eq!(s.poll_timeout(), None);
    assert!(s.poll_job(t(1_000_000)).is_none());
}

#[test]
fn a_held_message_is_neither_bounced_nor_removed_until_released() {
    let mut s = Scheduler::new(config(10, 20));
    add(
        &mut s,
        message(1, "a@x", vec![remote("gone@a.example")]),
        t(0),
    );
    add(
        &mut s,
        message(2, "a@x", vec![remote("ok@a.example")]),
        t(0),
    );
    let started = jobs(&mut s, t(0));
    s.hold(id(1)).unwrap_or_else(|e| panic!("{e}"));
    s.hold(id(2)).unwrap_or_else(|e| panic!("{e}"));
    for job in &started {
        let result = if job.message == id(1) {
            failed()
        } else {
            delivered()
        };
        finish(&mut s, job, &result, t(1));
    }
    assert!(s.poll_bounce().is_none());
    assert!(s.poll_remove().is_none());
    s.release(id(1), t(2)).unwrap_or_else(|e| panic!("{e}"));
    s.release(id(2), t(2)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.poll_bounce().map(|b| b.message), Some(id(1)));
    assert_eq!(s.poll_remove(), Some(id(2)));
    s.handle_bounced(id(1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.poll_remove(), Some(id(1)));
}

#[test]
fn holding_ready_recipients_gives_their_slots_to_others() {
    let mut s = Scheduler::new(config(1, 20));
    add(&mut s, message(1, "a@x", vec![local("a@here", "a")]), t(0));
    add(&mut s, message(2, "a@x", vec![local("b@here", "b")]), t(0));
    add(&mut s, message(3, "a@x", vec![local("c@here", "c")]), t(0));
    let first = one_job(&mut s, t(0));
    assert_eq!(first.message, id(1));
    s.hold(id(2)).unwrap_or_else(|e| panic!("{e}"));
    finish(&mut s, &first, &delivered(), t(1));
    assert_eq!(one_job(&mut s, t(1)).message, id(3));
}
