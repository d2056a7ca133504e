//! `.qmail` files: one [`Instruction`] per line, exactly as qmail-local reads them
//! (dot-qmail.9, qmail-local.c `main`).
//!
//! qmail-local strips trailing spaces and tabs from each line, then looks at the first
//! byte: `#` comment, `.` or `/` a file (a maildir when the line ends in `/`, else an
//! mbox), `|` a program, `+` the forward-only switch when the line is exactly `+list`
//! (any other `+` line is ignored), `&` a forward to the rest of the line, anything else a
//! forward to the whole line. Blank lines are ignored, except that a blank **first** line
//! is an error (qmail defers with `#4.2.1`). A missing final newline is supplied.
//!
//! qmail keeps each line as a C string, so an argument ends at its first NUL byte; the
//! parser does the same so the program, path or address it returns is the one qmail would
//! have used.

use std::fmt;

/// One line of a `.qmail` file, after qmail-local's classification.
///
/// The byte strings are the line's argument with trailing spaces and tabs removed.
///
/// `Debug` shows them as (lossy) strings, `Program("echo hi")`, not byte arrays; `Display`
/// is the `qmail-local -n` line ([`Instruction::explain`]).
///
/// ```
/// use mta_dotqmail::Instruction;
/// let i = Instruction::Maildir(b"./Maildir/".to_vec());
/// assert_eq!(format!("{i:?}"), r#"Maildir("./Maildir/")"#);
/// assert_eq!(i.to_string(), "maildir ./Maildir/");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Instruction {
    /// `#...`: a comment; also a blank line after the first.
    Comment,
    /// `|command`: run `/bin/sh -c command` in the home directory (qmail-command.8).
    Program(Vec<u8>),
    /// `&address` or a bare address: forward the message there (dot-qmail.9).
    Forward(Vec<u8>),
    /// `./path` or `/path` not ending in `/`: append to an mbox file (mbox.5).
    Mbox(Vec<u8>),
    /// `./path/` or `/path/`: deliver into a maildir (maildir.5).
    Maildir(Vec<u8>),
    /// `+list`: from here on only forwards are allowed (qmail-local's undocumented
    /// forward-only switch, the same mode the owner-execute bit selects).
    ForwardOnly,
    /// Any other line starting with `+`: ignored by qmail-local.
    Ignored,
}

impl Instruction {
    /// The `qmail-local -n` rendering (`maildir X`, `mbox X`, `program X`,
    /// `forward X`), or `None` for lines that qmail-local does not print.
    pub fn explain(&self) -> Option<Vec<u8>> {
        let (word, arg): (&[u8], &[u8]) = match self {
            Instruction::Program(a) => (b"program ", a),
            Instruction::Forward(a) => (b"forward ", a),
            Instruction::Mbox(a) => (b"mbox ", a),
            Instruction::Maildir(a) => (b"maildir ", a),
            Instruction::Comment | Instruction::ForwardOnly | Instruction::Ignored => {
                return None;
            }
        };
        let mut out = word.to_vec();
        out.extend_from_slice(arg);
        Some(out)
    }
}

impl fmt::Debug for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, arg) = match self {
            Instruction::Comment => return f.write_str("Comment"),
            Instruction::ForwardOnly => return f.write_str("ForwardOnly"),
            Instruction::Ignored => return f.write_str("Ignored"),
            Instruction::Program(a) => ("Program", a),
            Instruction::Forward(a) => ("Forward", a),
            Instruction::Mbox(a) => ("Mbox", a),
            Instruction::Maildir(a) => ("Maildir", a),
        };
        f.debug_tuple(name)
            .field(&String::from_utf8_lossy(arg))
            .finish()
    }
}

