//! `Prefetcher`: batches assembled ahead by a Rust thread ([`rico_core::read::batch::prefetch`]).

use pyo3::prelude::*;
use rico_core::read::batch::fill::BatchDtype;
use rico_core::read::batch::prefetch::{self, Part, Plan};

use crate::batch_memory::batch_array;
use crate::batch_ring::BatchRing;
use crate::database::{batch_spec, key_bytes, Database};
use crate::errors::{prefetch_err, to_py_err};

/// One more part of a prefetched batch: (batches of keys, bands, mean, std).
type ExtraPart<'py> = (
    Vec<Vec<Bound<'py, PyAny>>>,
    Vec<String>,
    Option<Vec<f64>>,
    Option<Vec<f64>>,
);

/// Assembles batches in a background thread into the slots of a [`BatchRing`], `prefetch`
/// ahead of the consumer. A yielded batch stays valid while `keep` more are yielded; its slot
/// is then filled again.
#[pyclass(module = "rico._rico")]
pub struct Prefetcher {
    inner: prefetch::Prefetcher,
}

/// The keys of each batch, as bytes.
fn keys_of(batches: Vec<Vec<Bound<'_, PyAny>>>) -> PyResult<Vec<Vec<Vec<u8>>>> {
    batches
        .iter()
        .map(|b| b.iter().map(key_bytes).collect::<PyResult<_>>())
        .collect()
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
    ) -> PyResult<Self> {
        let batches = keys_of(batches)?;
        let spec = batch_spec(bands, size, resample, mean, std)?;
        // More channels from other records of the same samples (same batch sizes), after these.
        let mut parts = Vec::new();
        for (part_batches, part_bands, part_mean, part_std) in extra.unwrap_or_default() {
            let part_batches = keys_of(part_batches)?;
            prefetch::check_part(&batches, &part_batches).map_err(to_py_err)?;
            parts.push(Part {
                batches: part_batches,
                spec: batch_spec(part_bands, size, resample, part_mean, part_std)?,
            });
        }
        let dtype = BatchDtype::parse(dtype).map_err(to_py_err)?;
        let then = then
            .unwrap_or_default()
            .iter()
            .map(key_bytes)
            .collect::<PyResult<_>>()?;
        let plan = Plan {
            batches,
            spec,
            extra: parts,
            dtype,
            threads,
            prefetch,
            keep,
            then,
        };
        let ring = ring.map(|r| r.get().inner.clone());
        let inner = prefetch::Prefetcher::start(database.inner.clone(), ring, plan)
            .map_err(prefetch_err)?;
        Ok(Prefetcher { inner })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match py.allow_threads(|| self.inner.next()) {
            Ok(Some(batch)) => batch_array(py, batch.buffer, batch.dims, batch.dtype).map(Some),
            Ok(None) => Ok(None), // all batches delivered
            Err(e) => Err(prefetch_err(e)),
        }
    }

    /// Stops the background thread (after the batch it is assembling) and ends the iteration.
    fn close(&self) {
        self.inner.close();
    }
}
