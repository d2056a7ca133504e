//! mta-verp
