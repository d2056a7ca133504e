//! RFC 3464 delivery status notifications, the optional second bounce format.
//!
//! Layout (RFC 6522 `multipart/report`, RFC 3464 §2):
//!
//! 1. `text/plain`: the same QSBMF text qmail-send writes, so QSBMF readers still work;
//! 2. `message/delivery-status`: a per-message block (`Reporting-MTA: dns; <bouncehost>`)
//!    and one block per failure (`Final-Recipient`, `Action: failed`, `Status`,
//!    `Diagnostic-Code`);
//! 3. `message/rfc822` with the original message, or `text/rfc822-headers` with only its
//!    header when the copy had to be cut ([`BounceConfig::max_original_bytes`]).
//!
//! [`BounceConfig::max_original_bytes`]: crate::BounceConfig::max_original_bytes

use mta_core::header::quote2;

use crate::compose::{Failure, Parts};
use crate::text::{find_status, push_folded_field};

/// Builds the DSN message.
pub(crate) fn compose(p: &Parts<'_>) -> Vec<u8> {
    let boundary = boundary_for(p);
    let mut out = Vec::with_capacity(1024 + p.original.len());
    p.push_top_fields(&mut out);
    out.extend_from_slice(b"Auto-Submitted: auto-replied\nMIME-Version: 1.0\n");
    out.extend_from_slice(b"Content-Type: multipart/report; report-type=delivery-status;\n");
    out.extend_from_slice(format!(" boundary=\"{boundary}\"\n").as_bytes());
    // RFC 2045 §6.4: a multipart holding an 8bit part is itself 8bit.
    let mut text = Vec::new();
    p.push_report_text(&mut text);
    text.extend_from_slice(b"--- The original message is attached.\n");
    let ascii = text.is_ascii();
    let original_ascii = p.original.is_ascii() && p.return_path.as_bytes().is_ascii();
    if !(ascii && original_ascii) {
        out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\n");
    }
    out.extend_from_slice(b"\nThis is a MIME-formatted delivery status notification.\n");

    // Part 1: the QSBMF text.
    push_boundary(&mut out, &boundary);
    out.extend_from_slice(if ascii {
        b"Content-Type: text/plain; charset=us-ascii\n\n".as_slice()
    } else {
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n".as_slice()
    });
    out.extend_from_slice(&text);

    // Part 2: the machine-readable status.
    push_boundary(&mut out, &boundary);
    out.extend_from_slice(b"Content-Type: message/delivery-status\n\n");
    push_folded_field(
        &mut out,
        "Reporting-MTA",
        format!("dns; {}", p.cfg.bouncehost_name()).as_bytes(),
    );
    for f in p.failures {
        out.push(b'\n');
        // RFC 3464 §2.3.2: an rfc822 address, so the local part is quoted where needed
        // (qmail's quote2); not folded, so white space inside quotes survives.
        out.extend_from_slice(b"Final-Recipient: rfc822; ");
        let start = out.len();
        out.extend_from_slice(&quote2(f.recipient().as_bytes()));
        for b in &mut out[start..] {
            if !(b.is_ascii_graphic() || *b == b' ') {
                *b = b'?';
            }
        }
        out.push(b'\n');
        out.extend_from_slice(b"Action: failed\n");
        let status = find_status(f.report()).map_or_else(|| "5.0.0".to_owned(), |s| s.to_string());
        out.extend_from_slice(format!("Status: {status}\n").as_bytes());
        push_folded_field(&mut out, "Diagnostic-Code", &diagnostic(f.report()));
    }

    // Part 3: the returned message or its header.
    push_boundary(&mut out, &boundary);
    out.extend_from_slice(if p.truncated {
        b"Content-Type: text/rfc822-headers\n".as_slice()
    } else {
        b"Content-Type: message/rfc822\n".as_slice()
    });
    if !original_ascii {
        out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\n");
    }
    out.push(b'\n');
    if p.truncated {
        let mut returned = Vec::with_capacity(p.original.len() + 64);
        p.push_returned(&mut returned);
        let end = header_end(&returned);
        out.extend_from_slice(&returned[..end]);
    } else {
        p.push_returned(&mut out);
    }
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

fn push_boundary(out: &mut Vec<u8>, boundary: &str) {
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("\n--{boundary}\n").as_bytes());
}

