//! Integration tests for mta-core: one binary, one module per topic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod integration {
    mod address_list;
    mod control;
    mod data;
    mod date;
    mod header;
    mod path;
}
