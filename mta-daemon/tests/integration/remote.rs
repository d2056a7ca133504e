//! Remote delivery tests (being written).
