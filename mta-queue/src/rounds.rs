//! Commit rounds: group commit across messages with one file-system sync per round.
//!
//! A message's commit needs two syncs in order: its data must be durable before its name
//! appears in `mess/`, and that name must be durable before `250`. [`Rounds`] pipelines
//! those two steps across concurrent commits so that **one** `syncfs` serves both: a round
//! links every message whose data an earlier round made durable, then syncs once. That sync
//! makes those names durable (their commits return) and, at the same time, the data of every
//! message written since (they are linked in the next round). A lone committer pays two
//! rounds, the same two flushes as a file `fdatasync` plus a directory `fsync`; N
//! concurrent committers share a flush per round instead of paying two each.
//!
//! There is no background thread: whoever arrives while no round is running leads one;
//! callers that arrive during a round wait for the next. A leader starts at once unless
//! recent rounds covered several commits: then it starts no sooner than 1 ms after the
//! previous round (unless as many commits are already waiting; see `Rounds::gather`),
//! which trades a little latency for fewer flushes per message. (A round's sync
//! covers only data written before the round began: a message written later waits for the
//! following round, so nothing is linked before its data is durable.)

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::QueueError;
use crate::group::Outcome;

/// A commit point for items of type `T` (a message's paths) through rounds of
/// link-then-sync.
#[derive(Debug)]
pub(crate) struct Rounds<T> {
    state: Mutex<State<T>>,
    done: Condvar,
    /// Signalled when an item is submitted (a waiting leader counts its company).
    arrived: Condvar,
    /// Syncs started so far (they run one at a time, so sync number k started after every
    /// change made while `started` was below k).
    started: AtomicU64,
    /// The number of the last sync that succeeded.
    last_ok: AtomicU64,
}

#[derive(Debug)]
struct State<T> {
    /// Data written, not yet covered by a finished sync.
    written: Vec<(u64, T)>,
    /// Data durable: to be linked in the next round.
    ready: Vec<(u64, T)>,
    results: HashMap<u64, Outcome>,
    leading: bool,
    next_ticket: u64,
    /// The concurrency seen: the most items a recent round's sync covered (it decays by
    /// one per round), and when the last round's sync started. The bounds of the next
    /// leader's wait for company.
    company: usize,
    last_start: Option<Instant>,
}

/// What a round does, supplied by the queue.
pub(crate) trait RoundOps<T> {
    /// Gives the item its durable name (`tmp/` → `mess/`); its data is durable.
    fn link(&self, item: &T) -> Outcome;
    /// One sync of the whole file system.
    fn sync(&self) -> io::Result<()>;
}

impl<T> Rounds<T> {
    pub(crate) fn new() -> Self {
        Rounds {
            state: Mutex::new(State {
                written: Vec::new(),
                ready: Vec::new(),
                results: HashMap::new(),
                leading: false,
                next_ticket: 0,
                company: 0,
                last_start: None,
            }),
            done: Condvar::new(),
            arrived: Condvar::new(),
            started: AtomicU64::new(0),
            last_ok: AtomicU64::new(0),
        }
    }

