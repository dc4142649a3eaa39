//! `thread_count`: the engine's rule for thread counts, for the Python side to check early.

use pyo3::prelude::*;

use crate::errors::to_py_err;

/// The thread count a call with `threads` uses (one per core when `None`); a count outside
/// `1..=MAX_THREADS` raises the engine's `UsageError`, before any thread starts.
#[pyfunction]
#[pyo3(signature = (threads=None))]
pub(crate) fn thread_count(threads: Option<i64>) -> PyResult<usize> {
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
