//! .qmail parsing, the file search, and a whole delivery decision with a trash
//! (comment-only) .qmail, in memory and on the real filesystem; users/assign lookups.
//!
//! `cargo bench -p mta-dotqmail --bench dotqmail -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::collections::HashMap;
use std::hint::black_box;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mta_dotqmail::{
    Account, DeliveryOptions, DeliveryRequest, DeliveryStatus, Executor, FileDeliveryError,
    FileLookup, FileStatus, LocalUser, Message, ProgramEnv, ProgramRun, SystemExecutor,
    UsersAssign, deliver, parse, search,
};

const TYPICAL: &[u8] = b"# joe's list\n./Maildir/\n|preline /usr/bin/procmail -t\n&joe@example.org\nann@example.net\n./Mailbox\n+list\n# end\n";
const TRASH: &[u8] = b"#\n";
const MESSAGE: &[u8] = b"Received: from x by y\nFrom: a@b\nTo: c@d\nSubject: bench\n\nbody\n";

/// Files in memory; deliveries are not expected (the trash .qmail has none).
struct Memory(HashMap<PathBuf, (FileStatus, Vec<u8>)>);

impl FileLookup for Memory {
    fn probe(&mut self, p: &Path) -> io::Result<Option<FileStatus>> {
        Ok(self.0.get(p).map(|(s, _)| *s))
    }
    fn exists(&mut self, p: &Path) -> io::Result<bool> {
        Ok(self.0.contains_key(p))
    }
    fn read(&mut self, p: &Path) -> io::Result<Vec<u8>> {
        self.0
            .get(p)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

impl Executor for Memory {
    fn maildir(&mut self, _: &Path, _: &[u8], _: Message<'_>) -> Result<(), FileDeliveryError> {
        Ok(())
    }
    fn mbox(
        &mut self,
        _: &Path,
        _: &[u8],
        _: &[u8],
        _: Message<'_>,
    ) -> Result<(), FileDeliveryError> {
        Ok(())
    }
    fn program(
        &mut self,
        _: &[u8],
        _: &ProgramEnv,
        _: &Path,
        _: Message<'_>,
    ) -> io::Result<ProgramRun> {
        Err(io::Error::other("no programs in this bench"))
    }
}

fn memory_home() -> Memory {
    let mut files = HashMap::new();
    files.insert(
        PathBuf::from("/home/joe"),
        (FileStatus::directory(0o755), Vec::new()),
    );
    files.insert(
        PathBuf::from("/home/joe/.qmail-default"),
        (FileStatus::regular(0o644), TRASH.to_vec()),
    );
    Memory(files)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(TYPICAL.len() as u64));
    g.bench_function("typical_8_lines", |b| b.iter(|| parse(black_box(TYPICAL))));
    g.finish();

    let mut g = c.benchmark_group("search");
    g.throughput(Throughput::Elements(1));
    let mut mem = memory_home();
    // ext with 3 dashes: 5 candidates, the last one (.qmail-default) exists.
    g.bench_function("memory_4_misses_then_default", |b| {
        b.iter(|| {
            search(
                &mut mem,
                Path::new("/home/joe"),
                b"-",
                black_box(b"a-b-c-d"),
                0o022,
            )
        });
    });
    g.finish();

    let user = LocalUser::new(Account::new("joe", 1001, 100, "/home/joe"), b"-", "a-b-c-d");
    let request = DeliveryRequest {
        user: &user,
        local: b"joe-a-b-c-d",
        domain: b"example.com",
        sender: b"sender@example.org",
        default_delivery: b"./Maildir/\n",
        now: 1_795_925_285,
    };
    let options = DeliveryOptions::default();
    let mut g = c.benchmark_group("deliver_trash_qmail");
    g.throughput(Throughput::Elements(1));
    g.bench_function("memory", |b| {
        b.iter(|| {
            let o = deliver(&mut mem, &request, &options, Message::Bytes(MESSAGE));
            assert_eq!(o.status, DeliveryStatus::Delivered);
            o
        });
    });

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let qmail = dir.path().join(".qmail-default");
    std::fs::write(&qmail, TRASH).expect("write");
    std::fs::set_permissions(&qmail, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let disk_user = LocalUser::new(
        Account::new("joe", 1001, 100, dir.path().as_os_str().as_bytes()),
        b"-",
        "a-b-c-d",
    );
    let disk_request = DeliveryRequest {
        user: &disk_user,
        ..request
    };
    let mut system = SystemExecutor::new();
    g.bench_function("filesystem", |b| {
        b.iter(|| {
            let o = deliver(
                &mut system,
                &disk_request,
                &options,
                Message::Bytes(MESSAGE),
            );
            assert_eq!(o.status, DeliveryStatus::Delivered);
            o
        });
    });
    g.finish();

    let mut text = Vec::new();
    for i in 0..1000 {
        text.extend_from_slice(
            format!("=user{i}:user{i}:{}:100:/home/user{i}:::\n", 2000 + i).as_bytes(),
        );
        text.extend_from_slice(
            format!("+user{i}-:user{i}:{}:100:/home/user{i}:-::\n", 2000 + i).as_bytes(),
        );
    }
    text.extend_from_slice(b".\n");
    let mut g = c.benchmark_group("users_assign");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_2000_entries", |b| {
        b.iter(|| UsersAssign::parse(black_box(&text)));
    });
    let assign = UsersAssign::parse(&text).expect("valid");
    g.throughput(Throughput::Elements(1));
    g.bench_function("lookup_wildcard", |b| {
        b.iter(|| assign.lookup(black_box(b"User517-Some-Extension")));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
