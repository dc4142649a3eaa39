//! Python face of the reader: zero-copy record views and batches.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::os::raw::{c_int, c_void};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use numpy::npyffi::{npy_intp, NpyTypes, NPY_ARRAY_C_CONTIGUOUS, NPY_TYPES, PY_ARRAY_API};
use numpy::{IntoPyArray, PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use rico_core::batch::{self, BatchSpec, Resample};
use rico_core::reader;
use safetensors::tensor::Dtype;

use crate::to_py_err;

/// Keeps a snapshot (and so the memory map) alive while numpy views point into it.
#[pyclass(frozen, module = "rico._rico")]
pub struct SnapshotOwner {
    _shards: Arc<reader::Shards>,
}

/// A read-only database; see `rico.open`.
#[pyclass(frozen, module = "rico._rico")]
pub struct Database {
    inner: Arc<reader::Database>,
    owner: Py<SnapshotOwner>,
}

/// A key given as str or bytes.
pub fn key_bytes(key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = key.downcast::<PyString>() {
        Ok(s.to_cow()?.as_bytes().to_vec())
    } else if let Ok(b) = key.downcast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else {
        Err(PyTypeError::new_err(format!(
            "keys are str or bytes, not {}",
            key.get_type().name()?
        )))
    }
}

fn typenum(dtype: Dtype) -> Option<NPY_TYPES> {
    Some(match dtype {
        Dtype::BOOL => NPY_TYPES::NPY_BOOL,
        Dtype::U8 => NPY_TYPES::NPY_UBYTE,
        Dtype::I8 => NPY_TYPES::NPY_BYTE,
        Dtype::U16 => NPY_TYPES::NPY_USHORT,
        Dtype::I16 => NPY_TYPES::NPY_SHORT,
        Dtype::U32 => NPY_TYPES::NPY_UINT,
        Dtype::I32 => NPY_TYPES::NPY_INT,
        Dtype::U64 => NPY_TYPES::NPY_ULONGLONG,
        Dtype::I64 => NPY_TYPES::NPY_LONGLONG,
        Dtype::F16 => NPY_TYPES::NPY_HALF,
        Dtype::F32 => NPY_TYPES::NPY_FLOAT,
        Dtype::F64 => NPY_TYPES::NPY_DOUBLE,
        _ => return None,
    })
}

#[cfg(target_endian = "big")]
compile_error!(
    "rico's zero-copy views assume a little-endian machine (safetensors is little-endian)"
);

/// A read-only numpy array over `bytes` whose base object is `owner`.
///
/// # Safety
/// `bytes` must stay valid and unchanged while `owner` lives, and hold exactly
/// product(shape) x itemsize bytes of `dtype`.
unsafe fn view<'py>(
    py: Python<'py>,
    owner: &Py<SnapshotOwner>,
    dtype: NPY_TYPES,
    shape: &[usize],
    bytes: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
    let subtype = PY_ARRAY_API.get_type_object(py, NpyTypes::PyArray_Type);
    // flags without NPY_ARRAY_WRITEABLE: the array is read-only; numpy works out alignment itself.
    let raw = PY_ARRAY_API.PyArray_New(
        py,
        subtype,
        dims.len() as c_int,
        dims.as_mut_ptr(),
        dtype as c_int,
        std::ptr::null_mut(),
        bytes.as_ptr() as *mut c_void,
        0,
        NPY_ARRAY_C_CONTIGUOUS,
        std::ptr::null_mut(),
    );
    let array = Bound::from_owned_ptr_or_err(py, raw)?;
    // SetBaseObject steals a reference to the owner.
    if PY_ARRAY_API.PyArray_SetBaseObject(py, raw as *mut _, owner.clone_ref(py).into_ptr()) != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(array)
}

fn parse_dtype(dtype: &str) -> PyResult<bool> {
    match dtype {
        "float32" => Ok(false),
        "float64" => Ok(true),
        other => Err(to_py_err(rico_core::Error::usage(format!(
            "dtype {other:?} is not supported for batches; use \"float32\" or \"float64\""
        )))),
    }
}

