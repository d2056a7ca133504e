//! The operator's control protocol: what `mta queue list|show|delete|hold|release|flush`
//! sends to a running queue process over its local socket, and the answer.
//!
//! A request is a sequence of netstrings (`LEN:BYTES,`, D. J. Bernstein's format, as qmail's
//! own protocols use): the verb, then its arguments. Netstrings carry any byte, so an
//! address with spaces or a quoted local part needs no escaping. A reply is one byte, `+`
//! (done) or `-` (refused or failed), then free text up to the end of the stream (a
//! listing, or the reason), which the client prints.
//!
//! | verb | arguments |
//! |---|---|
//! | `list` | none, or `json` |
//! | `show` | one message id |
//! | `delete` | message ids, or `from` ADDRESS, or `to` ADDRESS |
//! | `hold`, `release` | message ids |
//! | `flush` | none |
//!
//! ```
//! use mta_sched::control::{Request, Selection, decode_request, encode_request};
//! let request = Request::Delete(Selection::To(b"\"joe smith\"@example.org".to_vec()));
//! let wire = encode_request(&request);
//! assert_eq!(wire, b"6:delete,2:to,23:\"joe smith\"@example.org,");
//! assert_eq!(decode_request(&wire), Ok(request));
//! ```

use std::fmt;

use mta_queue::MessageId;

/// The most bytes a request may have (a few thousand ids fit).
pub const MAX_REQUEST: usize = 256 * 1024;

/// The most arguments a request may have.
pub const MAX_ARGS: usize = 10_000;

/// Which messages a `delete` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// These ids.
    Ids(Vec<MessageId>),
    /// Every message whose envelope sender is this address (ASCII case ignored).
    From(Vec<u8>),
    /// Every message with this address among its unfinished recipients (ASCII case
    /// ignored).
    To(Vec<u8>),
}

/// One operator's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The queue listing: qmail-qread's text, or JSON when `json` is true.
    List {
        /// JSON (`mta queue list --json`) instead of qmail-qread's text.
        json: bool,
    },
    /// One message: envelope, recipient states and header.
    Show(MessageId),
    /// Remove messages without a bounce.
    Delete(Selection),
    /// Hold messages: no delivery attempts, no expiry, until released.
    Hold(Vec<MessageId>),
    /// Release held messages.
    Release(Vec<MessageId>),
    /// Retry every deferred delivery now (held messages stay held).
    Flush,
}

/// Why a request could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// Longer than [`MAX_REQUEST`] or with more than [`MAX_ARGS`] arguments.
    TooLarge,
    /// Not a sequence of netstrings (the byte offset where it broke).
    Framing(usize),
    /// No verb, or one this protocol does not have.
    UnknownVerb(Vec<u8>),
    /// The verb's arguments are missing, extra or malformed.
    BadArguments(&'static str),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::TooLarge => f.write_str("request too large"),
            ControlError::Framing(at) => write!(f, "malformed netstring at byte {at}"),
            ControlError::UnknownVerb(v) => {
                write!(f, "unknown command {:?}", String::from_utf8_lossy(v))
            }
            ControlError::BadArguments(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ControlError {}

fn netstring(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
    out.push(b',');
}

/// Encodes `request` for the wire.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    let ids = |out: &mut Vec<u8>, ids: &[MessageId]| {
        for id in ids {
            netstring(out, id.to_string().as_bytes());
        }
    };
    match request {
        Request::List { json } => {
            netstring(&mut out, b"list");
            if *json {
                netstring(&mut out, b"json");
            }
        }
        Request::Show(id) => {
            netstring(&mut out, b"show");
            ids(&mut out, &[*id]);
        }
        Request::Delete(selection) => {
            netstring(&mut out, b"delete");
            match selection {
                Selection::Ids(list) => ids(&mut out, list),
                Selection::From(a) => {
                    netstring(&mut out, b"from");
                    netstring(&mut out, a);
                }
                Selection::To(a) => {
                    netstring(&mut out, b"to");
                    netstring(&mut out, a);
                }
            }
        }
        Request::Hold(list) => {
            netstring(&mut out, b"hold");
            ids(&mut out, list);
        }
        Request::Release(list) => {
            netstring(&mut out, b"release");
            ids(&mut out, list);
        }
        Request::Flush => netstring(&mut out, b"flush"),
    }
    out
}

