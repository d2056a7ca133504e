//! Drives mta-sched with a fake clock and prints what it decides, in qmail-send's log words.
//!
//! The messages: msg 1 to a local user, to a remote domain that always defers and to one
//! that accepts; msg 2, a bounce (sender `<>`) whose recipient refuses it, so it
//! double-bounces; msg 3, held until 1000 s; msgs 4-8 to one slow domain next to msg 9 for
//! another, with 4 remote slots: slow.example gets one slot while the others wait, and all
//! four once it is alone. `queuelifetime` is 3000 s, so msg 1's remote recipient is
//! retried at qmail's 400, 1600 and 3600 s and the last deferral becomes a bounce.
//!
//! Run it with `cargo run -p mta-sched --example fake_clock`; it checks its own output
//! against the transcript at the bottom and exits 1 if they differ.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mta_core::DeliveryResult;
use mta_sched::mta_queue::{self, MessageId};
use mta_sched::{Config, Job, NewMessage, Recipient, Route, Scheduler};

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(at(0)).map_or(0, |d| d.as_secs())
}

fn remote(addr: &str) -> Recipient {
    let domain = addr.rsplit_once('@').map_or("", |(_, d)| d);
    Recipient::new(addr, Route::remote(domain))
}

fn message(n: u64, sender: &str, recipients: Vec<Recipient>) -> NewMessage {
    NewMessage {
        id: MessageId::from_u64(n),
        birth: at(0),
        sender: sender.into(),
        recipients,
    }
}

/// The world outside: what each address answers.
fn deliver(job: &Job) -> Vec<DeliveryResult> {
    job.targets
        .iter()
        .map(|t| {
            let a = t.address.to_string_lossy();
            if a.ends_with("@down.example") {
                DeliveryResult::Deferred {
                    text: "421 try later".into(),
                    status: None,
                }
            } else if a.starts_with("nobody@") {
                DeliveryResult::Failed {
                    text: "550 no such user".into(),
                    status: None,
                }
            } else {
                DeliveryResult::Delivered {
                    text: "250 ok".into(),
                }
            }
        })
        .collect()
}

fn run() -> Result<String, mta_sched::SchedError> {
    let mut out = String::new();
    let mut sched = Scheduler::new(Config {
        concurrency_local: 2,
        concurrency_remote: 4,
        queue_lifetime: Duration::from_mins(50),
        ..Config::default()
    });
    let mut now = at(0);
    sched.handle_new(
        message(
            1,
            "alice@example.org",
            vec![
                Recipient::new("bob@example.org", Route::local("bob")),
                remote("carol@down.example"),
                remote("dave@up.example"),
            ],
        ),
        now,
    )?;
    sched.handle_new(message(2, "", vec![remote("nobody@up.example")]), now)?;
    sched.handle_new(
        message(3, "alice@example.org", vec![remote("erin@up.example")]),
        now,
    )?;
    sched.hold(MessageId::from_u64(3))?;
    for n in 4..9 {
        sched.handle_new(
            message(n, "list@example.org", vec![remote("x@slow.example")]),
            now,
        )?;
    }
    sched.handle_new(
        message(9, "list@example.org", vec![remote("y@fast.example")]),
        now,
    )?;

    let mut running: Vec<Job> = Vec::new();
    for _ in 0..100 {
        if now >= at(1000) && sched.is_held(MessageId::from_u64(3)) {
            sched.release(MessageId::from_u64(3), now)?;
            writeln!(out, "{:>5} release msg 3", secs(now)).ok();
        }
        // 1. bounces, 2. removals, 3. jobs, 4. the timer.
        while let Some(b) = sched.poll_bounce() {
            writeln!(
                out,
                "{:>5} bounce msg {} ({:?}, {} failure)",
                secs(now),
                b.message,
                b.kind,
                b.failures.len()
            )
            .ok();
            sched.handle_bounced(b.message)?;
        }
        while let Some(id) = sched.poll_remove() {
            writeln!(out, "{:>5} end msg {id}", secs(now)).ok();
        }
        while let Some(job) = sched.poll_job(now) {
            let to: Vec<String> = job
                .targets
                .iter()
                .map(|t| t.address.to_string_lossy())
                .collect();
            writeln!(
                out,
                "{:>5} starting delivery {}: msg {} to {} {}",
                secs(now),
                job.id,
                job.message,
                job.channel(),
                to.join(",")
            )
            .ok();
            running.push(job);
        }
        // Every running job takes one second; slow.example's take 60.
        let Some(pos) = running
            .iter()
            .position(|j| !j.targets[0].address.as_bytes().ends_with(b"slow.example"))
            .or(if running.is_empty() { None } else { Some(0) })
        else {
            // Sleep until the next timer; the operator releases msg 3 at 1000 s.
            let mut wake = sched.poll_timeout();
            if sched.is_held(MessageId::from_u64(3)) {
                wake = Some(wake.map_or(at(1000), |w| w.min(at(1000))));
            }
            match wake {
                Some(t) => {
                    now = now.max(t);
                    continue;
                }
                None => break,
            }
        };
        let job = running.remove(pos);
        let slow = job.targets[0].address.as_bytes().ends_with(b"slow.example");
        now += Duration::from_secs(if slow { 60 } else { 1 });
        let results = deliver(&job);
        let recorded = sched.handle_done(job.id, &results, now)?;
        for (target, (_, status)) in job.targets.iter().zip(&recorded.marks) {
            let word = match status {
                mta_queue::Status::Delivered => "success".to_string(),
                mta_queue::Status::Failed(_) => "failure".to_string(),
                mta_queue::Status::Deferred { next_attempt, .. } => {
                    format!("deferral, next at {}", secs(*next_attempt))
                }
                mta_queue::Status::Pending => "pending".to_string(),
            };
            writeln!(
                out,
                "{:>5} delivery {}: {} {word}",
                secs(now),
                job.id,
                target.address.to_string_lossy()
            )
            .ok();
        }
    }
    writeln!(out, "queue: {} messages", sched.messages()).ok();
    Ok(out)
}

