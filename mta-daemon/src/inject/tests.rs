//! qmail-inject's header processing, case by case (qmail-reference §7.1), with a fixed
//! clock (`NOW` = Sun, 29 Nov 2026 04:08:05 UTC) and pid 4711.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::fs;
use std::io::Read;

use super::compose::{Prepared, Settings, prepare};
use super::*;

const NOW: i64 = 1_795_925_285;

struct Case {
    dir: tempfile::TempDir,
    env: Env,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("control")).unwrap();
        fs::write(dir.path().join("control/me"), "mx.example.org\n").unwrap();
        fs::write(dir.path().join("control/defaultdomain"), "example.org\n").unwrap();
        fs::write(dir.path().join("control/plusdomain"), "plus.example.org\n").unwrap();
        Case {
            dir,
            env: Env::for_test(NOW, 4711).with("USER", "joe"),
        }
    }

    fn env(mut self, name: &str, value: &str) -> Case {
        self.env = self.env.with(name, value);
        self
    }

    fn control(self, name: &str, value: &str) -> Case {
        fs::write(self.dir.path().join("control").join(name), value).unwrap();
        self
    }

    /// The prepared head, and the whole message (head and streamed body).
    fn prepare(&self, args: &[&str], input: &str) -> Result<(Prepared, Vec<u8>), Fatal> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let opts = parse_options(&args)?;
        let settings = Settings::load(&self.dir.path().join("control"), &self.env)?;
        let mut r = input.as_bytes();
        let head = header::read_header(&mut r).unwrap();
        let p = prepare(&opts, &self.env, &settings, head)?;
        let mut message = p.head.clone();
        header::Body::new(r).read_to_end(&mut message).unwrap();
        Ok((p, message))
    }

    fn message(&self, args: &[&str], input: &str) -> String {
        String::from_utf8(self.prepare(args, input).unwrap().1).unwrap()
    }

    fn envelope(&self, args: &[&str], input: &str) -> (String, Vec<String>) {
        let (p, _) = self.prepare(args, input).unwrap();
        (
            p.envelope.sender.to_string_lossy(),
            p.envelope
                .recipients
                .iter()
                .map(mta_core::Address::to_string_lossy)
                .collect(),
        )
    }

    /// `main` with `-n`: exit code, stdout, stderr.
    fn main(&self, args: &[&str], input: &str) -> (i32, String, String) {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = main(
            &Root::new(self.dir.path()),
            &args,
            &self.env,
            &mut input.as_bytes(),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }
}

const ADDED: &str = "Date: Sun, 29 Nov 2026 04:08:05 +0000\n\
    Message-ID: <20261129040805.4711.qmail@mx.example.org>\n";

#[test]
fn adds_date_message_id_from_and_cc_in_front() {
    let c = Case::new().env("QMAILNAME", "Joe \"Q\" User");
    assert_eq!(
        c.message(&["x@y.org"], "Subject: hi\n\nbody\n"),
        format!(
            "{ADDED}From: \"Joe \\\"Q\\\" User\" <joe@mx.example.org>\n\
             Cc: recipient list not shown: ;\nSubject: hi\n\nbody\n"
        )
    );
}

#[test]
fn present_fields_are_not_added_again() {
    let c = Case::new();
    let input = "date: Mon, 1 Jan 2024 00:00:00 +0000\nMESSAGE-ID: <a@b>\nFrom: a@b.org\n\
                 To: c@d.org\n\nx\n";
    assert_eq!(c.message(&[], input), input);
}

#[test]
fn bcc_return_path_and_content_length_are_removed() {
    let c = Case::new();
    let input = "To: a@x.org\nBcc: hidden@x.org\nReturn-Path: <rp@x.org>\n\
                 Content-Length: 12\nResent-Bcc: r@x.org\nSubject: s\n\nbody\n";
    let m = c.message(&["-h"], input);
    assert!(!m.contains("hidden") && !m.contains("Return-Path") && !m.contains("Content-Length"));
    assert!(!m.contains("Resent-Bcc"));
    assert!(m.ends_with("To: a@x.org\nSubject: s\n\nbody\n"), "{m}");
}

