//! Python bindings of rico (`rico._rico`): argument conversion, GIL release, errors. No logic.
#![warn(clippy::undocumented_unsafe_blocks)]

mod reader;

use std::collections::BTreeMap;
use std::path::PathBuf;

use numpy::{Element, PyArray3, PyArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rico_core::{raster, DType, Error, ErrorKind};

create_exception!(
    _rico,
    RicoError,
    PyException,
    "Base class of rico's errors; the message names the file."
);
create_exception!(
    _rico,
    DataError,
    RicoError,
    "A source file is bad: unreadable, corrupt, unsupported, a band missing, a duplicate key."
);
create_exception!(
    _rico,
    UsageError,
    RicoError,
    "Bad arguments: a missing or empty source directory, an unusable target."
);
create_exception!(
    _rico,
    OutputError,
    RicoError,
    "The database cannot be written (e.g. the disk is full)."
);

pub(crate) fn to_py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e.kind {
        ErrorKind::Data => DataError::new_err(msg),
        ErrorKind::Usage => UsageError::new_err(msg),
        ErrorKind::Output => OutputError::new_err(msg),
    }
}

fn array_from_bytes<'py, T: Element>(
    py: Python<'py>,
    shape: [usize; 3],
    bytes: &[u8],
) -> Bound<'py, PyAny> {
    let array = PyArray3::<T>::zeros(py, shape, false);
    // SAFETY: the array is new, C-contiguous and of exactly bytes.len() bytes (shape x size of T);
    // nothing else references it yet.
    unsafe {
        let dst = array.data() as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
    }
    array.into_any()
}

/// A new zero-filled (bands, rows, cols) array with `image` decoded into it. A TIFF decodes
/// straight into the array: no second buffer of the image's size to allocate, fault in and copy
/// (a third of `read_raster`'s time on a Major-TOM band).
fn tiff_into_array<'py, T: Element>(
    py: Python<'py>,
    shape: [usize; 3],
    image: &raster::tiff::TiffImage<'_>,
) -> Result<Bound<'py, PyAny>, raster::RasterError> {
    let array = PyArray3::<T>::zeros(py, shape, false);
    let len = image.decoded_len();
    assert_eq!(
        len,
        shape.iter().product::<usize>() * std::mem::size_of::<T>()
    );
    // SAFETY: the array is new, C-contiguous and exactly `len` bytes; nothing else references it
    // until it is returned, so the slice is the only access while the GIL is released.
    let out = unsafe { std::slice::from_raw_parts_mut(array.data() as *mut u8, len) };
    py.allow_threads(|| image.decode_into(out))?;
    Ok(array.into_any())
}

/// Decodes a raster file into an array of shape (bands, rows, cols).
#[pyfunction]
fn read_raster<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let fail = |e: raster::RasterError| to_py_err(Error::from(e.with_path(&path)));
    let bytes = py.allow_threads(|| std::fs::read(&path)).map_err(|e| {
        fail(raster::RasterError::new(
            raster::ErrorKind::Io,
            format!("cannot read file: {e}"),
        ))
    })?;
    if raster::tiff::is_tiff(&bytes) {
        let image = raster::tiff::TiffImage::parse(&bytes).map_err(fail)?;
        let info = image.info();
        let shape = [info.bands, info.height, info.width];
        let image = &image;
        return match info.dtype {
            DType::U8 => tiff_into_array::<u8>(py, shape, image),
            DType::I8 => tiff_into_array::<i8>(py, shape, image),
            DType::U16 => tiff_into_array::<u16>(py, shape, image),
            DType::I16 => tiff_into_array::<i16>(py, shape, image),
            DType::U32 => tiff_into_array::<u32>(py, shape, image),
            DType::I32 => tiff_into_array::<i32>(py, shape, image),
            DType::U64 => tiff_into_array::<u64>(py, shape, image),
            DType::I64 => tiff_into_array::<i64>(py, shape, image),
            DType::F32 => tiff_into_array::<f32>(py, shape, image),
            DType::F64 => tiff_into_array::<f64>(py, shape, image),
        }
        .map_err(fail);
    }
    // JPEG and PNG: small images, decoded into their own buffer and copied.
    let raster = py.allow_threads(|| raster::decode(&bytes)).map_err(fail)?;
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
        DType::U64 => array_from_bytes::<u64>(py, shape, data),
        DType::I64 => array_from_bytes::<i64>(py, shape, data),
        DType::F32 => array_from_bytes::<f32>(py, shape, data),
        DType::F64 => array_from_bytes::<f64>(py, shape, data),
    })
}

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
        remote: rico_cli::remote_options(fetch.parts, fetch.part_mb, fetch.insecure_tls),
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
}

