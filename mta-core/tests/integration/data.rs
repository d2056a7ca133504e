//! Reading test vectors from `tests/data/`.

use std::path::PathBuf;

/// The path of a file under `tests/data/`.
pub(crate) fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The text of a file under `tests/data/`.
pub(crate) fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The non-blank, non-`#` lines of a data file, with their 1-based line numbers.
pub(crate) fn lines(name: &str) -> Vec<(usize, String)> {
    read(name)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect()
}

/// Expands `{X*N}` (the character X repeated N times) and `\xHH` (one byte) in a test
/// vector.
pub(crate) fn expand(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{'
            && let Some(close) = b[i..].iter().position(|&c| c == b'}')
            && let Some((ch, n)) = s[i + 1..i + close].split_once('*')
            && let (1, Ok(n)) = (ch.len(), n.parse::<usize>())
        {
            out.extend(std::iter::repeat_n(ch.as_bytes()[0], n));
            i += close + 1;
            continue;
        }
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(Ok(v)) = s.get(i + 2..i + 4).map(|h| u8::from_str_radix(h, 16))
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// [`expand`] as text.
pub(crate) fn expand_str(s: &str) -> String {
    String::from_utf8(expand(s)).unwrap()
}
