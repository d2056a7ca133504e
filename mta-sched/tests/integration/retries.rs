//! qmail-send's retry schedule, queuelifetime, flush and startup with recorded statuses.

use std::time::Duration;

use mta_queue::Status;
use mta_sched::{BounceKind, Config, LIFETIME_TEXT, Scheduler};

use crate::util::*;

/// Defers the message's one recipient on time, attempt after attempt, and returns the
/// times (seconds after birth) of the attempts.
fn on_time_attempts(s: &mut Scheduler, count: usize) -> Vec<u64> {
    let mut at = t(0);
    let mut seen = Vec::new();
    for _ in 0..count {
        if !seen.is_empty() {
            assert!(s.poll_job(at - Duration::from_secs(1)).is_none());
        }
        let job = one_job(s, at);
        seen.push(at.duration_since(t(0)).map_or(0, |d| d.as_secs()));
        let r = finish(s, &job, &deferred(), at);
        at = next_attempt(&r);
        assert_eq!(s.poll_timeout(), Some(at));
    }
    seen
}

#[test]
fn local_retries_at_100_400_900_1600_seconds() {
    let mut s = Scheduler::new(Config::default());
    add(
        &mut s,
        message(1, "a@x", vec![local("bob@here", "bob")]),
        t(0),
    );
    assert_eq!(on_time_attempts(&mut s, 5), [0, 100, 400, 900, 1600]);
}

#[test]
fn remote_retries_at_400_1600_3600_6400_seconds() {
    let mut s = Scheduler::new(Config::default());
    add(
        &mut s,
        message(1, "a@x", vec![remote("bob@there.example")]),
        t(0),
    );
    assert_eq!(on_time_attempts(&mut s, 5), [0, 400, 1600, 3600, 6400]);
}