#[test]
fn header_recipients_from_to_cc_bcc_apparently_to() {
    let c = Case::new();
    let input = "To: a@x.org, \"B B\" <b@x.org>\nCc: grp: c@x.org, d;\nBcc: e@x.org\n\
                 Apparently-To: f@x.org\nSubject: s\n\nbody\n";
    let (sender, rcpts) = c.envelope(&["-t"], input);
    assert_eq!(sender, "joe@mx.example.org");
    assert_eq!(
        rcpts,
        [
            "a@x.org",
            "b@x.org",
            "c@x.org",
            "d@mx.example.org",
            "e@x.org",
            "f@x.org"
        ]
    );
    // -h ignores arguments; -H adds them first; -a ignores the header; -A picks.
    assert_eq!(c.envelope(&["-h", "z@x.org"], input).1.len(), 6);
    assert_eq!(c.envelope(&["-H", "z@x.org"], input).1[0], "z@x.org");
    assert_eq!(c.envelope(&["-H", "z@x.org"], input).1.len(), 7);
    assert_eq!(c.envelope(&["-a"], input).1, Vec::<String>::new());
    assert_eq!(c.envelope(&["z"], input).1, ["z@mx.example.org"]);
    assert_eq!(c.envelope(&[], input).1.len(), 6);
}

#[test]
fn resent_messages_get_resent_fields_and_resent_recipients() {
    let c = Case::new();
    let input = "Resent-To: r@x.org\nTo: orig@x.org\nDate: d\nFrom: o@x.org\n\
                 Message-ID: <o@x>\nResent-Bcc: rb@x.org\n\nbody\n";
    let m = c.message(&["-h"], input);
    assert_eq!(
        m,
        "Resent-Date: Sun, 29 Nov 2026 04:08:05 +0000\n\
         Resent-Message-ID: <20261129040805.4711.qmail@mx.example.org>\n\
         Resent-From: joe@mx.example.org\n\
         Resent-To: r@x.org\nTo: orig@x.org\nDate: d\nFrom: o@x.org\nMessage-ID: <o@x>\n\nbody\n"
    );
    assert_eq!(c.envelope(&["-h"], input).1, ["r@x.org", "rb@x.org"]);
    let m = c.message(&["-h"], "Resent-From: a@x.org\nTo: t@x.org\n\nb\n");
    assert!(
        m.contains("Resent-Cc: recipient list not shown: ;\n"),
        "{m}"
    );
    assert!(!m.contains("\nDate:") && !m.starts_with("Date:"), "{m}");
}

#[test]
fn rewriting_of_bare_names_plus_and_dotless_domains() {
    let c = Case::new();
    let m = c.message(
        &["-a"],
        "To: joe, mary@mx, ann@box+, <@r1,@r2:bob@x.org>, lit@[10.0.0.1], e@x.org.\n\n",
    );
    assert!(
        m.contains(
            "To: joe@mx.example.org, mary@mx.example.org, ann@box.plus.example.org,\n  \
             <bob@x.org>, lit@[10.0.0.1], e@x.org\n"
        ),
        "{m}"
    );
    let c = c
        .env("QMAILDEFAULTHOST", "host")
        .env("QMAILPLUSDOMAIN", "p.org");
    assert_eq!(
        c.envelope(&["a", "b@c+", "d@e.f"], "").1,
        ["a@host.example.org", "b@c.p.org", "d@e.f"]
    );
}

#[test]
fn words_without_commas_become_separate_addresses() {
    let c = Case::new();
    let m = c.message(&["-a"], "Cc: djb fred (Fred)\n\n");
    assert!(
        m.contains("Cc: djb@mx.example.org, fred@mx.example.org (Fred)\n"),
        "{m}"
    );
}

