//! `BatchRing`: the reusable memory of a loader's batches ([`rico_core::read::batch::ring`]).

use std::sync::Arc;

use pyo3::prelude::*;
use rico_core::read::batch::ring;

use crate::errors::to_py_err;

/// The reusable memory of a loader's batches: `slots` buffers handed out in turn. It outlives
/// an iteration, so that the last batches of an epoch stay valid into the next one.
#[pyclass(frozen, module = "rico._rico")]
pub struct BatchRing {
    pub(crate) inner: Arc<ring::BatchRing>,
}

#[pymethods]
impl BatchRing {
    #[new]
    fn new(slots: usize) -> PyResult<Self> {
        let inner = ring::BatchRing::new(slots).map_err(to_py_err)?;
        Ok(BatchRing {
            inner: Arc::new(inner),
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
