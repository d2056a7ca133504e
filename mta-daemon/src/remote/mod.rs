//! Remote delivery (being written).