/// The header of `msg`, through its empty line (or all of it when there is none).
fn header_end(msg: &[u8]) -> usize {
    if msg.starts_with(b"\n") {
        return 1;
    }
    msg.windows(2)
        .position(|w| w == b"\n\n")
        .map_or(msg.len(), |i| i + 2)
}

/// `smtp; <reply>` when the report quotes an SMTP reply (qmail-remote's
/// `Remote host said: 550 ...`), else `x-mta; <report>`.
fn diagnostic(report: &[u8]) -> Vec<u8> {
    let said = report
        .windows(6)
        .position(|w| w == b"said: ")
        .map(|i| &report[i + 6..])
        .filter(|r| r.len() >= 3 && r[..3].iter().all(u8::is_ascii_digit));
    let mut v = Vec::with_capacity(report.len() + 8);
    if let Some(reply) = said {
        v.extend_from_slice(b"smtp; ");
        v.extend_from_slice(reply);
    } else {
        v.extend_from_slice(b"x-mta; ");
        v.extend_from_slice(report);
    }
    v
}

/// A boundary that occurs nowhere in the parts: a hash of the content, bumped until unique.
fn boundary_for(p: &Parts<'_>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    mix(p.date.as_bytes());
    mix(p.to.as_bytes());
    for f in p.failures {
        mix(f.recipient().as_bytes());
    }
    mix(&p.original[..p.original.len().min(4096)]);
    let texts: Vec<&[u8]> = std::iter::once(p.original)
        .chain(p.failures.iter().map(Failure::report))
        .collect();
    unique_boundary(h, &texts)
}

/// `mta-dsn-<seed>-<n>` for the smallest `n` that clashes with none of `texts`.
/// RFC 2046 §5.1.1: only a line starting with `--` + boundary delimits a part, so only lines
/// starting with `--` can clash (each is searched whole, to be conservative).
fn unique_boundary(h: u64, texts: &[&[u8]]) -> String {
    let dash_lines: Vec<&[u8]> = texts
        .iter()
        .flat_map(|t| t.split(|&b| b == b'\n'))
        .filter(|l| l.starts_with(b"--"))
        .collect();
    let mut n = 0u32;
    loop {
        let b = format!("mta-dsn-{h:016x}-{n}");
        let bytes = b.as_bytes();
        if !dash_lines
            .iter()
            .any(|l| l.windows(bytes.len()).any(|w| w == bytes))
        {
            return b;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_types() {
        assert_eq!(
            diagnostic(b"Connected to 192.0.2.1 but sender was rejected.\nRemote host said: 550 5.1.1 no\n"),
            b"smtp; 550 5.1.1 no\n"
        );
        assert_eq!(
            diagnostic(b"No mailbox. (#5.1.1)\n"),
            b"x-mta; No mailbox. (#5.1.1)\n"
        );
    }

    #[test]
    fn boundary_avoids_clashes() {
        let b0 = "mta-dsn-00000000000000ab-0";
        assert_eq!(unique_boundary(0xab, &[b"x\n".as_slice()]), b0);
        // Not at the start of a "--" line: no clash.
        let inline = format!("text {b0}\n");
        assert_eq!(unique_boundary(0xab, &[inline.as_bytes()]), b0);
        let evil = format!("x\n--{b0}\n");
        let report = "---- mta-dsn-00000000000000ab-1 ----";
        assert_eq!(
            unique_boundary(0xab, &[evil.as_bytes(), report.as_bytes()]),
            "mta-dsn-00000000000000ab-2"
        );
    }

    #[test]
    fn header_only() {
        assert_eq!(header_end(b"A: b\n\nbody\n"), 6);
        assert_eq!(header_end(b"A: b\n"), 5);
        assert_eq!(header_end(b"\nbody"), 1);
    }
}
