//! The one HTTP request a metrics endpoint needs to understand (RFC 9112 §3, §5): a request
//! line and header fields, nothing else. The body, if any, is never read. mta-daemon's
//! `control/metrics` listener answers `GET /metrics` with it; anything else gets 404, 405 or
//! 400 without further parsing.
//!
//! ```
//! use mta_core::http::{Request, RequestError, parse_request};
//! assert_eq!(parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(Request::Metrics));
//! assert_eq!(parse_request(b"GET /metrics HTTP/1.1\r\n"), Err(RequestError::Incomplete));
//! assert_eq!(parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"), Ok(Request::BadMethod));
//! ```
//!
//! ```text
//! request-line = method SP request-target SP HTTP-version CRLF
//! field-line   = field-name ":" OWS field-value OWS
//! ```

/// What a complete, well-formed request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (a query string is ignored).
    Metrics,
    /// `GET` of any other path: `404`.
    NotFound,
    /// Another method: `405`.
    BadMethod,
}

/// Why a request gets no answer but `400` (or, while incomplete, more reading).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The blank line ending the header has not arrived yet.
    Incomplete,
    /// The request line is not `METHOD SP TARGET SP HTTP/1.x`.
    BadRequestLine,
    /// A header line is not `name: value`.
    BadHeader,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestError::Incomplete => "incomplete request",
            RequestError::BadRequestLine => "malformed request line",
            RequestError::BadHeader => "malformed header field",
        })
    }
}

impl std::error::Error for RequestError {}

/// RFC 9110 §5.6.2: `tchar`, the characters of a method and a field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses the request head in `buf` (everything read so far).
///
/// Lines end in CRLF; a bare LF is accepted as RFC 9112 §2.2 allows. Only `HTTP/1.0` and
/// `HTTP/1.1` are spoken.
///
/// # Errors
/// [`RequestError::Incomplete`] until the empty line arrives; the others for junk.
pub fn parse_request(buf: &[u8]) -> Result<Request, RequestError> {
    let mut lines = buf.split(|&b| b == b'\n');
    let first = lines.next().ok_or(RequestError::Incomplete)?;
    // The request line is complete once a newline follows it.
    if first.len() == buf.len() {
        return match check_request_line_prefix(first) {
            Ok(()) => Err(RequestError::Incomplete),
            Err(e) => Err(e),
        };
    }
    let request = request_line(strip_cr(first))?;
    for line in lines {
        let line_complete = line.as_ptr_range().end < buf.as_ptr_range().end;
        if !line_complete {
            return Err(RequestError::Incomplete);
        }
        let line = strip_cr(line);
        if line.is_empty() {
            return Ok(request);
        }
        header_line(line)?;
    }
    Err(RequestError::Incomplete)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Rejects junk early: a partial request line must be a prefix of a valid one.
fn check_request_line_prefix(partial: &[u8]) -> Result<(), RequestError> {
    if partial
        .iter()
        .any(|&b| b.is_ascii_control() && b != b'\r' || !b.is_ascii())
    {
        return Err(RequestError::BadRequestLine);
    }
    Ok(())
}

/// `method SP request-target SP HTTP-version`.
fn request_line(line: &[u8]) -> Result<Request, RequestError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::BadRequestLine);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(RequestError::BadRequestLine);
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(RequestError::BadRequestLine);
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Err(RequestError::BadRequestLine);
    }
    if method != b"GET" {
        return Ok(Request::BadMethod);
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    Ok(if path == b"/metrics" {
        Request::Metrics
    } else {
        Request::NotFound
    })
}

/// `field-name ":" OWS field-value OWS`; no obsolete line folding (RFC 9112 §5.2).
fn header_line(line: &[u8]) -> Result<(), RequestError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(RequestError::BadHeader)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(RequestError::BadHeader);
    }
    if value
        .iter()
        .any(|&b| (b.is_ascii_control() && b != b'\t') || b == 0x7f)
    {
        return Err(RequestError::BadHeader);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_metrics_in_both_versions() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
            Ok(Request::Metrics)
        );
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.0\r\n\r\n"),
            Ok(Request::Metrics)
        );
        assert_eq!(
            parse_request(b"GET /metrics?x=1 HTTP/1.1\nHost: x\n\n"),
            Ok(Request::Metrics),
            "bare LF and a query string"
        );
    }

    #[test]
    fn other_paths_and_methods() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Request::NotFound)
        );
        assert_eq!(
            parse_request(b"GET /metricsx HTTP/1.1\r\n\r\n"),
            Ok(Request::NotFound)
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            Ok(Request::BadMethod)
        );
        assert_eq!(
            parse_request(b"get /metrics HTTP/1.1\r\n\r\n"),
            Ok(Request::BadMethod),
            "methods are case-sensitive"
        );
    }

    #[test]
    fn incomplete_until_the_blank_line() {
        let full = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(
                parse_request(&full[..n]),
                Err(RequestError::Incomplete),
                "prefix of {n} bytes"
            );
        }
        assert_eq!(parse_request(full), Ok(Request::Metrics));
    }

    #[test]
    fn junk_is_refused() {
        for junk in [
            &b"\x16\x03\x01\x02\x00"[..],
            b"GET /metrics\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 x\r\n\r\n",
            b"GET /me\x01trics HTTP/1.1\r\n\r\n",
            b"EHLO example.org\r\n",
            b"\r\n",
        ] {
            assert_eq!(
                parse_request(junk),
                Err(RequestError::BadRequestLine),
                "{junk:?}"
            );
        }
        for junk in [
            &b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"[..],
            b"GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(junk),
                Err(RequestError::BadHeader),
                "{junk:?}"
            );
        }
    }
}
