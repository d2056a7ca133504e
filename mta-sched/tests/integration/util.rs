//! A fake clock and small builders.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mta_core::DeliveryResult;
use mta_queue::{MessageId, Status};
use mta_sched::{Config, Job, NewMessage, Recipient, Recorded, Scheduler};

/// `s` seconds after the test epoch (every message here is born at `t(0)` unless said).
pub(crate) fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
}

pub(crate) fn id(n: u64) -> MessageId {
    MessageId::from_u64(n)
}

pub(crate) fn config(local: usize, remote: usize) -> Config {
    Config {
        concurrency_local: local,
        concurrency_remote: remote,
        ..Config::default()
    }
}

pub(crate) fn local(addr: &str, user: &str) -> Recipient {
    Recipient::local(addr, user)
}

pub(crate) fn remote(addr: &str) -> Recipient {
    Recipient::remote(addr)
}

pub(crate) fn message(n: u64, sender: &str, recipients: Vec<Recipient>) -> NewMessage {
    NewMessage {
        id: id(n),
        birth: t(0),
        sender: sender.into(),
        recipients,
    }
}

pub(crate) fn add(s: &mut Scheduler, m: NewMessage, now: SystemTime) {
    s.handle_new(m, now).unwrap_or_else(|e| panic!("{e}"));
}

pub(crate) fn delivered() -> DeliveryResult {
    DeliveryResult::Delivered {
        text: "did 1+0+0".into(),
    }
}

pub(crate) fn deferred() -> DeliveryResult {
    DeliveryResult::Deferred {
        text: "451 try later".into(),
        status: None,
    }
}

pub(crate) fn failed() -> DeliveryResult {
    DeliveryResult::Failed {
        text: "550 no such user".into(),
        status: None,
    }
}

/// Every job `poll_job(now)` hands out right now.
pub(crate) fn jobs(s: &mut Scheduler, now: SystemTime) -> Vec<Job> {
    std::iter::from_fn(|| s.poll_job(now)).collect()
}

/// Reports `result` for every target of `job`.
pub(crate) fn finish(
    s: &mut Scheduler,
    job: &Job,
    result: &DeliveryResult,
    now: SystemTime,
) -> Recorded {
    let results = vec![result.clone(); job.targets.len()];
    s.handle_done(job.id, &results, now)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The one job due at `now`.
pub(crate) fn one_job(s: &mut Scheduler, now: SystemTime) -> Job {
    let mut all = jobs(s, now);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// The next retry time a single deferral recorded.
pub(crate) fn next_attempt(r: &Recorded) -> SystemTime {
    match &r.marks[..] {
        [(_, Status::Deferred { next_attempt, .. })] => *next_attempt,
        other => panic!("{other:?}"),
    }
}

/// The addresses of a job's targets.
pub(crate) fn addresses(job: &Job) -> Vec<String> {
    job.targets
        .iter()
        .map(|t| t.address.to_string_lossy())
        .collect()
}
