//! The process model of design.md "Processes and accounts", checked from the outside:
//! `/proc` tells which account each process of `serve`'s tree runs as, which one holds a
//! client's connection and what files root's processes hold open; lspawn refuses the mail
//! system's own accounts; killing any process of the tree loses no accepted message.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::serve::{add_user, send, write_qmail};
use crate::support::*;

/// One process of the tree.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    ppid: u32,
    /// Real, effective, saved and filesystem uids.
    uids: [u32; 4],
    gids: [u32; 4],
    groups: Vec<u32>,
    cmdline: String,
}

fn ids(line: &str) -> [u32; 4] {
    let v: Vec<u32> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    [v[0], v[1], v[2], v[3]]
}

fn read_proc(pid: u32) -> Option<Proc> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(str::to_owned)
    };
    let ppid = field("PPid:")?.split_whitespace().nth(1)?.parse().ok()?;
    let groups = field("Groups:")?
        .split_whitespace()
        .skip(1)
        .filter_map(|g| g.parse().ok())
        .collect();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(Proc {
        pid,
        ppid,
        uids: ids(&field("Uid:")?),
        gids: ids(&field("Gid:")?),
        groups,
        cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
    })
}

/// `master` and every process below it.
fn tree(master: u32) -> Vec<Proc> {
    let all: Vec<Proc> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_proc)
        .collect();
    let mut out: Vec<Proc> = all.iter().filter(|p| p.pid == master).cloned().collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].pid;
        out.extend(all.iter().filter(|p| p.ppid == parent).cloned());
        i += 1;
    }
    out
}

/// The process of the tree whose command line names `role`.
fn role(tree: &[Proc], role: &str) -> Proc {
    tree.iter()
        .find(|p| p.cmdline.contains(&format!("serve-role {role}")))
        .unwrap_or_else(|| panic!("no {role} process in {tree:#?}"))
        .clone()
}

fn workers_count(procs: &[Proc]) -> usize {
    procs
        .iter()
        .filter(|p| p.cmdline.contains("local-worker"))
        .count()
}

/// The targets of a process's open descriptors, by number.
fn fds(pid: u32) -> BTreeMap<u32, PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let n = e.file_name().to_str()?.parse().ok()?;
                Some((n, std::fs::read_link(e.path()).ok()?))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// The socket inode of the server side of the IPv4 loopback connection whose client end is
/// bound to `client_port`, from `/proc/net/tcp`.
fn server_socket_inode(server_port: u16, client_port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
        if port(f[1]) == server_port && port(f[2]) == client_port {
            return f[9].parse().unwrap();
        }
    }
    panic!("no connection {server_port} <- {client_port} in /proc/net/tcp:\n{table}");
}

