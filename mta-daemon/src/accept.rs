//! What every accept loop does when `accept` fails.
//!
//! A failure that belongs to one connection (the client reset it before it was taken,
//! `ECONNABORTED`; a firewall rule, `EPERM`; a signal, `EINTR`) is not repeated by the next
//! `accept`, which runs at once. A shortage of descriptors or kernel memory (`EMFILE`,
//! `ENFILE`, `ENOBUFS`, `ENOMEM`) leaves the connection queued, so an `accept` at once fails
//! again at once: a loop that only retried would spin a CPU until a descriptor came free
//! (a client holding connections open past the open-file limit could make it). Such a
//! failure pauses the loop, 10 ms at first and twice as long after each further one, up to
//! a second, and is logged once per shortage (`warning: WHO: accept: ...; pausing new
//! connections`). Connections wait in the listen queue meanwhile; the first accepted one
//! ends the shortage.

use std::io;
use std::time::Duration;

use crate::log;

/// The pause after the first failure of a shortage.
const FIRST_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause: a listener short of descriptors still tries once a second.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Paces one accept loop through failed `accept` calls (see the module documentation).
#[derive(Debug)]
pub(crate) struct Pacer {
    /// Whose loop this is, for the log line: `smtp`, `submission`, ...
    who: &'static str,
    /// The last pause taken; zero when the last `accept` worked.
    pause: Duration,
}

impl Pacer {
    pub(crate) fn new(who: &'static str) -> Pacer {
        Pacer {
            who,
            pause: Duration::ZERO,
        }
    }

    /// The connection `accept` gave, or `None` after a failure (having paused if the
    /// failure was a shortage): the loop goes on to the next `accept` either way.
    pub(crate) fn take<T>(&mut self, accepted: io::Result<T>) -> Option<T> {
        match accepted {
            Ok(conn) => {
                self.pause = Duration::ZERO;
                Some(conn)
            }
            Err(e) => {
                let next = next_pause(&e, self.pause);
                if !next.is_zero() {
                    if self.pause.is_zero() {
                        log::line(&format!(
                            "warning: {}: accept: {e}; pausing new connections (raise the \
                             open-file limit, or lower the concurrency settings)",
                            self.who
                        ));
                    }
                    std::thread::sleep(next);
                }
                self.pause = next;
                None
            }
        }
    }
}

/// The pause after `accept` failed with `e`, the previous failure's pause having been
/// `last` (zero: the previous `accept` worked): zero for a failure of one connection,
/// else twice `last`, at least [`FIRST_PAUSE`] and at most [`LONGEST_PAUSE`].
fn next_pause(e: &io::Error, last: Duration) -> Duration {
    use rustix::io::Errno;
    let shortage = [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()));
    if shortage {
        (last * 2).clamp(FIRST_PAUSE, LONGEST_PAUSE)
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    fn os(n: Errno) -> io::Error {
        io::Error::from_raw_os_error(n.raw_os_error())
    }

    #[test]
    fn a_failure_of_one_connection_is_retried_at_once() {
        for n in [Errno::CONNABORTED, Errno::PERM, Errno::INTR, Errno::PROTO] {
            assert_eq!(next_pause(&os(n), Duration::ZERO), Duration::ZERO, "{n:?}");
            // Even in the middle of a shortage: it says nothing about descriptors.
            assert_eq!(
                next_pause(&os(n), Duration::from_millis(80)),
                Duration::ZERO
            );
        }
    }

    #[test]
    fn a_shortage_pauses_twice_as_long_each_time_up_to_a_second() {
        for n in [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM] {
            let mut pause = Duration::ZERO;
            let mut seen = Vec::new();
            for _ in 0..10 {
                pause = next_pause(&os(n), pause);
                seen.push(pause.as_millis());
            }
            assert_eq!(
                seen,
                [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000],
                "{n:?}"
            );
        }
    }

    #[test]
    fn an_accepted_connection_ends_the_shortage() {
        let mut pacer = Pacer::new("test");
        let emfile: io::Result<u8> = Err(os(Errno::MFILE));
        assert_eq!(pacer.take(emfile), None);
        assert_eq!(pacer.pause, FIRST_PAUSE);
        assert_eq!(pacer.take(Ok(7u8)), Some(7));
        assert_eq!(pacer.pause, Duration::ZERO);
        // A reset connection neither pauses nor counts as a shortage.
        let reset: io::Result<u8> = Err(os(Errno::CONNABORTED));
        assert_eq!(pacer.take(reset), None);
        assert_eq!(pacer.pause, Duration::ZERO);
    }
}
