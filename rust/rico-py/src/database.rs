//! `Database`: a database opened read-only, its records as zero-copy views, batches.

use std::sync::Arc;

use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use rico_core::read::batch::fill::{assemble_new, BatchDtype};
use rico_core::read::batch::{self, BatchSpec, Resample};
use rico_core::read::reader;

use crate::arrays::{typenum, view};
use crate::batch_memory::batch_array;
use crate::errors::to_py_err;
use crate::record_memory::RecordMemory;

/// A read-only database; see `rico.open`.
#[pyclass(frozen, module = "rico._rico")]
pub struct Database {
    pub(crate) inner: Arc<reader::Database>,
}

/// A key given as str or bytes.
pub(crate) fn key_bytes(key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
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

/// Keys as a Python list: str, or bytes where a key is not UTF-8.
fn key_list<'py>(py: Python<'py>, keys: Vec<Vec<u8>>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for k in keys {
        match String::from_utf8(k) {
            Ok(s) => list.append(s)?,
            Err(e) => list.append(PyBytes::new(py, e.as_bytes()))?,
        }
    }
    Ok(list)
}

/// The engine's selection of the records that start with `prefix` and hold every band.
fn selection(
    prefix: Option<&Bound<'_, PyAny>>,
    bands: Option<Vec<String>>,
) -> PyResult<rico_core::read::select::Selection> {
    Ok(rico_core::read::select::Selection {
        prefix: prefix.map(key_bytes).transpose()?,
        bands: bands.unwrap_or_default(),
    })
}

/// The spec of a batch, checked (`resample` parsed, `validate`d).
pub(crate) fn batch_spec(
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
        Ok(Database {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.inner.path().to_path_buf()
    }

    /// What the cold read path did on this database (records read whole because they were
    /// not in the page cache, records read in place, the queue depth measured); for benches
    /// and tests.
    fn _cold_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        cold_stats(py, &self.inner.cold_stats())
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
        key_list(py, keys)
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
        let selection = selection(prefix.as_ref(), bands)?;
        let db = &*self.inner;
        let keys = py
            .allow_threads(|| rico_core::read::select::select_keys(db, &selection))
            .map_err(to_py_err)?;
        key_list(py, keys)
    }

    /// Why `select_keys(prefix, bands)` keeps no record (the message of a usage error that
    /// names the database and what to change), or None when it keeps some.
    #[pyo3(signature = (prefix=None, bands=None))]
    fn why_empty<'py>(
        &self,
        py: Python<'py>,
        prefix: Option<Bound<'py, PyAny>>,
        bands: Option<Vec<String>>,
    ) -> PyResult<Option<String>> {
        let selection = selection(prefix.as_ref(), bands)?;
        let db = &*self.inner;
        let why = py
            .allow_threads(|| rico_core::read::select::why_empty(db, &selection))
            .map_err(to_py_err)?;
        Ok(why.map(|e| e.to_string()))
    }

    /// `{band: read-only view}` of the record `key`; KeyError if there is none.
    fn record<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let k = key_bytes(key)?;
        let (record, tensors) = match self.inner.private_record(&k).map_err(to_py_err)? {
            Some(r) => r,
            None => return Err(PyKeyError::new_err(key.clone().unbind())),
        };
        let value = record.as_ptr();
        let owner = Py::new(
            py,
            RecordMemory {
                record,
                _shards: self.inner.shards().clone(),
            },
        )?;
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
            // the value is the record's private mapping, kept alive by `owner` for the view's
            // life. The view is read-only as numpy sees it (numpy refuses writes); a writer
            // that goes around that (torch.from_numpy, DLPack) writes into private pages.
            let array = unsafe { view(py, &owner, dtype, &t.shape, value.add(t.start), false)? };
            out.set_item(t.name, array)?;
        }
        Ok(out)
    }

    /// Records, size, bands (dtype, shapes) from up to `sample` records; see `rico.info`.
    #[pyo3(signature = (sample=64))]
    fn summary<'py>(&self, py: Python<'py>, sample: usize) -> PyResult<Bound<'py, PyDict>> {
        let db = &*self.inner;
        let summary = py
            .allow_threads(|| rico_core::read::info::summarize(db, sample))
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
            .map(|v| PyBytes::new(py, &v)))
    }

    /// Stacks bands of `keys` into an (N, C, H, W) array; see `rico.Dataset.batch`.
    #[pyo3(signature = (keys, bands, size=None, resample="nearest", dtype="float32", mean=None, std=None, threads=None, out=None))]
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
        out: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys: Vec<Vec<u8>> = keys.iter().map(key_bytes).collect::<PyResult<_>>()?;
        let spec = batch_spec(bands, size, resample, mean, std)?;
        let dtype = BatchDtype::parse(dtype).map_err(to_py_err)?;
        let db = &*self.inner;
        let (h, w) = py
            .allow_threads(|| batch::batch_shape(db, &keys, &spec))
            .map_err(to_py_err)?;
        let dims = [keys.len(), spec.bands.len(), h, w];
        if let Some(out) = out {
            match dtype {
                BatchDtype::F64 => fill_out::<f64>(py, db, &keys, &spec, dims, threads, &out)?,
                BatchDtype::F32 => fill_out::<f32>(py, db, &keys, &spec, dims, threads, &out)?,
            }
            return Ok(out);
        }
        // Assembled with the GIL released into a new aligned block, which then becomes the
        // array's memory without a copy.
        let buffer = py
            .allow_threads(|| assemble_new(db, &keys, &spec, dims, dtype, threads))
            .map_err(to_py_err)?;
        batch_array(py, buffer, dims, dtype)
    }
}

