//! mta-daemon
