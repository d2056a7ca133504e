//! The `mta` command: see `mta --help` and the crate docs of `mta_daemon`.

fn main() -> std::process::ExitCode {
    let code = mta_daemon::run(&std::env::args_os().collect::<Vec<_>>());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(111))
}