/// Fills the caller's array `out`: a writeable array of `T` and shape `dims` whose samples are
/// each C-contiguous (`out` itself, or a channel range `big[:, a:b]` of a bigger C-contiguous
/// batch): the batch reuses its memory (no allocation, no page faults, no copy to interleave).
#[allow(clippy::too_many_arguments)]
fn fill_out<'py, T: batch::Sample + numpy::Element>(
    py: Python<'py>,
    db: &reader::Database,
    keys: &[Vec<u8>],
    spec: &BatchSpec,
    dims: [usize; 4],
    threads: Option<usize>,
    out: &Bound<'py, PyAny>,
) -> PyResult<()> {
    let usage = |msg: String| {
        to_py_err(rico_core::Error::usage(msg).hint(
            "allocate it as numpy.empty((N, C, H, W), dtype) with the batch's shape and dtype, \
             or pass a channel range big[:, a:b] of such an array",
        ))
    };
    let array = out.downcast::<numpy::PyArrayDyn<T>>().map_err(|_| {
        usage(format!(
            "out= must be a numpy array of {}",
            std::any::type_name::<T>()
        ))
    })?;
    if array.shape() != dims {
        return Err(usage(format!(
            "out= has shape {:?} but the batch is {dims:?}",
            array.shape()
        )));
    }
    // Element strides: each sample's C x H x W elements contiguous, samples apart by `step`.
    let size = std::mem::size_of::<T>() as isize;
    let strides: Vec<isize> = array.strides().iter().map(|s| s / size).collect();
    let [n, c, h, w] = dims;
    let per_sample = c * h * w;
    let contiguous_within = (w < 2 || strides[3] == 1)
        && (h < 2 || strides[2] == w as isize)
        && (c < 2 || strides[1] == (h * w) as isize);
    let step = if n < 2 {
        per_sample as isize
    } else {
        strides[0]
    };
    if !contiguous_within
        || step < per_sample as isize
        || array.strides().iter().any(|s| s % size != 0)
    {
        return Err(usage(
            "out= must be C-contiguous within each sample (e.g. a C-contiguous array, or \
             big[:, a:b] of one), with samples that do not overlap"
                .into(),
        ));
    }
    // Borrowing for writing checks that the array is writeable and not borrowed elsewhere.
    let mut rw = array
        .try_readwrite()
        .map_err(|e| usage(format!("out= cannot be written: {e}")))?;
    let base = rw.as_array_mut().as_mut_ptr();
    // SAFETY: `base` is the view's first element; sample i's elements are the `per_sample`
    // contiguous elements at `base + i * step` (checked above: contiguous within a sample,
    // `step >= per_sample`), all inside the view, which is borrowed for writing, so the slices
    // are disjoint and nothing else in Rust touches them. MaybeUninit<T> has T's layout, and the
    // slots are only written with initialised values.
    let samples: Vec<&mut [std::mem::MaybeUninit<T>]> = (0..n)
        .map(|i| unsafe {
            std::slice::from_raw_parts_mut(
                base.offset(i as isize * step)
                    .cast::<std::mem::MaybeUninit<T>>(),
                per_sample,
            )
        })
        .collect();
    py.allow_threads(|| batch::assemble_samples(db, keys, spec, (h, w), samples, threads))
        .map_err(to_py_err)
}

/// [`reader::ColdStats`] as a dict.
pub(crate) fn cold_stats<'py>(
    py: Python<'py>,
    s: &reader::ColdStats,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("staged", s.staged)?;
    out.set_item("resident", s.resident)?;
    out.set_item("fallback", s.fallback)?;
    out.set_item("depth", s.depth)?;
    out.set_item("reads_per_second", s.reads_per_second)?;
    out.set_item("buffered", s.buffered)?;
    Ok(out)
}

/// Forces the path every record of a loader takes (True: the cold path, False: in place,
/// None: chosen per record by residency); for tests that compare the two.
#[pyfunction]
#[pyo3(signature = (cold=None))]
pub(crate) fn _force_cold_path(cold: Option<bool>) {
    reader::force_cold_path(cold);
}
