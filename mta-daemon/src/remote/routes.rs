//! `control/smtproutes`: static routes applied before DNS (qmail-remote, reference §6
//! "Routing").
//!
//! Each line is `domain:relay[:port]`. Keys are tried in qmail's order: the whole host,
//! then each suffix of it that starts at a `.`, then the empty key (`:relay`, the default
//! route); the first hit wins. An empty relay (`.example.com:`) means "look up MX as
//! usual". An IPv6 relay is written in brackets: `example.com:[2001:db8::25]:2525`.

use std::collections::HashMap;

/// Where `smtproutes` sends a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Relay {
    /// The relay host name or IP literal (brackets removed); empty = use MX.
    pub host: String,
    /// The port, when the line gives one (else the SMTP port).
    pub port: Option<u16>,
}

/// The parsed routing table; keys are lowercased.
#[derive(Clone, Debug, Default)]
pub(crate) struct SmtpRoutes {
    map: HashMap<String, Relay>,
}

impl SmtpRoutes {
    /// Parses the lines of `control/smtproutes` (comments and blank lines already removed).
    ///
    /// # Errors
    /// `line N: ...` for a line without `:` or with a bad port.
    pub(crate) fn parse(lines: &[String]) -> Result<SmtpRoutes, String> {
        let mut map = HashMap::new();
        for (i, line) in lines.iter().enumerate() {
            let (key, rest) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: no ':' in {line:?}", i + 1))?;
            let relay = parse_relay(rest)
                .ok_or_else(|| format!("line {}: bad relay or port in {line:?}", i + 1))?;
            // The first line for a key wins, as with qmail's constmap.
            map.entry(key.to_ascii_lowercase()).or_insert(relay);
        }
        Ok(SmtpRoutes { map })
    }

    /// The route for `domain`, if any line matches: the host, each `.suffix`, then `""`.
    pub(crate) fn lookup(&self, domain: &str) -> Option<&Relay> {
        if self.map.is_empty() {
            return None;
        }
        let host = domain.to_ascii_lowercase();
        let suffixes = host
            .char_indices()
            .filter(|&(i, c)| i > 0 && c == '.')
            .map(|(i, _)| &host[i..]);
        std::iter::once(host.as_str())
            .chain(suffixes)
            .chain(std::iter::once(""))
            .find_map(|k| self.map.get(k))
    }
}

/// `relay`, `relay:port`, `[v6]`, `[v6]:port`, or empty.
fn parse_relay(rest: &str) -> Option<Relay> {
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else if rest.parse::<std::net::Ipv6Addr>().is_ok() {
        (rest, None)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.trim().parse::<u16>().ok().filter(|&p| p != 0)?),
    };
    Some(Relay {
        host: host.trim().to_owned(),
        port,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn routes(text: &str) -> SmtpRoutes {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        SmtpRoutes::parse(&lines).unwrap()
    }

    fn relay(host: &str, port: Option<u16>) -> Relay {
        Relay {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn exact_then_suffixes_then_default() {
        let r = routes("a.example.com:relay1\n.example.com:relay2:2525\n:smarthost\n.af.mil:\n");
        assert_eq!(r.lookup("A.Example.COM"), Some(&relay("relay1", None)));
        assert_eq!(
            r.lookup("b.example.com"),
            Some(&relay("relay2", Some(2525)))
        );
        assert_eq!(
            r.lookup("x.a.example.com"),
            Some(&relay("relay2", Some(2525)))
        );
        // `.example.com` does not match `example.com` itself (qmail: suffixes start at a dot).
        assert_eq!(r.lookup("example.com"), Some(&relay("smarthost", None)));
        assert_eq!(r.lookup("nic.af.mil"), Some(&relay("", None)));
        assert_eq!(r.lookup("elsewhere.org"), Some(&relay("smarthost", None)));
    }

    #[test]
    fn no_default_no_route() {
        let r = routes("example.com:127.0.0.2:2525\n");
        assert_eq!(
            r.lookup("example.com"),
            Some(&relay("127.0.0.2", Some(2525)))
        );
        assert_eq!(r.lookup("example.org"), None);
        assert_eq!(SmtpRoutes::default().lookup("example.org"), None);
    }

    #[test]
    fn first_line_wins_and_ipv6() {
        let r =
            routes("x.test:one\nx.test:two\ny.test:[::1]:2526\nz.test:[2001:db8::1]\nw.test:::1\n");
        assert_eq!(r.lookup("x.test"), Some(&relay("one", None)));
        assert_eq!(r.lookup("y.test"), Some(&relay("::1", Some(2526))));
        assert_eq!(r.lookup("z.test"), Some(&relay("2001:db8::1", None)));
        assert_eq!(r.lookup("w.test"), Some(&relay("::1", None)));
    }

    #[test]
    fn bad_lines_name_the_line() {
        let bad = |t: &str| {
            SmtpRoutes::parse(&t.lines().map(str::to_owned).collect::<Vec<_>>()).unwrap_err()
        };
        assert!(bad("ok.test:relay\nnocolon").starts_with("line 2:"));
        assert!(bad("x.test:relay:port").starts_with("line 1:"));
        assert!(bad("x.test:relay:70000").starts_with("line 1:"));
        assert!(bad("x.test:[::1").starts_with("line 1:"));
    }
}
