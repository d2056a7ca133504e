//! `mta inject` (qmail-inject). Being written.
