//! Python face of the reader: zero-copy record views and batches.

use std::collections::VecDeque;
use std::os::raw::{c_int, c_void};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use numpy::npyffi::{
    npy_intp, NpyTypes, NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_WRITEABLE, NPY_TYPES, PY_ARRAY_API,
};
use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use rico_core::batch::read_ahead::{ReadAhead, Window};
use rico_core::batch::{self, BatchSpec, Resample};
use rico_core::buffer::AlignedBuffer;
use rico_core::reader;
use safetensors::tensor::Dtype;

use crate::to_py_err;

/// Owns one record's private copy-on-write memory (the base of that record's views); the
/// snapshot is kept too, so that a writer never reuses the record's pages while it lives.
#[pyclass(frozen, module = "rico._rico")]
pub struct RecordMemory {
    record: reader::PrivateRecord,
    _shards: Arc<reader::Shards>,
}

#[pymethods]
impl RecordMemory {
    /// True when the record is a private mapping of the file (False: a private copy).
    #[getter]
    fn mapped(&self) -> bool {
        self.record.is_mapped()
    }
}

/// Owns the memory of a batch (the base of the batch's array): 64-byte aligned.
#[pyclass(frozen, module = "rico._rico")]
pub struct BatchMemory {
    buffer: Arc<AlignedBuffer>,
}

#[pymethods]
impl BatchMemory {
    /// Size of the memory block in bytes.
    fn __len__(&self) -> usize {
        self.buffer.len()
    }
}

