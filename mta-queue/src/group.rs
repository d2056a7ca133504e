//! Group commit: callers hand their operation to a batch; one of them (the leader) performs
//! the whole batch with shared fsyncs while the others wait; everyone returns with their own
//! result only after the batch is durable.
//!
//! There is no timer and no background thread: the first caller to arrive when no batch is
//! in progress leads at once, so a single-threaded caller pays one mutex round trip and no
//! waiting. Batches form naturally from the callers that arrive while a leader is syncing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::QueueError;

/// One batched operation's outcome.
pub(crate) type Outcome = Result<(), QueueError>;

/// A group-commit point for operations of type `T`.
#[derive(Debug)]
pub(crate) struct Batcher<T> {
    state: Mutex<State<T>>,
    done: Condvar,
    max_batch: usize,
}

#[derive(Debug)]
struct State<T> {
    pending: VecDeque<(u64, T)>,
    results: HashMap<u64, Outcome>,
    leading: bool,
    next_ticket: u64,
}

impl<T> Batcher<T> {
    /// A batcher that hands at most `max_batch` operations to one leader (1 disables
    /// grouping while still serialising the operations).
    pub(crate) fn new(max_batch: usize) -> Self {
        Batcher {
            state: Mutex::new(State {
                pending: VecDeque::new(),
                results: HashMap::new(),
                leading: false,
                next_ticket: 0,
            }),
            done: Condvar::new(),
            max_batch: max_batch.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `item` to the next batch and returns its outcome once its batch has run.
    /// `run` performs a batch and must return one outcome per item, in order; it runs on
    /// whichever caller leads, with no lock held.
    pub(crate) fn submit(&self, item: T, run: &dyn Fn(&[T]) -> Vec<Outcome>) -> Outcome {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.pending.push_back((ticket, item));
        loop {
            if let Some(outcome) = st.results.remove(&ticket) {
                return outcome;
            }
            if st.leading {
                st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.leading = true;
            let n = st.pending.len().min(self.max_batch);
            let (tickets, items): (Vec<u64>, Vec<T>) = st.pending.drain(..n).unzip();
            drop(st);
            let mut guard = LeaderGuard {
                batcher: self,
                tickets,
                finished: false,
            };
            let mut outcomes = run(&items);
            drop(items);
            st = self.lock();
            outcomes.resize_with(guard.tickets.len(), || {
                Err(QueueError::io(
                    "batch",
                    "",
                    std::io::Error::other("batch lost an outcome"),
                ))
            });
            for (t, o) in guard.tickets.iter().zip(outcomes) {
                st.results.insert(*t, o);
            }
            st.leading = false;
            guard.finished = true;
            self.done.notify_all();
        }
    }
}

/// Hands leadership back (with an error for the batch) if `run` panics, so the other
/// callers are not left waiting forever.
struct LeaderGuard<'a, T> {
    batcher: &'a Batcher<T>,
    tickets: Vec<u64>,
    finished: bool,
}

impl<T> Drop for LeaderGuard<'_, T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut st = self.batcher.lock();
        for t in &self.tickets {
            let err = std::io::Error::other("group commit leader panicked");
            st.results.insert(*t, Err(QueueError::io("batch", "", err)));
        }
        st.leading = false;
        self.batcher.done.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn single_caller_leads_immediately() {
        let b = Batcher::new(64);
        let calls = AtomicUsize::new(0);
        for i in 0..3 {
            let out = b.submit(i, &|items: &[i32]| {
                calls.fetch_add(1, Ordering::SeqCst);
                assert_eq!(items, &[i]);
                vec![Ok(())]
            });
            assert!(out.is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn concurrent_callers_share_batches_and_get_their_own_outcome() {
        let b = Arc::new(Batcher::new(64));
        let batches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let (b, batches) = (b.clone(), batches.clone());
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        let v = t * 1000 + i;
                        let out = b.submit(v, &|items: &[u32]| {
                            batches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(50));
                            items
                                .iter()
                                .map(|&x| {
                                    if x % 7 == 0 {
                                        Err(QueueError::TooLarge)
                                    } else {
                                        Ok(())
                                    }
                                })
                                .collect()
                        });
                        assert_eq!(out.is_err(), v % 7 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(
            batches.load(Ordering::SeqCst) < 1600,
            "no batching happened"
        );
    }

    #[test]
    fn panicking_leader_releases_the_others() {
        let b = Batcher::new(8);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            b.submit(1, &|_: &[i32]| panic!("boom"))
        }));
        assert!(r.is_err());
        assert!(b.submit(2, &|_: &[i32]| vec![Ok(())]).is_ok());
    }
}
