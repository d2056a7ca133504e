#![no_main]
//! mta-core's length-prefixed frames (the pipe to local delivery workers): any bytes read
//! as frames give frames or an error, never a panic or an allocation beyond the input's
//! claims; every frame read writes back to the same bytes.
use libfuzzer_sys::fuzz_target;
use mta_core::frame;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Ok(Some(fields)) = frame::read(&mut input) {
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        frame::write(&mut out, &refs).expect("writing to a Vec");
        let again = frame::read(&mut &out[..]).expect("reread").expect("one frame");
        assert_eq!(again, fields);
    }
});