/// A source option's value: one path, or several (the parts of one source).
#[derive(FromPyObject)]
enum SourcePaths {
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
#[pyo3(signature = (dataset, target_dir, sources, threads=None, progress=None, resume=false, skip_invalid=false, params=None, shards=None, shard_index=None, io_depth=None, max_held_mb=None, fetch_parts=None, fetch_part_mb=None, insecure_tls=false, keys=None, buffer_mb=None))]
#[allow(clippy::too_many_arguments)]
fn convert<'py>(
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
#[pyo3(signature = (dataset, target_dir, sources, params=None, resume=false, shards=1, skip_invalid=false, max_held_mb=None, fetch_parts=None, fetch_part_mb=None, insecure_tls=false, keys=None))]
#[allow(clippy::too_many_arguments)]
fn plan_shards(
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
        },
    );
    py.allow_threads(|| {
        rico_core::sharding::plan_shards(&dataset, &sources, &target_dir, shards, &options)
    })
    .map_err(to_py_err)
}

/// Writes the manifest of a sharded dataset whose shards are all finished; returns it.
#[pyfunction]
fn write_manifest<'py>(
    py: Python<'py>,
    target_dir: PathBuf,
    dataset: String,
    shards: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let manifest = py
        .allow_threads(|| rico_core::target::write_manifest(&target_dir, &dataset, shards))
        .map_err(to_py_err)?;
    let json = py.import("json")?;
    json.call_method1("loads", (manifest.to_string(),))
}

/// The name of the directory of shard `index` under a sharded dataset's root (`shard-00042`).
#[pyfunction]
fn shard_name(index: usize) -> String {
    rico_core::target::shard_name(index)
}

/// Re-decodes the sources and compares them with the database; returns the report as a dict.
#[pyfunction]
#[pyo3(signature = (dataset, target_dir, sources, threads=None, progress=None, params=None, max_held_mb=None, fetch_parts=None, fetch_part_mb=None, insecure_tls=false, keys=None))]
#[allow(clippy::too_many_arguments)]
fn verify<'py>(
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

