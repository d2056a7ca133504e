//! Program lines run for real through [`SystemExecutor`] and `/bin/sh`: the environment
//! byte for byte, stdin, output capture, and each exit code's effect on later lines.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mta_dotqmail::{
    Account, BaseEnvironment, DeliveryOptions, DeliveryRequest, DeliveryStatus, LocalUser, Message,
    Outcome, SystemExecutor, deliver,
};
use mta_maildir::{Maildir, Subdir};

const NOW: i64 = 1_795_925_285; // Sun Nov 29 04:08:05 2026 UTC

fn executor() -> SystemExecutor {
    SystemExecutor::new().with_base_env(BaseEnvironment::Fixed(vec![(
        OsString::from("PATH"),
        OsString::from("/usr/bin:/bin"),
    )]))
}

fn write_qmail(home: &Path, name: &str, text: &[u8]) {
    let p = home.join(name);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
}

struct Setup {
    dir: tempfile::TempDir,
    user: LocalUser,
}

fn setup(ext: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().as_os_str().as_bytes().to_vec();
    let dash: &[u8] = if ext.is_empty() { b"" } else { b"-" };
    let user = LocalUser::new(Account::new("joe", 1001, 100, home), dash, ext);
    Setup { dir, user }
}

fn run(s: &Setup, local: &[u8], domain: &[u8], sender: &[u8], message: Message<'_>) -> Outcome {
    let request = DeliveryRequest {
        user: &s.user,
        local,
        domain,
        sender,
        default_delivery: b"./Maildir/\n",
        now: NOW,
    };
    deliver(
        &mut executor(),
        &request,
        &DeliveryOptions::default(),
        message,
    )
}

fn parse_env0(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    bytes
        .split(|&b| b == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let eq = kv.iter().position(|&b| b == b'=').unwrap();
            (
                String::from_utf8(kv[..eq].to_vec()).unwrap(),
                kv[eq + 1..].to_vec(),
            )
        })
        .collect()
}

