//! The simulator's own rules, one test each.

use std::io;
use std::path::Path;

use super::{Restart, SimFs};
use crate::{Access, Fs};

fn root(fs: &SimFs) -> usize {
    fs.open_dir(Path::new("/")).unwrap()
}

#[test]
fn a_write_not_synced_is_lost_at_a_crash() {
    let fs = SimFs::new();
    let r = root(&fs);
    let mut f = fs.create_new(&r, "x").unwrap();
    fs.write_all(&mut f, b"abc").unwrap();
    fs.sync_all(&f).unwrap();
    fs.sync_dir(&r).unwrap();
    fs.write_all(&mut f, b"def").unwrap();
    fs.write_all_at(&f, b"A", 0).unwrap();
    assert_eq!(fs.read_file("/x").unwrap(), b"Abcdef");
    assert_eq!(
        fs.restart(Restart::PowerLoss).read_file("x").unwrap(),
        b"abc"
    );
    assert_eq!(
        fs.restart(Restart::ProcessCrash).read_file("x").unwrap(),
        b"Abcdef"
    );
    fs.sync_data(&f).unwrap();
    assert_eq!(
        fs.restart(Restart::PowerLoss).read_file("x").unwrap(),
        b"Abcdef"
    );
}

#[test]
fn a_torn_append_keeps_half_of_the_unsynced_tail() {
    let fs = SimFs::new();
    let r = root(&fs);
    let f = fs.create_new(&r, "log").unwrap();
    fs.write_all_at(&f, b"1234", 0).unwrap();
    fs.sync_data(&f).unwrap();
    fs.sync_dir(&r).unwrap();
    fs.write_all_at(&f, b"5678", 4).unwrap();
    assert_eq!(
        fs.restart(Restart::TornAppend).read_file("log").unwrap(),
        b"123456"
    );
}

#[test]
fn a_directory_entry_not_synced_is_lost_and_a_synced_one_survives() {
    let fs = SimFs::new();
    let r = root(&fs);
    fs.create_dir(&r, "d").unwrap();
    fs.sync_dir(&r).unwrap();
    let d = fs.open_dir_at(&r, "d").unwrap();
    let f = fs.create_new(&d, "a").unwrap();
    fs.write_all_at(&f, b"hello", 0).unwrap();
    fs.sync_data(&f).unwrap();
    // The data is durable, the name is not.
    let after = fs.restart(Restart::PowerLoss);
    assert_eq!(after.list_dir("d").unwrap(), Vec::<String>::new());
    // A multi-component name relative to the root reaches the same directory.
    fs.create_new(&r, "d/b").unwrap();
    fs.sync_dir(&d).unwrap();
    let after = fs.restart(Restart::PowerLoss);
    assert_eq!(after.list_dir("/d").unwrap(), ["a", "b"]);
    assert_eq!(after.read_file("d/a").unwrap(), b"hello");
    assert_eq!(after.read_file("d/b").unwrap(), b"");
    // A removal is lost too until synced.
    fs.remove_file(&d, "a").unwrap();
    assert!(!fs.exists("d/a"));
    assert!(fs.restart(Restart::PowerLoss).exists("d/a"));
    fs.sync_dir(&d).unwrap();
    assert!(!fs.restart(Restart::PowerLoss).exists("d/a"));
}

#[test]
fn rename_is_durable_per_directory() {
    let fs = SimFs::new();
    let r = root(&fs);
    for d in ["tmp", "new"] {
        fs.create_dir(&r, d).unwrap();
    }
    fs.sync_dir(&r).unwrap();
    let (tmp, new) = (
        fs.open_dir_at(&r, "tmp").unwrap(),
        fs.open_dir_at(&r, "new").unwrap(),
    );
    let f = fs.create_new(&tmp, "x").unwrap();
    fs.sync_data(&f).unwrap();
    fs.sync_dir(&tmp).unwrap();
    fs.rename(&tmp, "x", &new, "x").unwrap();
    fs.sync_dir(&new).unwrap();
    // The old name's removal was never synced: both names survive.
    let after = fs.restart(Restart::PowerLoss);
    assert!(after.exists("tmp/x") && after.exists("new/x"));
    fs.sync_dir(&tmp).unwrap();
    let after = fs.restart(Restart::PowerLoss);
    assert!(!after.exists("tmp/x") && after.exists("new/x"));
    // rename replaces an existing name.
    fs.create_new(&tmp, "y").unwrap();
    fs.rename(&tmp, "y", &new, "x").unwrap();
    assert_eq!(fs.list_dir("tmp").unwrap(), Vec::<String>::new());
}

