//! Kill tests: a child process delivers in a loop and is killed with SIGKILL at a random
//! moment (inside a write, an fsync, the link, ...). Afterwards no file in `new/` is
//! incomplete, every delivery the child reported as returned is there in full, and an mbox
//! holds every reported message in full with later deliveries unharmed by a killed one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::{Duration, SystemTime};

use mta_maildir::{Maildir, Subdir};

use crate::common::{
    KILL_MESSAGE_LEN, Rng, expected_for, fast_tempdir, message_id, spawn_child, split_mbox,
};

const ROUNDS: u64 = 10;

/// Lets the child run for a random 1–40 ms, kills it, and returns its `DONE` lines.
fn run_and_kill(mut child: Child, rng: &mut Rng) -> Vec<(String, String)> {
    std::thread::sleep(Duration::from_millis(1 + rng.below(40)));
    child.kill().unwrap();
    child.wait().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    out.lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let mut f = l.strip_prefix("DONE ")?.split(' ');
            Some((f.next()?.to_owned(), f.next()?.to_owned()))
        })
        .collect()
}

/// Every file in `new/` is a complete message; returns name → id.
fn check_new_complete(md: &Maildir) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for msg in md.list(Subdir::New).unwrap() {
        let data = md.read(&msg).unwrap();
        let id = message_id(&data)
            .unwrap_or_else(|| panic!("{} has no intact id line", msg.file_name()));
        assert!(
            data == expected_for(&id, KILL_MESSAGE_LEN),
            "{} is incomplete",
            msg.file_name()
        );
        found.insert(msg.file_name().to_owned(), id);
    }
    found
}

#[test]
fn killed_maildir_delivery_never_leaves_a_partial_message() {
    let dir = tempfile::tempdir().unwrap(); // a real disk, so fsyncs take real time
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let mut rng = Rng::new();
    let mut reported = Vec::new();
    for round in 0..ROUNDS {
        let args = [
            "maildir-loop",
            md.path().to_str().unwrap(),
            &format!("r{round}"),
        ]
        .map(String::from);
        reported.extend(run_and_kill(spawn_child(&args), &mut rng));
        let found = check_new_complete(&md);
        for (name, id) in &reported {
            assert_eq!(
                found.get(name),
                Some(id),
                "returned delivery {name} missing"
            );
        }
    }
    eprintln!("{} deliveries returned over {ROUNDS} kills", reported.len());
    // Leftovers of killed deliveries stay in tmp/ until the 36-hour cleanup.
    let later = SystemTime::now() + Duration::from_hours(37);
    let leftovers = md.clean_tmp(later).unwrap();
    eprintln!("{leftovers} tmp/ leftovers of killed deliveries removed by the 36-hour rule");
    assert!(
        std::fs::read_dir(md.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn killed_fanout_never_leaves_a_partial_message() {
    let dir = tempfile::tempdir().unwrap();
    let mds: Vec<Maildir> = (0..3)
        .map(|i| Maildir::create(dir.path().join(format!("m{i}"))).unwrap())
        .collect();
    let mut rng = Rng::new();
    let mut reported = Vec::new();
    for round in 0..ROUNDS / 2 {
        let mut args = vec!["fanout-loop".to_owned(), format!("f{round}")];
        args.extend(mds.iter().map(|m| m.path().to_str().unwrap().to_owned()));
        reported.extend(run_and_kill(spawn_child(&args), &mut rng));
    }
    let found: Vec<_> = mds.iter().map(check_new_complete).collect();
    for (target_name, id) in &reported {
        let (i, name) = target_name.split_once('/').unwrap();
        let found = &found[i.parse::<usize>().unwrap()];
        assert_eq!(
            found.get(name),
            Some(id),
            "returned delivery {target_name} missing"
        );
    }
}

#[test]
fn killed_mbox_delivery_keeps_returned_messages_and_later_ones_intact() {
    let dir = fast_tempdir();
    let path = dir.path().join("Mailbox");
    let mut rng = Rng::new();
    let mut reported = Vec::new();
    for round in 0..ROUNDS {
        let args = ["mbox-loop", path.to_str().unwrap(), &format!("r{round}")].map(String::from);
        reported.extend(
            run_and_kill(spawn_child(&args), &mut rng)
                .into_iter()
                .map(|(_, id)| id),
        );
    }
    let entries = split_mbox(&std::fs::read(&path).unwrap());
    let mut complete = BTreeSet::new();
    let mut partial = 0;
    for (from, body) in &entries {
        assert_eq!(from, b"From kill@example.org Thu Jan 01 00:00:00 1970\n");
        let id = message_id(body).expect("entry without id line");
        let mut want = expected_for(&id, KILL_MESSAGE_LEN);
        if want.last() != Some(&b'\n') {
            want.push(b'\n');
        }
        if *body == want {
            assert!(complete.insert(id.clone()), "{id} twice");
        } else {
            // Only the delivery in flight at a kill may be cut short; it was never reported.
            assert!(
                want.starts_with(&body[..body.len().saturating_sub(2)]),
                "{id} corrupted"
            );
            assert!(!reported.contains(&id), "reported delivery {id} incomplete");
            partial += 1;
        }
    }
    assert!(partial <= ROUNDS as usize);
    for id in &reported {
        assert!(complete.contains(id), "returned delivery {id} missing");
    }
    eprintln!("{} returned, {partial} cut short by kills", reported.len());
}
