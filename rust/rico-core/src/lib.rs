//! rico's engine: dataset specs, the conversion pipeline, the LMDB writer and reader.
//! No Python here: the `rico` binary and the Python bindings are thin shells over this crate.

pub mod batch;
pub mod bench;
pub mod buffer;
pub mod convert;
pub mod datasets;
pub mod error;
pub mod labels;
pub mod lmdb;
pub mod planning;
pub mod progress;
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