#[test]
fn link_never_replaces_and_both_names_share_the_inode() {
    let fs = SimFs::new();
    let r = root(&fs);
    let f = fs.create_new(&r, "a").unwrap();
    fs.link(&r, "a", &r, "b").unwrap();
    let err = fs.link(&r, "a", &r, "b").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    fs.write_all_at(&f, b"shared", 0).unwrap();
    assert_eq!(fs.read_file("b").unwrap(), b"shared");
    // An open file outlives its names.
    fs.remove_file(&r, "a").unwrap();
    fs.remove_file(&r, "b").unwrap();
    let mut buf = [0u8; 6];
    assert_eq!(fs.read_at(&f, &mut buf, 0).unwrap(), 6);
    let err = fs.link(&r, "a", &r, "c").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn links_across_a_mount_fail_with_exdev() {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/a")).unwrap();
    fs.create_dir_all(Path::new("/m/b")).unwrap();
    fs.mount(Path::new("/m")).unwrap();
    let a = fs.open_dir(Path::new("/a")).unwrap();
    let m = fs.open_dir(Path::new("/m")).unwrap();
    fs.create_dir(&m, "c").unwrap();
    let b = fs.open_dir(Path::new("/m/b")).unwrap();
    let c = fs.open_dir(Path::new("/m/c")).unwrap();
    fs.create_new(&a, "f").unwrap();
    let exdev = io::ErrorKind::CrossesDevices;
    assert_eq!(fs.link(&a, "f", &b, "f").unwrap_err().kind(), exdev);
    assert_eq!(fs.link(&a, "f", &c, "f").unwrap_err().kind(), exdev);
    assert_eq!(fs.rename(&a, "f", &c, "f").unwrap_err().kind(), exdev);
    fs.link(&a, "f", &a, "g").unwrap();
}

#[test]
fn crash_point_stops_everything() {
    let fs = SimFs::new();
    let r = root(&fs);
    fs.crash_after(1);
    fs.create_dir(&r, "a").unwrap();
    assert!(!fs.has_crashed());
    assert!(fs.create_dir(&r, "b").is_err());
    assert!(fs.has_crashed());
    assert!(Fs::list_dir(&fs, &r).is_err());
    assert_eq!(fs.op_count(), 1);
    let after = fs.restart(Restart::ProcessCrash);
    assert_eq!(after.list_dir("/").unwrap(), ["a"]);
    assert_eq!(after.op_count(), 0);
    assert!(
        fs.restart(Restart::PowerLoss)
            .list_dir("/")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn crash_images_keep_only_synced_state() {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/d")).unwrap();
    let d = fs.open_dir(Path::new("/d")).unwrap();
    let mut f = fs.create_new(&d, "x").unwrap();
    fs.write_all(&mut f, b"abc").unwrap();
    fs.sync_all(&f).unwrap();
    fs.write_all(&mut f, b"def").unwrap();
    let seen: Vec<Option<Vec<u8>>> = fs
        .crash_images()
        .iter()
        .map(|i| i.read_file("/d/x"))
        .collect();
    assert!(seen.contains(&None)); // name not synced
    assert!(seen.contains(&Some(b"abc".to_vec()))); // data synced up to abc
    assert!(seen.contains(&Some(b"abcdef".to_vec()))); // or everything got out
    fs.sync_dir(&d).unwrap();
    fs.crash_after(fs.op_count());
    assert!(fs.sync_all(&f).is_err());
    assert!(fs.has_crashed());
    assert!(
        fs.crash_images()
            .iter()
            .all(|i| i.read_file("/d/x").is_some())
    );
}

#[test]
fn fail_op_fails_one_operation_and_traces_it() {
    let fs = SimFs::new();
    let r = root(&fs);
    fs.fail_op(2);
    let mut f = fs.create_new(&r, "x").unwrap();
    assert_eq!(
        fs.write_all(&mut f, b"a").unwrap_err().raw_os_error(),
        Some(5)
    );
    fs.write_all(&mut f, b"b").unwrap();
    fs.sync_all(&f).unwrap();
    assert_eq!(
        fs.trace(),
        [
            "create /x",
            "write 1 bytes to inode 0 (failed)",
            "write 1 bytes to inode 0",
            "sync_all inode 0",
        ]
    );
    assert_eq!(fs.read_file("x").unwrap(), b"b");
}

#[test]
fn write_and_sync_faults_until_cleared() {
    let fs = SimFs::new();
    let r = root(&fs);
    let f = fs.create_new(&r, "f").unwrap();
    fs.fail_writes_after(3, 28);
    let err = fs.write_all_at(&f, b"abcdef", 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28));
    assert_eq!(fs.file_len(&f).unwrap(), 3);
    fs.fail_syncs_after(0, 5);
    assert_eq!(fs.sync_data(&f).unwrap_err().raw_os_error(), Some(5));
    assert_eq!(fs.sync_dir(&r).unwrap_err().raw_os_error(), Some(5));
    assert!(
        fs.restart(Restart::PowerLoss)
            .list_dir("/")
            .unwrap()
            .is_empty()
    );
    fs.clear_faults();
    fs.write_all_at(&f, b"abcdef", 0).unwrap();
    fs.sync_data(&f).unwrap();
}

#[test]
fn read_only_handles_refuse_writes_and_append_handles_append() {
    let fs = SimFs::new();
    let r = root(&fs);
    fs.create_new(&r, "x").unwrap();
    let ro = fs.open(&r, "x", Access::Read).unwrap();
    assert!(fs.write_all_at(&ro, b"no", 0).is_err());
    let (mut a, created) = fs.open_append(&r, "x").unwrap();
    assert!(!created);
    fs.write_all(&mut a, b"one").unwrap();
    let (mut b, _) = fs.open_append(&r, "x").unwrap();
    fs.write_all(&mut b, b"two").unwrap();
    fs.write_all(&mut a, b"!").unwrap();
    assert_eq!(fs.read_file("x").unwrap(), b"onetwo!");
    let mut rd = fs.open(&r, "x", Access::Read).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(fs.read(&mut rd, &mut buf).unwrap(), 4);
    assert_eq!(fs.read(&mut rd, &mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"wo!");
    assert!(fs.try_lock(&rd).unwrap());
    fs.set_locks_unavailable(true);
    assert_eq!(fs.try_lock(&rd).unwrap_err().raw_os_error(), Some(37));
}

#[test]
fn an_unnamed_file_has_a_name_only_once_linked_and_synced() {
    let fs = SimFs::new();
    let r = root(&fs);
    let mut f = fs.create_unnamed(&r).unwrap();
    fs.write_all(&mut f, b"abc").unwrap();
    fs.sync_filesystem(&r).unwrap();
    assert_eq!(fs.list_dir("/"), Some(Vec::new()));
    fs.link_unnamed(&f, &r, "x").unwrap();
    assert_eq!(
        fs.link_unnamed(&f, &r, "x").unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(fs.read_file("/x").unwrap(), b"abc");
    assert!(!fs.restart(Restart::PowerLoss).exists("x"));
    fs.sync_dir(&r).unwrap();
    assert_eq!(
        fs.restart(Restart::PowerLoss).read_file("x").unwrap(),
        b"abc"
    );
    fs.set_unnamed_unsupported(true);
    assert_eq!(
        fs.create_unnamed(&r).unwrap_err().kind(),
        io::ErrorKind::Unsupported
    );
}