/// Splits `wire` into its netstrings.
fn split(wire: &[u8]) -> Result<Vec<&[u8]>, ControlError> {
    if wire.len() > MAX_REQUEST {
        return Err(ControlError::TooLarge);
    }
    let mut parts = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        if parts.len() == MAX_ARGS + 1 {
            return Err(ControlError::TooLarge);
        }
        let digits = wire[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        // No leading zeros but "0" itself, and at most 6 digits (MAX_REQUEST).
        if digits == 0 || digits > 6 || (digits > 1 && wire[at] == b'0') {
            return Err(ControlError::Framing(at));
        }
        let len: usize = std::str::from_utf8(&wire[at..at + digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(ControlError::Framing(at))?;
        let start = at + digits + 1;
        let end = start.checked_add(len).ok_or(ControlError::Framing(at))?;
        if wire.get(at + digits) != Some(&b':') || wire.get(end) != Some(&b',') {
            return Err(ControlError::Framing(at));
        }
        parts.push(&wire[start..end]);
        at = end + 1;
    }
    Ok(parts)
}

fn ids(args: &[&[u8]]) -> Result<Vec<MessageId>, ControlError> {
    if args.is_empty() {
        return Err(ControlError::BadArguments("no message id given"));
    }
    args.iter()
        .map(|a| {
            std::str::from_utf8(a)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(ControlError::BadArguments(
                    "a message id is a decimal number",
                ))
        })
        .collect()
}

/// Decodes a request as [`encode_request`] makes it.
///
/// # Errors
/// [`ControlError`]: too large, broken framing, an unknown verb or bad arguments.
pub fn decode_request(wire: &[u8]) -> Result<Request, ControlError> {
    let parts = split(wire)?;
    let Some((verb, args)) = parts.split_first() else {
        return Err(ControlError::UnknownVerb(Vec::new()));
    };
    let none = |r: Request| {
        if args.is_empty() {
            Ok(r)
        } else {
            Err(ControlError::BadArguments(
                "this command takes no arguments",
            ))
        }
    };
    match *verb {
        b"list" => match args {
            [] => Ok(Request::List { json: false }),
            [b"json"] => Ok(Request::List { json: true }),
            _ => Err(ControlError::BadArguments("list takes only `json`")),
        },
        b"show" => match ids(args)?[..] {
            [id] => Ok(Request::Show(id)),
            _ => Err(ControlError::BadArguments("show takes one message id")),
        },
        b"delete" => match args {
            [b"from", a] => Ok(Request::Delete(Selection::From(a.to_vec()))),
            [b"to", a] => Ok(Request::Delete(Selection::To(a.to_vec()))),
            _ => Ok(Request::Delete(Selection::Ids(ids(args)?))),
        },
        b"hold" => Ok(Request::Hold(ids(args)?)),
        b"release" => Ok(Request::Release(ids(args)?)),
        b"flush" => none(Request::Flush),
        other => Err(ControlError::UnknownVerb(other.to_vec())),
    }
}

/// Encodes a reply: `+` or `-`, then the text.
pub fn encode_reply(ok: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 1);
    out.push(if ok { b'+' } else { b'-' });
    out.extend_from_slice(text);
    out
}

/// Decodes a whole reply into (done, text); `None` when it is empty or starts with
/// neither `+` nor `-`.
pub fn decode_reply(wire: &[u8]) -> Option<(bool, &[u8])> {
    match wire.split_first()? {
        (b'+', text) => Some((true, text)),
        (b'-', text) => Some((false, text)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> MessageId {
        MessageId::from_u64(n)
    }

    #[test]
    fn every_request_round_trips() {
        for r in [
            Request::List { json: false },
            Request::List { json: true },
            Request::Show(id(7)),
            Request::Delete(Selection::Ids(vec![id(1), id(22)])),
            Request::Delete(Selection::From(b"".to_vec())),
            Request::Delete(Selection::From(b"a,b:c@x".to_vec())),
            Request::Hold(vec![id(3)]),
            Request::Release(vec![id(3), id(4)]),
            Request::Flush,
        ] {
            assert_eq!(decode_request(&encode_request(&r)), Ok(r));
        }
    }

    #[test]
    fn malformed_requests_are_refused() {
        let bad: &[&[u8]] = &[
            b"",
            b"4:list",
            b"4:list;",
            b"04:list,",
            b"5:list,",
            b"99999999:x,",
            b"4:hold,",
            b"4:show,1:1,1:2,",
            b"4:hold,1:x,",
            b"5:flush,1:1,",
            b"4:list,4:text,",
            b"4:nope,",
            b"-1:x,",
        ];
        for b in bad {
            assert!(
                decode_request(b).is_err(),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let many: Vec<u8> = std::iter::once(&b"4:hold,"[..])
            .chain(std::iter::repeat_n(&b"1:1,"[..], MAX_ARGS + 1))
            .flatten()
            .copied()
            .collect();
        assert_eq!(decode_request(&many), Err(ControlError::TooLarge));
    }

    #[test]
    fn replies() {
        assert_eq!(
            decode_reply(&encode_reply(true, b"held 1\n")),
            Some((true, &b"held 1\n"[..]))
        );
        assert_eq!(decode_reply(b"-no"), Some((false, &b"no"[..])));
        assert_eq!(decode_reply(b""), None);
        assert_eq!(decode_reply(b"?"), None);
    }
}
