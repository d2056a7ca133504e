//! SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms: the exchange's
//! grammar. The session checks syntax only; whether the password is right is the
//! application's verdict on [`crate::Event::Auth`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Longest AUTH command or response line, CRLF included (RFC 4954 §4: 12,288 octets).
pub(crate) const MAX_AUTH_LINE: usize = 12_288;

/// A SASL mechanism the server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMechanism {
    /// PLAIN (RFC 4616): `authzid NUL authcid NUL password` in one base64 response.
    Plain,
    /// LOGIN (draft-murchison-sasl-login): the user name, then the password, each asked
    /// for with a `334` challenge.
    Login,
}

impl AuthMechanism {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMechanism::Plain => "PLAIN",
            AuthMechanism::Login => "LOGIN",
        }
    }
}

/// A password, kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The bytes, for the check only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What a client presented in AUTH.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// The mechanism used.
    pub mechanism: AuthMechanism,
    /// The authorization identity PLAIN may carry (empty: the same as `login`).
    pub authzid: String,
    /// The authentication identity: the login name.
    pub login: String,
    /// The password.
    pub password: Secret,
}

/// Where an AUTH exchange is, between the server's `334` and the client's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// PLAIN sent without an initial response: waiting for it.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password of this user.
    LoginPassword(String),
}

/// Why a response line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseError {
    /// `*`: the client cancelled (`501`).
    Cancelled,
    /// Not base64 (`501 5.5.2`).
    BadBase64,
    /// Decodes, but not as the mechanism's message (`501 5.5.2`).
    Malformed,
}

/// Decodes a client response (RFC 4954 §4): `*` cancels, `=` is an empty response.
pub(crate) fn decode_response(line: &[u8]) -> Result<Vec<u8>, ResponseError> {
    match line {
        b"*" => Err(ResponseError::Cancelled),
        b"=" => Ok(Vec::new()),
        _ => STANDARD.decode(line).map_err(|_| ResponseError::BadBase64),
    }
}

/// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616 §2).
pub(crate) fn parse_plain(message: &[u8]) -> Result<Credentials, ResponseError> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(login), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ResponseError::Malformed);
    };
    if login.is_empty() || password.contains(&0) {
        return Err(ResponseError::Malformed);
    }
    Ok(Credentials {
        mechanism: AuthMechanism::Plain,
        authzid: text(authzid)?,
        login: text(login)?,
        password: Secret::new(password.to_vec()),
    })
}

/// A name: UTF-8 without controls (they would reach logs and headers).
pub(crate) fn text(b: &[u8]) -> Result<String, ResponseError> {
    let s = std::str::from_utf8(b).map_err(|_| ResponseError::Malformed)?;
    if s.chars().any(char::is_control) {
        return Err(ResponseError::Malformed);
    }
    Ok(s.to_owned())
}

/// `334` + base64 of `challenge`.
pub(crate) fn challenge(out: &mut Vec<u8>, challenge: &[u8]) {
    out.extend_from_slice(b"334 ");
    out.extend_from_slice(STANDARD.encode(challenge).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Base64 of `bytes` (for the client side).
pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages() {
        let c = parse_plain(b"\0joe\0secret").unwrap_or_else(|_| unreachable!());
        assert_eq!((c.authzid.as_str(), c.login.as_str()), ("", "joe"));
        assert_eq!(c.password.expose(), b"secret");
        assert_eq!(format!("{:?}", c.password), "Secret(..)");
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(parse_plain(b"joe\0secret"), Err(ResponseError::Malformed));
        assert_eq!(parse_plain(b"\0\0pw"), Err(ResponseError::Malformed));
        assert_eq!(parse_plain(b"a\0b\0c\0d"), Err(ResponseError::Malformed));
        assert_eq!(parse_plain(b"\0jo\ne\0pw"), Err(ResponseError::Malformed));
        assert_eq!(decode_response(b"*"), Err(ResponseError::Cancelled));
        assert_eq!(decode_response(b"="), Ok(Vec::new()));
        assert_eq!(decode_response(b"!!"), Err(ResponseError::BadBase64));
        assert_eq!(
            decode_response(b"AGpvZQBzZWNyZXQ="),
            Ok(b"\0joe\0secret".to_vec())
        );
    }
}
