//! The conversion functions: `convert`, `plan_shards`, `write_manifest`, `shard_name`, `verify`,
//! `datasets`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt};
use rico_core::{OptionError, OptionValue, UserOptions};

use crate::errors::to_py_err;

/// The conversion options of a call: the dataset's value options `params`, and the keywords
/// (`threads=`, `read_timeout=`, ...) as [`UserOptions`] names them, in its units. Every
/// conversion function takes its options here; an unknown keyword or a value of the wrong type
/// raises TypeError.
fn user_options(
    params: Option<BTreeMap<String, String>>,
    keywords: Option<&Bound<'_, PyDict>>,
) -> PyResult<UserOptions> {
    let mut options = UserOptions {
        params: params.unwrap_or_default().into_iter().collect(),
        ..UserOptions::default()
    };
    for (name, value) in keywords.into_iter().flatten() {
        let name: String = name.extract()?;
        let (value, overflow) = option_value(&value)?;
        options
            .set(&name, value)
            .map_err(|e| overflow.unwrap_or_else(|| option_err(e)))?;
    }
    Ok(options)
}

/// A keyword's value as [`UserOptions::set`] takes it; with an int that is negative or past
/// u64 (as a float, for `read_timeout=`), the OverflowError a count raises with it.
fn option_value(value: &Bound<'_, PyAny>) -> PyResult<(OptionValue, Option<PyErr>)> {
    if value.is_none() {
        return Ok((OptionValue::Unset, None));
    }
    if let Ok(b) = value.downcast::<PyBool>() {
        return Ok((OptionValue::Bool(b.is_true()), None));
    }
    if let Ok(x) = value.downcast::<PyFloat>() {
        return Ok((OptionValue::Float(x.value()), None));
    }
    match value.extract::<u64>() {
        Ok(n) => return Ok((OptionValue::Int(n), None)),
        Err(e) if value.is_instance_of::<PyInt>() => {
            return Ok((OptionValue::Float(value.extract()?), Some(e)))
        }
        Err(_) => {}
    }
    if let Ok(strings) = value.extract::<Vec<String>>() {
        return Ok((OptionValue::Strings(strings), None));
    }
    Err(PyTypeError::new_err(format!(
        "a conversion option takes None, a bool, a number or a list of str, not {}",
        value.get_type().name()?
    )))
}

/// An option refused: a value out of range as ValueError, the rest as TypeError.
fn option_err(e: OptionError) -> PyErr {
    match e {
        OptionError::Value(_) => PyValueError::new_err(e.to_string()),
        _ => PyTypeError::new_err(e.to_string()),
    }
}

/// A source option's value: one path, or several (the parts of one source).
#[derive(FromPyObject)]
pub(crate) enum SourcePaths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

/// The engine's (option, path) list of the sources dict, parts in the order given.
fn source_list(sources: BTreeMap<String, SourcePaths>) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (flag, paths) in sources {
        match paths {
            SourcePaths::One(p) => out.push((flag, p)),
            SourcePaths::Many(ps) => out.extend(ps.into_iter().map(|p| (flag.clone(), p))),
        }
    }
    out
}

/// Runs `work` (a long Rust job) on another thread with the GIL released, and watches for
/// Ctrl-C meanwhile: on a signal, sets `cancel`, waits for the job to stop and raises.
fn interruptible<T: Send>(
    py: Python<'_>,
    cancel: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    std::thread::scope(|scope| {
        let job = scope.spawn(work);
        loop {
            if job.is_finished() {
                return job.join().map_err(|_| {
                    pyo3::exceptions::PyRuntimeError::new_err("rico's worker thread panicked")
                });
            }
            py.allow_threads(|| std::thread::sleep(std::time::Duration::from_millis(20)));
            if let Err(signal) = py.check_signals() {
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                py.allow_threads(|| {
                    let _ = job.join();
                });
                return Err(signal);
            }
        }
    })
}