/// The transcript, after its first newline.
const EXPECTED: &str = r"
    0 starting delivery 1: msg 1 to local bob@example.org
    0 starting delivery 2: msg 1 to remote carol@down.example
    0 starting delivery 3: msg 1 to remote dave@up.example
    0 starting delivery 4: msg 4 to remote x@slow.example
    0 starting delivery 5: msg 9 to remote y@fast.example
    1 delivery 1: bob@example.org success
    2 delivery 2: carol@down.example deferral, next at 400
    2 starting delivery 6: msg 2 to remote nobody@up.example
    3 delivery 3: dave@up.example success
    3 starting delivery 7: msg 5 to remote x@slow.example
    4 delivery 5: y@fast.example success
    4 end msg 9
    4 starting delivery 8: msg 6 to remote x@slow.example
    5 delivery 6: nobody@up.example failure
    5 bounce msg 2 (Double, 1 failure)
    5 end msg 2
    5 starting delivery 9: msg 7 to remote x@slow.example
   65 delivery 4: x@slow.example success
   65 end msg 4
   65 starting delivery 10: msg 8 to remote x@slow.example
  125 delivery 7: x@slow.example success
  125 end msg 5
  185 delivery 8: x@slow.example success
  185 end msg 6
  245 delivery 9: x@slow.example success
  245 end msg 7
  305 delivery 10: x@slow.example success
  305 end msg 8
  400 starting delivery 11: msg 1 to remote carol@down.example
  401 delivery 11: carol@down.example deferral, next at 1600
 1000 release msg 3
 1000 starting delivery 12: msg 3 to remote erin@up.example
 1001 delivery 12: erin@up.example success
 1001 end msg 3
 1600 starting delivery 13: msg 1 to remote carol@down.example
 1601 delivery 13: carol@down.example deferral, next at 3600
 3600 starting delivery 14: msg 1 to remote carol@down.example
 3601 delivery 14: carol@down.example failure
 3601 bounce msg 1 (Single, 1 failure)
 3601 end msg 1
queue: 0 messages
";

fn main() -> ExitCode {
    let out = match run() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("fake_clock: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{out}");
    if Some(out.as_str()) == EXPECTED.strip_prefix('\n') {
        ExitCode::SUCCESS
    } else {
        eprintln!("fake_clock: the transcript differs from the expected one");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_transcript_is_the_expected_one() {
        let out = super::run().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Some(out.as_str()), super::EXPECTED.strip_prefix('\n'));
    }
}
