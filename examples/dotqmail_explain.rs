//! Explain what a `.qmail` file does for an address, without delivering anything
//! (like `qmail-local -n`): which user the address belongs to, which `.qmail` file applies
//! and each instruction in it.
//!
//! ```text
//! cargo run --example dotqmail_explain
//! ```

use mta::dotqmail::{
    Account, DeliveryOptions, DeliveryRequest, Mailbox, Resolved, SystemExecutor, UserTable,
    explain, find_mailbox,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // qmail's alias user: every address no other user claims. Its home holds
    // `.qmail-default`, which applies to any extension without a file of its own.
    let home = tempfile::tempdir()?;
    std::fs::write(
        home.path().join(".qmail-default"),
        "# list traffic goes to the archive and to the owner\n./Maildir/\n&owner@example.org\n|preline /usr/bin/procmail\n",
    )?;
    // `./Maildir/` must exist, or the explanation is "would defer: maildir ./Maildir/ does
    // not exist", as the delivery would.
    mta::maildir::Maildir::create(home.path().join("Maildir"))?;
    // Explaining runs nothing as anyone, so uid 0 need not be refused here.
    let home_dir = home
        .path()
        .to_str()
        .ok_or("temporary directory is not UTF-8")?;
    let users = UserTable::new(Account::new("alias", 0, 0, home_dir)).refuse_root(false);

    let Resolved::User(user) = users.resolve(b"postmaster")? else {
        return Err("postmaster should resolve to the alias user".into());
    };
    let mut exec = SystemExecutor::new();
    let options = DeliveryOptions::default();
    let Mailbox::File(file) = find_mailbox(&mut exec, &user, &options).map_err(|e| e.report())?
    else {
        return Err("expected a .qmail file".into());
    };
    println!("postmaster@example.com: {}", file.path.display());
    assert!(file.path.ends_with(".qmail-default"));

    let request = DeliveryRequest {
        user: &user,
        local: b"postmaster",
        domain: b"example.com",
        sender: b"alice@example.net",
        default_delivery: b"./Maildir/\n",
        now: 0,
    };
    let outcome = explain(&mut exec, &request, &options);
    let report = outcome.report_text();
    print!("{report}");
    for expected in ["Maildir", "owner@example.org", "procmail"] {
        assert!(
            report.contains(expected),
            "{expected} missing from the report"
        );
    }
    println!("ok");
    Ok(())
}
