//! mta-maildir on its own: create a maildir, deliver a message durably (tmp/, fsync, link
//! into new/), list and read it back, and mark it seen.
//!
//! ```text
//! cargo run -p mta-maildir --example deliver_and_read
//! ```

use mta_maildir::{Flags, Maildir, Subdir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("mta-maildir-example-{}", std::process::id()));
    let result = run(&dir);
    std::fs::remove_dir_all(&dir)?;
    result
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let maildir = Maildir::create(dir)?;
    // The prefix lines (here qmail-local's Delivered-To) go in front of the message.
    let name = maildir.deliver(
        b"Delivered-To: joe@example.com\n",
        &b"Subject: hi\n\nhello\n"[..],
    )?;
    println!("delivered as new/{name}");

    let new = maildir.list(Subdir::New)?;
    assert_eq!(new.len(), 1);
    let text = String::from_utf8(maildir.read(&new[0])?)?;
    print!("{text}");
    assert_eq!(
        text,
        "Delivered-To: joe@example.com\nSubject: hi\n\nhello\n"
    );

    // A reader marks it seen: it moves to cur/ with the `S` flag.
    let seen = maildir.set_flags(&new[0], &Flags::from_letters("S"))?;
    assert!(seen.flags().contains('S'));
    assert!(maildir.list(Subdir::New)?.is_empty());
    let cur = maildir.list(Subdir::Cur)?;
    assert_eq!(cur.len(), 1);
    println!("seen: cur/{}", cur[0].file_name());
    println!("ok");
    Ok(())
}
