//! Cross-checks against mta-core's independent implementations of the same qmail rules:
//! the streaming hop count against `mta_core::header::hop_count` on the stored message,
//! and `received_line` against `mta_core::header::received_smtp`.

use mta_core::date::qmail_date822;
use mta_core::header::{ReceivedSmtp, hop_count, received_smtp};
use mta_smtp::{ReceivedInfo, received_line};
use proptest::prelude::*;

use crate::common::{Ev, config, run_pieces};

const LINES: [&str; 10] = [
    "Received: from a by b\r\n",
    "received-spf: pass\r\n",
    "DELIVERED-TO: x@y\r\n",
    "Deliver: no\r\n",
    "Receive: no\r\n",
    "X-Received: no\r\n",
    " folded received\r\n",
    "Subject: s\r\n",
    "\r\n",
    "Received: in the body? only after the empty line\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn hop_count_matches_mta_core(picks in proptest::collection::vec(0usize..LINES.len(), 0..40), cut in any::<prop::sample::Index>()) {
        let mut input = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n".to_vec();
        for &i in &picks {
            input.extend_from_slice(LINES[i].as_bytes());
        }
        input.extend_from_slice(b".\r\n");
        let mut cfg = config();
        cfg.max_hops = None;
        let cut = cut.index(input.len() + 1);
        let run = run_pieces(cfg, [&input[..cut], &input[cut..]], false);
        let hops = run.events.iter().find_map(|e| match e {
            Ev::DataEnd(s) => Some(s.hops),
            _ => None,
        });
        prop_assert_eq!(run.accepted.len(), 1);
        prop_assert_eq!(hops, Some(hop_count(&run.accepted[0])));
    }

    #[test]
    fn received_line_matches_mta_core(
        host in "[ -~]{0,20}", ip in "[0-9a-f.:]{1,20}", helo in proptest::option::of("[ -~]{0,20}"),
        info in proptest::option::of("[a-z]{1,8}"), local in "[a-z.]{1,20}", t in 0i64..4_000_000_000,
    ) {
        let date = qmail_date822(t);
        let mut ours = ReceivedInfo::new(&host, &ip, &local, &date);
        ours.helo = helo.as_deref();
        ours.remote_info = info.as_deref();
        let mut core = ReceivedSmtp::new(&host, &ip, &local, &date);
        core.helo = helo.as_deref();
        core.remote_info = info.as_deref();
        prop_assert_eq!(received_line(&ours).into_bytes(), received_smtp(&core));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The client writes RCPT paths exactly as qmail's quote2 (mta-core) would (for the
    /// addresses it sends at all: it refuses an empty domain, so no `@` in the local part
    /// here).
    #[test]
    fn client_quoting_matches_quote2(
        local in "[ -?A-~]{0,12}", domain in "[a-z0-9.-]{1,12}", with_domain in any::<bool>(),
    ) {
        let addr = if with_domain { format!("{local}@{domain}") } else { local.clone() };
        prop_assume!(!addr.is_empty());
        let env = mta_core::Envelope::new("s@example.org", [addr.as_str()]);
        let now = std::time::Instant::now();
        let mut c = mta_smtp::ClientSession::new(mta_smtp::ClientConfig::new("h", "p"), env, now);
        c.handle_input(b"220 x\r\n250-x\r\n", now);
        c.handle_input(b"250 PIPELINING\r\n", now);
        let mut wire = Vec::new();
        let _ = c.poll_transmit(&mut wire);
        let mut want = b"RCPT TO:<".to_vec();
        want.extend(mta_core::header::quote2(addr.as_bytes()));
        want.extend_from_slice(b">\r\n");
        prop_assert!(
            wire.windows(want.len()).any(|w| w == want.as_slice()),
            "{} not in {}", String::from_utf8_lossy(&want), String::from_utf8_lossy(&wire)
        );
    }
}
