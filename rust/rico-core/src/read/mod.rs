//! The read layer: a converted database read back — records, key selection, batches and their
//! read-ahead, band statistics, the read benchmark. It imports the base layer only, never the
//! write layer.

pub mod batch;
pub mod bench;
pub mod info;
pub mod reader;
pub mod select;
pub mod stats;
