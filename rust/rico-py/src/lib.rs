//! Python bindings of rico (`rico._rico`): argument conversion, GIL release, errors. No logic.

mod reader;

use std::collections::BTreeMap;
use std::path::PathBuf;

use numpy::{Element, PyArray3, PyArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rico_core::{DType, Error, ErrorKind};

create_exception!(_rico, RicoError, PyException, "Base class of rico's errors; the message names the file.");
create_exception!(_rico, DataError, RicoError, "A source file is bad: unreadable, corrupt, unsupported, a band missing, a duplicate key.");
create_exception!(_rico, UsageError, RicoError, "Bad arguments: a missing or empty source directory, an unusable target.");
create_exception!(_rico, OutputError, RicoError, "The database cannot be written (e.g. the disk is full).");

pub(crate) fn to_py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e.kind {
        ErrorKind::Data => DataError::new_err(msg),
        ErrorKind::Usage => UsageError::new_err(msg),
        ErrorKind::Output => OutputError::new_err(msg),
    }
}

fn array_from_bytes<'py, T: Element>(py: Python<'py>, shape: [usize; 3], bytes: &[u8]) -> Bound<'py, PyAny> {
    let array = PyArray3::<T>::zeros(py, shape, false);
    // SAFETY: the array is new, C-contiguous and of exactly bytes.len() bytes (shape x size of T);
    // nothing else references it yet.
    unsafe {
        let dst = array.data() as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
    }
    array.into_any()
}

/// Decodes a raster file into an array of shape (bands, rows, cols).
#[pyfunction]
fn read_raster<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let raster = py.allow_threads(|| rico_core::raster::decode_file(&path)).map_err(|e| to_py_err(e.into()))?;
    let info = raster.info;
    let shape = [info.bands, info.height, info.width];
    let data = &raster.data;
    Ok(match info.dtype {
        DType::U8 => array_from_bytes::<u8>(py, shape, data),
        DType::I8 => array_from_bytes::<i8>(py, shape, data),
        DType::U16 => array_from_bytes::<u16>(py, shape, data),
        DType::I16 => array_from_bytes::<i16>(py, shape, data),
        DType::U32 => array_from_bytes::<u32>(py, shape, data),
        DType::I32 => array_from_bytes::<i32>(py, shape, data),
        DType::F32 => array_from_bytes::<f32>(py, shape, data),
        DType::F64 => array_from_bytes::<f64>(py, shape, data),
    })
}

/// Converts a dataset; returns the summary as a dict.
#[pyfunction]
#[pyo3(signature = (dataset, target_dir, sources, threads=None, progress=None, resume=false, skip_invalid=false, params=None))]
#[allow(clippy::too_many_arguments)]
fn convert<'py>(
    py: Python<'py>,
    dataset: String,
    target_dir: PathBuf,
    sources: BTreeMap<String, PathBuf>,
    threads: Option<usize>,
    progress: Option<bool>,
    resume: bool,
    skip_invalid: bool,
    params: Option<BTreeMap<String, String>>,
) -> PyResult<Bound<'py, PyDict>> {
    let sources: Vec<(String, PathBuf)> = sources.into_iter().collect();
    let params = params.unwrap_or_default().into_iter().collect();
    let options = rico_core::ConvertOptions { threads, resume, skip_invalid, progress, params };
    let summary = py
        .allow_threads(|| rico_core::convert_dataset(&dataset, &sources, &target_dir, &options))
        .map_err(to_py_err)?;
    let out = PyDict::new(py);
    out.set_item("records", summary.records)?;
    out.set_item("already_present", summary.already_present)?;
    out.set_item("skipped", summary.skipped)?;
    out.set_item("files", summary.files)?;
    out.set_item("source_bytes", summary.source_bytes)?;
    out.set_item("record_bytes", summary.record_bytes)?;
    out.set_item("seconds", summary.seconds)?;
    out.set_item("threads", summary.threads)?;
    out.set_item("line", summary.line())?;
    out.set_item("labels_table", summary.labels_table.as_ref().map(|p| p.display().to_string()))?;
    Ok(out)
}

/// Source options of each dataset: {dataset: [option, ...]} (option names with underscores).
#[pyfunction]
fn datasets(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for preset in rico_core::datasets::presets() {
        let sources = preset.sources.iter().map(|s| s.flag);
        let flags: Vec<String> = sources.chain(preset.params.iter().map(|p| p.flag)).map(|f| f.replace('-', "_")).collect();
        out.set_item(preset.name, flags)?;
    }
    Ok(out)
}

/// Runs the `rico` command line with `argv` (program name first); returns the exit code.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.allow_threads(|| rico_cli::run(argv))
}

#[pymodule]
fn _rico(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RicoError", py.get_type::<RicoError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    m.add("OutputError", py.get_type::<OutputError>())?;
    m.add_class::<reader::Database>()?;
    m.add_class::<reader::Prefetcher>()?;
    m.add_class::<reader::SnapshotOwner>()?;
    m.add_function(wrap_pyfunction!(read_raster, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(datasets, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(reader::bench, m)?)?;
    Ok(())
}
