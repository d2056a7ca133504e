//! Prints what would happen to mail for an address, like `qmail-local -n`: the user it
//! resolves to (users/assign, then passwd if asked, then the alias user), the `.qmail`
//! file that applies, and each instruction (`maildir X`, `mbox X`, `program X`,
//! `forward X`). Nothing is delivered.
//!
//! ```text
//! explain [--assign FILE] [--passwd FILE] [--alias-home DIR] [--default TEXT] LOCAL@DOMAIN
//! ```
//!
//! For example, against a scratch alias directory:
//! ```text
//! mkdir -p /tmp/alias && chmod 755 /tmp/alias
//! printf '|preline procmail\n&boss@example.org\n' > /tmp/alias/.qmail-default
//! cargo run -p mta-dotqmail --example explain -- --alias-home /tmp/alias Postmaster@example.com
//! ```

use std::error::Error;
use std::process::ExitCode;

use mta_dotqmail::{
    Account, DeliveryOptions, DeliveryRequest, Mailbox, PasswdFile, Resolved, SystemExecutor,
    UserTable, UsersAssign, explain, find_mailbox,
};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("explain: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut assign = None;
    let mut passwd = None;
    let mut alias_home = "/var/qmail/alias".to_owned();
    let mut default_delivery = b"./Maildir/\n".to_vec();
    let mut address = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--assign" => assign = Some(UsersAssign::parse(&std::fs::read(value()?)?)?),
            "--passwd" => passwd = Some(PasswdFile::new(value()?)),
            "--alias-home" => alias_home = value()?,
            "--default" => default_delivery = format!("{}\n", value()?).into_bytes(),
            _ if address.is_none() && !arg.starts_with("--") => address = Some(arg),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    // Only explaining: uid 0 is not refused here, as nothing runs as anyone.
    let mut users = UserTable::new(Account::new("alias", 0, 0, alias_home)).refuse_root(false);
    users.set_assign(assign);
    if let Some(p) = passwd {
        users = users.with_system(p);
    }
    let address = address.ok_or("usage: explain [--assign FILE] [--passwd FILE] [--alias-home DIR] [--default TEXT] LOCAL@DOMAIN")?;
    let (local, domain) = address
        .rsplit_once('@')
        .unwrap_or((address.as_str(), "localhost"));

    let user = match users.resolve(local.as_bytes())? {
        Resolved::Trash => {
            println!("empty local part: trash address, accepted and discarded");
            return Ok(ExitCode::SUCCESS);
        }
        Resolved::User(u) => u,
        _ => return Err("unknown resolution".into()),
    };
    let account = user.account();
    println!(
        "user {} uid {} gid {} home {} dash {:?} ext {:?}",
        String::from_utf8_lossy(account.user()),
        account.uid(),
        account.gid(),
        account.home().display(),
        String::from_utf8_lossy(user.dash()),
        String::from_utf8_lossy(user.ext()),
    );
    let mut exec = SystemExecutor::new();
    let options = DeliveryOptions::default();
    match find_mailbox(&mut exec, &user, &options) {
        Ok(Mailbox::File(f)) => println!("file {}", f.path.display()),
        Ok(Mailbox::DefaultDelivery) => println!("no .qmail: default delivery"),
        Ok(Mailbox::NotFound) => println!("no .qmail: no such mailbox"),
        Ok(_) => {}
        Err(e) => println!("search failed: {}", e.report()),
    }
    let request = DeliveryRequest {
        user: &user,
        local: local.as_bytes(),
        domain: domain.as_bytes(),
        sender: b"",
        default_delivery: &default_delivery,
        now: 0,
    };
    let outcome = explain(&mut exec, &request, &options);
    print!("{}", outcome.report_text());
    Ok(ExitCode::from(
        u8::try_from(outcome.exit_code()).unwrap_or(111),
    ))
}
