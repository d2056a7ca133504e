//! mta-smtp