#[test]
fn nothing_runs_before_the_retry_time() {
    let mut s = Scheduler::new(Config::default());
    add(
        &mut s,
        message(1, "a@x", vec![remote("bob@there.example")]),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    let r = finish(&mut s, &job, &deferred(), t(0));
    assert!(matches!(
        &r.marks[..],
        [(0, Status::Deferred { attempts: 1, .. })]
    ));
    assert!(s.poll_job(t(399)).is_none());
    let job = one_job(&mut s, t(400));
    assert_eq!(job.targets[0].attempts, 1);
}

#[test]
fn a_late_attempt_moves_the_schedule() {
    let mut s = Scheduler::new(Config::default());
    add(
        &mut s,
        message(1, "a@x", vec![remote("bob@there.example")]),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    finish(&mut s, &job, &deferred(), t(0));
    // Tried at 1000 s instead of 400 s: isqrt(1000) = 31, (31 + 20)^2 = 2601.
    let job = one_job(&mut s, t(1000));
    let r = finish(&mut s, &job, &deferred(), t(1000));
    assert_eq!(next_attempt(&r), t(2601));
}

#[test]
fn default_queuelifetime_fails_the_remote_attempt_at_608400_seconds() {
    // qmail-reference §1.7: the last remote attempt inside a week is k=38 (577600 s); the
    // one at k=39 (608400 s) starts a "dying" pass and its deferral becomes a failure.
    let mut s = Scheduler::new(Config::default());
    add(
        &mut s,
        message(1, "a@x", vec![remote("bob@there.example")]),
        t(0),
    );
    let mut at = t(0);
    for k in 0..39u64 {
        assert_eq!(at, t((20 * k) * (20 * k)));
        let job = one_job(&mut s, at);
        at = next_attempt(&finish(&mut s, &job, &deferred(), at));
    }
    assert_eq!(at, t(608_400));
    let job = one_job(&mut s, at);
    let r = finish(&mut s, &job, &deferred(), at);
    assert!(r.finished);
    match &r.marks[..] {
        [(0, Status::Failed(text))] => {
            assert_eq!(text, format!("451 try later\n{LIFETIME_TEXT}").as_bytes());
        }
        other => panic!("{other:?}"),
    }
    let bounce = s.poll_bounce().expect("a bounce");
    assert_eq!(bounce.kind, BounceKind::Single);
    assert!(bounce.failures[0].reason.ends_with(b"too long.\n"));
}

#[test]
fn a_deferral_past_queuelifetime_is_a_failure_and_bounces() {
    let mut s = Scheduler::new(Config {
        queue_lifetime: Duration::from_secs(1000),
        ..Config::default()
    });
    add(
        &mut s,
        message(1, "alice@example.org", vec![local("bob@here", "bob")]),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    finish(&mut s, &job, &deferred(), t(0));
    // 999 s old: still a deferral.
    s.flush(t(999));
    let job = one_job(&mut s, t(999));
    let r = finish(&mut s, &job, &deferred(), t(999));
    assert!(!r.finished);
    assert!(s.poll_bounce().is_none());
    // 1000 s old: dying.
    s.flush(t(1000));
    let job = one_job(&mut s, t(1000));
    let r = finish(&mut s, &job, &deferred(), t(1000));
    assert!(r.finished);
    assert!(matches!(&r.marks[..], [(0, Status::Failed(_))]));
    assert_eq!(s.poll_timeout(), None);
    let bounce = s.poll_bounce().expect("a bounce");
    assert_eq!(bounce.failures.len(), 1);
    assert!(s.poll_remove().is_none());
    s.handle_bounced(id(1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.poll_remove(), Some(id(1)));
    assert_eq!(s.messages(), 0);
}

#[test]
fn flush_makes_every_deferred_recipient_due_now() {
    let mut s = Scheduler::new(config(10, 20));
    add(
        &mut s,
        message(
            1,
            "a@x",
            vec![remote("bob@there.example"), local("carol@here", "carol")],
        ),
        t(0),
    );
    for job in jobs(&mut s, t(0)) {
        finish(&mut s, &job, &deferred(), t(0));
    }
    assert!(s.poll_job(t(10)).is_none());
    s.flush(t(10));
    let again = jobs(&mut s, t(10));
    assert_eq!(again.len(), 2);
    // The birth does not change: the next remote retry is (isqrt(10) + 20)^2 = 529 s.
    let remote_job = again
        .iter()
        .find(|j| j.channel() == mta_sched::Channel::Remote)
        .expect("remote job");
    let r = finish(&mut s, remote_job, &deferred(), t(10));
    assert_eq!(next_attempt(&r), t(529));
}

#[test]
fn startup_takes_the_recorded_statuses() {
    let mut s = Scheduler::new(config(10, 20));
    let deferred_until = |secs, attempts| Status::Deferred {
        attempts,
        next_attempt: t(secs),
        reason: b"451 later".to_vec(),
    };
    let m = message(
        1,
        "a@x",
        vec![
            remote("done@a.example").with_status(Status::Delivered),
            remote("gone@b.example").with_status(Status::Failed(b"550 no".to_vec())),
            remote("later@c.example").with_status(deferred_until(5000, 3)),
            remote("overdue@d.example").with_status(deferred_until(3000, 2)),
            remote("new@e.example"),
        ],
    );
    add(&mut s, m, t(4000));
    let mut started = jobs(&mut s, t(4000));
    started.sort_by_key(|j| j.targets[0].index);
    let got: Vec<(Vec<String>, u32)> = started
        .iter()
        .map(|j| (addresses(j), j.targets[0].attempts))
        .collect();
    assert_eq!(
        got,
        [
            (vec!["overdue@d.example".to_string()], 2),
            (vec!["new@e.example".to_string()], 0),
        ]
    );
    assert_eq!(s.poll_timeout(), Some(t(5000)));
    for j in &started {
        finish(&mut s, j, &delivered(), t(4000));
    }
    let job = one_job(&mut s, t(5000));
    assert_eq!(job.targets[0].attempts, 3);
    finish(&mut s, &job, &delivered(), t(5000));
    // gone@b failed before the restart: the bounce is still owed.
    let bounce = s.poll_bounce().expect("a bounce");
    assert_eq!(bounce.failures.len(), 1);
    assert_eq!(bounce.failures[0].index, 1);
}

#[test]
fn startup_with_nothing_left_to_do_goes_straight_to_bounce_or_removal() {
    let mut s = Scheduler::new(config(10, 20));
    add(
        &mut s,
        message(
            1,
            "a@x",
            vec![remote("x@a.example").with_status(Status::Delivered)],
        ),
        t(0),
    );
    add(
        &mut s,
        message(
            2,
            "a@x",
            vec![remote("x@a.example").with_status(Status::Failed(b"550".to_vec()))],
        ),
        t(0),
    );
    add(&mut s, message(3, "a@x", vec![]), t(0));
    assert!(s.poll_job(t(0)).is_none());
    assert_eq!(s.poll_bounce().map(|b| b.message), Some(id(2)));
    assert_eq!(s.poll_remove(), Some(id(1)));
    assert_eq!(s.poll_remove(), Some(id(3)));
    assert_eq!(s.poll_remove(), None);
}

#[test]
fn remote_recipients_wait_while_remote_delivery_is_off() {
    let mut s = Scheduler::new(Config {
        remote_enabled: false,
        ..Config::default()
    });
    add(
        &mut s,
        message(
            1,
            "a@x",
            vec![remote("bob@there.example"), local("carol@here", "carol")],
        ),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    assert_eq!(addresses(&job), ["carol@here"]);
    finish(&mut s, &job, &delivered(), t(0));
    assert_eq!(s.poll_timeout(), None);
    assert!(s.poll_job(t(1_000_000)).is_none());
    assert!(s.poll_bounce().is_none());
    assert!(s.poll_remove().is_none());
    assert_eq!(s.messages(), 1);
}

#[test]
fn the_schedule_and_the_lifetime_count_from_the_attempts_start() {
    let mut s = Scheduler::new(Config {
        queue_lifetime: Duration::from_secs(1000),
        ..Config::default()
    });
    add(
        &mut s,
        message(1, "a@x", vec![remote("bob@there.example")]),
        t(0),
    );
    // Started at 0, ended at 30 (a slow server): next at 400, as after qmail's pass.
    let job = one_job(&mut s, t(0));
    let r = finish(&mut s, &job, &deferred(), t(30));
    assert_eq!(next_attempt(&r), t(400));
    // Started at 999, ended at 1005: the pass started before the lifetime ran out, so it
    // is still a deferral: (isqrt(999) + 20)^2 = 2601.
    s.flush(t(999));
    let job = one_job(&mut s, t(999));
    let r = finish(&mut s, &job, &deferred(), t(1005));
    assert_eq!(next_attempt(&r), t(2601));
    // The next attempt starts after the lifetime: dying, a failure.
    let job = one_job(&mut s, t(2601));
    let r = finish(&mut s, &job, &deferred(), t(2601));
    assert!(matches!(&r.marks[..], [(0, Status::Failed(_))]));
}

#[test]
fn a_retry_time_passed_during_a_slow_attempt_moves_to_a_second_after_its_end() {
    let mut s = Scheduler::new(Config::default());
    add(
        &mut s,
        message(1, "a@x", vec![remote("bob@there.example")]),
        t(0),
    );
    let job = one_job(&mut s, t(0));
    // A 500 s timeout: qmail's next time (400 s) has passed.
    let r = finish(&mut s, &job, &deferred(), t(500));
    assert_eq!(next_attempt(&r), t(501));
}