/// Converts a dataset; returns the summary as a dict.
#[pyfunction]
#[pyo3(signature = (dataset, target_dir, sources, params=None, **options))]
pub(crate) fn convert<'py>(
    py: Python<'py>,
    dataset: String,
    target_dir: PathBuf,
    sources: BTreeMap<String, SourcePaths>,
    params: Option<BTreeMap<String, String>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let sources = source_list(sources);
    let mut options = user_options(params, options)?.build().map_err(option_err)?;
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    options.cancel = Some(cancel.clone());
    let summary = interruptible(py, &cancel, || {
        rico_core::convert_dataset(&dataset, &sources, &target_dir, &options)
    })?
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
    out.set_item(
        "labels_table",
        summary
            .labels_table
            .as_ref()
            .map(|p| p.display().to_string()),
    )?;
    Ok(out)
}

/// Plans a sharded conversion once (walks the sources, or reuses the plan of an interrupted
/// run) and writes each shard's part of the plan into its directory; returns the number of
/// patches. A cluster client calls this before sending one task per shard.
#[pyfunction]
#[pyo3(signature = (dataset, target_dir, sources, params=None, **options))]
pub(crate) fn plan_shards<'py>(
    py: Python<'py>,
    dataset: String,
    target_dir: PathBuf,
    sources: BTreeMap<String, SourcePaths>,
    params: Option<BTreeMap<String, String>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<u64> {
    let sources = source_list(sources);
    let mut options = user_options(params, options)?;
    // The client plans quietly, for every shard; the shards' tasks draw the progress.
    (options.progress, options.shard_index) = (Some(false), None);
    let shards = *options.shards.get_or_insert(1);
    let options = options.build().map_err(option_err)?;
    py.allow_threads(|| {
        rico_core::write::sharding::plan_shards(&dataset, &sources, &target_dir, shards, &options)
    })
    .map_err(to_py_err)
}

/// Writes the manifest of a sharded dataset whose shards are all finished; returns it.
#[pyfunction]
pub(crate) fn write_manifest<'py>(
    py: Python<'py>,
    target_dir: PathBuf,
    dataset: String,
    shards: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let manifest = py
        .allow_threads(|| rico_core::write::target::write_manifest(&target_dir, &dataset, shards))
        .map_err(to_py_err)?;
    let json = py.import("json")?;
    json.call_method1("loads", (manifest.to_string(),))
}

/// The name of the directory of shard `index` under a sharded dataset's root (`shard-00042`).
#[pyfunction]
pub(crate) fn shard_name(index: usize) -> String {
    rico_core::write::target::shard_name(index)
}

/// Re-decodes the sources and compares them with the database; returns the report as a dict.
#[pyfunction]
#[pyo3(signature = (dataset, target_dir, sources, params=None, **options))]
pub(crate) fn verify<'py>(
    py: Python<'py>,
    dataset: String,
    target_dir: PathBuf,
    sources: BTreeMap<String, SourcePaths>,
    params: Option<BTreeMap<String, String>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let sources = source_list(sources);
    let options = user_options(params, options)?.build().map_err(option_err)?;
    let report = py
        .allow_threads(|| rico_core::verify_dataset(&dataset, &sources, &target_dir, &options))
        .map_err(to_py_err)?;
    let out = PyDict::new(py);
    out.set_item("ok", report.ok())?;
    out.set_item("checked", report.checked)?;
    out.set_item("matching", report.matching)?;
    out.set_item("missing", report.missing.clone())?;
    out.set_item("extra", report.extra.clone())?;
    out.set_item("differing", report.differing.clone())?;
    out.set_item("unreadable", report.unreadable.clone())?;
    out.set_item("manifest", report.manifest.clone())?;
    out.set_item("text", report.text())?;
    Ok(out)
}

/// Source options of each dataset: {dataset: [option, ...]} (option names with underscores).
#[pyfunction]
pub(crate) fn datasets(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for preset in rico_core::write::datasets::presets() {
        let sources = preset.sources.iter().map(|s| s.flag);
        let flags: Vec<String> = sources
            .chain(preset.params.iter().map(|p| p.flag))
            .map(|f| f.replace('-', "_"))
            .collect();
        out.set_item(preset.name, flags)?;
    }
    Ok(out)
}