fn batch_spec(
    bands: Vec<String>,
    size: Option<usize>,
    resample: &str,
    mean: Option<Vec<f64>>,
    std: Option<Vec<f64>>,
) -> PyResult<BatchSpec> {
    let spec = BatchSpec {
        bands,
        size,
        resample: Resample::parse(resample).map_err(to_py_err)?,
        mean,
        std,
    };
    spec.validate().map_err(to_py_err)?;
    Ok(spec)
}

#[pymethods]
impl Database {
    #[new]
    fn new(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let inner = py
            .allow_threads(|| reader::Database::open(&path))
            .map_err(to_py_err)?;
        let owner = Py::new(
            py,
            SnapshotOwner {
                _shards: inner.shards().clone(),
            },
        )?;
        Ok(Database {
            inner: Arc::new(inner),
            owner,
        })
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.inner.path().to_path_buf()
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.inner.len().map_err(to_py_err)? as usize)
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_bytes(key)?;
        Ok(self.inner.get(&key).map_err(to_py_err)?.is_some())
    }

    /// Every key, sorted, as str (bytes where a key is not UTF-8).
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let keys = py.allow_threads(|| self.inner.keys()).map_err(to_py_err)?;
        let list = PyList::empty(py);
        for k in keys {
            match String::from_utf8(k) {
                Ok(s) => list.append(s)?,
                Err(e) => list.append(PyBytes::new(py, e.as_bytes()))?,
            }
        }
        Ok(list)
    }

    /// Keys (sorted) of the records that start with `prefix` and hold every band of `bands`;
    /// see `rico.Dataset.keys`.
    #[pyo3(signature = (prefix=None, bands=None))]
    fn select_keys<'py>(
        &self,
        py: Python<'py>,
        prefix: Option<Bound<'py, PyAny>>,
        bands: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let selection = rico_core::select::Selection {
            prefix: prefix.as_ref().map(key_bytes).transpose()?,
            bands: bands.unwrap_or_default(),
        };
        let db = &*self.inner;
        let keys = py
            .allow_threads(|| rico_core::select::select_keys(db, &selection))
            .map_err(to_py_err)?;
        let list = PyList::empty(py);
        for k in keys {
            match String::from_utf8(k) {
                Ok(s) => list.append(s)?,
                Err(e) => list.append(PyBytes::new(py, e.as_bytes()))?,
            }
        }
        Ok(list)
    }

    /// `{band: read-only view}` of the record `key`; KeyError if there is none.
    fn record<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let k = key_bytes(key)?;
        let (value, tensors) = match self.inner.record(&k).map_err(to_py_err)? {
            Some(r) => r,
            None => return Err(PyKeyError::new_err(key.clone().unbind())),
        };
        let out = PyDict::new(py);
        for t in tensors {
            let dtype = typenum(t.dtype).ok_or_else(|| {
                to_py_err(rico_core::Error::data(format!(
                    "record {:?}: band {} has dtype {:?}, which numpy cannot view",
                    String::from_utf8_lossy(&k),
                    t.name,
                    t.dtype
                )))
            })?;
            // SAFETY: parse_record proved start..end lies in the value and matches dtype x shape;
            // the value lives in the snapshot's map, kept alive by `owner` for the view's life.
            let array = unsafe { view(py, &self.owner, dtype, &t.shape, &value[t.start..t.end])? };
            out.set_item(t.name, array)?;
        }
        Ok(out)
    }

    /// Records, size, bands (dtype, shapes) from up to `sample` records; see `rico.info`.
    #[pyo3(signature = (sample=64))]
    fn summary<'py>(&self, py: Python<'py>, sample: usize) -> PyResult<Bound<'py, PyDict>> {
        let db = &*self.inner;
        let summary = py
            .allow_threads(|| reader::summarize(db, sample))
            .map_err(to_py_err)?;
        let out = PyDict::new(py);
        out.set_item("path", db.path().to_path_buf())?;
        out.set_item("records", summary.records)?;
        out.set_item("bytes", summary.bytes)?;
        out.set_item("sharded", summary.sharded)?;
        out.set_item("sampled", summary.sampled)?;
        let bands = PyDict::new(py);
        for (name, dtype, shapes) in &summary.bands {
            let entry = PyDict::new(py);
            entry.set_item("dtype", dtype)?;
            entry.set_item(
                "shapes",
                shapes
                    .iter()
                    .map(|s| pyo3::types::PyTuple::new(py, s))
                    .collect::<PyResult<Vec<_>>>()?,
            )?;
            bands.set_item(name, entry)?;
        }
        out.set_item("bands", bands)?;
        out.set_item("text", summary.text(db.path()))?;
        Ok(out)
    }

    /// The raw safetensors bytes of `key` (a copy), or None.
    fn raw<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let k = key_bytes(key)?;
        Ok(self
            .inner
            .get(&k)
            .map_err(to_py_err)?
            .map(|v| PyBytes::new(py, v)))
    }

    /// Stacks bands of `keys` into an (N, C, H, W) array; see `rico.Dataset.batch`.
    #[pyo3(signature = (keys, bands, size=None, resample="nearest", dtype="float32", mean=None, std=None, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn batch<'py>(
        &self,
        py: Python<'py>,
        keys: Vec<Bound<'py, PyAny>>,
        bands: Vec<String>,
        size: Option<usize>,
        resample: &str,
        dtype: &str,
        mean: Option<Vec<f64>>,
        std: Option<Vec<f64>>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys: Vec<Vec<u8>> = keys.iter().map(key_bytes).collect::<PyResult<_>>()?;
        let spec = batch_spec(bands, size, resample, mean, std)?;
        let wide = parse_dtype(dtype)?;
        let db = &*self.inner;
        let (h, w) = py
            .allow_threads(|| batch::batch_shape(db, &keys, &spec))
            .map_err(to_py_err)?;
        let dims = [keys.len(), spec.bands.len(), h, w];
        // The batch is assembled with the GIL released into a Vec, which then becomes the
        // array's memory without a copy.
        Ok(if wide {
            let out = py
                .allow_threads(|| assembled::<f64>(db, &keys, &spec, dims, threads))
                .map_err(to_py_err)?;
            out.into_pyarray(py).reshape(dims)?.into_any()
        } else {
            let out = py
                .allow_threads(|| assembled::<f32>(db, &keys, &spec, dims, threads))
                .map_err(to_py_err)?;
            PyArray1::from_vec(py, out).reshape(dims)?.into_any()
        })
    }
}

