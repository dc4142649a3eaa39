//! rico's engine: dataset specs, the conversion pipeline, the LMDB writer and reader.
//! No Python here: the `rico` binary and the Python bindings are thin shells over this crate.
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod base;
pub mod read;
pub mod write;

pub use base::error::{Error, ErrorKind, Result};
pub use base::threads::{check_count, cores, count_out_of_range, thread_count, MAX_THREADS};
pub use rico_raster as raster;
pub use rico_raster::DType;
pub use rico_source::RemoteOptions;
pub use write::convert::{convert_dataset, ConvertOptions, Summary};
pub use write::verify::{verify_dataset, VerifyReport};
