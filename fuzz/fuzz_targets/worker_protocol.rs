#![no_main]
//! mta-dotqmail's worker protocol (spawner ↔ per-user worker, and the spawn requests and
//! answers between the queue process and lspawn): any frame decodes to
//! requests (single or batch frames), answers, or a worker's sync request and its answer,
//! or to `None`, without panicking; whatever decodes encodes back to a frame that decodes
//! to the same values, and no sync request also passes for an answer frame.
use libfuzzer_sys::fuzz_target;
use mta_core::frame;
use mta_dotqmail::worker;

fuzz_target!(|data: &[u8]| {
    let (count, data) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c % 8), rest),
        None => return,
    };
    let Ok(Some(fields)) = frame::read(&mut &data[..]) else {
        return;
    };
    if let Some((message, requests)) = worker::decode_requests(&fields) {
        let mut out = Vec::new();
        worker::write_requests(&mut out, message, &requests).expect("write");
        let again = frame::read(&mut &out[..]).expect("read").expect("frame");
        assert_eq!(worker::decode_requests(&again), Some((message, requests)));
    }
    if let Some(batch) = worker::decode_batch(&fields) {
        let refs: Vec<(&[u8], &[worker::WorkerRequest<'_>])> =
            batch.iter().map(|(m, r)| (*m, r.as_slice())).collect();
        let mut out = Vec::new();
        worker::write_batch(&mut out, &refs).expect("write");
        let again = frame::read(&mut &out[..]).expect("read").expect("frame");
        assert_eq!(worker::decode_batch(&again), Some(batch));
    }
    if let Some(spawn) = worker::decode_spawn(&fields) {
        let mut out = Vec::new();
        worker::write_spawn(&mut out, &spawn).expect("write");
        let again = frame::read(&mut &out[..]).expect("read").expect("frame");
        assert_eq!(worker::decode_spawn(&again), Some(spawn));
    }
    if let Some(answer) = worker::decode_spawn_answer(&fields) {
        let mut out = Vec::new();
        worker::write_spawn_answer(&mut out, &answer).expect("write");
        let again = frame::read(&mut &out[..]).expect("read").expect("frame");
        assert_eq!(worker::decode_spawn_answer(&again), Some(answer));
    }
    if let Some(device) = worker::decode_sync_request(&fields) {
        let mut out = Vec::new();
        worker::write_sync_request(&mut out, device).expect("write");
        let again = frame::read(&mut &out[..]).expect("read").expect("frame");
        assert_eq!(worker::decode_sync_request(&again), Some(device));
        if count > 0 {
            assert_eq!(worker::decode_answers(fields.clone(), count), None);
        }
    }
    if let Some(answer) = worker::decode_sync_answer(&fields) {
        let mut out = Vec::new();
        worker::write_sync_answer(&mut out, &answer).expect("write");
        let again = frame::read(&mut &out[..]).expect("read").expect("frame");
        assert_eq!(worker::decode_sync_answer(&again), Some(answer));
    }
    if let Some(answers) = worker::decode_answers(fields, count) {
        let mut out = Vec::new();
        worker::write_answers(&mut out, &answers).expect("write");
        let again = frame::read(&mut &out[..]).expect("read").expect("frame");
        assert_eq!(worker::decode_answers(again, count), Some(answers));
    }
});