impl fmt::Display for Instruction {
    /// The `qmail-local -n` line (`maildir ./Maildir/`, `forward bob@example.org`, ...),
    /// invalid UTF-8 replaced; `comment`, `+list` and `ignored` for the lines qmail-local
    /// does not print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.explain(), self) {
            (Some(line), _) => f.write_str(&String::from_utf8_lossy(&line)),
            (None, Instruction::ForwardOnly) => f.write_str("+list"),
            (None, Instruction::Comment) => f.write_str("comment"),
            (None, _) => f.write_str("ignored"),
        }
    }
}

/// A parsed line with its 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the file.
    pub number: usize,
    /// What the line asks for.
    pub instruction: Instruction,
}

/// A `.qmail` file that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseInstructionError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ParseInstructionErrorKind,
}

/// The reasons a `.qmail` file is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseInstructionErrorKind {
    /// The first line is empty (or only spaces and tabs). qmail-local defers:
    /// `Uh-oh: first line of .qmail file is blank. (#4.2.1)`.
    FirstLineBlank,
}

impl fmt::Display for ParseInstructionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ParseInstructionErrorKind::FirstLineBlank => {
                write!(f, "line {}: first line of .qmail file is blank", self.line)
            }
        }
    }
}

impl std::error::Error for ParseInstructionError {}

/// Parses the text of a `.qmail` file (or the default delivery text) into its lines.
///
/// Empty text gives no lines; the caller decides what an empty file means (qmail uses the
/// default delivery, see [`crate::deliver`]).
///
/// ```
/// use mta_dotqmail::{parse, Instruction};
/// let lines = parse(b"# me\n./Maildir/\n|preline procmail  \n&joe@example.com\n")?;
/// let got: Vec<_> = lines.into_iter().map(|l| l.instruction).collect();
/// assert_eq!(got, vec![
///     Instruction::Comment,
///     Instruction::Maildir(b"./Maildir/".to_vec()),
///     Instruction::Program(b"preline procmail".to_vec()),
///     Instruction::Forward(b"joe@example.com".to_vec()),
/// ]);
/// # Ok::<(), mta_dotqmail::ParseInstructionError>(())
/// ```
///
/// # Errors
/// [`ParseInstructionError`] with [`ParseInstructionErrorKind::FirstLineBlank`] when the
/// first line is blank, as qmail-local refuses such a file.
pub fn parse(text: &[u8]) -> Result<Vec<Line>, ParseInstructionError> {
    let mut lines = Vec::new();
    for (index, raw) in split_lines(text).enumerate() {
        let number = index + 1;
        let line = trim_end(raw);
        // A line starting with NUL is an empty C string: blank too.
        if index == 0 && line.first().is_none_or(|&b| b == 0) {
            return Err(ParseInstructionError {
                line: number,
                kind: ParseInstructionErrorKind::FirstLineBlank,
            });
        }
        let instruction = line
            .first()
            .map_or(Instruction::Comment, |&first| classify(first, line));
        lines.push(Line {
            number,
            instruction,
        });
    }
    Ok(lines)
}

fn classify(first: u8, line: &[u8]) -> Instruction {
    match first {
        0 | b'#' => Instruction::Comment,
        b'.' | b'/' => {
            // invariant: `line` is non-empty here (its first byte was matched).
            let maildir = line.last() == Some(&b'/');
            let path = c_str(line).to_vec();
            if maildir {
                Instruction::Maildir(path)
            } else {
                Instruction::Mbox(path)
            }
        }
        b'|' => Instruction::Program(c_str(&line[1..]).to_vec()),
        b'+' => {
            if c_str(&line[1..]) == b"list" {
                Instruction::ForwardOnly
            } else {
                Instruction::Ignored
            }
        }
        b'&' => Instruction::Forward(c_str(&line[1..]).to_vec()),
        _ => Instruction::Forward(c_str(line).to_vec()),
    }
}

/// Splits at `\n`; a final line without `\n` still counts (qmail appends the newline).
fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let empty = text.is_empty();
    body.split(|&b| b == b'\n')
        .take(if empty { 0 } else { usize::MAX })
}

