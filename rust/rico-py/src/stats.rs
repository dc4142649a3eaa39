//! Measures of a database: `stats` (per-band mean and std) and `bench` (read and batch speed).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rico_core::read::reader;

use crate::errors::to_py_err;

/// Exact per-band mean and std over `keys` (every record when None); writes the JSON document
/// to `out` when given and returns it as a dict.
#[pyfunction]
#[pyo3(signature = (path, bands, keys=None, size=None, resample="nearest", threads=None, out=None, split=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn stats<'py>(
    py: Python<'py>,
    path: PathBuf,
    bands: Vec<String>,
    keys: Option<Vec<String>>,
    size: Option<usize>,
    resample: &str,
    threads: Option<usize>,
    out: Option<PathBuf>,
    split: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let options = rico_core::read::stats::StatsOptions {
        bands,
        size,
        resample: rico_core::read::batch::Resample::parse(resample).map_err(to_py_err)?,
        threads,
    };
    let keys: Option<Vec<Vec<u8>>> = keys.map(|k| k.into_iter().map(String::into_bytes).collect());
    let doc = py
        .allow_threads(|| {
            let db = rico_core::read::reader::Database::open(&path)?;
            let stats = rico_core::read::stats::compute(&db, keys.as_deref(), &options)?;
            let doc = rico_core::read::stats::to_json(&path, &stats, &options, split.as_deref());
            if let Some(out) = &out {
                rico_core::read::stats::write_json(out, &doc)?;
            }
            Ok(doc)
        })
        .map_err(to_py_err)?;
    py.import("json")?.call_method1("loads", (doc.to_string(),))
}

fn measurement<'py>(
    py: Python<'py>,
    m: &rico_core::read::bench::Measurement,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("records", m.records)?;
    out.set_item("bytes", m.bytes)?;
    out.set_item("seconds", m.seconds)?;
    out.set_item("records_per_second", m.records_per_second())?;
    out.set_item("mb_per_second", m.mb_per_second())?;
    out.set_item("passes", m.passes)?;
    Ok(out)
}

/// Measures record reads and batches from the database at `path`; see `rico.bench`.
#[pyfunction]
#[pyo3(signature = (path, bands=None, size=None, batch=32, threads=None, seconds=2.0))]
pub(crate) fn bench<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    bands: Option<Vec<String>>,
    size: Option<usize>,
    batch: usize,
    threads: Option<usize>,
    seconds: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let options = rico_core::read::bench::BenchOptions {
        bands,
        size,
        batch,
        threads,
        seconds,
    };
    let report = py
        .allow_threads(|| {
            reader::Database::open(&path)
                .and_then(|db| rico_core::read::bench::run(&std::sync::Arc::new(db), &options))
        })
        .map_err(to_py_err)?;
    let out = PyDict::new(py);
    out.set_item("path", &path)?;
    out.set_item("records", report.records)?;
    out.set_item("bytes", report.bytes)?;
    out.set_item("threads", report.threads)?;
    out.set_item("seconds", report.seconds)?;
    out.set_item("bands", &report.bands)?;
    out.set_item("size", report.shape)?;
    out.set_item("batch", report.batch)?;
    out.set_item("batch_count", report.batch_count)?;
    out.set_item("sequential", measurement(py, &report.sequential)?)?;
    out.set_item("random", measurement(py, &report.random)?)?;
    out.set_item("batches", measurement(py, &report.batches)?)?;
    match &report.device {
        Some(m) => out.set_item("device", measurement(py, m)?)?,
        None => out.set_item("device", py.None())?,
    }
    out.set_item("loader", measurement(py, &report.loader)?)?;
    out.set_item(
        "cold_path",
        crate::database::cold_stats(py, &report.cold_path)?,
    )?;
    out.set_item("text", report.text(&path))?;
    Ok(out)
}
