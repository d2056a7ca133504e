//! The crash test: a client pushes hundreds of messages while `mta serve` is killed with
//! SIGKILL and restarted; every message that got `250` must be delivered. Duplicates are
//! allowed (a crash between a delivery and its mark repeats it) but counted and reported.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

const PUSHER: &str = r#"
import smtplib, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
deadline = time.time() + 60
i = 0
while i < n and time.time() < deadline:
    body = "From: c@example.net\r\nTo: joe@example.org\r\nX-Id: %d\r\n\r\nmessage %d\r\n" % (i, i)
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=5)
        s.sendmail("c@example.net", ["joe@example.org"], body.encode())
        print(i, flush=True)
        try: s.quit()
        except Exception: pass
        i += 1
    except Exception as e:
        time.sleep(0.02)
print("done", flush=True)
"#;

#[test]
fn sigkill_during_load_loses_nothing_that_got_250() {
    let root = TestRoot::new();
    let joe = root.tmp.path().join("home/joe");
    for d in ["Maildir/tmp", "Maildir/new", "Maildir/cur"] {
        std::fs::create_dir_all(joe.join(d)).unwrap();
    }
    let (uid, gid) = if rustix::process::geteuid().is_root() {
        (65534, 65534)
    } else {
        (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        )
    };
    if rustix::process::geteuid().is_root() {
        Command::new("chmod")
            .arg("755")
            .arg(root.tmp.path())
            .arg(root.tmp.path().join("home"))
            .status()
            .unwrap();
        Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(&joe)
            .status()
            .unwrap();
    }
    std::fs::write(
        root.path("users/assign"),
        format!("=joe:joe:{uid}:{gid}:{}:::\n.\n", joe.display()),
    )
    .unwrap();

    let total = 300;
    let mut server = root.serve();
    let mut pusher = Command::new("python3")
        .arg("-c")
        .arg(PUSHER)
        .arg(root.port.to_string())
        .arg(total.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = pusher.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line == "done" {
                break;
            }
            acked.push(line.parse::<u32>().unwrap());
        }
        acked
    });
    // Kill the server three times while the client pushes.
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(400 + 150 * round));
        server.kill9();
        std::thread::sleep(Duration::from_millis(100));
        server = root.serve();
    }
    let acked = reader.join().unwrap();
    let _ = pusher.wait();
    assert!(
        acked.len() >= 100,
        "client got too few 250s: {}",
        acked.len()
    );
    // Everything acknowledged must arrive.
    let maildir = joe.join("Maildir");
    let ok = wait_maildir(&maildir, acked.len(), 60);
    let seen = delivered_ids(&maildir);
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|i| !seen.contains_key(i))
        .collect();
    let duplicates: usize = seen.values().map(|&n| n.saturating_sub(1)).sum();
    eprintln!(
        "crash test: {} acknowledged, {} distinct delivered, {duplicates} duplicates, {} lost",
        acked.len(),
        seen.len(),
        lost.len()
    );
    assert!(
        ok || lost.is_empty(),
        "timed out; lost {lost:?}\n{}",
        server.log_text()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but lost: {lost:?}\n{}",
        server.log_text()
    );
}
