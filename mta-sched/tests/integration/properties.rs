//! Arbitrary sequences of driver calls never panic and keep the promises (the same checker
//! as the `sched_ops` fuzz target: `mta_sched::fuzzing::run`).

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_operations_keep_the_invariants(ops in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = mta_sched::fuzzing::run(&ops); // how far it got matters only to the fixed run below
    }
}

/// Long fixed runs through every operation, with and without `wait_for_marks`, so the
/// checker itself is exercised whatever the random cases turn out to be.
#[test]
fn long_deterministic_runs_keep_the_invariants() {
    let mut x: u32 = 0x9e37_79b9;
    let ops: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    // concurrencylocal 3, concurrencyremote 4, lifetime 5001 s, flags, batches 2 and 3.
    for flags in [1, 9] {
        let mut data = vec![3, 4, 5, flags, 2, 3];
        data.extend(&ops);
        let reached = mta_sched::fuzzing::run(&data);
        assert!(reached.jobs > 100, "{reached:?}");
        assert!(reached.bounces > 10, "{reached:?}");
        assert!(reached.removals > 10, "{reached:?}");
    }
}
