//! rico's engine: dataset specs, the conversion pipeline, the LMDB writer and reader.
//! No Python here: the `rico` binary and the Python bindings are thin shells over this crate.
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod batch;
pub mod bench;
pub mod buffer;
pub mod convert;
pub mod datasets;
pub mod error;
pub mod labels;
// lmdb.rs and reader.rs are being edited elsewhere: their missing docs, the `Sync` impls that
// share their `Send` impl's SAFETY comment, and a doc link to a private constant are allowed
// here until those edits land. Remove these `allow`s then.
#[allow(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    rustdoc::private_intra_doc_links
)]
pub mod lmdb;
pub mod planning;
pub mod progress;
#[allow(missing_docs)]
pub mod reader;
mod reading;
pub mod record;
pub mod select;
pub mod sharding;
pub mod sources;
pub mod spec;
pub mod stats;
pub mod verify;
mod writing;

pub use convert::{convert_dataset, ConvertOptions, Summary};
pub use error::{Error, ErrorKind, Result};
pub use rico_raster as raster;
pub use rico_raster::DType;
pub use rico_source::RemoteOptions;

/// The number of threads to use: the requested count, or one per core.
pub fn thread_count(requested: Option<usize>) -> usize {
    requested
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}
