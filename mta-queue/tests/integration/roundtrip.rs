//! Property tests: arbitrary bytes (CR, LF, NUL, non-UTF-8) in senders, recipients and
//! status texts come back exactly, before and after a power loss; nothing an attacker puts
//! in a field can be read back as structure.

use std::time::{Duration, UNIX_EPOCH};

use mta_core::{Address, Envelope};
use mta_queue::sim::{Restart, SimFs};
use mta_queue::{Queue, QueueOptions, Status, qmail};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::common::read_body;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn queue_round_trips_arbitrary_bytes(
        sender in bytes(80),
        recipients in vec(bytes(80), 1..6),
        body in bytes(3000),
        texts in vec(bytes(120), 1..6),
        secs in any::<u32>(),
        attempts in any::<u32>(),
    ) {
        let fs = SimFs::new();
        let q = Queue::open_with(fs.clone(), QueueOptions::default().split(2)).unwrap();
        let env = Envelope {
            sender: Address::from_bytes(sender),
            recipients: recipients.into_iter().map(Address::from_bytes).collect(),
        };
        let id = q.enqueue(&env, &body[..]).unwrap();
        let mut want = Vec::new();
        for i in 0..env.recipients.len() {
            let s = if i % 2 == 0 {
                Status::Failed(texts[i % texts.len()].clone())
            } else {
                Status::Deferred {
                    attempts,
                    next_attempt: UNIX_EPOCH + Duration::new(u64::from(secs), attempts % 1_000_000_000),
                    reason: texts[(i + 1) % texts.len()].clone(),
                }
            };
            q.mark(id, i as u32, s.clone()).unwrap();
            want.push(s);
        }
        for q in [q, Queue::open_with(fs.restart(Restart::PowerLoss), QueueOptions::default()).unwrap()] {
            let info = q.info(id).unwrap();
            prop_assert_eq!(&info.envelope, &env);
            prop_assert_eq!(&info.statuses, &want);
            prop_assert_eq!(read_body(&q, id), body.clone());
        }
    }

    #[test]
    fn qmail_codec_round_trips(sender in vec(1u8.., 0..100), recipients in vec(vec(1u8.., 0..100), 0..6)) {
        let env = Envelope {
            sender: Address::from_bytes(sender),
            recipients: recipients.into_iter().map(Address::from_bytes).collect(),
        };
        let wire = qmail::encode(&env).unwrap();
        prop_assert_eq!(qmail::decode(&wire).unwrap(), (env, wire.len()));
    }

    #[test]
    fn decoders_never_panic(data in bytes(400)) {
        mta_queue::fuzzing::decode_all(&data);
    }
}