/// Parses a conversion command line; None for other subcommands; raises SystemExit(code) for
/// help and usage errors (clap has printed its message).
#[pyfunction]
fn parse_convert<'py>(py: Python<'py>, argv: Vec<String>) -> PyResult<Option<Bound<'py, PyDict>>> {
    let call = match rico_cli::parse_convert(argv) {
        Ok(None) => return Ok(None),
        Ok(Some(call)) => call,
        Err(code) => return Err(pyo3::exceptions::PySystemExit::new_err(code)),
    };
    let out = PyDict::new(py);
    out.set_item("dataset", &call.dataset)?;
    out.set_item("target_dir", &call.target)?;
    out.set_item(
        "sources",
        call.sources
            .iter()
            .map(|(k, v)| (k.replace('-', "_"), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )?;
    out.set_item(
        "params",
        call.options
            .params
            .iter()
            .map(|(k, v)| (k.replace('-', "_"), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )?;
    out.set_item("threads", call.options.threads)?;
    out.set_item("io_depth", call.options.io_depth)?;
    out.set_item("resume", call.options.resume)?;
    out.set_item("skip_invalid", call.options.skip_invalid)?;
    out.set_item("shards", call.options.shards)?;
    out.set_item("quiet", call.quiet)?;
    out.set_item("scheduler", call.scheduler)?;
    Ok(Some(out))
}

/// Source options of each dataset: {dataset: [option, ...]} (option names with underscores).
#[pyfunction]
fn datasets(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for preset in rico_core::datasets::presets() {
        let sources = preset.sources.iter().map(|s| s.flag);
        let flags: Vec<String> = sources
            .chain(preset.params.iter().map(|p| p.flag))
            .map(|f| f.replace('-', "_"))
            .collect();
        out.set_item(preset.name, flags)?;
    }
    Ok(out)
}

/// Exact per-band mean and std over `keys` (every record when None); writes the JSON document
/// to `out` when given and returns it as a dict.
#[pyfunction]
#[pyo3(signature = (path, bands, keys=None, size=None, resample="nearest", threads=None, out=None, split=None))]
#[allow(clippy::too_many_arguments)]
fn stats<'py>(
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
    let options = rico_core::stats::StatsOptions {
        bands,
        size,
        resample: rico_core::batch::Resample::parse(resample).map_err(to_py_err)?,
        threads,
    };
    let keys: Option<Vec<Vec<u8>>> = keys.map(|k| k.into_iter().map(String::into_bytes).collect());
    let doc = py
        .allow_threads(|| {
            let db = rico_core::reader::Database::open(&path)?;
            let stats = rico_core::stats::compute(&db, keys.as_deref(), &options)?;
            let doc = rico_core::stats::to_json(&path, &stats, &options, split.as_deref());
            if let Some(out) = &out {
                rico_core::stats::write_json(out, &doc)?;
            }
            Ok(doc)
        })
        .map_err(to_py_err)?;
    py.import("json")?.call_method1("loads", (doc.to_string(),))
}

/// Runs the `rico` command line with `argv` (program name first); returns the exit code.
/// The thread count a call with `threads` uses (one per core when `None`); a count outside
/// `1..=MAX_THREADS` raises the engine's `UsageError`, before any thread starts.
#[pyfunction]
#[pyo3(signature = (threads=None))]
fn thread_count(threads: Option<i64>) -> PyResult<usize> {
    let count = match threads.map(usize::try_from) {
        None => rico_core::thread_count(None),
        Some(Ok(n)) => rico_core::thread_count(Some(n)),
        Some(Err(_)) => Err(rico_core::count_out_of_range(
            "threads",
            threads.unwrap_or(0),
        )),
    };
    count.map_err(to_py_err)
}

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
    m.add_class::<reader::RecordMemory>()?;
    m.add_class::<reader::BatchMemory>()?;
    m.add_class::<reader::BatchRing>()?;
    m.add_function(wrap_pyfunction!(read_raster, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(plan_shards, m)?)?;
    m.add_function(wrap_pyfunction!(write_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(parse_convert, m)?)?;
    m.add_function(wrap_pyfunction!(datasets, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(thread_count, m)?)?;
    m.add("MAX_THREADS", rico_core::MAX_THREADS)?;
    m.add("MAX_SIZE", rico_core::batch::MAX_SIZE)?;
    // The names of the files and folders rico writes into a target (rico-core's target.rs).
    m.add_function(wrap_pyfunction!(shard_name, m)?)?;
    m.add("MANIFEST", rico_core::target::MANIFEST)?;
    m.add("SHARD_MARKER", rico_core::target::SHARD_MARKER)?;
    m.add("PLAN", rico_core::target::PLAN)?;
    m.add("SHARD_PLAN", rico_core::target::SHARD_PLAN)?;
    m.add("PLAN_SPOOL", rico_core::target::SPOOL)?;
    m.add("SKIPPED_REPORT", rico_core::target::SKIPPED_REPORT)?;
    m.add("LABELS_TABLE", rico_core::target::LABELS_TABLE)?;
    m.add_function(wrap_pyfunction!(reader::bench, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    Ok(())
}
