//! The conversion functions: `convert`, `plan_shards`, `write_manifest`, `shard_name`, `verify`,
//! `datasets`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_py_err;

#[allow(clippy::too_many_arguments)] // one per conversion option, as the Python keywords
fn options(
    threads: Option<usize>,
    io_depth: Option<usize>,
    progress: Option<bool>,
    resume: bool,
    skip_invalid: bool,
    params: Option<BTreeMap<String, String>>,
    shards: Option<usize>,
    shard_index: Option<usize>,
    fetch: Fetch,
) -> rico_core::ConvertOptions {
    let params = params.unwrap_or_default().into_iter().collect();
    rico_core::ConvertOptions {
        threads,
        io_depth,
        buffer_bytes: None,
        resume,
        skip_invalid,
        progress,
        params,
        shards,
        shard_index,
        cancel: None,
        max_held_bytes: fetch.max_held_mb.map(|mb| mb << 20),
        remote: rico_cli::remote_options(
            fetch.parts,
            fetch.part_mb,
            fetch.insecure_tls,
            fetch.read_timeout,
        ),
        keys: fetch
            .keys
            .map(|keys| std::sync::Arc::new(keys.into_iter().collect())),
    }
}

/// How archives and URLs are read: the keywords every conversion function takes.
struct Fetch {
    keys: Option<Vec<String>>,
    max_held_mb: Option<u64>,
    parts: Option<usize>,
    part_mb: Option<u64>,
    insecure_tls: bool,
    read_timeout: Option<std::time::Duration>,
}

/// `read_timeout=` as the engine takes it; a ValueError for a number out of range.
fn read_timeout(seconds: Option<f64>) -> PyResult<Option<std::time::Duration>> {
    seconds
        .map(|s| rico_cli::read_timeout(s).map_err(pyo3::exceptions::PyValueError::new_err))
        .transpose()
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
#[pyo3(signature = (dataset, target_dir, sources, threads=None, progress=None, resume=false, skip_invalid=false, params=None, shards=None, shard_index=None, io_depth=None, max_held_mb=None, fetch_parts=None, fetch_part_mb=None, insecure_tls=false, keys=None, buffer_mb=None, read_timeout=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn convert<'py>(
    py: Python<'py>,
    dataset: String,
    target_dir: PathBuf,
    sources: BTreeMap<String, SourcePaths>,
    threads: Option<usize>,
    progress: Option<bool>,
    resume: bool,
    skip_invalid: bool,
    params: Option<BTreeMap<String, String>>,
    shards: Option<usize>,
    shard_index: Option<usize>,
    io_depth: Option<usize>,
    max_held_mb: Option<u64>,
    fetch_parts: Option<usize>,
    fetch_part_mb: Option<u64>,
    insecure_tls: bool,
    keys: Option<Vec<String>>,
    buffer_mb: Option<usize>,
    read_timeout: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let sources = source_list(sources);
    let mut options = options(
        threads,
        io_depth,
        progress,
        resume,
        skip_invalid,
        params,
        shards,
        shard_index,
        Fetch {
            keys,
            max_held_mb,
            parts: fetch_parts,
            part_mb: fetch_part_mb,
            insecure_tls,
            read_timeout: self::read_timeout(read_timeout)?,
        },
    );
    options.buffer_bytes = buffer_mb.map(|mb| mb.saturating_mul(1 << 20));
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
#[pyo3(signature = (dataset, target_dir, sources, params=None, resume=false, shards=1, skip_invalid=false, max_held_mb=None, fetch_parts=None, fetch_part_mb=None, insecure_tls=false, keys=None, read_timeout=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_shards(
    py: Python<'_>,
    dataset: String,
    target_dir: PathBuf,
    sources: BTreeMap<String, SourcePaths>,
    params: Option<BTreeMap<String, String>>,
    resume: bool,
    shards: usize,
    skip_invalid: bool,
    max_held_mb: Option<u64>,
    fetch_parts: Option<usize>,
    fetch_part_mb: Option<u64>,
    insecure_tls: bool,
    keys: Option<Vec<String>>,
    read_timeout: Option<f64>,
) -> PyResult<u64> {
    let sources = source_list(sources);
    let options = options(
        None,
        None,
        Some(false),
        resume,
        skip_invalid,
        params,
        Some(shards),
        None,
        Fetch {
            keys,
            max_held_mb,
            parts: fetch_parts,
            part_mb: fetch_part_mb,
            insecure_tls,
            read_timeout: self::read_timeout(read_timeout)?,
        },
    );
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
#[pyo3(signature = (dataset, target_dir, sources, threads=None, progress=None, params=None, max_held_mb=None, fetch_parts=None, fetch_part_mb=None, insecure_tls=false, keys=None, read_timeout=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify<'py>(
    py: Python<'py>,
    dataset: String,
    target_dir: PathBuf,
    sources: BTreeMap<String, SourcePaths>,
    threads: Option<usize>,
    progress: Option<bool>,
    params: Option<BTreeMap<String, String>>,
    max_held_mb: Option<u64>,
    fetch_parts: Option<usize>,
    fetch_part_mb: Option<u64>,
    insecure_tls: bool,
    keys: Option<Vec<String>>,
    read_timeout: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let sources = source_list(sources);
    let options = options(
        threads,
        None,
        progress,
        false,
        false,
        params,
        None,
        None,
        Fetch {
            keys,
            max_held_mb,
            parts: fetch_parts,
            part_mb: fetch_part_mb,
            insecure_tls,
            read_timeout: self::read_timeout(read_timeout)?,
        },
    );
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
