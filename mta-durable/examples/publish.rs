//! Publishes a file the durable way (write it in `tmp/`, sync the file, link it into `new/`,
//! sync `new/`, as a maildir delivery does) on the power-loss simulator, cuts the power after
//! every operation, and checks that the final name never shows incomplete data and that it
//! is there once `publish` returned. Then does the same on the real disk.
//!
//! Run: `cargo run -p mta-durable --example publish [DIR]`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mta_durable::sim::SimFs;
use mta_durable::{Fs, OsFs, publish_by_link, remove_unsynced, write_at_synced};

const DATA: &[u8] = b"Subject: hi\n\nhello\n";

/// Writes `DATA` durably as `dir/new/<name>` (or `<name>.1` if that is taken) through
/// `dir/tmp/<name>`, and returns the name.
fn publish<F: Fs>(fs: &F, dir: &Path, name: &str) -> io::Result<String> {
    let dir = fs.open_dir(dir)?;
    let (tmp, new) = (fs.open_dir_at(&dir, "tmp")?, fs.open_dir_at(&dir, "new")?);
    let file = fs.create_new(&tmp, name)?;
    write_at_synced(fs, &file, 0, DATA)?;
    let published = publish_by_link(fs, &tmp, name, &new, || format!("{name}.1"))?;
    fs.sync_dir(&new)?;
    remove_unsynced(fs, &tmp, name)?;
    Ok(published)
}

/// A simulated disk holding `/m/tmp` and `/m/new`, durably.
fn sim_disk() -> io::Result<SimFs> {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/m/tmp"))?;
    fs.create_dir_all(Path::new("/m/new"))?;
    Ok(fs)
}

/// Checks the publish at every crash point, then once on the real disk in `dir` (a fresh
/// temporary directory, removed afterwards, when `None`); returns what it found.
fn run(dir: Option<PathBuf>) -> Result<String, Box<dyn std::error::Error>> {
    // Count the operations of one clean run.
    let clean = sim_disk()?;
    publish(&clean, Path::new("/m"), "msg")?;
    let ops = clean.op_count();
    let mut images = 0;
    for k in 0..=ops {
        let fs = sim_disk()?;
        fs.crash_after(k);
        let returned = publish(&fs, Path::new("/m"), "msg").is_ok();
        for img in fs.crash_images() {
            match img.read_file("/m/new/msg") {
                Some(data) if data != DATA => return Err(format!("op {k}: torn file").into()),
                None if returned => return Err(format!("op {k}: published file lost").into()),
                _ => images += 1,
            }
        }
    }
    let checked =
        format!("{ops} crash points, {images} crash images checked: never torn, never lost\n");

    let temporary = dir.is_none();
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mta-durable-example-{}", std::process::id()))
    });
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::create_dir_all(dir.join("new"))?;
    let name = publish(&OsFs::new(), &dir, "msg")?;
    let on_disk = std::fs::read(dir.join("new").join(&name))?;
    if on_disk != DATA {
        return Err("wrong bytes on disk".into());
    }
    std::fs::remove_file(dir.join("new").join(&name))?;
    if temporary {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(format!(
        "{checked}published {} bytes on the real disk as new/{name}\n",
        on_disk.len()
    ))
}

/// What [`run`] prints.
const EXPECTED: &str = "\
6 crash points, 28 crash images checked: never torn, never lost
published 19 bytes on the real disk as new/msg
";

fn main() -> ExitCode {
    match run(std::env::args_os().nth(1).map(PathBuf::from)) {
        Ok(out) => {
            print!("{out}");
            if out == EXPECTED {
                ExitCode::SUCCESS
            } else {
                eprintln!("publish: the output differs from the expected one");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("publish: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_output_is_the_expected_one() {
        let out = super::run(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, super::EXPECTED);
    }
}
