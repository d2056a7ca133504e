//! mta
fn main() {}
