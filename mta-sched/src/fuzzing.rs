//! Entry point for the fuzz target (`fuzz/fuzz_targets/sched_ops.rs`) and the property test:
//! bytes become a sequence of driver calls, and a model of what the driver has seen checks
//! the promises after each one. Not a stable API.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mta_core::DeliveryResult;
use mta_queue::{MessageId, Status};

use crate::{Channel, Config, Job, NewMessage, Recipient, Route, Scheduler};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
}

/// What the driver knows of one message.
struct Seen {
    /// Per recipient: `None` while not final, `Some(failed)` once final.
    finals: Vec<Option<bool>>,
    held: bool,
    bounce_out: bool,
    bounced: bool,
}

/// How far a run got (so tests can tell that it reached the deep states).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// Jobs started.
    pub jobs: usize,
    /// Bounces handed out.
    pub bounces: usize,
    /// Messages removed.
    pub removals: usize,
}

/// Runs the operations `data` encodes and panics if a promise is broken: running jobs
/// within the limits, no job for a held message, no recipient in two jobs, a bounce only
/// for a message whose recipients are all final, a removal only after that and after the
/// bounce (if any failed) was confirmed, with `wait_for_marks` neither before every
/// `Recorded` was confirmed, and consistent internal counts after every step.
pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut b = Bytes(data);
    let local = usize::from(b.byte() % 4);
    let remote = usize::from(b.byte() % 6);
    let lifetime = Duration::from_secs(u64::from(b.byte() % 8) * 1000 + 1);
    let flags = b.byte();
    let config = Config {
        concurrency_local: local,
        concurrency_remote: remote,
        queue_lifetime: lifetime,
        remote_enabled: flags % 4 != 0,
        wait_for_marks: flags & 8 != 0,
        local_batch: usize::from(b.byte() % 4),
        remote_batch: usize::from(b.byte() % 4),
        ..Config::default()
    };
    let mut sched = Scheduler::new(config);
    let mut now = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let mut seen: HashMap<MessageId, Seen> = HashMap::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut busy: HashSet<(MessageId, u32)> = HashSet::new();
    let mut unmarked: Vec<MessageId> = Vec::new();
    let wait_for_marks = sched.config().wait_for_marks;
    let mut next_id = 1;
    while let Some(op) = b.next() {
        match op % 14 {
            0 => {
                let id = MessageId::from_u64(next_id);
                next_id += 1;
                let m = new_message(&mut b, id, now);
                let finals = m
                    .recipients
                    .iter()
                    .map(|r| match r.status {
                        Status::Delivered => Some(false),
                        Status::Failed(_) => Some(true),
                        _ => None,
                    })
                    .collect();
                assert!(sched.handle_new(m, now).is_ok());
                seen.insert(
                    id,
                    Seen {
                        finals,
                        held: false,
                        bounce_out: false,
                        bounced: false,
                    },
                );
            }
            1 => {
                if let Some(job) = sched.poll_job(now) {
                    let ch = job.channel();
                    let limit = match ch {
                        Channel::Local => sched.config().concurrency_local,
                        Channel::Remote => sched.config().concurrency_remote,
                    };
                    assert!(sched.running(ch) <= limit, "{ch} over its limit");
                    assert!(!job.targets.is_empty());
                    let s = seen.get(&job.message).expect("job for a known message");
                    assert!(!s.held, "job for a held message");
                    for t in &job.targets {
                        assert!(busy.insert((job.message, t.index)), "recipient in two jobs");
                        assert_eq!(s.finals[t.index as usize], None, "final recipient retried");
                    }
                    jobs.push(job);
                    reached.jobs += 1;
                }
            }
            2 if !jobs.is_empty() => {
                let job = jobs.swap_remove(usize::from(b.byte()) % jobs.len());
                let results: Vec<DeliveryResult> =
                    job.targets.iter().map(|_| result(b.byte())).collect();
                let recorded = sched
                    .handle_done(job.id, &results, now)
                    .expect("running job");
                for t in &job.targets {
                    busy.remove(&(job.message, t.index));
                }
                if wait_for_marks && !recorded.marks.is_empty() {
                    unmarked.push(job.message);
                }
                if let Some(s) = seen.get_mut(&job.message) {
                    for (index, status) in &recorded.marks {
                        match status {
                            Status::Delivered => s.finals[*index as usize] = Some(false),
                            Status::Failed(_) => s.finals[*index as usize] = Some(true),
                            _ => {}
                        }
                    }
                }
            }
            3 => {
                if let Some(bounce) = sched.poll_bounce() {
                    let s = seen.get_mut(&bounce.message).expect("known");
                    assert!(!s.held, "bounce of a held message");
                    assert!(
                        s.finals.iter().all(Option::is_some),
                        "bounce before the end"
                    );
                    assert!(!bounce.failures.is_empty());
                    assert!(
                        !unmarked.contains(&bounce.message),
                        "bounce before the marks"
                    );
                    s.bounce_out = true;
                    reached.bounces += 1;
                }
            }
            4 => {
                let out: Vec<MessageId> = seen
                    .iter()
                    .filter(|(_, s)| s.bounce_out)
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(&id) = out.get(usize::from(b.byte()) % out.len().max(1)) {
                    let s = seen.get_mut(&id).expect("known");
                    s.bounce_out = false;
                    if b.byte() % 4 == 0 {
                        assert!(sched.handle_bounce_failed(id, now).is_ok());
                    } else {
                        assert!(sched.handle_bounced(id).is_ok());
                        s.bounced = true;
                    }
                }
            }
            5 => {
                if let Some(id) = sched.poll_remove() {
                    let s = seen.remove(&id).expect("known");
                    assert!(!s.held, "removal of a held message");
                    assert!(s.finals.iter().all(Option::is_some), "removed unfinished");
                    assert!(!unmarked.contains(&id), "removed before the marks");
                    let failed = s.finals.contains(&Some(true));
                    assert!(!failed || s.bounced, "removed before its bounce");
                    reached.removals += 1;
                }
            }
            6 | 7 => {
                let ids: Vec<MessageId> = seen.keys().copied().collect();
                if let Some(&id) = ids.get(usize::from(b.byte()) % ids.len().max(1)) {
                    let s = seen.get_mut(&id).expect("known");
                    if op % 14 == 6 {
                        assert!(sched.hold(id).is_ok());
                        s.held = true;
                    } else {
                        assert!(sched.release(id, now).is_ok());
                        s.held = false;
                    }
                }
            }
            8 => sched.flush(now),
            9 => now += Duration::from_secs(u64::from(b.byte()) * 37),
            10 => {
                let ids: Vec<MessageId> = seen.keys().copied().collect();
                if let Some(&id) = ids.get(usize::from(b.byte()) % ids.len().max(1))
                    && b.byte() % 8 == 0
                {
                    assert!(sched.delete(id).is_ok());
                    seen.remove(&id);
                    unmarked.retain(|m| *m != id);
                }
            }
            11 => {
                if let Some(at) = sched.poll_timeout()
                    && at > now
                {
                    now = at;
                }
            }
            12 => sched.set_concurrency(usize::from(b.byte() % 4), usize::from(b.byte() % 6)),
            13 if !unmarked.is_empty() => {
                let id = unmarked.swap_remove(usize::from(b.byte()) % unmarked.len());
                assert!(sched.handle_marked(id).is_ok());
            }
            _ => {}
        }
        if let Err(e) = sched.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }
    reached
}

