//! `RecordMemory`: the owner of a record's views.

use std::sync::Arc;

use pyo3::prelude::*;
use rico_core::read::reader;

/// Owns one record's private copy-on-write memory (the base of that record's views); the
/// snapshot is kept too, so that a writer never reuses the record's pages while it lives.
#[pyclass(frozen, module = "rico._rico")]
pub struct RecordMemory {
    pub(crate) record: reader::PrivateRecord,
    pub(crate) _shards: Arc<reader::Shards>,
}

#[pymethods]
impl RecordMemory {
    /// True when the record is a private mapping of the file (False: a private copy).
    #[getter]
    fn mapped(&self) -> bool {
        self.record.is_mapped()
    }
}
