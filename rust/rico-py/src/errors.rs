//! rico's Python exceptions, and the engine's errors turned into them.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;
use rico_core::read::batch::prefetch::PrefetchError;
use rico_core::{Error, ErrorKind};

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

/// A prefetcher's error: the engine's own as [`to_py_err`] maps it; the loader thread's state
/// (not started, stopped early, closed, started before a fork) as `RuntimeError`.
pub(crate) fn prefetch_err(e: PrefetchError) -> PyErr {
    match e {
        PrefetchError::Engine(e) => to_py_err(e),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}
