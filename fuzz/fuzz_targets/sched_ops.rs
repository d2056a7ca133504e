#![no_main]
//! mta-sched: arbitrary sequences of driver calls (new messages with any recorded statuses,
//! jobs started and finished with any results, bounces confirmed or failed, holds, releases,
//! flushes, deletions, time jumps, concurrency changes) never panic, never exceed the
//! concurrency limits, never give a held message a job, and never remove a message before
//! every recipient is final and its bounce was confirmed.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mta_sched::fuzzing::run(data); // what it reached matters only to the unit tests
});
