//! mta-maildir
