//! Message ids: collision-free numbers that name a queued message.

use std::fmt;
use std::str::FromStr;

/// The name of a queued message.
///
/// qmail used the inode number of the message file; we use a 64-bit counter that starts, each
/// time the queue is opened, above both the current time in microseconds and every id already
/// on disk, so two messages in the queue never share an id. An id may be reused only after its
/// message has been removed and the clock has gone backwards across a restart (qmail reuses
/// inode numbers much sooner).
///
/// It prints and parses as a plain decimal number, the form used in file names, in the SMTP
/// `250 ok <id>` reply and in logs:
///
/// ```
/// use mta_queue::MessageId;
/// let id: MessageId = "1764389285000123".parse()?;
/// assert_eq!(id.to_string(), "1764389285000123");
/// assert!("12a".parse::<MessageId>().is_err());
/// # Ok::<(), mta_queue::ParseMessageIdError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u64);

/// The ids per `mess/` directory of a queue whose `layout` file is version 1.
pub(crate) const LAYOUT_1_IDS_PER_DIR: u32 = 16;

impl MessageId {
    /// Wraps a raw number.
    pub const fn from_u64(n: u64) -> Self {
        MessageId(n)
    }

    /// The raw number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The split subdirectory (qmail's `conf-split` idea) holding this message in a queue
    /// with `split` subdirectories whose `layout` file is version 1 (runs of 16 ids per
    /// directory): `split_dir_with(split, 16)`.
    pub fn split_dir(self, split: u32) -> u32 {
        self.split_dir_with(split, LAYOUT_1_IDS_PER_DIR)
    }

    /// The split subdirectory holding this message in a queue with `split` subdirectories
    /// that take runs of `ids_per_dir` consecutive ids in turn: `(id / ids_per_dir) %
    /// split` (a 0 for either counts as 1).
    ///
    /// Ids are handed out consecutively, so neighbouring ids share a directory: the messages
    /// committed together by one group commit, and those removed together later, change
    /// few directories, while the directories still fill evenly over time.
    pub fn split_dir_with(self, split: u32, ids_per_dir: u32) -> u32 {
        ((self.0 / u64::from(ids_per_dir.max(1))) % u64::from(split.max(1))) as u32
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The text given to [`MessageId::from_str`] was not a plain decimal number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseMessageIdError;

impl fmt::Display for ParseMessageIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message id is not a decimal number")
    }
}

impl std::error::Error for ParseMessageIdError {}

impl FromStr for MessageId {
    type Err = ParseMessageIdError;

    /// Parses 1 to 20 ASCII digits (no sign, no spaces), as printed by `Display`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseMessageIdError);
        }
        s.parse::<u64>()
            .map(MessageId)
            .map_err(|_| ParseMessageIdError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        for n in [0, 1, 42, u64::MAX] {
            let id = MessageId::from_u64(n);
            assert_eq!(id.to_string().parse::<MessageId>(), Ok(id));
        }
    }

    #[test]
    fn rejects_signs_spaces_and_overflow() {
        for bad in ["", "+1", "-1", " 1", "1 ", "0x10", "18446744073709551616"] {
            assert_eq!(
                bad.parse::<MessageId>(),
                Err(ParseMessageIdError),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn neighbours_share_a_split_dir() {
        let base = MessageId::from_u64(32);
        assert_eq!(base.split_dir(512), MessageId::from_u64(47).split_dir(512));
        assert_ne!(base.split_dir(512), MessageId::from_u64(48).split_dir(512));
        assert_eq!(MessageId::from_u64(1 << 20).split_dir(1), 0);
        assert_eq!(MessageId::from_u64(99).split_dir(0), 0);
        // Runs of 256: 256 neighbours share one directory, the next run takes the next.
        let run = |n| MessageId::from_u64(n).split_dir_with(512, 256);
        assert_eq!(run(512), run(767));
        assert_ne!(run(767), run(768));
        assert_eq!(run(768), 3);
        assert_eq!(run(512 * 256), 0, "wraps after split runs");
        assert_eq!(MessageId::from_u64(99).split_dir_with(4, 0), 3);
    }
}
