//! `BatchMemory`: the owner of a batch's array, and the array made over it.

use std::sync::Arc;

use numpy::npyffi::NPY_TYPES;
use pyo3::prelude::*;
use rico_core::base::buffer::AlignedBuffer;
use rico_core::read::batch::fill::BatchDtype;

use crate::arrays::view;

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

/// The numpy array of a batch of `dims` assembled into `buffer`.
pub(crate) fn batch_array(
    py: Python<'_>,
    buffer: Arc<AlignedBuffer>,
    dims: [usize; 4],
    dtype: BatchDtype,
) -> PyResult<Bound<'_, PyAny>> {
    let ptr = buffer.as_ptr();
    let owner = Py::new(py, BatchMemory { buffer })?;
    let dtype = match dtype {
        BatchDtype::F64 => NPY_TYPES::NPY_DOUBLE,
        BatchDtype::F32 => NPY_TYPES::NPY_FLOAT,
    };
    // SAFETY: the buffer holds a batch of `dims` written in full (assembled returned Ok, or the
    // ring slot was filled for these dims), and lives as long as `owner`.
    unsafe { view(py, &owner, dtype, &dims, ptr, true) }
}