#[test]
fn each_role_runs_as_its_account_and_root_holds_no_queue_file() {
    if !rustix::process::geteuid().is_root() {
        return; // the accounts exist only for a server started as root
    }
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let out = joe.join("fds");
    // The .qmail program lists its own descriptors: a worker and its programs start with
    // 0-2 only (ls opens one more itself, on /proc).
    write_qmail(
        &joe,
        ".qmail",
        &format!("./Maildir/\n|ls -l /proc/self/fd/ > {}\n", out.display()),
    );
    let server = root.serve();
    assert_eq!(
        send(
            &root,
            "a@example.net",
            &["joe@example.org"],
            "Subject: x\r\n\r\nx\r\n"
        ),
        "OK []"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    // A session held open while the tree is inspected.
    let mut client = TcpStream::connect(root.addr()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(read_reply(&mut client).starts_with("220"));
    client.write_all(b"EHLO me\r\n").unwrap();
    assert!(read_reply(&mut client).starts_with("250"));

    let (mtad, mtaq) = (account("mtad").unwrap(), account("mtaq").unwrap());
    let (joe_uid, joe_gid) = crate::serve::test_ids();
    let procs = tree(server.pid());
    let master = &procs[0];
    assert_eq!(master.uids, [0; 4], "{master:?}");
    let queue = role(&procs, "queue");
    assert_eq!(queue.uids, [mtaq.0; 4], "{queue:?}");
    assert_eq!(queue.gids, [mtaq.1; 4], "{queue:?}");
    assert!(queue.groups.is_empty(), "{queue:?}");
    let smtpd = role(&procs, "smtpd");
    assert_eq!(smtpd.uids, [mtad.0; 4], "{smtpd:?}");
    assert_eq!(smtpd.gids, [mtad.1; 4], "{smtpd:?}");
    assert!(smtpd.groups.is_empty(), "{smtpd:?}");
    let lspawn = role(&procs, "lspawn");
    assert_eq!(lspawn.uids, [0; 4], "{lspawn:?}");
    let mtar = account("mtar").unwrap();
    let remote = role(&procs, "remote");
    assert_eq!(remote.uids, [mtar.0; 4], "{remote:?}");
    assert_eq!(remote.gids, [mtar.1; 4], "{remote:?}");
    assert!(remote.groups.is_empty(), "{remote:?}");
    // Exactly these five processes, plus joe's worker(s).
    assert_eq!(procs.len(), 5 + workers_count(&procs), "{procs:#?}");
    // Joe's worker (kept for the next delivery) runs as joe, below lspawn.
    let workers: Vec<&Proc> = procs
        .iter()
        .filter(|p| p.cmdline.contains("local-worker"))
        .collect();
    assert!(!workers.is_empty(), "{procs:#?}");
    for w in &workers {
        assert_eq!(w.ppid, lspawn.pid, "{w:?}");
        assert_eq!((w.uids, w.gids), ([joe_uid; 4], [joe_gid; 4]), "{w:?}");
        assert!(w.groups.is_empty(), "{w:?}");
        // 0 and 1: its connection to the queue process; 2: the pipe lspawn logs; anything
        // else only the worker's own copy of its output (it writes answers unbuffered).
        let held = fds(w.pid);
        assert!(
            held.contains_key(&2) && held.get(&0) == held.get(&1),
            "{held:?}"
        );
        for (n, target) in &held {
            assert!(
                *n <= 2 || Some(target) == held.get(&1),
                "worker {w:?} holds more than 0-2: {held:?}"
            );
        }
    }
    let listing = std::fs::read_to_string(&out).unwrap();
    for line in listing.lines().filter(|l| l.contains(" -> ")) {
        let fd: u32 = line
            .split(" -> ")
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            fd <= 2 || line.contains("/proc/"),
            "the .qmail program inherited more than 0-2:\n{listing}"
        );
    }

    // The client's connection is held by the SMTP process, and only by it.
    let client_port = client.local_addr().unwrap().port();
    let inode = server_socket_inode(root.port, client_port);
    let socket = PathBuf::from(format!("socket:[{inode}]"));
    let holders: Vec<u32> = procs
        .iter()
        .filter(|p| fds(p.pid).values().any(|t| *t == socket))
        .map(|p| p.pid)
        .collect();
    assert_eq!(holders, [smtpd.pid], "{procs:#?}");

    // Root's processes hold nothing under DIR/queue (nor pickup).
    let queue_dir = std::fs::canonicalize(root.path("queue")).unwrap();
    let pickup_dir = std::fs::canonicalize(root.path("pickup")).unwrap();
    for p in procs.iter().filter(|p| p.uids.contains(&0)) {
        for (n, target) in fds(p.pid) {
            assert!(
                !target.starts_with(&queue_dir) && !target.starts_with(&pickup_dir),
                "root process {} ({}) holds fd {n} -> {}",
                p.pid,
                p.cmdline,
                target.display()
            );
        }
    }
    client.write_all(b"QUIT\r\n").unwrap();
}

/// lspawn refuses a delivery as root, with group 0, or as any of the mail system's own
/// accounts (smtpd, queue, remote), each with a deferral, whatever users/assign says.
#[test]
fn lspawn_refuses_root_group_0_and_the_mail_system_accounts() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let root = TestRoot::new();
    let home = root.tmp.path().join("home").join("x");
    std::fs::create_dir_all(home.join("Maildir/new")).unwrap();
    for d in ["Maildir/tmp", "Maildir/cur"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    for d in [root.tmp.path().to_path_buf(), root.tmp.path().join("home")] {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let h = home.display();
    let mut assign = String::new();
    let mut cases = Vec::new();
    for name in ["mtad", "mtaq", "mtar"] {
        let (uid, gid) = account(name).unwrap();
        let _ = writeln!(assign, "=as-{name}:{name}:{uid}:{gid}:{h}:::");
        // An ordinary uid with the account's group is refused too.
        let _ = writeln!(assign, "=group-{name}:nobody:65534:{gid}:{h}:::");
        cases.push(format!("as-{name}"));
        cases.push(format!("group-{name}"));
    }
    let _ = write!(
        assign,
        "=uidzero:root:0:65534:{h}:::\n=gidzero:nobody:65534:0:{h}:::\n.\n"
    );
    std::fs::write(root.path("users/assign"), assign).unwrap();
    let server = root.serve();
    for case in &cases {
        let rcpt = format!("{case}@example.org");
        assert_eq!(
            send(&root, "a@example.net", &[&rcpt], "Subject: x\r\n\r\nx\r\n"),
            "OK []",
            "{case}"
        );
    }
    assert!(
        server.wait_log("deferral", cases.len(), 20),
        "{}",
        server.log_text()
    );
    let log = server.log_text();
    assert_eq!(
        log.matches(
            "deferral: Not_allowed_to_perform_deliveries_as_one_of_the_mail_system's_accounts."
        )
        .count(),
        cases.len(),
        "{log}"
    );
    assert!(
        std::fs::read_dir(home.join("Maildir/new"))
            .unwrap()
            .next()
            .is_none()
    );
    // uid 0 and gid 0: refused at RCPT already (the same lookup), and by lspawn for mail
    // queued without that check.
    for rcpt in ["uidzero@example.org", "gidzero@example.org"] {
        assert_eq!(
            send(&root, "a@example.net", &[rcpt], "Subject: x\r\n\r\nx\r\n"),
            format!("REFUSED [('{rcpt}', 451)]")
        );
    }
}

const PUSHER: &str = r#"
import smtplib, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.time() + secs
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

/// The pid of `role`'s current process under `master`, waiting for a restart.
pub(super) fn wait_role(master: u32, name: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(p) = tree(master)
            .into_iter()
            .find(|p| p.cmdline.contains(&format!("serve-role {name}")))
        {
            return p.pid;
        }
        assert!(Instant::now() < deadline, "no {name} process");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(super) fn kill9(pid: u32) {
    signal(pid, "-KILL");
}

/// A process stopped with `SIGSTOP` until this is dropped (then `SIGCONT`), so a failed
/// assertion does not leave it stopped.
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        signal(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // No assertion here: a panic while a failed test unwinds would abort.
        send_signal(self.0, "-CONT");
    }
}

/// Sends `pid` the signal `sig` (`kill`'s spelling: `-KILL`, `-STOP`) and asserts it went.
fn signal(pid: u32, sig: &str) {
    assert!(send_signal(pid, sig), "kill {sig} {pid}");
}

/// Sends `pid` the signal `sig` with `kill`; whether it went.
fn send_signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|st| st.success())
}

