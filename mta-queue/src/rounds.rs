//! Commit rounds: group commit across messages with one file-system sync per round.
//!
//! A round links every message written since the last round into `mess/`, then syncs the
//! file system once (`syncfs`): that one sync makes the messages' data and their names
//! durable together, and only then do their commits return (`250`). A lone committer pays
//! one flush; N concurrent committers share it.
//!
//! One sync for both means a name can reach the disk before its data: a power loss during
//! the sync may leave a `mess/` name on a file that is empty, cut short, partly old or (a
//! reused file) still the previous message. Such a message was never acknowledged, and
//! every message file says what it should hold (format 2: the body's CRC, and the id in the
//! envelope section), so the first open after the machine restarts checks them whole and
//! removes the torn ones (`verify.rs`). Ordering the two with a sync in between, as this
//! module did before, cost a second flush on every message's path to `250`.
//!
//! There is no background thread: whoever arrives while no round is running leads one;
//! callers that arrive during a round wait for the next. A leader starts at once unless
//! recent rounds covered several commits: then it starts no sooner than 1 ms, or as long
//! as recent syncs took (at most 20 ms), after the previous round started (unless as many
//! commits are already waiting; see `Rounds::gather` and `round_interval`), which trades a
//! little latency for fewer flushes and metadata writes per message. A message written
//! while a round runs waits for the next one: a commit returns only after a sync that
//! started after its link.

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
    /// Written, waiting for the next round to link and sync them (`None`: a
    /// [`barrier`](Rounds::barrier), which only waits for the sync).
    written: Vec<(u64, Option<T>)>,
    results: HashMap<u64, Outcome>,
    leading: bool,
    /// A leader waits on `arrived` for company ([`Rounds::gather`]): only then does an
    /// arrival signal (a signal nobody waits for is still a system call).
    gathering: bool,
    next_ticket: u64,
    /// The concurrency seen: the most committers a recent round had in view when it ended
    /// (those it covered and those waiting for the next; it decays by one per round), and
    /// when the last round's sync started. The bounds of the next leader's wait for
    /// company.
    company: usize,
    last_start: Option<Instant>,
    /// When an enqueue or an outside caller last asked for a round ([`Rounds::busy`]).
    last_asked: Option<Instant>,
    /// How long recent syncs took (a moving average, each new sync weighing 1/8): rounds
    /// start no more often than one per average sync (see [`Rounds::gather`]).
    sync_average: Duration,
}

/// How long after a round started [`Rounds::busy`] still expects more: a little longer
/// than the longest wait between rounds ([`MAX_ROUND_INTERVAL`]).
const RECENT: Duration = Duration::from_millis(25);

/// What a round does, supplied by the queue.
pub(crate) trait RoundOps<T> {
    /// Gives the item its name (`tmp/` → `mess/`); the round's sync makes both durable.
    fn link(&self, item: &T) -> Outcome;
    /// One sync of the whole file system.
    fn sync(&self) -> io::Result<()>;
}