#[test]
fn user_host_and_name_variables_in_precedence_order() {
    let base = Case::new().env("LOGNAME", "log");
    assert!(
        base.message(&["-a"], "")
            .contains("From: joe@mx.example.org\n")
    );
    let c = base
        .env("MAILUSER", "mu")
        .env("MAILHOST", "mh.org")
        .env("NAME", "N");
    assert!(c.message(&["-a"], "").contains("From: \"N\" <mu@mh.org>\n"));
    let c = c
        .env("QMAILUSER", "qu")
        .env("QMAILHOST", "qh.org")
        .env("MAILNAME", "M")
        .env("QMAILNAME", "Q");
    assert!(c.message(&["-a"], "").contains("From: \"Q\" <qu@qh.org>\n"));
    assert_eq!(c.envelope(&["-a"], "").0, "qu@qh.org");
    let c = c.env("QMAILSUSER", "su").env("QMAILSHOST", "sh.org");
    assert_eq!(c.envelope(&["-a"], "").0, "su@sh.org");
    assert!(c.message(&["-a"], "").contains("From: \"Q\" <qu@qh.org>\n"));
    let anon = Case {
        env: Env::for_test(NOW, 1),
        ..Case::new()
    };
    assert_eq!(anon.envelope(&["-a"], "").0, "anonymous@mx.example.org");
}

#[test]
fn qmailinject_flags() {
    let c = Case::new().env("NAME", "Joe").env("QMAILINJECT", "c");
    assert!(
        c.message(&["-a"], "")
            .contains("From: joe@mx.example.org (Joe)\n")
    );
    let c = Case::new().env("QMAILINJECT", "fi");
    let m = c.message(&["-a"], "From: x@y.org\nMessage-ID: <old@x>\n\n");
    assert!(!m.contains("x@y.org") && !m.contains("old@x"), "{m}");
    assert!(m.contains("From: joe@mx.example.org\n") && m.contains("Message-ID: <2026"));
    let input = "Return-Path: <rp@x.org>\n\n";
    assert_eq!(Case::new().envelope(&["-a"], input).0, "rp@x.org");
    assert_eq!(
        Case::new()
            .env("QMAILINJECT", "s")
            .envelope(&["-a"], input)
            .0,
        "joe@mx.example.org"
    );
    assert_eq!(
        Case::new().env("QMAILINJECT", "r").envelope(&["-a"], "").0,
        "joe-@mx.example.org-@[]"
    );
    assert_eq!(
        Case::new().env("QMAILINJECT", "mr").envelope(&["-a"], "").0,
        format!("joe-{NOW}.4711-@mx.example.org-@[]")
    );
}

#[test]
fn envelope_sender_order() {
    let c = Case::new();
    let input = "Return-Path: <first@x.org>\nReturn-Path: <second@x.org>\n\n";
    assert_eq!(c.envelope(&["-a"], input).0, "first@x.org");
    assert_eq!(c.envelope(&["-a", "-f", "f@x.org"], input).0, "f@x.org");
    assert_eq!(c.envelope(&["-affoo"], input).0, "foo@mx.example.org");
    assert_eq!(c.envelope(&["-a", "-f", ""], input).0, "");
    // issue 23: `-f '<>'` is the null sender, not `"<>"@host`.
    assert_eq!(c.envelope(&["-a", "-f", "<>"], input).0, "");
    assert_eq!(c.envelope(&["-a", "-f<>"], input).0, "");
    assert_eq!(c.envelope(&["-a"], "Return-Path: <>\n\n").0, "");
}

#[test]
fn header_without_blank_line_mbox_line_and_crlf() {
    let c = Case::new();
    let m = c.message(
        &["-a"],
        "From joe Sun Nov 29 2026\r\nTo: a@x.org\r\nnot a field\r\nbody",
    );
    assert!(
        m.ends_with("MBOX-Line: From joe Sun Nov 29 2026\nTo: a@x.org\n\nnot a field\nbody\n"),
        "{m}"
    );
    assert!(!m.contains('\r'));
}