/// Elements of a batch of `dims`, refusing sizes no machine can hold (instead of a panic or an
/// abort in the allocator).
fn batch_len(dims: [usize; 4], item: usize) -> rico_core::Result<usize> {
    const MAX_BATCH_BYTES: usize = 1 << 40;
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(item).is_some_and(|b| b <= MAX_BATCH_BYTES))
        .ok_or_else(|| {
            rico_core::Error::usage(format!(
                "a batch of shape {dims:?} is too large (over 1 TiB); use fewer keys or a smaller size"
            ))
        })
}

/// A batch assembled into a new Vec, allocated uninitialised (as `MaybeUninit<T>`: zeroing it
/// would cost a large share of the assembly) and only seen as `T` once every element is written.
fn assembled<T: batch::Sample>(
    db: &reader::Database,
    keys: &[Vec<u8>],
    spec: &BatchSpec,
    dims: [usize; 4],
    threads: Option<usize>,
) -> rico_core::Result<Vec<T>> {
    let n = batch_len(dims, std::mem::size_of::<T>())?;
    if n == 0 {
        return Ok(Vec::new());
    }
    std::alloc::Layout::array::<T>(n)
        .map_err(|_| rico_core::Error::usage(format!("a batch of shape {dims:?} is too large")))?;
    let mut out: Vec<MaybeUninit<T>> = Vec::new();
    out.try_reserve_exact(n).map_err(|_| {
        rico_core::Error::output(format!("cannot allocate a batch of shape {dims:?}"))
    })?;
    // SAFETY: the capacity is at least n, and MaybeUninit needs no initialisation.
    unsafe { out.set_len(n) };
    // On error `out` is dropped as Vec<MaybeUninit<T>>: no element is read.
    batch::assemble_uninit(db, keys, spec, (dims[2], dims[3]), &mut out, threads)?;
    let mut out = ManuallyDrop::new(out);
    // SAFETY: assemble_uninit returned Ok, so all n elements are initialised; MaybeUninit<T> has
    // T's size and alignment, so the allocation, length and capacity carry over unchanged, and
    // ManuallyDrop keeps the old Vec from freeing it.
    Ok(unsafe { Vec::from_raw_parts(out.as_mut_ptr().cast::<T>(), out.len(), out.capacity()) })
}