impl<T> Rounds<T> {
    pub(crate) fn new() -> Self {
        Rounds {
            state: Mutex::new(State {
                written: Vec::new(),
                results: HashMap::new(),
                leading: false,
                gathering: false,
                next_ticket: 0,
                company: 0,
                last_start: None,
                last_asked: None,
                sync_average: Duration::ZERO,
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

    /// True while a round is syncing, callers wait for the next one, or an enqueue or a
    /// [`barrier`](Rounds::barrier) asked for one within [`RECENT`]: a sync due anyway
    /// (rounds keep coming while anything commits), which another write may share instead
    /// of syncing by itself. Rounds asked for by [`quiet_barrier`](Rounds::quiet_barrier)
    /// alone do not count, so such callers do not keep each other in rounds.
    pub(crate) fn busy(&self) -> bool {
        let st = self.lock();
        st.leading || !st.written.is_empty() || st.last_asked.is_some_and(|t| t.elapsed() < RECENT)
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits `item`, whose data the caller has written (not synced): returns `Ok` once
    /// it was linked and a sync that started after the link finished. On `Err` the item
    /// may or may not have been linked (the caller takes the name back).
    pub(crate) fn submit(&self, item: T, ops: &dyn RoundOps<T>) -> Outcome {
        self.enter(Some(item), ops, true)
    }

    /// Returns once a sync that started after this call finished: everything written to
    /// the file system before the call is durable then. The sync is the next round's, shared
    /// with the commits in it (a local delivery's maildir files ride along with the
    /// messages being received).
    pub(crate) fn barrier(&self, ops: &dyn RoundOps<T>) -> Outcome {
        self.enter(None, ops, true)
    }

    /// [`barrier`](Rounds::barrier), for a caller that joins rounds only while
    /// [`busy`](Rounds::busy) (a mark): it does not make the rounds look busy itself.
    pub(crate) fn quiet_barrier(&self, ops: &dyn RoundOps<T>) -> Outcome {
        self.enter(None, ops, false)
    }

    fn enter(&self, item: Option<T>, ops: &dyn RoundOps<T>, asks: bool) -> Outcome {
        let mut st = self.lock();
        if asks {
            st.last_asked = Some(Instant::now());
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.written.push((ticket, item));
        // The gathering leader waits for this many; waking it for fewer only puts it back
        // to sleep (a context switch per arrival).
        if st.gathering && st.written.len() >= st.company {
            self.arrived.notify_one();
        }
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
            let round = std::mem::take(&mut st.written);
            drop(st);
            let mut guard = Guard {
                rounds: self,
                tickets: round.iter().map(|(t, _)| *t).collect(),
                finished: false,
            };
            let linked: Vec<(u64, Outcome)> = round
                .iter()
                .map(|(t, item)| (*t, item.as_ref().map_or(Ok(()), |i| ops.link(i))))
                .collect();
            let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
            let started = Instant::now();
            let synced = ops.sync();
            if synced.is_ok() {
                self.last_ok.fetch_max(number, Ordering::SeqCst);
            }
            let took = started.elapsed();
            st = self.lock();
            st.company = company_after(round.len(), st.written.len(), st.company);
            st.last_start = Some(started);
            st.sync_average = (st.sync_average * 7 + took) / 8;
            for (t, outcome) in linked {
                let outcome = match (&synced, outcome) {
                    (Ok(()), o) => o,
                    (Err(e), Ok(())) => Err(sync_error(e)),
                    (Err(_), Err(e)) => Err(e),
                };
                st.results.insert(t, outcome);
            }
            st.leading = false;
            guard.finished = true;
            // The leader's own item was in the round (it was written before this thread
            // led, and a round takes everything written).
            let mine = st.results.remove(&ticket);
            // Wake the waiters with the lock released: woken while the leader still held
            // it, each would block on it again, and be woken again, in turn.
            drop(st);
            self.done.notify_all();
            match mine {
                Some(outcome) => return outcome,
                None => st = self.lock(),
            }
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
        let deadline = last + round_interval(st.sync_average);
        st.gathering = true;
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
        st.gathering = false;
        st
    }
}

/// While commits are concurrent, rounds start at most this often (so at most 1,000
/// syncs a second for the queue, however many commits share them), or once per recent
/// average sync where syncs take longer.
const ROUND_INTERVAL: Duration = Duration::from_millis(1);

/// The longest a leader waits for company after the previous round started, however slow
/// recent syncs were.
const MAX_ROUND_INTERVAL: Duration = Duration::from_millis(20);

/// The company the next leader waits for, after a round that covered `covered` commits
/// ended with `waiting` more already written: every committer in view (those the round
/// releases come back with their next message, and would otherwise make a round of their
/// own while the waiting ones sync: two half-size rounds alternating), or the previous
/// figure less one, so a burst's concurrency is forgotten a round at a time.
fn company_after(covered: usize, waiting: usize, previous: usize) -> usize {
    (covered + waiting).max(previous.saturating_sub(1))
}

/// How soon after the previous round a leader with company in view starts the next: no
/// sooner than a recent sync took ([`ROUND_INTERVAL`] at least, [`MAX_ROUND_INTERVAL`] at
/// most). Starting syncs faster than the disk completes them only queues them; on a disk
/// that is slow, or fast until a throttle or a writeback stalls it, the wait lets one
/// sync cover the commits that would otherwise lead small rounds of their own, each
/// writing the same bitmaps, directory and inode table blocks again.
fn round_interval(sync_average: Duration) -> Duration {
    sync_average.clamp(ROUND_INTERVAL, MAX_ROUND_INTERVAL)
}

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

    /// Records the order of links and syncs (how many syncs had started at each link).
    struct Log {
        syncs: AtomicUsize,
        linked: Mutex<Vec<(u32, usize)>>,
        fail_sync: Option<usize>,
    }

    impl RoundOps<u32> for Log {
        fn link(&self, item: &u32) -> Outcome {
            let now = self.syncs.load(Ordering::SeqCst);
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
            linked: Mutex::new(Vec::new()),
            fail_sync,
        })
    }

    #[test]
    fn a_lone_caller_pays_one_sync_after_its_link() {
        let r = Rounds::new();
        let l = log(None);
        for i in 0..3 {
            r.submit(i, &*l).unwrap();
            let linked = l.linked.lock().unwrap();
            assert_eq!(
                linked.last(),
                Some(&(i, i as usize)),
                "linked before its sync"
            );
        }
        assert_eq!(l.syncs.load(Ordering::SeqCst), 3);
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
        assert!(r.submit(1, &*l).is_ok()); // sync 1
        assert!(r.synced_since(m));
        let m2 = r.mark();
        assert!(r.submit(2, &*l).is_err()); // sync 2 failed
        assert!(!r.synced_since(m2), "sync 2 failed");
        assert!(r.submit(3, &*l).is_ok());
        assert!(r.synced_since(m2));
    }

    #[test]
    fn a_barrier_returns_after_a_sync_that_started_after_it_and_links_nothing() {
        let r = Rounds::new();
        let l = log(None);
        r.barrier(&*l).unwrap();
        assert_eq!(l.syncs.load(Ordering::SeqCst), 1);
        assert!(l.linked.lock().unwrap().is_empty());
        let l = log(Some(1));
        assert!(r.barrier(&*l).is_err(), "its sync failed");
    }

    #[test]
    fn a_failed_sync_fails_what_it_covered() {
        let r = Rounds::new();
        let l = log(Some(1));
        assert!(r.submit(1, &*l).is_err(), "its round's sync failed");
        assert!(r.submit(2, &*l).is_ok());
    }

    /// After slow syncs (a disk that took 15 ms a sync on average), a leader waits up to
    /// that long for as many commits as recent rounds covered, so four committers arriving
    /// 3 ms apart share one sync. Paced only by the 1 ms floor, each would lead a round of
    /// its own (four syncs). The arrivals are timed by sleeps, so a machine that stalls a
    /// thread for longer than the slack can split them; the test tries up to 10 times and
    /// needs one try where they shared (a rounds logic without the wait never does).
    #[test]
    fn after_slow_syncs_a_round_waits_longer_for_its_company() {
        let mut seen = Vec::new();
        for _ in 0..10 {
            let r = Arc::new(Rounds::new());
            let l = log(None);
            let start = Arc::new(std::sync::Barrier::new(4));
            let threads: Vec<_> = (0..4u32)
                .map(|i| {
                    let (r, l, start) = (r.clone(), l.clone(), start.clone());
                    std::thread::spawn(move || {
                        if start.wait().is_leader() {
                            let mut st = r.lock();
                            st.company = 4;
                            st.last_start = Some(Instant::now());
                            st.sync_average = Duration::from_millis(15);
                        }
                        std::thread::sleep(Duration::from_millis(1 + 3 * u64::from(i)));
                        r.submit(i, &*l).unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(l.linked.lock().unwrap().len(), 4);
            // One sync when every arrival fell inside the wait; two tolerate a thread
            // stalled for longer than the 6 ms of slack.
            let syncs = l.syncs.load(Ordering::SeqCst);
            if syncs <= 2 {
                return;
            }
            seen.push(syncs);
        }
        panic!("4 commits inside one wait took {seen:?} syncs in 10 tries");
    }

    /// The leader waiting for company starts its round as soon as the company is there,
    /// not at the end of the wait: the arrival that completes it wakes the leader (the
    /// arrivals before it do not). Two committers, the second 1 ms after the first, with
    /// a 20 ms wait: with the wake-up lost, every try would take the whole 20 ms. A
    /// stalled machine can make a try slow; one fast try in 10 is enough.
    #[test]
    fn the_arrival_that_completes_the_company_starts_the_round_at_once() {
        let mut seen = Vec::new();
        for _ in 0..10 {
            let r = Arc::new(Rounds::new());
            let l = log(None);
            {
                let mut st = r.lock();
                st.company = 2;
                st.last_start = Some(Instant::now());
                st.sync_average = MAX_ROUND_INTERVAL;
            }
            let begun = Instant::now();
            let first = {
                let (r, l) = (r.clone(), l.clone());
                std::thread::spawn(move || r.submit(1, &*l).unwrap())
            };
            std::thread::sleep(Duration::from_millis(1));
            r.submit(2, &*l).unwrap();
            first.join().unwrap();
            let (took, syncs) = (begun.elapsed(), l.syncs.load(Ordering::SeqCst));
            if syncs == 1 && took < Duration::from_millis(15) {
                return;
            }
            seen.push((took, syncs));
        }
        panic!("no try shared one quick round (time, syncs): {seen:?}");
    }

    #[test]
    fn company_counts_the_released_and_the_waiting() {
        assert_eq!(
            company_after(5, 5, 0),
            10,
            "two cohorts of five are ten committers"
        );
        assert_eq!(
            company_after(1, 0, 10),
            9,
            "a burst is forgotten one round at a time"
        );
        assert_eq!(company_after(0, 0, 0), 0);
    }

    #[test]
    fn the_wait_follows_the_average_sync_within_its_bounds() {
        let r: Rounds<u32> = Rounds::new();
        let l = log(None);
        r.barrier(&*l).unwrap();
        let average = r.lock().sync_average;
        assert!(average > Duration::ZERO && average < Duration::from_millis(50));
        assert_eq!(round_interval(Duration::ZERO), ROUND_INTERVAL);
        assert_eq!(
            round_interval(Duration::from_millis(7)),
            Duration::from_millis(7)
        );
        assert_eq!(round_interval(Duration::from_secs(2)), MAX_ROUND_INTERVAL);
    }
}