#[test]
fn mail_followup_to_from_mft_file() {
    let c = Case::new();
    let mft = c.dir.path().join("mft");
    fs::write(&mft, "# lists\nLIST@x.org\n").unwrap();
    let c = c.env("QMAILMFTFILE", mft.to_str().unwrap());
    let m = c.message(&["-a"], "To: list@x.org\nCc: me@y.org\n\n");
    assert!(
        m.contains("Mail-Followup-To: list@x.org,\n  me@y.org\n"),
        "{m}"
    );
    let m = c.message(&["-a"], "To: other@x.org\n\n");
    assert!(!m.contains("Mail-Followup-To"));
    let m = c.message(&["-a"], "To: list@x.org\nMail-Followup-To: z@x.org\n\n");
    assert_eq!(m.matches("Mail-Followup-To").count(), 1);
}

#[test]
fn exit_codes_and_print_mode() {
    let c = Case::new();
    let (code, out, err) = c.main(&["-n", "-f", "s@x.org", "r@x.org"], "Subject: s\n\nb\n");
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(
        out.starts_with(&format!("Return-Path: <s@x.org>\n{ADDED}")),
        "{out}"
    );
    let (code, _, err) = c.main(&["-n", "r@x.org"], "To: (unbalanced\n\n");
    assert_eq!(code, 100);
    assert!(
        err.starts_with("mta inject: fatal: unable to parse this line: To: (unbalanced"),
        "{err}"
    );
    assert_eq!(c.main(&["-n", "x@)b"], "").0, 100);
    assert_eq!(c.main(&["-z"], "").0, 100);
    assert_eq!(c.main(&["-f"], "").0, 100);
    let missing = Case::new();
    fs::remove_file(missing.dir.path().join("control/me")).unwrap();
    let (code, _, err) = missing.main(&["-n", "a@b.org"], "");
    assert_eq!(code, 111);
    assert!(err.contains("no mta root"), "{err}");
}

#[test]
fn controls_missing_fall_back_to_me_then_literals() {
    let c = Case::new()
        .control("defaulthost", "dh\n")
        .control("idhost", "id.example\n");
    let m = c.message(&["-a"], "");
    assert!(
        m.contains("Message-ID: <20261129040805.4711.qmail@id.example>\n"),
        "{m}"
    );
    assert!(m.contains("From: joe@dh.example.org\n"), "{m}");
}

#[test]
fn envelope_addresses_agree_with_mta_core_address_list_parser() {
    use mta_core::address_list::{ParseOptions, QmailRewrite, parse_address_list};
    // mta-core's RFC 5322 parser with qmail-inject's leniency is an independent
    // implementation: where both accept a field, they must find the same addresses.
    let rw = QmailRewrite::new("mx.example.org", "example.org", "plus.example.org");
    let fields = [
        "joe, mary@mx, ann@box+, <@r1,@r2:bob@x.org>, lit@[10.0.0.1], e@x.org.",
        "djb fred (Fred)",
        "\"Joe  Q\" <joe@x.org>, (c) ann@y.org (Ann)",
        "grp: c@x.org, d;, after@x.org",
        "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
        "joe@, Mixed.Case@Example.ORG",
        "undisclosed-recipients: ;",
        "a@b.c.d, \"Name, with comma\" <n@x.org>",
    ];
    let c = Case::new().control("defaulthost", "mx.example.org\n");
    for field in fields {
        let ours = c.envelope(&["-h"], &format!("To: {field}\n\n")).1;
        let theirs: Vec<String> =
            parse_address_list(field.as_bytes(), &ParseOptions::qmail_inject(rw.clone()))
                .unwrap()
                .mailboxes()
                .map(|m| m.to_address().to_string_lossy())
                .collect();
        assert_eq!(ours, theirs, "{field}");
    }
}

#[test]
fn unreadable_controls_are_a_temporary_failure_naming_the_file() {
    let c = Case::new().control("listen", "not an address\n");
    let (code, out, err) = c.main(&["-n", "a@b.org"], "\n");
    assert_eq!(code, 111);
    assert!(out.is_empty());
    assert!(
        err.contains("unable to read control files") && err.contains("listen"),
        "{err}"
    );
}
