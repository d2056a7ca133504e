#![no_main]
//! `.qmail` parser and `qmail-local -n` over arbitrary file text: never panics, every
//! argument is one line without NUL, line numbers are in order, and
//! explaining never asks the executor to deliver anything.
use std::io;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mta_dotqmail::{
    Account, DeliveryOptions, DeliveryRequest, Executor, FileDeliveryError, FileLookup, FileStatus,
    Instruction, LocalUser, Message, ProgramEnv, ProgramRun, candidates, explain, parse,
};

struct OneFile<'a>(&'a [u8]);

impl FileLookup for OneFile<'_> {
    fn probe(&mut self, p: &Path) -> io::Result<Option<FileStatus>> {
        Ok(Some(if p == Path::new("/h") {
            FileStatus::directory(0o755)
        } else {
            FileStatus::regular(0o644)
        }))
    }
    fn exists(&mut self, _: &Path) -> io::Result<bool> {
        Ok(true)
    }
    fn read(&mut self, _: &Path) -> io::Result<Vec<u8>> {
        Ok(self.0.to_vec())
    }
}

impl Executor for OneFile<'_> {
    fn maildir(&mut self, _: &Path, _: &[u8], _: Message<'_>) -> Result<(), FileDeliveryError> {
        unreachable!("explain delivered to a maildir")
    }
    fn mbox(
        &mut self,
        _: &Path,
        _: &[u8],
        _: &[u8],
        _: Message<'_>,
    ) -> Result<(), FileDeliveryError> {
        unreachable!("explain delivered to an mbox")
    }
    fn program(
        &mut self,
        _: &[u8],
        _: &ProgramEnv,
        _: &Path,
        _: Message<'_>,
    ) -> io::Result<ProgramRun> {
        unreachable!("explain ran a program")
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(lines) = parse(data) {
        let mut last = 0;
        for line in &lines {
            assert!(line.number > last);
            last = line.number;
            if let Instruction::Program(a)
            | Instruction::Forward(a)
            | Instruction::Mbox(a)
            | Instruction::Maildir(a) = &line.instruction
            {
                // Cut at the first NUL (a C string), so a blank may end it only then.
                assert!(!a.contains(&0) && !a.contains(&b'\n'));
            }
        }
    }
    // The first line doubles as an extension for the search-name generator.
    let ext = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let names = candidates(b"-", ext);
    assert_eq!(names.len(), 2 + ext.iter().filter(|&&b| b == b'-').count());
    for c in &names {
        assert!(c.name.starts_with(b".qmail-"));
        assert!(!c.name[6..].contains(&b'.'));
    }
    let user = LocalUser::new(Account::new("u", 1, 1, "/h"), b"-", ext);
    let request = DeliveryRequest {
        user: &user,
        local: ext,
        domain: b"example.com",
        sender: data,
        default_delivery: b"./Maildir/\n",
        now: 0,
    };
    let outcome = explain(&mut OneFile(data), &request, &DeliveryOptions::default());
    assert!(outcome.report.len() <= 3000);
    assert!(outcome.forward.is_none());
});
