//! # mta-daemon
//!
//! The `mta` command: a complete qmail replacement wiring the `mta-*` crates together.
//! `main` only calls [`run`] and maps its result to an exit code.

#![forbid(unsafe_code)]

pub mod cli;
pub mod frame;
pub mod inject;
pub mod log;
pub mod privs;
pub mod qread;
pub mod root;
pub mod sendmail;
pub mod trigger;

use std::ffi::OsString;

/// Runs the command line `argv` and returns the process exit code (0 success, 1 usage or
/// configuration error, 100 permanent failure, 111 temporary failure, as qmail).
pub fn run(argv: Vec<OsString>) -> i32 {
    let inv = match cli::parse(&argv) {
        Ok(inv) => inv,
        Err(cli::UsageError(msg)) => {
            eprint!("{msg}");
            if !msg.ends_with('\n') {
                eprintln!();
            }
            return 1;
        }
    };
    let root = root::Root::resolve(inv.root);
    match inv.command {
        cli::Command::Help(text) => {
            print!("{text}");
            0
        }
        cli::Command::Init { hostname } => match root::init(&root, hostname.as_deref()) {
            Ok(created) => {
                for p in created {
                    println!("created {}", p.display());
                }
                0
            }
            Err(e) => {
                eprintln!("mta: init {}: {e}", root.dir().display());
                111
            }
        },
        _ => {
            eprintln!("mta: not yet available");
            111
        }
    }
}