fn new_message(b: &mut Bytes<'_>, id: MessageId, now: SystemTime) -> NewMessage {
    let sender = match b.byte() % 5 {
        0 => "",
        1 => "#@[]",
        2 => "list-@example.org-@[]",
        _ => "alice@example.org",
    };
    let n = b.byte() % 6;
    let recipients = (0..n)
        .map(|_| {
            let k = b.byte();
            let route = if k.is_multiple_of(2) {
                Route::local(format!("user{}", k % 3))
            } else {
                Route::remote(
                    ["a.example", "B.example", "b.EXAMPLE", "c.example"][usize::from(k % 4)],
                )
            };
            let status = match b.byte() % 8 {
                0 => Status::Delivered,
                1 => Status::Failed(b"550 no".to_vec()),
                2 | 3 => Status::Deferred {
                    attempts: 1,
                    next_attempt: now + Duration::from_secs(u64::from(b.byte()) * 20),
                    reason: Vec::new(),
                },
                _ => Status::Pending,
            };
            Recipient::new(format!("r{k}@x"), route).with_status(status)
        })
        .collect();
    NewMessage {
        id,
        birth: now,
        sender: sender.into(),
        recipients,
    }
}

fn result(b: u8) -> DeliveryResult {
    match b % 3 {
        0 => DeliveryResult::Delivered { text: "ok".into() },
        1 => DeliveryResult::Deferred {
            text: "try later".into(),
            status: None,
        },
        _ => DeliveryResult::Failed {
            text: "no".into(),
            status: None,
        },
    }
}