#[test]
fn environment_byte_for_byte() {
    let s = setup("Foo-bar-baz-qux");
    let home = s.dir.path();
    write_qmail(
        home,
        ".qmail-foo-default",
        b"|env -0 > env.out; cat > stdin.out; pwd > pwd.out\n",
    );
    write_qmail(home, ".qmail-foo-bar-baz-qux-owner", b"owner@x\n");
    let sender: &[u8] = b"Fr\xffed \"x\"\tq@Example.ORG";
    let message: &[u8] = b"Subject: env\n\nFrom the body\n";
    let o = run(
        &s,
        b"joe-Foo-bar-baz-qux",
        b"mail.sub.Example.com",
        sender,
        Message::Bytes(message),
    );
    assert_eq!(o.status, DeliveryStatus::Delivered, "{}", o.report_text());
    assert_eq!(o.report, b"did 0+0+1\n");

    let env = parse_env0(&fs::read(home.join("env.out")).unwrap());
    let home_bytes = home.as_os_str().as_bytes();
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |k: &str, v: &[u8]| {
        want.insert(k.to_owned(), v.to_vec());
    };
    put("PATH", b"/usr/bin:/bin");
    put("PWD", home_bytes); // added by the shell itself
    put("HOST", b"mail.sub.Example.com");
    put("HOST2", b"mail.sub.Example");
    put("HOST3", b"mail.sub");
    put("HOST4", b"mail");
    put("HOME", home_bytes);
    put("USER", b"joe");
    put("LOCAL", b"joe-Foo-bar-baz-qux");
    put("RECIPIENT", b"joe-Foo-bar-baz-qux@mail.sub.Example.com");
    put(
        "DTLINE",
        b"Delivered-To: joe-Foo-bar-baz-qux@mail.sub.Example.com\n",
    );
    put("SENDER", sender);
    put(
        "RPLINE",
        b"Return-Path: <\"Fr\xffed \\\"x\\\"\tq\"@Example.ORG>\n",
    );
    put(
        "UFLINE",
        b"From Fr\xffed-\"x\"-q@Example.ORG Sun Nov 29 04:08:05 2026\n",
    );
    put("EXT", b"Foo-bar-baz-qux");
    put("EXT2", b"bar-baz-qux");
    put("EXT3", b"baz-qux");
    put("EXT4", b"qux");
    put("DEFAULT", b"bar-baz-qux");
    put(
        "NEWSENDER",
        b"joe-Foo-bar-baz-qux-owner@mail.sub.Example.com",
    );
    for (k, v) in &want {
        assert_eq!(
            env.get(k).map(|x| String::from_utf8_lossy(x).into_owned()),
            Some(String::from_utf8_lossy(v).into_owned()),
            "{k}"
        );
        assert_eq!(env.get(k), Some(v), "{k} bytes");
    }
    assert_eq!(
        env.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(fs::read(home.join("stdin.out")).unwrap(), message);
    assert_eq!(
        fs::read(home.join("pwd.out")).unwrap(),
        [home_bytes, b"\n"].concat()
    );
}

#[test]
fn empty_sender_environment() {
    let s = setup("");
    write_qmail(s.dir.path(), ".qmail", b"|env -0 > env.out\n");
    let o = run(&s, b"joe", b"localhost", b"", Message::Bytes(b"\n"));
    assert_eq!(o.status, DeliveryStatus::Delivered, "{}", o.report_text());
    let env = parse_env0(&fs::read(s.dir.path().join("env.out")).unwrap());
    assert_eq!(env["SENDER"], b"");
    assert_eq!(env["NEWSENDER"], b"");
    assert_eq!(env["RPLINE"], b"Return-Path: <>\n");
    assert_eq!(
        env["UFLINE"],
        b"From MAILER-DAEMON Sun Nov 29 04:08:05 2026\n"
    );
    assert_eq!((env["EXT"].len(), env["EXT2"].len()), (0, 0));
    assert_eq!(
        (&env["HOST2"][..], &env["HOST4"][..]),
        (&b"localhost"[..], &b"localhost"[..])
    );
    assert!(
        !env.contains_key("DEFAULT"),
        "DEFAULT is set only for -default files"
    );
}

#[test]
fn stdin_from_file_starts_at_offset_zero() {
    let s = setup("");
    write_qmail(s.dir.path(), ".qmail", b"|cat > one.out\n|cat > two.out\n");
    let mut file = tempfile::tempfile().unwrap();
    let message = b"Subject: file\n\nline\n".repeat(1000);
    file.write_all(&message).unwrap();
    file.seek(SeekFrom::Start(7)).unwrap();
    let o = run(&s, b"joe", b"x.org", b"a@b", Message::File(&file));
    assert_eq!(o.status, DeliveryStatus::Delivered, "{}", o.report_text());
    for out in ["one.out", "two.out"] {
        assert_eq!(fs::read(s.dir.path().join(out)).unwrap(), message, "{out}");
    }
}

#[test]
fn large_stdin_and_output_do_not_deadlock() {
    let s = setup("");
    // Reads nothing and writes a lot; then one that echoes 1 MB of stdin to stdout.
    write_qmail(
        s.dir.path(),
        ".qmail",
        b"|head -c 200000 /dev/zero | tr '\\0' y; exit 0\n|cat; echo done >&2\n",
    );
    let message = vec![b'm'; 1 << 20];
    let o = run(&s, b"joe", b"x.org", b"a@b", Message::Bytes(&message));
    assert_eq!(o.status, DeliveryStatus::Delivered);
    assert!(o.report.len() <= 3000);
    assert!(o.report.ends_with(b"Error report too long, sorry.\n"));
}

#[test]
fn exit_codes_and_later_lines() {
    // (shell command, expected letter, does the maildir after it get the message?)
    let cases: &[(&str, char, bool)] = &[
        ("exit 0", 'K', true),
        ("exit 99", 'K', false),
        ("exit 100", 'D', false),
        ("exit 64", 'D', false),
        ("exit 65", 'D', false),
        ("exit 70", 'D', false),
        ("exit 76", 'D', false),
        ("exit 77", 'D', false),
        ("exit 78", 'D', false),
        ("exit 112", 'D', false),
        ("exit 111", 'Z', false),
        ("exit 1", 'Z', false),
        ("exit 71", 'Z', false),
        ("exit 75", 'Z', false),
        ("exit 101", 'Z', false),
        ("kill -9 $$", 'Z', false),
        ("kill -TERM $$", 'Z', false),
    ];
    for &(cmd, letter, later) in cases {
        let s = setup("");
        let home = s.dir.path();
        Maildir::create(home.join("Maildir")).unwrap();
        let qmail = format!("&before@x\n|echo out; echo err >&2; {cmd}\n./Maildir/\n&after@x\n");
        write_qmail(home, ".qmail", qmail.as_bytes());
        let o = run(
            &s,
            b"joe",
            b"x.org",
            b"a@b",
            Message::Bytes(b"Subject: x\n\nbody\n"),
        );
        let got = o.to_delivery_result().letter();
        assert_eq!(got, letter, "{cmd}: {}", o.report_text());
        let delivered = Maildir::open(home.join("Maildir"))
            .unwrap()
            .list(Subdir::New)
            .unwrap();
        assert_eq!(delivered.len(), usize::from(later), "{cmd}");
        assert!(
            o.report.starts_with(b"out\nerr\n"),
            "{cmd}: output is captured"
        );
        match (cmd, letter) {
            ("exit 0", _) => {
                assert_eq!(o.report, b"out\nerr\ndid 1+2+1\n");
                assert_eq!(
                    o.forward.unwrap().recipients,
                    [b"before@x".to_vec(), b"after@x".to_vec()]
                );
            }
            ("exit 99", _) => {
                assert_eq!(o.report, b"out\nerr\ndid 0+1+1\n");
                assert_eq!(o.forward.unwrap().recipients, [b"before@x".to_vec()]);
            }
            (c, 'Z') if c.starts_with("kill") => {
                assert_eq!(o.report, b"out\nerr\nAack, child crashed. (#4.3.0)\n");
                assert!(o.forward.is_none());
            }
            _ => {
                assert_eq!(
                    o.report, b"out\nerr\n",
                    "{cmd}: no text of qmail-local's own"
                );
                assert!(o.forward.is_none(), "{cmd}");
            }
        }
    }
}
