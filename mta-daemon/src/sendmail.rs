//! `mta sendmail` (qmail's sendmail wrapper). Being written.