    /// A mark for a change made now (say, a name removed): the change is durable once
    /// [`synced_since`](Rounds::synced_since) of the mark is true.
    pub(crate) fn mark(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// True once a sync that started after `mark` was taken has succeeded.
    pub(crate) fn synced_since(&self, mark: u64) -> bool {
        self.last_ok.load(Ordering::SeqCst) > mark
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits `item`, whose data the caller has written (not synced): returns `Ok` once
    /// a sync finished after its data was written, it was linked, and a later sync
    /// finished after the link. On `Err` the item may or may not have been linked (the
    /// caller takes the name back).
    pub(crate) fn submit(&self, item: T, ops: &dyn RoundOps<T>) -> Outcome {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.written.push((ticket, item));
        self.arrived.notify_one();
        loop {
            if let Some(outcome) = st.results.remove(&ticket) {
                return outcome;
            }
            if st.leading {
                st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.leading = true;
            st = self.gather(st);
            let to_link = std::mem::take(&mut st.ready);
            let covered = std::mem::take(&mut st.written);
            drop(st);
            let mut guard = Guard {
                rounds: self,
                tickets: to_link.iter().chain(&covered).map(|(t, _)| *t).collect(),
                finished: false,
            };
            let linked: Vec<(u64, Outcome)> = to_link
                .iter()
                .map(|(t, item)| (*t, ops.link(item)))
                .collect();
            let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
            let started = Instant::now();
            let synced = ops.sync();
            if synced.is_ok() {
                self.last_ok.fetch_max(number, Ordering::SeqCst);
            }
            st = self.lock();
            st.company = covered.len().max(st.company.saturating_sub(1));
            st.last_start = Some(started);
            for (t, outcome) in linked {
                let outcome = match (&synced, outcome) {
                    (Ok(()), o) => o,
                    (Err(e), Ok(())) => Err(sync_error(e)),
                    (Err(_), Err(e)) => Err(e),
                };
                st.results.insert(t, outcome);
            }
            match &synced {
                Ok(()) => st.ready.extend(covered),
                Err(e) => {
                    for (t, _) in covered {
                        st.results.insert(t, Err(sync_error(e)));
                    }
                }
            }
            st.leading = false;
            guard.finished = true;
            self.done.notify_all();
        }
    }
}

impl<T> Rounds<T> {
    /// The leader's wait for company (PostgreSQL's `commit_delay`, made adaptive): while
    /// recent rounds covered several commits, concurrent committers are about, and those
    /// the last sync released are likely to commit again soon; so a round starts no sooner
    /// than [`ROUND_INTERVAL`] after the previous one, unless as many commits as a recent
    /// round covered have written their data already. A lone committer (recent rounds
    /// covered one each) never waits.
    fn gather<'a>(&'a self, mut st: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        let Some(last) = st.last_start else {
            return st;
        };
        if st.company < 2 {
            return st;
        }
        let deadline = last + ROUND_INTERVAL;
        while st.written.len() < st.company {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .arrived
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st
    }
}

/// While commits are concurrent, rounds start at most this often (so at most 1,000
/// syncs a second for the queue, however many commits share them).
const ROUND_INTERVAL: Duration = Duration::from_millis(1);

fn sync_error(e: &io::Error) -> QueueError {
    QueueError::io("syncfs", ".", crate::error::copy_io(e))
}

/// Fails the round's items and hands leadership back if a round panics, so the other
/// callers are not left waiting forever.
struct Guard<'a, T> {
    rounds: &'a Rounds<T>,
    tickets: Vec<u64>,
    finished: bool,
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut st = self.rounds.lock();
        for t in &self.tickets {
            let err = io::Error::other("commit round panicked");
            st.results
                .insert(*t, Err(QueueError::io("commit", "", err)));
        }
        st.leading = false;
        self.rounds.done.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// Records the order of links and syncs; checks each link comes after a sync that
    /// followed the item's submission.
    struct Log {
        syncs: AtomicUsize,
        submitted_at: Mutex<HashMap<u32, usize>>,
        linked: Mutex<Vec<(u32, usize)>>,
        fail_sync: Option<usize>,
    }

    impl RoundOps<u32> for Log {
        fn link(&self, item: &u32) -> Outcome {
            let now = self.syncs.load(Ordering::SeqCst);
            let at = self.submitted_at.lock().unwrap()[item];
            assert!(
                now > at,
                "item {item} linked before a sync covered its data"
            );
            self.linked.lock().unwrap().push((*item, now));
            Ok(())
        }
        fn sync(&self) -> io::Result<()> {
            let n = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(std::time::Duration::from_micros(200));
            if Some(n) == self.fail_sync {
                return Err(io::Error::from_raw_os_error(5));
            }
            Ok(())
        }
    }

    fn log(fail_sync: Option<usize>) -> Arc<Log> {
        Arc::new(Log {
            syncs: AtomicUsize::new(0),
            submitted_at: Mutex::new(HashMap::new()),
            linked: Mutex::new(Vec::new()),
            fail_sync,
        })
    }

    #[test]
    fn a_lone_caller_pays_two_syncs() {
        let r = Rounds::new();
        let l = log(None);
        for i in 0..3 {
            l.submitted_at
                .lock()
                .unwrap()
                .insert(i, l.syncs.load(Ordering::SeqCst));
            r.submit(i, &*l).unwrap();
        }
        assert_eq!(l.syncs.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn concurrent_callers_share_rounds_and_return_after_a_later_sync() {
        let r = Arc::new(Rounds::new());
        let l = log(None);
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let (r, l) = (r.clone(), l.clone());
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let v = t * 1000 + i;
                        l.submitted_at
                            .lock()
                            .unwrap()
                            .insert(v, l.syncs.load(Ordering::SeqCst));
                        r.submit(v, &*l).unwrap();
                        let now = l.syncs.load(Ordering::SeqCst);
                        let linked = l.linked.lock().unwrap();
                        let (_, at) = linked.iter().find(|(x, _)| *x == v).unwrap();
                        assert!(now > *at, "returned before a sync after its link");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let syncs = l.syncs.load(Ordering::SeqCst);
        assert!(syncs < 400, "{syncs} syncs for 400 commits: no sharing");
    }

    #[test]
    fn marks_are_synced_only_by_a_later_sync() {
        let r = Rounds::new();
        let l = log(Some(2));
        let m = r.mark();
        assert!(!r.synced_since(m));
        l.submitted_at.lock().unwrap().insert(1, 0);
        assert!(r.submit(1, &*l).is_err()); // sync 1 ok, sync 2 failed
        assert!(r.synced_since(m));
        let m2 = r.mark();
        assert!(!r.synced_since(m2), "sync 2 failed");
        l.submitted_at.lock().unwrap().insert(2, 2);
        assert!(r.submit(2, &*l).is_ok());
        assert!(r.synced_since(m2));
    }

    #[test]
    fn a_failed_sync_fails_what_it_covered() {
        let r = Rounds::new();
        let l = log(Some(2));
        l.submitted_at.lock().unwrap().insert(1, 0);
        assert!(r.submit(1, &*l).is_err(), "its names' sync failed");
        l.submitted_at.lock().unwrap().insert(2, 2);
        assert!(r.submit(2, &*l).is_ok());
    }
}
