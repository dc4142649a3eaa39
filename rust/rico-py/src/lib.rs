//! Python bindings of rico (`rico._rico`): argument conversion, GIL release, numpy arrays,
//! Python exceptions. No engine logic: that is rico-core's (the batch ring and the prefetcher
//! are `rico_core::read::batch::{ring, prefetch}`). One file per Python class, one per group of
//! module functions; this file declares the module.
#![warn(clippy::undocumented_unsafe_blocks)]

mod arrays;
mod batch_memory;
mod batch_ring;
mod cli;
mod convert;
mod database;
mod errors;
mod prefetcher;
mod raster;
mod record_memory;
mod stats;
mod threads;

use pyo3::prelude::*;

#[pymodule]
fn _rico(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RicoError", py.get_type::<errors::RicoError>())?;
    m.add("DataError", py.get_type::<errors::DataError>())?;
    m.add("UsageError", py.get_type::<errors::UsageError>())?;
    m.add("OutputError", py.get_type::<errors::OutputError>())?;
    m.add_class::<database::Database>()?;
    m.add_class::<prefetcher::Prefetcher>()?;
    m.add_class::<record_memory::RecordMemory>()?;
    m.add_class::<batch_memory::BatchMemory>()?;
    m.add_class::<batch_ring::BatchRing>()?;
    m.add_function(wrap_pyfunction!(raster::read_raster, m)?)?;
    m.add_function(wrap_pyfunction!(convert::convert, m)?)?;
    m.add_function(wrap_pyfunction!(convert::plan_shards, m)?)?;
    m.add_function(wrap_pyfunction!(convert::write_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(convert::verify, m)?)?;
    m.add_function(wrap_pyfunction!(cli::parse_convert, m)?)?;
    m.add_function(wrap_pyfunction!(convert::datasets, m)?)?;
    m.add_function(wrap_pyfunction!(cli::main, m)?)?;
    m.add_function(wrap_pyfunction!(threads::thread_count, m)?)?;
    m.add("MAX_THREADS", rico_core::MAX_THREADS)?;
    let names = pyo3::types::PyTuple::new(py, rico_core::UserOptions::NAMES)?;
    m.add("CONVERT_OPTIONS", names)?;
    m.add("MAX_SIZE", rico_core::read::batch::MAX_SIZE)?;
    // The names of the files and folders rico writes into a target (rico-core's target.rs).
    m.add_function(wrap_pyfunction!(convert::shard_name, m)?)?;
    m.add("MANIFEST", rico_core::write::target::MANIFEST)?;
    m.add("SHARD_MARKER", rico_core::write::target::SHARD_MARKER)?;
    m.add("PLAN", rico_core::write::target::PLAN)?;
    m.add("SHARD_PLAN", rico_core::write::target::SHARD_PLAN)?;
    m.add("PLAN_SPOOL", rico_core::write::target::SPOOL)?;
    m.add("SKIPPED_REPORT", rico_core::write::target::SKIPPED_REPORT)?;
    m.add("LABELS_TABLE", rico_core::write::target::LABELS_TABLE)?;
    m.add_function(wrap_pyfunction!(stats::bench, m)?)?;
    m.add_function(wrap_pyfunction!(database::_force_cold_path, m)?)?;
    m.add_function(wrap_pyfunction!(stats::stats, m)?)?;
    Ok(())
}
