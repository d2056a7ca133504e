//! Maildir info flags (maildir(5), "info semantics"): the letters after `:2,` in a
//! message's name in `cur/`.

use std::fmt;
use std::str::FromStr;

/// One maildir info flag. maildir(5) defines six, each an uppercase letter; any other ASCII
/// letter is a [`Flag::Keyword`] (Dovecot uses lowercase ones for IMAP keywords).
///
/// ```
/// use mta_maildir::Flag;
/// assert_eq!(Flag::Seen.to_string(), "S");
/// assert_eq!("R".parse::<Flag>(), Ok(Flag::Replied));
/// assert_eq!(Flag::try_from('a'), Ok(Flag::Keyword('a')));
/// assert!(Flag::try_from('1').is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Flag {
    /// `D`: draft.
    Draft,
    /// `F`: flagged.
    Flagged,
    /// `P`: passed (resent, forwarded or bounced).
    Passed,
    /// `R`: replied.
    Replied,
    /// `S`: seen.
    Seen,
    /// `T`: trashed (to be expunged).
    Trashed,
    /// Any other ASCII letter, kept as it is.
    Keyword(char),
}

impl Flag {
    /// The flag's letter.
    pub fn as_char(self) -> char {
        match self {
            Flag::Draft => 'D',
            Flag::Flagged => 'F',
            Flag::Passed => 'P',
            Flag::Replied => 'R',
            Flag::Seen => 'S',
            Flag::Trashed => 'T',
            Flag::Keyword(c) => c,
        }
    }
}

impl TryFrom<char> for Flag {
    type Error = ParseFlagError;

    /// The flag for an ASCII letter.
    ///
    /// # Errors
    /// [`ParseFlagError`] for anything but an ASCII letter.
    fn try_from(c: char) -> Result<Flag, ParseFlagError> {
        Ok(match c {
            'D' => Flag::Draft,
            'F' => Flag::Flagged,
            'P' => Flag::Passed,
            'R' => Flag::Replied,
            'S' => Flag::Seen,
            'T' => Flag::Trashed,
            c if c.is_ascii_alphabetic() => Flag::Keyword(c),
            _ => return Err(ParseFlagError),
        })
    }
}

impl From<Flag> for char {
    fn from(f: Flag) -> char {
        f.as_char()
    }
}

impl FromStr for Flag {
    type Err = ParseFlagError;

    /// Exactly one ASCII letter.
    ///
    /// # Errors
    /// [`ParseFlagError`] for anything else.
    fn from_str(s: &str) -> Result<Flag, ParseFlagError> {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Flag::try_from(c),
            _ => Err(ParseFlagError),
        }
    }
}

impl fmt::Display for Flag {
    /// The letter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// A maildir info flag was not a single ASCII letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseFlagError;

impl fmt::Display for ParseFlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a maildir flag is one ASCII letter")
    }
}

impl std::error::Error for ParseFlagError {}

/// Maildir info flags: the letters after `:2,`, kept unique and in ASCII order (maildir(5)
/// requires that order).
///
/// Every method that takes a flag takes a [`Flag`] or, as before [`Flag`] existed, a bare
/// `char` (anything `Into<char>`); a `char` that is not an ASCII letter is ignored.
///
/// ```
/// use mta_maildir::{Flag, Flags};
/// let flags: Flags = "SR".parse().unwrap_or_default();
/// assert_eq!(flags.to_string(), "RS");
/// let flags = flags.with(Flag::Flagged).without('R');
/// assert!(flags.contains(Flag::Seen) && !flags.contains(Flag::Replied));
/// assert_eq!(flags.iter().collect::<Vec<_>>(), [Flag::Flagged, Flag::Seen]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags(String);

impl Flags {
    /// No flags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Flags from letters in any order; non-letters and repeats are dropped (the lenient
    /// reading of a name's `:2,` part; [`str::parse`] is the strict one).
    pub fn from_letters(letters: &str) -> Self {
        let mut v: Vec<char> = letters.chars().filter(char::is_ascii_alphabetic).collect();
        v.sort_unstable();
        v.dedup();
        Self(v.into_iter().collect())
    }

    /// Whether `flag` is set.
    pub fn contains(&self, flag: impl Into<char>) -> bool {
        self.0.contains(flag.into())
    }

    /// These flags plus `flag` (a `char` that is not an ASCII letter is ignored).
    #[must_use]
    pub fn with(&self, flag: impl Into<char>) -> Self {
        Self::from_letters(&format!("{}{}", self.0, flag.into()))
    }

    /// These flags without `flag`.
    #[must_use]
    pub fn without(&self, flag: impl Into<char>) -> Self {
        let flag = flag.into();
        Self(self.0.chars().filter(|&c| c != flag).collect())
    }

    /// The flags, in ASCII order.
    pub fn iter(&self) -> impl Iterator<Item = Flag> + '_ {
        self.0.chars().filter_map(|c| Flag::try_from(c).ok())
    }

    /// The letters, sorted.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Flags {
    type Err = ParseFlagError;

    /// Letters in any order, repeats allowed.
    ///
    /// # Errors
    /// [`ParseFlagError`] when a character is not an ASCII letter.
    fn from_str(s: &str) -> Result<Flags, ParseFlagError> {
        if s.chars().all(|c| c.is_ascii_alphabetic()) {
            Ok(Flags::from_letters(s))
        } else {
            Err(ParseFlagError)
        }
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<I: IntoIterator<Item = Flag>>(iter: I) -> Self {
        let letters: String = iter.into_iter().map(Flag::as_char).collect();
        Flags::from_letters(&letters)
    }
}

impl fmt::Display for Flags {
    /// The letters as they appear after `:2,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_sorted_unique() {
        assert_eq!(Flags::from_letters("SFRS").as_str(), "FRS");
        assert_eq!(Flags::from_letters("S").with('D').with('S').as_str(), "DS");
        assert_eq!(Flags::from_letters("DS").without('D').as_str(), "S");
        assert_eq!(Flags::from_letters("a1:T").as_str(), "Ta");
    }

    /// Issue 21: flags were bare chars; the typed ones print and parse as their letters.
    #[test]
    fn flag_display_parse_round_trip() {
        for f in [
            Flag::Draft,
            Flag::Flagged,
            Flag::Passed,
            Flag::Replied,
            Flag::Seen,
            Flag::Trashed,
            Flag::Keyword('a'),
        ] {
            assert_eq!(f.to_string().parse::<Flag>(), Ok(f));
        }
        assert_eq!("".parse::<Flag>(), Err(ParseFlagError));
        assert_eq!("SS".parse::<Flag>(), Err(ParseFlagError));
        assert_eq!("S:".parse::<Flags>(), Err(ParseFlagError));
        let all: Flags = [Flag::Trashed, Flag::Seen, Flag::Seen]
            .into_iter()
            .collect();
        assert_eq!(all.to_string(), "ST");
        assert_eq!(
            Flags::from_letters("aTS").iter().collect::<Vec<_>>(),
            [Flag::Seen, Flag::Trashed, Flag::Keyword('a')]
        );
    }
}