enum Buffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

type Produced = rico_core::Result<(Buffer, [usize; 4])>;

/// Assembles batches in a background thread, `prefetch` ahead of the consumer.
#[pyclass(module = "rico._rico")]
pub struct Prefetcher {
    receiver: Mutex<Receiver<Produced>>,
    /// Batches not yet delivered: the channel closing before this reaches 0 is a failure.
    remaining: Mutex<usize>,
}

#[pymethods]
impl Prefetcher {
    #[new]
    #[pyo3(signature = (database, batches, bands, size=None, resample="nearest", dtype="float32", mean=None, std=None, threads=None, prefetch=2))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        database: &Database,
        batches: Vec<Vec<Bound<'_, PyAny>>>,
        bands: Vec<String>,
        size: Option<usize>,
        resample: &str,
        dtype: &str,
        mean: Option<Vec<f64>>,
        std: Option<Vec<f64>>,
        threads: Option<usize>,
        prefetch: usize,
    ) -> PyResult<Self> {
        let batches: Vec<Vec<Vec<u8>>> = batches
            .iter()
            .map(|b| b.iter().map(key_bytes).collect::<PyResult<_>>())
            .collect::<PyResult<_>>()?;
        let spec = batch_spec(bands, size, resample, mean, std)?;
        let wide = parse_dtype(dtype)?;
        let db = database.inner.clone();
        let (sender, receiver) = sync_channel::<Produced>(prefetch.max(1));
        let total = batches.len();
        std::thread::Builder::new()
            .name("rico-loader".into())
            .spawn(move || {
                for keys in batches {
                    // A panic becomes an error for the consumer instead of a silently short epoch.
                    let produced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let (h, w) = batch::batch_shape(&db, &keys, &spec)?;
                        let dims = [keys.len(), spec.bands.len(), h, w];
                        let buffer = if wide {
                            Buffer::F64(assembled(&db, &keys, &spec, dims, threads)?)
                        } else {
                            Buffer::F32(assembled(&db, &keys, &spec, dims, threads)?)
                        };
                        Ok((buffer, dims))
                    }))
                    .unwrap_or_else(|_| {
                        Err(rico_core::Error::output(
                            "the loader thread panicked while assembling a batch",
                        ))
                    });
                    let failed = produced.is_err();
                    // The consumer went away (loop broken, loader dropped): stop working.
                    if sender.send(produced).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "cannot start the loader thread: {e}"
                ))
            })?;
        Ok(Prefetcher {
            receiver: Mutex::new(receiver),
            remaining: Mutex::new(total),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let received = py.allow_threads(|| {
            let receiver = self.receiver.lock().unwrap_or_else(|p| p.into_inner());
            receiver.recv()
        });
        let mut remaining = self.remaining.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(produced) = received else {
            if *remaining > 0 {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "the loader thread stopped with {} batches still to deliver",
                    *remaining
                )));
            }
            return Ok(None); // all batches delivered
        };
        *remaining = remaining.saturating_sub(1);
        let (buffer, dims) = produced.map_err(to_py_err)?;
        // The Vec moves into numpy without a copy.
        let array = match buffer {
            Buffer::F32(v) => PyArray1::from_vec(py, v).reshape(dims)?.into_any(),
            Buffer::F64(v) => v.into_pyarray(py).reshape(dims)?.into_any(),
        };
        Ok(Some(array))
    }
}

fn measurement<'py>(
    py: Python<'py>,
    m: &rico_core::bench::Measurement,
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
pub fn bench<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    bands: Option<Vec<String>>,
    size: Option<usize>,
    batch: usize,
    threads: Option<usize>,
    seconds: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let options = rico_core::bench::BenchOptions {
        bands,
        size,
        batch,
        threads,
        seconds,
    };
    let report = py
        .allow_threads(|| {
            reader::Database::open(&path).and_then(|db| rico_core::bench::run(&db, &options))
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
    out.set_item("text", report.text(&path))?;
    Ok(out)
}
