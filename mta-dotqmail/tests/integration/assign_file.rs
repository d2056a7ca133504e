//! users/assign from a data file, checked against a table of lookups; the passwd
//! fallback over a real passwd file and real home directories.

use std::fs;
use std::os::unix::fs::MetadataExt;

use mta_dotqmail::{Account, PasswdFile, Resolved, SystemUsers, UserTable, UsersAssign};

#[test]
fn assign_lookup_table() {
    let assign = UsersAssign::parse(include_bytes!("../data/assign")).unwrap();
    assert_eq!(
        assign.len(),
        6,
        "duplicate key kept once, lines after the dot ignored"
    );
    let table = include_str!("../data/assign_lookups.txt");
    for line in table.lines().filter(|l| !l.starts_with('#')) {
        let c: Vec<&str> = line.split('|').map(str::trim).collect();
        let u = assign
            .lookup(c[0].as_bytes())
            .unwrap_or_else(|| panic!("{}", c[0]));
        let a = u.account();
        assert_eq!(
            (
                String::from_utf8_lossy(a.user()).into_owned(),
                a.uid().to_string(),
                a.gid().to_string(),
                a.home().display().to_string(),
                String::from_utf8_lossy(u.dash()).into_owned(),
                String::from_utf8_lossy(u.ext()).into_owned(),
            ),
            (
                c[1].to_owned(),
                c[2].to_owned(),
                c[3].to_owned(),
                c[4].to_owned(),
                c[5].to_owned(),
                c[6].to_owned()
            ),
            "{}",
            c[0]
        );
    }
}

#[test]
fn passwd_fallback_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("joe");
    fs::create_dir(&home).unwrap();
    let mut uid = fs::metadata(&home).unwrap().uid();
    if uid == 0 {
        // As root the home must belong to the user, as qmail-getpw checks.
        uid = 4242;
        std::os::unix::fs::chown(&home, Some(uid), None).unwrap();
    }
    let passwd = dir.path().join("passwd");
    fs::write(
        &passwd,
        format!(
            "root:x:0:0:root:/root:/bin/sh\njoe:x:{uid}:100::{}:/bin/sh\nghost:x:4243:100::{}/missing:/bin/sh\n",
            home.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let pw = PasswdFile::new(&passwd);
    let u = pw.getpw(b"Joe-Lists-X").unwrap().unwrap();
    assert_eq!(
        (u.account().uid(), u.dash(), u.ext()),
        (uid, &b"-"[..], &b"Lists-X"[..])
    );
    assert_eq!(u.account().home(), home);
    assert!(pw.getpw(b"ghost").unwrap().is_none(), "home must exist");
    assert!(pw.getpw(b"root").unwrap().is_none(), "root never gets mail");
    assert!(
        PasswdFile::new(dir.path().join("nope"))
            .getpw(b"joe")
            .is_err()
    );

    let users = UserTable::new(Account::new("alias", 7790, 2108, "/var/qmail/alias"))
        .with_system(PasswdFile::new(&passwd));
    let Resolved::User(u) = users.resolve(b"joe").unwrap() else {
        panic!()
    };
    assert_eq!((u.account().user(), u.dash()), (&b"joe"[..], &b""[..]));
    let Resolved::User(u) = users.resolve(b"ghost").unwrap() else {
        panic!()
    };
    assert_eq!(
        (u.account().user(), u.ext()),
        (&b"alias"[..], &b"ghost"[..])
    );
}

#[test]
fn assign_file_reloads_on_change() {
    use mta_dotqmail::AssignFile;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assign");
    let mut file = AssignFile::new(&path);
    assert!(!file.refresh().unwrap(), "no file, no table, no change");
    assert!(file.current().is_none());

    fs::write(&path, "=joe:joe:1001:100:/home/joe:::\n.\n").unwrap();
    assert!(file.refresh().unwrap());
    assert!(!file.refresh().unwrap(), "unchanged file is not re-read");
    assert!(file.current().unwrap().lookup(b"joe").is_some());

    // A broken edit: the error names file and line, the old table stays.
    fs::write(&path, "=joe:joe:1001:100:/home/joe:::\n=ann:ann\n.\n").unwrap();
    let err = file.refresh().unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: fewer than six \":\"-terminated fields",
            path.display()
        )
    );
    assert!(file.current().unwrap().lookup(b"joe").is_some());

    fs::write(&path, "=ann:ann:1002:100:/home/ann:::\n.\n").unwrap();
    assert!(file.refresh().unwrap());
    let t = file.current().unwrap();
    assert!(t.lookup(b"ann").is_some() && t.lookup(b"joe").is_none());

    fs::remove_file(&path).unwrap();
    assert!(file.refresh().unwrap());
    assert!(file.current().is_none());
}
