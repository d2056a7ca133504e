//! inject/sendmail tests (being written).
