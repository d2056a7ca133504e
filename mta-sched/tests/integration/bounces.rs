//! One bounce per message, only when every recipient is final, and always before removal.

use mta_sched::{BounceKind, SchedError, Scheduler};

use crate::util::*;

#[test]
fn the_bounce_comes_when_the_message_is_finished_and_before_its_removal() {
    let mut s = Scheduler::new(config(10, 20));
    add(
        &mut s,
        message(
            1,
            "alice@example.org",
            vec![
                remote("gone@a.example"),
                remote("slow@b.example"),
                remote("gone2@c.example"),
            ],
        ),
        t(0),
    );
    let started = jobs(&mut s, t(0));
    assert_eq!(started.len(), 3);
    finish(&mut s, &started[0], &failed(), t(1));
    finish(&mut s, &started[2], &failed(), t(1));
    // slow@b is still running: no bounce, no removal.
    assert!(s.poll_bounce().is_none());
    assert!(s.poll_remove().is_none());
    let r = finish(&mut s, &started[1], &delivered(), t(2));
    assert!(r.finished);
    let bounce = s.poll_bounce().expect("a bounce");
    assert_eq!(bounce.kind, BounceKind::Single);
    assert_eq!(bounce.sender.as_bytes(), b"alice@example.org");
    let failed: Vec<(u32, &[u8])> = bounce
        .failures
        .iter()
        .map(|f| (f.index, f.address.as_bytes()))
        .collect();
    assert_eq!(
        failed,
        [(0, &b"gone@a.example"[..]), (2, &b"gone2@c.example"[..])]
    );
    assert_eq!(bounce.failures[0].reason, b"550 no such user");
    // One bounce per message, and no removal before it is confirmed.
    assert!(s.poll_bounce().is_none());
    assert!(s.poll_remove().is_none());
    s.handle_bounced(id(1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.poll_remove(), Some(id(1)));
    assert!(!s.contains(id(1)));
}

#[test]
fn a_failed_injection_is_offered_again_after_123_seconds() {
    let mut s = Scheduler::new(config(10, 20));
    add(
        &mut s,
        message(1, "a@x", vec![remote("gone@a.example")]),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    finish(&mut s, &job, &failed(), t(0));
    let bounce = s.poll_bounce().expect("a bounce");
    s.handle_bounce_failed(bounce.message, t(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(s.poll_bounce().is_none());
    assert!(s.poll_remove().is_none());
    assert_eq!(s.poll_timeout(), Some(t(128)));
    s.handle_timeout(t(127));
    assert!(s.poll_bounce().is_none());
    s.handle_timeout(t(128));
    let again = s.poll_bounce().expect("offered again");
    assert_eq!(again, bounce);
    s.handle_bounced(id(1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.poll_remove(), Some(id(1)));
}

#[test]
fn an_all_delivered_message_is_removed_without_a_bounce() {
    let mut s = Scheduler::new(config(10, 20));
    add(
        &mut s,
        message(1, "a@x", vec![remote("x@a.example"), local("y@here", "y")]),
        t(0),
    );
    for job in jobs(&mut s, t(0)) {
        finish(&mut s, &job, &delivered(), t(0));
    }
    assert!(s.poll_bounce().is_none());
    assert_eq!(s.poll_remove(), Some(id(1)));
    assert_eq!(s.messages(), 0);
}

#[test]
fn double_and_triple_bounces_follow_the_sender() {
    let mut s = Scheduler::new(config(10, 20));
    add(&mut s, message(1, "", vec![remote("gone@a.example")]), t(0));
    add(
        &mut s,
        message(2, "#@[]", vec![remote("gone@b.example")]),
        t(0),
    );
    for job in jobs(&mut s, t(0)) {
        finish(&mut s, &job, &failed(), t(0));
    }
    let mut kinds = vec![];
    while let Some(b) = s.poll_bounce() {
        kinds.push((b.message.as_u64(), b.kind));
    }
    kinds.sort_by_key(|k| k.0);
    assert_eq!(kinds, [(1, BounceKind::Double), (2, BounceKind::Discard)]);
    // Even a discarded bounce is confirmed before the removal.
    assert!(s.poll_remove().is_none());
    s.handle_bounced(id(2)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.poll_remove(), Some(id(2)));
    assert!(s.poll_remove().is_none());
}

#[test]
fn calls_out_of_order_are_refused() {
    let mut s = Scheduler::new(config(10, 20));
    add(&mut s, message(1, "a@x", vec![remote("x@a.example")]), t(0));
    assert_eq!(
        s.handle_new(message(1, "a@x", vec![]), t(0)),
        Err(SchedError::DuplicateMessage(id(1)))
    );
    assert_eq!(s.handle_bounced(id(1)), Err(SchedError::NoBounceOut(id(1))));
    assert_eq!(s.hold(id(9)), Err(SchedError::UnknownMessage(id(9))));
    let job = one_job(&mut s, t(0));
    finish(&mut s, &job, &delivered(), t(0));
    assert_eq!(
        s.handle_done(job.id, &[delivered()], t(0)),
        Err(SchedError::UnknownJob(job.id))
    );
}

#[test]
fn a_deleted_message_frees_its_slots_and_records_nothing() {
    let mut s = Scheduler::new(config(1, 20));
    add(&mut s, message(1, "a@x", vec![local("x@here", "x")]), t(0));
    add(&mut s, message(2, "a@x", vec![local("y@here", "y")]), t(0));
    let job = one_job(&mut s, t(0));
    s.delete(job.message).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.messages(), 1);
    let r = finish(&mut s, &job, &failed(), t(1));
    assert!(r.marks.is_empty());
    assert!(s.poll_bounce().is_none());
    let next = one_job(&mut s, t(1));
    assert_ne!(next.message, job.message);
}

#[test]
fn stats_follow_the_queue() {
    let mut s = Scheduler::new(config(10, 20));
    assert_eq!(s.oldest_birth(), None);
    let mut m = message(1, "a@x", vec![local("x@here", "x")]);
    m.birth = t(50);
    add(&mut s, m, t(60));
    let mut m = message(2, "a@x", vec![local("y@here", "y")]);
    m.birth = t(10);
    add(&mut s, m, t(60));
    assert_eq!((s.messages(), s.oldest_birth()), (2, Some(t(10))));
    let started = jobs(&mut s, t(60));
    let older = started
        .iter()
        .find(|j| j.message == id(2))
        .expect("job of msg 2");
    finish(&mut s, older, &delivered(), t(61));
    assert_eq!(s.poll_remove(), Some(id(2)));
    assert_eq!((s.messages(), s.oldest_birth()), (1, Some(t(50))));
}

#[test]
fn with_wait_for_marks_nothing_is_bounced_or_removed_before_the_marks_are_durable() {
    let mut s = Scheduler::new(mta_sched::Config {
        wait_for_marks: true,
        ..config(10, 20)
    });
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
    for job in &started {
        let result = if job.message == id(1) {
            failed()
        } else {
            delivered()
        };
        let r = finish(&mut s, job, &result, t(1));
        assert!(r.finished);
    }
    assert!(s.poll_bounce().is_none());
    assert!(s.poll_remove().is_none());
    s.handle_marked(id(2)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.poll_remove(), Some(id(2)));
    assert!(s.poll_bounce().is_none());
    s.handle_marked(id(1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.poll_bounce().map(|b| b.message), Some(id(1)));
    assert_eq!(s.handle_marked(id(1)), Err(SchedError::NoMarksOut(id(1))));
}
