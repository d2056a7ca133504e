//! `mta check` and `mta queue stat|list|flush`.

use std::io::Write;

use mta_queue::{Queue, QueueOptions, Status};

use mta_sched::control::Request;

use crate::control;
use crate::qread;
use crate::root::Root;
use crate::settings::Settings;

/// `mta check`: validates the control files and users/assign. Prints `file:line: error`
/// lines on stderr; returns 1 on any error, 0 otherwise.
pub fn check(root: &Root, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut bad = 0;
    if let Err(e) = Settings::load(&root.control()) {
        let _ = writeln!(err, "{e}");
        bad += 1;
    }
    if let Err(e) = crate::users::load_assign(&root.assign()) {
        let _ = writeln!(err, "{e}");
        bad += 1;
    }
    if let Err(e) = mta_core::control::Passwords::load(&root.dir().join("users/passwords")) {
        let _ = writeln!(err, "{e}");
        bad += 1;
    }
    // DKIM keys: every file under control/dkim/ must be DOMAIN/SELECTOR.pem holding an RSA
    // or Ed25519 private key.
    for e in mta_msgauth::KeyStore::new(root.control().join("dkim"))
        .scan()
        .errors
    {
        let _ = writeln!(err, "{e}");
        bad += 1;
    }
    if let Err(e) = crate::live::default_delivery(&root.control()) {
        let _ = writeln!(err, "{e}");
        bad += 1;
    }
    if let Err(e) = crate::metrics::configured(&root.control()) {
        let _ = writeln!(err, "{e}");
        bad += 1;
    }
    let now = u64::try_from(crate::log::unix_now()).unwrap_or(0);
    for name in ["servercert.pem", "clientcert.pem"] {
        let path = root.control().join(name);
        if !path.exists() {
            continue;
        }
        match crate::tls::check_pem_file(&path, now) {
            Ok(warnings) => {
                for w in warnings {
                    let _ = writeln!(err, "warning: {w}");
                }
            }
            Err(e) => {
                let _ = writeln!(err, "{e}");
                bad += 1;
            }
        }
    }
    let ca = root.control().join("tlsca.pem");
    if let Ok(pem) = std::fs::read(&ca)
        && let Err(e) = mta_smtp::tls::roots_with(Some(&pem))
    {
        let _ = writeln!(err, "{}: {e}", ca.display());
        bad += 1;
    }
    if bad == 0 {
        let _ = writeln!(
            out,
            "ok: {} and {} are valid",
            root.control().display(),
            root.assign().display()
        );
        0
    } else {
        1
    }
}

fn open_queue(root: &Root) -> Result<Queue, String> {
    if !root.exists() {
        return Err(format!(
            "{}: not an mta root (run mta init)",
            root.dir().display()
        ));
    }
    // Nothing root creates in the queue may be root's: act as its owner.
    crate::inject::deliver::act_as_queue_owner(root);
    // Read without the lock, so the listing works while `mta serve` owns the queue (as
    // qmail-qread worked beside qmail-send).
    match Queue::inspect(root.queue()) {
        Ok(q) => Ok(q),
        // A root whose queue was never opened has no layout yet: an empty queue.
        Err(_) if !root.queue().join("layout").exists() => {
            Queue::open(root.queue(), QueueOptions::default())
                .map_err(|e| format!("unable to open queue: {e}"))
        }
        Err(e) => Err(format!("unable to open queue: {e}")),
    }
}

/// `mta queue stat`: qmail-qstat's two lines. "Not yet preprocessed" counts messages none
/// of whose recipients has been tried yet.
pub fn stat(root: &Root, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let q = match open_queue(root) {
        Ok(q) => q,
        Err(e) => {
            let _ = writeln!(err, "mta: {e}");
            return 111;
        }
    };
    let ids = match q.scan() {
        Ok(ids) => ids,
        Err(e) => {
            let _ = writeln!(err, "mta: unable to scan queue: {e}");
            return 111;
        }
    };
    let fresh = ids
        .iter()
        .filter(|id| {
            q.info(**id)
                .is_ok_and(|i| i.statuses.iter().all(|s| *s == Status::Pending))
        })
        .count();
    let _ = out.write_all(qread::format_stat(ids.len(), fresh).as_bytes());
    0
}

/// `mta queue list` (and `mailq`, `sendmail -bp`): qmail-qread's listing.
pub fn list(root: &Root, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    queue(root, &Request::List { json: false }, out, err)
}

/// `mta queue list|show|delete|hold|release|flush`: through a running server's control
/// socket, else on the queue directly ([`crate::control`]). Exit 0 when done, 1 when
/// refused or failed, 111 when the server could not be asked.
pub fn queue(root: &Root, request: &Request, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if !root.exists() {
        let _ = writeln!(
            err,
            "mta: {}: not an mta root (run mta init)",
            root.dir().display()
        );
        return 111;
    }
    let answer = match control::ask(&control::socket_path(root), request) {
        Ok(Some((ok, text))) => (ok, text),
        Ok(None) => {
            let router = match Settings::load(&root.control()) {
                Ok(s) => s.control,
                Err(e) => {
                    let _ = writeln!(err, "mta: {e}");
                    return 1;
                }
            };
            match control::offline(root, &*router, request) {
                Ok(text) => (true, text.into_bytes()),
                Err(text) => (false, text.into_bytes()),
            }
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "mta: unable to ask the server ({}): {e}",
                control::socket_path(root).display()
            );
            return 111;
        }
    };
    match answer {
        (true, text) => {
            let _ = out.write_all(&text);
            0
        }
        (false, text) => {
            let _ = err.write_all(b"mta: ");
            let _ = err.write_all(&text);
            1
        }
    }
}

/// `mta dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N]`: a new key in
/// `control/dkim/DOMAIN/SELECTOR.pem` (mode 0600, never over an existing file), and the TXT
/// record to publish on stdout. Exit 0, or 1 with the reason.
pub fn dkim_keygen(
    root: &Root,
    domain: &str,
    selector: &str,
    kind: mta_msgauth::KeyKind,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let written = mta_msgauth::generate_key(kind).and_then(|key| {
        mta_msgauth::write_key(&root.control().join("dkim"), domain, selector, &key)
            .map(|path| (key, path))
    });
    match written {
        Ok((key, path)) => {
            let _ = writeln!(err, "mta: wrote {}", path.display());
            let _ = writeln!(out, "{}", key.zone_line(domain, selector));
            0
        }
        Err(e) => {
            let _ = writeln!(err, "mta: dkim keygen: {e}");
            1
        }
    }
}
