//! mta facade