fn trim_end(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = line {
        line = rest;
    }
    line
}

/// The bytes before the first NUL, as qmail's C strings see them.
fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(i) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kinds(text: &[u8]) -> Vec<Instruction> {
        parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|l| l.instruction)
            .collect()
    }

    #[test]
    fn every_line_type() {
        let text =
            b"#c\n./Mailbox\n/var/mail/u\n./Maildir/\n|cmd arg\n&a@b\nb@c\n+list\n+other\n\n";
        assert_eq!(
            kinds(text),
            vec![
                Instruction::Comment,
                Instruction::Mbox(b"./Mailbox".to_vec()),
                Instruction::Mbox(b"/var/mail/u".to_vec()),
                Instruction::Maildir(b"./Maildir/".to_vec()),
                Instruction::Program(b"cmd arg".to_vec()),
                Instruction::Forward(b"a@b".to_vec()),
                Instruction::Forward(b"b@c".to_vec()),
                Instruction::ForwardOnly,
                Instruction::Ignored,
                Instruction::Comment,
            ]
        );
    }

    #[test]
    fn trailing_whitespace_and_missing_newline() {
        assert_eq!(
            kinds(b"./Maildir/ \t\n&x@y \t"),
            vec![
                Instruction::Maildir(b"./Maildir/".to_vec()),
                Instruction::Forward(b"x@y".to_vec())
            ]
        );
        // `+list ` is still +list after stripping; `+ list` is not.
        assert_eq!(kinds(b"+list \n"), vec![Instruction::ForwardOnly]);
        assert_eq!(kinds(b"+ list\n"), vec![Instruction::Ignored]);
        // Leading whitespace makes a forward, verbatim (qmail does not trim the front).
        assert_eq!(
            kinds(b" x@y\n"),
            vec![Instruction::Forward(b" x@y".to_vec())]
        );
        assert_eq!(kinds(b"&\n"), vec![Instruction::Forward(Vec::new())]);
    }

    #[test]
    fn blank_first_line_is_refused() {
        for text in [&b"\n./Maildir/\n"[..], b" \t\nx", b"\n", b"\0abc\n"] {
            let err = parse(text).unwrap_err();
            assert_eq!(
                (err.line, err.kind),
                (1, ParseInstructionErrorKind::FirstLineBlank)
            );
        }
        assert!(parse(b"").unwrap().is_empty());
        assert_eq!(parse(b"#\n\n\n").unwrap().len(), 3);
    }

    #[test]
    fn nul_ends_the_argument() {
        assert_eq!(kinds(b"|a\0b\n"), vec![Instruction::Program(b"a".to_vec())]);
        // Found by the fuzzer: the blank before a NUL stays (qmail strips only at line end).
        assert_eq!(
            kinds(b"|a \0b\n"),
            vec![Instruction::Program(b"a ".to_vec())]
        );
        // The maildir/mbox decision uses the whole line, as qmail's does.
        assert_eq!(
            kinds(b"./x\0y/\n"),
            vec![Instruction::Maildir(b"./x".to_vec())]
        );
        assert_eq!(kinds(b"+list\0x\n"), vec![Instruction::ForwardOnly]);
    }

    #[test]
    fn crlf_is_not_stripped() {
        // qmail strips only spaces and tabs: the CR stays part of the argument.
        assert_eq!(
            kinds(b"./Maildir/\r\n"),
            vec![Instruction::Mbox(b"./Maildir/\r".to_vec())]
        );
    }

    #[test]
    fn explain_rendering() {
        let out: Vec<_> = kinds(b"#\n|p\n&f@x\n./m\n./d/\n+list\n")
            .iter()
            .filter_map(Instruction::explain)
            .collect();
        assert_eq!(
            out,
            vec![
                b"program p".to_vec(),
                b"forward f@x".to_vec(),
                b"mbox ./m".to_vec(),
                b"maildir ./d/".to_vec()
            ]
        );
    }
}