/// A read-only database; see `rico.open`.
#[pyclass(frozen, module = "rico._rico")]
pub struct Database {
    inner: Arc<reader::Database>,
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

/// A numpy array over `bytes` whose base object is `owner` (read-only unless `writeable`).
///
/// # Safety
/// `bytes` must stay valid while `owner` lives, and hold exactly product(shape) x itemsize
/// bytes of `dtype` (and be writable memory if `writeable`).
unsafe fn view<'py, O>(
    py: Python<'py>,
    owner: &Py<O>,
    dtype: NPY_TYPES,
    shape: &[usize],
    bytes: *const u8,
    writeable: bool,
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
        bytes as *mut c_void,
        0,
        if writeable {
            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_WRITEABLE
        } else {
            NPY_ARRAY_C_CONTIGUOUS
        },
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
        Ok(Database {
            inner: Arc::new(inner),
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

    /// Why `select_keys(prefix, bands)` keeps no record (the message of a usage error that
    /// names the database and what to change), or None when it keeps some.
    #[pyo3(signature = (prefix=None, bands=None))]
    fn why_empty<'py>(
        &self,
        py: Python<'py>,
        prefix: Option<Bound<'py, PyAny>>,
        bands: Option<Vec<String>>,
    ) -> PyResult<Option<String>> {
        let selection = rico_core::select::Selection {
            prefix: prefix.as_ref().map(key_bytes).transpose()?,
            bands: bands.unwrap_or_default(),
        };
        let db = &*self.inner;
        let why = py
            .allow_threads(|| rico_core::select::why_empty(db, &selection))
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
        let wide = parse_dtype(dtype)?;
        let db = &*self.inner;
        let (h, w) = py
            .allow_threads(|| batch::batch_shape(db, &keys, &spec))
            .map_err(to_py_err)?;
        let dims = [keys.len(), spec.bands.len(), h, w];
        if let Some(out) = out {
            if wide {
                fill_out::<f64>(py, db, &keys, &spec, dims, threads, &out)?;
            } else {
                fill_out::<f32>(py, db, &keys, &spec, dims, threads, &out)?;
            }
            return Ok(out);
        }
        // Assembled with the GIL released into a new aligned block, which then becomes the
        // array's memory without a copy.
        let buffer = if wide {
            py.allow_threads(|| assembled::<f64>(db, &keys, &spec, dims, threads))
        } else {
            py.allow_threads(|| assembled::<f32>(db, &keys, &spec, dims, threads))
        }
        .map_err(to_py_err)?;
        batch_array(py, buffer, dims, wide)
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

/// The numpy array of a batch of `dims` assembled into `buffer` (f64 if `wide`, else f32).
fn batch_array(
    py: Python<'_>,
    buffer: Arc<AlignedBuffer>,
    dims: [usize; 4],
    wide: bool,
) -> PyResult<Bound<'_, PyAny>> {
    let ptr = buffer.as_ptr();
    let owner = Py::new(py, BatchMemory { buffer })?;
    let dtype = if wide {
        NPY_TYPES::NPY_DOUBLE
    } else {
        NPY_TYPES::NPY_FLOAT
    };
    // SAFETY: the buffer holds a batch of `dims` written in full (assembled returned Ok, or the
    // ring slot was filled for these dims), and lives as long as `owner`.
    unsafe { view(py, &owner, dtype, &dims, ptr, true) }
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

/// A batch assembled into a new aligned buffer, left uninitialised until written (zeroing it
/// would cost a large share of the assembly).
fn assembled<T: batch::Sample>(
    db: &reader::Database,
    keys: &[Vec<u8>],
    spec: &BatchSpec,
    dims: [usize; 4],
    threads: Option<usize>,
) -> rico_core::Result<Arc<AlignedBuffer>> {
    let n = batch_len(dims, std::mem::size_of::<T>())?;
    let buffer = AlignedBuffer::new(n * std::mem::size_of::<T>())?;
    fill::<T>(db, &[(keys, spec)], dims, threads, &buffer)?;
    Ok(buffer)
}

/// Assembles a batch of `dims` into the start of `buffer`.
fn fill<T: batch::Sample>(
    db: &reader::Database,
    parts: &[(&[Vec<u8>], &BatchSpec)],
    dims: [usize; 4],
    threads: Option<usize>,
    buffer: &AlignedBuffer,
) -> rico_core::Result<()> {
    let n = batch_len(dims, std::mem::size_of::<T>())?;
    if n * std::mem::size_of::<T>() > buffer.len() {
        return Err(rico_core::Error::usage("batch buffer too small"));
    }
    // SAFETY: n elements of T fit (checked above), f32/f64 alignment divides the buffer's,
    // and the buffer is written by this call alone (the loader hands a slot to one producer).
    let slots = unsafe { buffer.slots::<T>(n) };
    let [records, channels, h, w] = dims;
    if let [(keys, spec)] = parts {
        return batch::assemble_uninit(db, keys, spec, (h, w), slots, threads);
    }
    // Several parts (e.g. a patch's S2 and S1 records): each fills its run of every sample's
    // channels, in order. Split each sample at the runs' ends: disjoint slices, one per part.
    let plane = h * w;
    if records * channels * plane == 0 {
        return Ok(());
    }
    let mut per_part: Vec<Vec<&mut [std::mem::MaybeUninit<T>]>> =
        parts.iter().map(|_| Vec::with_capacity(records)).collect();
    for mut sample in slots.chunks_mut(channels * plane) {
        for (p, (_, spec)) in parts.iter().enumerate() {
            let (run, rest) = std::mem::take(&mut sample).split_at_mut(spec.bands.len() * plane);
            per_part[p].push(run);
            sample = rest;
        }
    }
    for ((keys, spec), samples) in parts.iter().zip(per_part) {
        batch::assemble_samples(db, keys, spec, (h, w), samples, threads)?;
    }
    Ok(())
}

/// The reusable memory of a loader's batches: `slots` buffers handed out in turn.
///
/// A new multi-megabyte block per batch is what made large batches slow (fresh pages, each
/// faulted in); a ring is allocated once and reused across epochs, so that the steady state
/// touches only pages already mapped.
/// The most slots (whole batches held in memory) a [`BatchRing`] may have.
const MAX_RING_SLOTS: usize = 4096;

#[pyclass(frozen, module = "rico._rico")]
pub struct BatchRing {
    slots: Mutex<Vec<Option<Arc<AlignedBuffer>>>>,
    /// Slots of the batches yielded and still valid, oldest first. Kept here, not in an
    /// iteration, so that the last batches of an epoch stay valid into the next one.
    held: Mutex<VecDeque<usize>>,
    /// Held by the one thread filling slots: a new epoch's thread waits for the last one.
    producer: Arc<Mutex<()>>,
}

#[pymethods]
impl BatchRing {
    #[new]
    fn new(slots: usize) -> PyResult<Self> {
        if slots < 2 {
            return Err(to_py_err(rico_core::Error::usage(
                "a batch ring needs at least 2 slots",
            )));
        }
        if slots > MAX_RING_SLOTS {
            return Err(to_py_err(rico_core::Error::usage(format!(
                "a batch ring holds at most {MAX_RING_SLOTS} batches (keep + 1 + prefetch), not {slots}"
            ))));
        }
        Ok(BatchRing {
            slots: Mutex::new(vec![None; slots]),
            held: Mutex::new(VecDeque::new()),
            producer: Arc::new(Mutex::new(())),
        })
    }

    fn __len__(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl BatchRing {
    /// Slot `i`'s buffer, (re)allocated if smaller than `bytes`.
    fn slot(&self, i: usize, bytes: usize) -> rico_core::Result<Arc<AlignedBuffer>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match &slots[i] {
            Some(b) if b.len() >= bytes => Ok(b.clone()),
            _ => {
                // Arrays still viewing the old block keep it alive; the ring takes a new one.
                let b = AlignedBuffer::new(bytes)?;
                slots[i] = Some(b.clone());
                Ok(b)
            }
        }
    }
}

/// One more part of a prefetched batch: (batches of keys, bands, mean, std).
type ExtraPart<'py> = (
    Vec<Vec<Bound<'py, PyAny>>>,
    Vec<String>,
    Option<Vec<f64>>,
    Option<Vec<f64>>,
);

/// A batch filled into a ring slot.
struct Filled {
    slot: usize,
    buffer: Arc<AlignedBuffer>,
    dims: [usize; 4],
}

type Produced = rico_core::Result<Filled>;

/// The consumer's side of a prefetcher.
struct Consumer {
    /// `None` once closed.
    receiver: Option<Receiver<Produced>>,
    free: Option<SyncSender<usize>>,
    /// Batches not yet delivered: the channel closing before this reaches 0 is a failure.
    remaining: usize,
}

/// Assembles batches in a background thread into the slots of a [`BatchRing`], `prefetch`
/// ahead of the consumer. A yielded batch stays valid while `keep` more are yielded; its slot
/// is then filled again.
#[pyclass(module = "rico._rico")]
pub struct Prefetcher {
    consumer: Mutex<Consumer>,
    ring: Py<BatchRing>,
    keep: usize,
    wide: bool,
    pid: u32,
}

#[pymethods]
impl Prefetcher {
    #[new]
    #[pyo3(signature = (database, batches, bands, size=None, resample="nearest", dtype="float32", mean=None, std=None, threads=None, prefetch=2, ring=None, keep=1, extra=None, then=None))]
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
        ring: Option<Py<BatchRing>>,
        keep: usize,
        extra: Option<Vec<ExtraPart<'_>>>,
        then: Option<Vec<Bound<'_, PyAny>>>,
        py: Python<'_>,
    ) -> PyResult<Self> {
        let keys_of = |batches: Vec<Vec<Bound<'_, PyAny>>>| -> PyResult<Vec<Vec<Vec<u8>>>> {
            batches
                .iter()
                .map(|b| b.iter().map(key_bytes).collect::<PyResult<_>>())
                .collect()
        };
        let batches = keys_of(batches)?;
        let spec = batch_spec(bands, size, resample, mean, std)?;
        // More channels from other records of the same samples (same batch sizes), after these.
        let mut extra_parts: Vec<(Vec<Vec<Vec<u8>>>, BatchSpec)> = Vec::new();
        for (part_batches, part_bands, part_mean, part_std) in extra.unwrap_or_default() {
            let part_batches = keys_of(part_batches)?;
            let same = part_batches.len() == batches.len()
                && part_batches
                    .iter()
                    .zip(&batches)
                    .all(|(a, b)| a.len() == b.len());
            if !same {
                return Err(to_py_err(rico_core::Error::usage(
                    "extra= parts need batches of the same sizes as the first part's",
                )));
            }
            let part_spec = batch_spec(part_bands, size, resample, part_mean, part_std)?;
            extra_parts.push((part_batches, part_spec));
        }
        let wide = parse_dtype(dtype)?;
        let db = database.inner.clone();
        // Every key the thread will read, in the order it reads them, then the keys the next
        // epoch starts with (`then`): the read-ahead keeps the disk busy across the boundary.
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut starts: Vec<usize> = Vec::with_capacity(batches.len() + 1);
        for (i, keys) in batches.iter().enumerate() {
            starts.push(order.len());
            order.extend(keys.iter().cloned());
            for (part, _) in &extra_parts {
                order.extend(part[i].iter().cloned());
            }
        }
        starts.push(order.len());
        for key in then.unwrap_or_default() {
            order.push(key_bytes(&key)?);
        }
        let read_ahead = ReadAhead::start(db.clone(), order, Window::default()).map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "cannot start the read-ahead thread: {e}"
            ))
        })?;
        let ring = match ring {
            Some(r) => r,
            None => Py::new(
                py,
                BatchRing::new(keep.saturating_add(1).saturating_add(prefetch.max(1)))?,
            )?,
        };
        let slots = ring
            .get()
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        if slots < keep.saturating_add(2) {
            return Err(to_py_err(rico_core::Error::usage(format!(
                "a ring of {slots} slots cannot keep {keep} batches valid and fill another; give it at least {} slots",
                keep.saturating_add(2)
            ))));
        }
        let (sender, receiver) = sync_channel::<Produced>(slots);
        let (free, free_slots) = sync_channel::<usize>(slots);
        {
            // The previous iteration's last batches are still promised: their slots stay out
            // until this iteration has yielded enough batches.
            let mut held = ring.get().held.lock().unwrap_or_else(|p| p.into_inner());
            while held.len() > keep + 1 {
                held.pop_front();
            }
            for i in (0..slots).filter(|i| !held.contains(i)) {
                free.send(i).expect("the channel holds every slot");
            }
        }
        let ring_for_consumer = ring.clone_ref(py);
        let total = batches.len();
        std::thread::Builder::new()
            .name("rico-loader".into())
            .spawn(move || {
                let ring = ring.get();
                let _producing = ring.producer.lock().unwrap_or_else(|p| p.into_inner());
                // The whole epoch's keys are known: the read-ahead thread keeps a window of
                // records in flight from storage ahead of the batch being assembled (many reads
                // on cold storage; nothing to do on a warm page cache).
                let mut sent = 0;
                for (i, keys) in batches.iter().enumerate() {
                    // The consumer went away (loop broken, loader closed or dropped): stop.
                    let Ok(slot) = free_slots.recv() else { break };
                    read_ahead.advance(starts[i]);
                    // A panic becomes an error for the consumer instead of a silently short epoch.
                    let produced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut parts: Vec<(&[Vec<u8>], &BatchSpec)> = vec![(keys, &spec)];
                        parts.extend(extra_parts.iter().map(|(b, s)| (b[i].as_slice(), s)));
                        let (h, w) = batch::batch_shape(&db, keys, &spec)?;
                        for (part_keys, part_spec) in &parts[1..] {
                            let shape = batch::batch_shape(&db, part_keys, part_spec)?;
                            if shape != (h, w) {
                                let first = |k: &[Vec<u8>]| {
                                    k.first().map(|k| String::from_utf8_lossy(k).into_owned())
                                };
                                return Err(rico_core::Error::usage(format!(
                                    "record {:?} (band {}) is {h}x{w} but record {:?} (band {}) is {}x{}: \
                                     one batch needs one size",
                                    first(keys), spec.bands[0], first(part_keys), part_spec.bands[0],
                                    shape.0, shape.1
                                ))
                                .hint("pass size= to resample every band to one size"));
                            }
                        }
                        let channels = parts.iter().map(|(_, s)| s.bands.len()).sum();
                        let dims = [keys.len(), channels, h, w];
                        let item = if wide { 8 } else { 4 };
                        let buffer = ring.slot(slot, batch_len(dims, item)? * item)?;
                        if wide {
                            fill::<f64>(&db, &parts, dims, threads, &buffer)?;
                        } else {
                            fill::<f32>(&db, &parts, dims, threads, &buffer)?;
                        }
                        Ok(Filled { slot, buffer, dims })
                    }))
                    .unwrap_or_else(|_| {
                        Err(rico_core::Error::output(
                            "the loader thread panicked while assembling a batch",
                        ))
                    });
                    let failed = produced.is_err();
                    if sender.send(produced).is_err() || failed {
                        break;
                    }
                    sent += 1;
                }
                if sent == batches.len() {
                    read_ahead.finish(starts[sent]);
                }
            })
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "cannot start the loader thread: {e}"
                ))
            })?;
        Ok(Prefetcher {
            consumer: Mutex::new(Consumer {
                receiver: Some(receiver),
                free: Some(free),
                remaining: total,
            }),
            ring: ring_for_consumer,
            keep,
            wide,
            pid: std::process::id(),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if std::process::id() != self.pid {
            // The producing thread stayed in the parent: waiting here would never end.
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this loader iteration was started before a fork; start a new one in this process (iterate the Loader again)",
            ));
        }
        let received = py.allow_threads(|| {
            let consumer = self.consumer.lock().unwrap_or_else(|p| p.into_inner());
            consumer.receiver.as_ref().map(|r| r.recv())
        });
        let mut consumer = self.consumer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(received) = received else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this loader iteration was closed",
            ));
        };
        let Ok(produced) = received else {
            if consumer.remaining > 0 {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "the loader thread stopped with {} batches still to deliver",
                    consumer.remaining
                )));
            }
            return Ok(None); // all batches delivered
        };
        consumer.remaining = consumer.remaining.saturating_sub(1);
        let filled = produced.map_err(to_py_err)?;
        let mut held = self
            .ring
            .get()
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        held.push_back(filled.slot);
        // The batch yielded `keep + 1` batches ago is no longer promised: its slot is refilled.
        while held.len() > self.keep + 1 {
            let slot = held.pop_front().expect("held is not empty");
            if let Some(free) = &consumer.free {
                // The producer may have finished (last batches): nothing to refill then.
                let _ = free.try_send(slot);
            }
        }
        drop(held);
        drop(consumer);
        batch_array(py, filled.buffer, filled.dims, self.wide).map(Some)
    }

    /// Stops the background thread (after the batch it is assembling) and ends the iteration.
    fn close(&self) {
        let mut consumer = self.consumer.lock().unwrap_or_else(|p| p.into_inner());
        consumer.free = None;
        consumer.receiver = None;
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
    match &report.device {
        Some(m) => out.set_item("device", measurement(py, m)?)?,
        None => out.set_item("device", py.None())?,
    }
    out.set_item("text", report.text(&path))?;
    Ok(out)
}
