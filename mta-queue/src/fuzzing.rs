//! Entry points for the fuzz targets (`fuzz/fuzz_targets/queue_envelope.rs`). Not a stable
//! API.

use crate::format;

/// Decodes `data` as a message file (header, envelope section, status log) and as a qmail
/// envelope; checks that whatever decodes re-encodes to the same bytes. Panics on a broken
/// round trip, never on bad input.
pub fn decode_all(data: &[u8]) {
    message_file(data);
    if let Ok((env, used)) = crate::qmail::decode(data) {
        let again = crate::qmail::encode(&env).ok();
        assert_eq!(
            again.as_deref(),
            Some(&data[..used]),
            "qmail envelope round trip"
        );
    }
    let (records, used) = format::decode_statuses(data, u32::MAX);
    let mut again = Vec::new();
    for (index, status) in &records {
        if format::encode_status(*index, status, &mut again).is_err() {
            return;
        }
    }
    assert_eq!(again, data[..used], "status records round trip");
}

fn message_file(data: &[u8]) {
    let Ok(header) = format::decode_header(data) else {
        return;
    };
    let start = format::HEADER_LEN.saturating_add(header.body_len);
    let Some(rest) = usize::try_from(start).ok().and_then(|s| data.get(s..)) else {
        return;
    };
    let Some(meta) = rest.get(..header.meta_len as usize) else {
        return;
    };
    let with_id = header.body_crc.is_some();
    if let Ok((birth, env, id)) = format::decode_meta(meta, header.nrcpt, with_id) {
        assert_eq!(
            format::encode_meta(birth, &env, id).ok().as_deref(),
            Some(meta),
            "envelope round trip"
        );
        let log = &rest[meta.len()..];
        let _ = format::decode_statuses(log, header.nrcpt);
    }
}
