//! Session transcripts from tests/data/transcripts/*.txt, each run whole and one byte at a
//! time.
//!
//! Format: `# comment`; `! key value` sets a config field; `> text` is a client line (CRLF
//! appended; `\r`, `\n`, `\xNN`, `\\` escapes); `< text` an expected server reply line;
//! `= Event` an expected event (rendered by `render`). Replies and events must match
//! exactly and completely.

use std::fs;
use std::path::PathBuf;

use crate::common::{Ev, config, run_bytewise, run_whole};
use crate::vectors::unescape;

pub(crate) fn render(ev: &Ev) -> String {
    match ev {
        Ev::Data(d) => format!("Data({:?})", String::from_utf8_lossy(d)),
        Ev::DataEnd(s) => format!("DataEnd(size={}, hops={})", s.size, s.hops),
        other => format!("{other:?}"),
    }
}

#[test]
fn transcripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/transcripts");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "transcripts missing");
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let mut cfg = config();
        let (mut input, mut want_out, mut want_ev) = (Vec::new(), String::new(), Vec::new());
        for line in text.lines() {
            if let Some(l) = line.strip_prefix("> ") {
                input.extend(unescape(l));
                input.extend_from_slice(b"\r\n");
            } else if let Some(l) = line.strip_prefix('<') {
                want_out.push_str(l.strip_prefix(' ').unwrap_or(l));
                want_out.push_str("\r\n");
            } else if let Some(l) = line.strip_prefix("= ") {
                want_ev.push(l.to_owned());
            } else if let Some(l) = line.strip_prefix("! ") {
                let (k, v) = l.split_once(' ').unwrap();
                match k {
                    "max_recipients" => cfg.max_recipients = v.parse().unwrap(),
                    "max_errors" => cfg.max_errors = v.parse().unwrap(),
                    "databytes" => cfg.set_databytes(v.parse().unwrap()),
                    "offer_starttls" => cfg.offer_starttls = v == "true",
                    "max_command_line" => cfg.max_command_line = v.parse().unwrap(),
                    _ => panic!("{}: unknown setting {k}", file.display()),
                }
            } else {
                assert!(
                    line.is_empty() || line.starts_with('#'),
                    "{}: {line}",
                    file.display()
                );
            }
        }
        let whole = run_whole(cfg.clone(), &input);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(whole.out_text(), want_out, "{name}: replies");
        if !want_ev.is_empty() {
            let got: Vec<String> = whole.events.iter().map(render).collect();
            assert_eq!(got, want_ev, "{name}: events");
        }
        let bytewise = run_bytewise(cfg, &input);
        assert_eq!(bytewise.out, whole.out, "{name}: bytewise replies differ");
        assert_eq!(
            bytewise.events, whole.events,
            "{name}: bytewise events differ"
        );
    }
}

/// Reply parser known answers from tests/data/replies.txt.
#[test]
fn reply_vectors() {
    use mta_smtp::{ParseReplyError, ReplyParser, ReplyStatus};
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/replies.txt");
    let text = fs::read_to_string(path).unwrap();
    let mut cases = 0;
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (input, want) = line.split_once('\t').unwrap();
        let input = unescape(input);
        let got = match ReplyParser::new().feed(&input) {
            Ok(ReplyStatus::Complete(r, used)) => {
                assert_eq!(used, input.len(), "{line}");
                let status = r.status().map_or("-".to_owned(), |s| s.to_string());
                format!("{} {status} {}", r.code(), r.lines().join("|"))
            }
            Ok(ReplyStatus::Partial) => "partial".to_owned(),
            Err(ParseReplyError::Malformed) => "error malformed".to_owned(),
            Err(e) => format!("error {e:?}"),
        };
        assert_eq!(got, want, "input {line}");
        cases += 1;
    }
    assert!(cases >= 15);
}
