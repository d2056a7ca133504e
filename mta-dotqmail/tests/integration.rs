//! Integration tests for mta-dotqmail: one binary, one module per topic.
#![allow(clippy::unwrap_used)]

#[path = "integration/assign_file.rs"]
mod assign_file;
#[path = "integration/child.rs"]
mod child;
#[path = "integration/mock.rs"]
mod mock;
#[path = "integration/programs.rs"]
mod programs;
#[path = "integration/props.rs"]
mod props;
#[path = "integration/rules.rs"]
mod rules;
#[path = "integration/search_order.rs"]
mod search_order;
#[path = "integration/system.rs"]
mod system;
