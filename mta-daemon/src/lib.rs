//! # mta-daemon
//!
//! The `mta` command: a complete qmail replacement wiring the `mta-*` crates together.
//! `main` only calls [`run`] and maps its result to an exit code.
//!
//! Where each behaviour lives:
//!
//! | module | what | qmail counterpart |
//! |---|---|---|
//! | `cli` | command-line parsing | |
//! | `root` | the root layout, `mta init` | install scripts |
//! | `settings` | control files read with qmail's defaults | `control.c` |
//! | `master` | the process tree: binds, starts each process under its account, restarts, stops | qmail-start, svscan |
//! | `serve` | the queue process and the SMTP process (their threads, reloads, stop) | qmail-send, qmail-smtpd's tcpserver |
//! | `accounts`, `tree` | the system accounts (`control/accounts`) and who owns what under `DIR` | the qmail uids, install scripts |
//! | `smtpd` | SMTP sessions and their policy; the submission client (`mta_queue::submit`) | qmail-smtpd, qmail-queue |
//! | `watched` | files parsed again when they change (certificate, passwords) | |
//! | `auth` | SMTP AUTH: users/passwords, checkpassword, authfailmax, `mta passwd` | qmail-smtpd AUTH patches, checkpassword |
//! | `tls` | `servercert.pem` (re-read when it changes), plain and TLS session streams | qmail-tls |
//! | `limits` | session slots per server and per client address, refusal counters | tcpserver's `-c` |
//! | `accept` | every accept loop's pause when `accept` fails for want of descriptors | |
//! | `sched` | the scheduler: routing, retries, concurrency | qmail-send |
//! | `pool` | delivery and finishing threads: marks, bounces, removal | qmail-send's spawn/clean links |
//! | `route` | local vs remote, virtualdomains, percenthack | qmail-send `rewrite()` |
//! | `lspawn` | the root process that starts per-user workers (its frames: `mta_dotqmail::worker`) | qmail-lspawn |
//! | `local`, `users` | local delivery through those workers, users/assign reloads | qmail-local |
//! | `lookup` | one-second cache of `.qmail` lookups for RCPT checks | |
//! | `rspawn` | the remote delivery process and the queue's link to it (frames: `mta_queue::rspawn`) | qmail-rspawn |
//! | `remote` | DNS, smtproutes, SMTP client delivery | qmail-remote, qmail-tcpto |
//! | `bounce` | bounce composition glue | qmail-send `injectbounce` |
//! | `inject`, `sendmail` | `mta inject`, `mta sendmail` | qmail-inject, sendmail |
//! | `admin`, `qread`, `control` | `check`, `queue stat/list/show/delete/hold/release/flush` and the queue's control socket | qmail-qstat, qmail-qread |
//! | `trigger` | the wake-up FIFO | `lock/trigger` |
//! | `privs` | account lookup, ownership walks, inherited descriptors | |
//! | `metrics` | counters and the `control/metrics` endpoint (Prometheus text format; the request parser is `mta_core::http`) | |
//! | `log`, `origin` | log lines; who queued a message (`qp`, `uid`) | qmail-send's log |
//! | `live` | settings reread at SIGHUP, `control/defaultdelivery` | qmail-send's HUP, qmail-start's argument |
//! | `helpers` | `preline`, `condredirect`, `bouncesaying`, `except`, `forward` | the same qmail programs |

// One audited exception: `privs::close_inherited_fds` (see there); everything else is safe
// code (the workspace denies `unsafe_code`).
#![deny(unsafe_code)]
// The modules are this binary's parts, not a library API: `pub` inside them marks each
// module's interface to the others.
#![allow(unreachable_pub)]

pub(crate) mod accept;
pub(crate) mod accounts;
pub(crate) mod admin;
mod auth;
pub(crate) mod bounce;
pub(crate) mod cli;
pub(crate) mod control;
pub(crate) mod helpers;
#[doc(hidden)] // public only for the integration tests (tests/integration/)
pub mod inject;
mod limits;
pub(crate) mod live;
pub(crate) mod local;
pub(crate) mod log;
pub(crate) mod lookup;
pub(crate) mod lspawn;
pub(crate) mod master;
pub(crate) mod metrics;
pub(crate) mod origin;
pub(crate) mod pool;
pub(crate) mod privs;
pub(crate) mod qread;
#[doc(hidden)] // public only for the integration tests (tests/integration/)
pub mod remote;
#[doc(hidden)] // public only for the integration tests (tests/integration/)
pub mod root;
pub(crate) mod route;
pub(crate) mod rspawn;
#[doc(hidden)] // public only for the integration tests (tests/integration/)
pub mod sched;
pub(crate) mod sendmail;
pub(crate) mod serve;
pub(crate) mod settings;
pub(crate) mod smtpd;
mod tls;
pub(crate) mod tree;
pub(crate) mod trigger;
pub(crate) mod users;
mod watched;

use std::ffi::OsString;

/// Runs the command line `argv` and returns the process exit code (0 success, 1 usage or
/// configuration error, 100 permanent failure, 111 temporary failure, as qmail).
pub fn run(argv: &[OsString]) -> i32 {
    let inv = match cli::parse(argv) {
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
        cli::Command::Serve => master::run(&root),
        cli::Command::ServeRole { role, privileged } => serve::run_role(&root, &role, privileged),
        cli::Command::Check => admin::check(&root, &mut std::io::stdout(), &mut std::io::stderr()),
        cli::Command::Passwd(login) => auth::passwd(
            &root.dir().join("users/passwords"),
            &login,
            &mut std::io::stdin(),
            &mut std::io::stderr(),
        ),
        cli::Command::Queue(cli::QueueCommand::Stat) => {
            admin::stat(&root, &mut std::io::stdout(), &mut std::io::stderr())
        }
        cli::Command::DkimKeygen {
            domain,
            selector,
            kind,
        } => admin::dkim_keygen(
            &root,
            &domain,
            &selector,
            kind,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
        cli::Command::Mailq => admin::list(&root, &mut std::io::stdout(), &mut std::io::stderr()),
        cli::Command::Queue(cli::QueueCommand::Control(request)) => admin::queue(
            &root,
            &request,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
        cli::Command::LocalWorker => local::worker_main(),
        cli::Command::Helper(command, args) => helpers::main(command, &root, &args),
        cli::Command::Inject(args) => {
            let env = inject::Env::from_process();
            inject::main(
                &root,
                &args,
                &env,
                &mut std::io::stdin(),
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )
        }
        cli::Command::Sendmail(args) => {
            let env = inject::Env::from_process();
            sendmail::main(
                &root,
                &args,
                &env,
                &mut std::io::stdin(),
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )
        }
    }
}
