//! qmail's control-file syntax (qmail-reference §8; `control.c`) and the error type.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A control file that could not be read or understood (qmail-reference §8 syntax): names
/// the file and, where there is one, the line (1-based).
#[derive(Debug)]
#[non_exhaustive]
pub struct ControlError {
    /// The file (its full path when loaded from a directory).
    pub path: PathBuf,
    /// The line, for syntax errors.
    pub line: Option<usize>,
    /// What went wrong.
    pub kind: ControlErrorKind,
}

/// The kinds of [`ControlError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlErrorKind {
    /// The file exists but could not be read (qmail refuses to run in that case too).
    Io(io::Error),
    /// The file is not UTF-8.
    NotUtf8,
    /// A value does not have the form the file requires.
    Invalid {
        /// What was expected, e.g. `"a number"` or `"ADDR:PORT"`.
        expected: &'static str,
        /// The offending text.
        text: String,
    },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        match &self.kind {
            ControlErrorKind::Io(e) => write!(f, ": cannot read: {e}"),
            ControlErrorKind::NotUtf8 => f.write_str(": not UTF-8"),
            ControlErrorKind::Invalid { expected, text } => {
                write!(f, ": expected {expected}, found {text:?}")
            }
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ControlErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Where control files come from: a directory, or texts given in memory.
pub(super) enum Source<'a> {
    Dir(&'a Path),
    Texts(HashMap<&'a str, &'a [u8]>),
}

/// One control file's text, with its name for errors.
pub(super) struct File {
    pub(super) path: PathBuf,
    pub(super) text: String,
}

impl File {
    /// A file's text, which must be UTF-8 (the error names the line where it stops being).
    pub(super) fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<File, ControlError> {
        match String::from_utf8(bytes) {
            Ok(text) => Ok(File { path, text }),
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.split(|&b| b == b'\n').count();
                Err(ControlError {
                    path,
                    line: Some(line),
                    kind: ControlErrorKind::NotUtf8,
                })
            }
        }
    }

    pub(super) fn invalid(&self, line: usize, expected: &'static str, text: &str) -> ControlError {
        ControlError {
            path: self.path.clone(),
            line: Some(line),
            kind: ControlErrorKind::Invalid {
                expected,
                text: text.to_owned(),
            },
        }
    }

    /// `control_readline`: the first line, trailing space, tab and newline removed. An
    /// empty first line is an empty value, not the default.
    pub(super) fn first_line(&self) -> &str {
        let line = self.text.split('\n').next().unwrap_or_default();
        // lenient: a CR left by an editor that writes CRLF is removed too.
        line.trim_end_matches([' ', '\t', '\r'])
    }

    /// `control_readfile`: every line with trailing white space removed, skipping blank
    /// lines and lines starting with `#`; leading white space is kept. Yields 1-based
    /// line numbers.
    pub(super) fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.text
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches([' ', '\t', '\r'])))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
    }

    /// `control_readint`: a decimal number at the start of the first line (qmail ignores
    /// what follows the digits).
    ///
    /// qmail treats a first line that does not start with a digit as if the file were
    /// absent; we report it instead, so a typo is not silently replaced by a default.
    pub(super) fn number(&self) -> Result<u64, ControlError> {
        let line = self.first_line();
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        line[..digits]
            .parse()
            .map_err(|_| self.invalid(1, "a number", line))
    }
}

impl Source<'_> {
    pub(super) fn path(&self, name: &str) -> PathBuf {
        match self {
            Source::Dir(dir) => dir.join(name),
            Source::Texts(_) => PathBuf::from(name),
        }
    }

    /// The file, or `None` when it does not exist.
    /// [`Source::read`] for a file only some processes may read (mode 0640, one process's
    /// group): `Err(())` when permission is denied, instead of an error.
    pub(super) fn read_secret(&self, name: &str) -> Result<Result<Option<File>, ()>, ControlError> {
        match self.read(name) {
            Err(ControlError {
                kind: ControlErrorKind::Io(e),
                ..
            }) if e.kind() == io::ErrorKind::PermissionDenied => Ok(Err(())),
            other => other.map(Ok),
        }
    }

    pub(super) fn read(&self, name: &str) -> Result<Option<File>, ControlError> {
        let path = self.path(name);
        let bytes = match self {
            Source::Dir(_) => match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(ControlError {
                        path,
                        line: None,
                        kind: ControlErrorKind::Io(e),
                    });
                }
            },
            Source::Texts(map) => match map.get(name) {
                Some(b) => b.to_vec(),
                None => return Ok(None),
            },
        };
        File::from_bytes(path, bytes).map(Some)
    }

    /// A single-value file: `Some(first line)` or `None` when absent.
    pub(super) fn line(&self, name: &str) -> Result<Option<String>, ControlError> {
        Ok(self.read(name)?.map(|f| f.first_line().to_owned()))
    }

    /// A number file, or `default` when absent.
    pub(super) fn number(&self, name: &str, default: u64) -> Result<u64, ControlError> {
        self.read(name)?.map_or(Ok(default), |f| f.number())
    }
}
