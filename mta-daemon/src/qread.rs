//! `mta queue stat` and `mta queue list`: qmail-qstat's two lines and qmail-qread's listing.
//!
//! qmail-qread prints, per message, `<date> GMT  #<id>  <bytes>  <<sender>> ` (date822
//! without the zone; a trailing space; ` bouncing` when a bounce is pending), then one line
//! per recipient: `\t` + `local`/`remote` + `\t` + address, with `  done` in front for a
//! recipient that is finished. Bytes outside 32–126 print as `_`. For a remote recipient
//! that has been tried, we add the last error and the next retry time on a third line (the
//! qmail-qread format had no room for them; issue 9 asks for them).

use std::fmt::Write as _;

use crate::root::Root;

/// The queue listing on `out` (for `sendmail -bp` and `mailq`); returns the exit code.
pub fn list(root: &Root, out: &mut dyn std::io::Write) -> i32 {
    crate::admin::list(root, out, &mut std::io::stderr())
}

/// One recipient's line in the listing.
#[derive(Clone, Debug)]
pub struct RecipientLine {
    /// Local or remote channel.
    pub local: bool,
    /// The recipient address.
    pub address: Vec<u8>,
    /// Finished (delivered or failed).
    pub done: bool,
    /// Last error text and next retry (unix seconds), for deferred recipients.
    pub deferred: Option<(String, u64)>,
}

/// One message in the listing.
#[derive(Clone, Debug)]
pub struct MessageLine {
    /// Birth time, unix seconds.
    pub birth: u64,
    /// The queue id as printed in the 250 reply and the log.
    pub id: String,
    /// Stored size in bytes.
    pub bytes: u64,
    /// Envelope sender.
    pub sender: Vec<u8>,
    /// A bounce is pending for this message.
    pub bouncing: bool,
    /// An operator holds it (`mta queue hold`).
    pub held: bool,
    /// Recipients in envelope order.
    pub recipients: Vec<RecipientLine>,
}

/// qmail-qread's "bytes outside 32–126 print as `_`".
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (32..=126).contains(&b) {
                b as char
            } else {
                '_'
            }
        })
        .collect()
}

/// `D Mon YYYY HH:MM:SS` (qmail's date822 without the zone).
fn date(secs: u64) -> String {
    let full = mta_core::date::qmail_date822(i64::try_from(secs).unwrap_or(i64::MAX));
    full.trim_end_matches(" -0000").to_owned()
}

/// Formats the listing of `messages` as qmail-qread did.
pub fn format_list(messages: &[MessageLine]) -> String {
    let mut out = String::new();
    for m in messages {
        let _ = write!(
            out,
            "{} GMT  #{}  {}  <{}> ",
            date(m.birth),
            m.id,
            m.bytes,
            printable(&m.sender)
        );
        if m.bouncing {
            out.push_str(" bouncing");
        }
        if m.held {
            out.push_str(" held");
        }
        out.push('\n');
        for r in &m.recipients {
            let _ = writeln!(
                out,
                "{}\t{}\t{}",
                if r.done { "  done" } else { "" },
                if r.local { "local" } else { "remote" },
                printable(&r.address)
            );
            if let Some((err, next)) = &r.deferred {
                let _ = writeln!(
                    out,
                    "\t\tlast error: {}; next try {} GMT",
                    printable(err.as_bytes()),
                    date(*next)
                );
            }
        }
    }
    out
}

/// qmail-qstat's two lines.
pub fn format_stat(in_queue: usize, not_preprocessed: usize) -> String {
    format!(
        "messages in queue: {in_queue}\nmessages in queue but not yet preprocessed: {not_preprocessed}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_remote_recipient_shows_last_error_and_next_try() {
        let m = MessageLine {
            birth: 0,
            id: "1".into(),
            bytes: 10,
            sender: b"a@b".to_vec(),
            bouncing: false,
            held: false,
            recipients: vec![RecipientLine {
                local: false,
                address: b"x@remote.example".to_vec(),
                done: false,
                deferred: Some(("451 4.7.1 greylisted\n".into(), 400)),
            }],
        };
        assert_eq!(
            format_list(&[m]),
            "1 Jan 1970 00:00:00 GMT  #1  10  <a@b> \n\tremote\tx@remote.example\n\
             \t\tlast error: 451 4.7.1 greylisted_; next try 1 Jan 1970 00:06:40 GMT\n"
        );
    }

    #[test]
    fn qstat_lines() {
        assert_eq!(
            format_stat(3, 1),
            "messages in queue: 3\nmessages in queue but not yet preprocessed: 1\n"
        );
    }

    #[test]
    fn qread_shape() {
        let m = MessageLine {
            birth: 0,
            id: "457".into(),
            bytes: 1234,
            sender: b"joe@example.org".to_vec(),
            bouncing: true,
            held: false,
            recipients: vec![
                RecipientLine {
                    local: true,
                    address: b"a@example.org".to_vec(),
                    done: false,
                    deferred: None,
                },
                RecipientLine {
                    local: false,
                    address: b"b\n@example.net".to_vec(),
                    done: true,
                    deferred: None,
                },
            ],
        };
        assert_eq!(
            format_list(&[m]),
            "1 Jan 1970 00:00:00 GMT  #457  1234  <joe@example.org>  bouncing\n\
             \tlocal\ta@example.org\n  done\tremote\tb_@example.net\n"
        );
    }
}