/// Under load, each child process in turn, then the master, is killed with SIGKILL (the
/// master restarts the children; the master is started again): every message that got
/// `250` is delivered. Duplicates are counted.
#[test]
fn killing_any_process_of_the_tree_loses_nothing_that_got_250() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let mut server = root.serve();
    let mut pusher = Command::new("python3")
        .arg("-c")
        .arg(PUSHER)
        .arg(root.port.to_string())
        .arg("100000")
        .arg("14")
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
    let mut roles = vec!["queue", "smtpd", "remote"];
    if rustix::process::geteuid().is_root() {
        roles.push("lspawn");
    }
    let mut killed = Vec::new();
    for name in roles {
        std::thread::sleep(Duration::from_millis(1500));
        let pid = wait_role(server.pid(), name);
        kill9(pid);
        killed.push(name);
    }
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    killed.push("master");
    server = root.serve();
    let acked = reader.join().unwrap();
    let _ = pusher.wait();
    assert!(
        acked.len() >= 50,
        "client got too few 250s: {}",
        acked.len()
    );
    let maildir = joe.join("Maildir");
    let ok = wait_maildir(&maildir, acked.len(), 90);
    let seen = delivered_ids(&maildir);
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|i| !seen.contains_key(i))
        .collect();
    let duplicates: usize = seen.values().map(|&n| n.saturating_sub(1)).sum();
    eprintln!(
        "process crash test (killed {killed:?}): {} acknowledged, {} distinct delivered, \
         {duplicates} duplicates, {} lost",
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

/// While the queue process is down, the SMTP process answers `451` (at DATA or at its end),
/// never `250`; once the master has restarted it, mail is accepted again.
#[test]
fn while_the_queue_process_is_down_smtpd_says_451() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let server = root.serve();
    // One message first, so the SMTP process holds an idle connection to the queue
    // process that the kill below breaks.
    assert_eq!(
        send(
            &root,
            "a@example.net",
            &["joe@example.org"],
            "Subject: 1\r\n\r\nx\r\n"
        ),
        "OK []"
    );
    let mut s = TcpStream::connect(root.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(read_reply(&mut s).starts_with("220"));
    let mut say = |line: &str| {
        s.write_all(line.as_bytes()).unwrap();
        read_reply(&mut s)
    };
    for (cmd, code) in [
        ("EHLO me\r\n", "250"),
        ("MAIL FROM:<a@example.net>\r\n", "250"),
        ("RCPT TO:<joe@example.org>\r\n", "250"),
    ] {
        let reply = say(cmd);
        assert!(reply.starts_with(code), "{cmd}: {reply}");
    }
    // The master, stopped, cannot restart the queue process (it would after a second)
    // until DATA has met no queue process, however slow the machine.
    let master = Stopped::new(server.pid());
    kill9(wait_role(server.pid(), "queue"));
    std::thread::sleep(Duration::from_millis(100));
    // Either DATA itself is refused, or (the connection to the queue process had the next
    // message's id already) the end of DATA is: never a 250.
    let mut reply = say("DATA\r\n");
    if reply.starts_with("354") {
        reply = say("Subject: lost\r\n\r\nx\r\n.\r\n");
    }
    drop(master);
    assert!(
        reply.starts_with("451"),
        "DATA with the queue process down: {reply}"
    );
    say("QUIT\r\n");
    // Restarted: accepted and delivered.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = String::new();
    while Instant::now() < deadline {
        sent = send(
            &root,
            "a@example.net",
            &["joe@example.org"],
            "Subject: 2\r\n\r\nx\r\n",
        );
        if sent == "OK []" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sent, "OK []", "{}", server.log_text());
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    assert!(
        server.log_text().contains("queue process"),
        "{}",
        server.log_text()
    );
}

/// A message `mta inject` queues directly while no queue process runs (root writes the
/// queue as its owner when nobody holds it) is announced by the next queue process with
/// its `new msg` and `info msg` lines, as qmail-send announced what it found in `todo/`;
/// the messages the dead process had announced are not announced again.
#[test]
fn a_message_injected_while_the_queue_process_is_down_is_announced_once() {
    let root = TestRoot::new();
    let joe = add_user(&root, "joe");
    let server = root.serve();
    assert_eq!(
        send(
            &root,
            "a@example.net",
            &["joe@example.org"],
            "Subject: before\r\n\r\nx\r\n"
        ),
        "OK []"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 1, 20),
        "{}",
        server.log_text()
    );
    assert!(server.wait_log("end msg ", 1, 20), "{}", server.log_text());
    // A message that stays queued across the restart (remote, and nothing answers).
    root.control("smtproutes", "stays.example:127.0.0.1:9\n");
    std::thread::sleep(Duration::from_millis(2500)); // the 2 s reload poll
    assert_eq!(
        send(
            &root,
            "a@example.net",
            &["x@stays.example"],
            "Subject: stays\r\n\r\nx\r\n"
        ),
        "OK []"
    );
    assert!(server.wait_log("new msg ", 2, 20), "{}", server.log_text());
    // The master checks its children every 50 ms, and a message born after the last check
    // that found the queue process alive is announced again by its successor (twice rather
    // than never): this one is older than that.
    std::thread::sleep(Duration::from_millis(300));
    // The master, stopped, cannot restart the queue process (it would after a second)
    // while inject runs, however slow the machine: inject finds the queue free and
    // writes it.
    let queue = wait_role(server.pid(), "queue");
    let master = Stopped::new(server.pid());
    kill9(queue);
    let out = mta_input(
        &root.dir,
        &["inject", "-f", "direct@example.net", "joe@example.org"],
        b"Subject: direct\n\nbody\n",
    );
    let log = server.log_text();
    drop(master);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        log.matches("status: started the queue process").count(),
        1,
        "the inject was not direct (the queue process came back first): {log}"
    );
    assert!(
        wait_maildir(&joe.join("Maildir"), 2, 20),
        "{}",
        server.log_text()
    );
    assert!(server.wait_log("new msg ", 3, 20), "{}", server.log_text());
    let log = server.log_text();
    assert_eq!(log.matches("new msg ").count(), 3, "{log}");
    assert_eq!(log.matches("info msg ").count(), 3, "{log}");
    assert!(log.contains("from <direct@example.net>"), "{log}");
}
