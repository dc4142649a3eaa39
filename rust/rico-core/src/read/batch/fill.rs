//! Batches assembled into aligned buffers ([`AlignedBuffer`]): a new block per batch
//! ([`assemble_new`]), or a reused one, such as a slot of a [`BatchRing`](super::ring::BatchRing)
//! ([`fill_buffer`]), with the channels of several parts (records of the same samples) side by
//! side.

use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::base::buffer::AlignedBuffer;
use crate::base::error::{Error, Result};
use crate::read::reader::Database;

use super::{assemble_samples, assemble_uninit, BatchSpec, Sample};

/// The most bytes a batch may take: larger ones are refused before any allocation.
const MAX_BATCH_BYTES: usize = 1 << 40;

/// The element type of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchDtype {
    /// `float32`.
    F32,
    /// `float64`.
    F64,
}

impl BatchDtype {
    /// Parses numpy's name of the type: `"float32"` or `"float64"`; any other name is a usage
    /// error.
    pub fn parse(name: &str) -> Result<BatchDtype> {
        match name {
            "float32" => Ok(BatchDtype::F32),
            "float64" => Ok(BatchDtype::F64),
            other => Err(Error::usage(format!(
                "dtype {other:?} is not supported for batches; use \"float32\" or \"float64\""
            ))),
        }
    }

    /// Bytes of one element.
    pub fn item_bytes(self) -> usize {
        match self {
            BatchDtype::F32 => 4,
            BatchDtype::F64 => 8,
        }
    }
}

/// Elements of a batch of `dims` with elements of `item` bytes, refusing sizes no machine can
/// hold (over 1 TiB) instead of a panic or an abort in the allocator.
pub fn batch_len(dims: [usize; 4], item: usize) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(item).is_some_and(|b| b <= MAX_BATCH_BYTES))
        .ok_or_else(|| {
            Error::usage(format!(
                "a batch of shape {dims:?} is too large (over 1 TiB); use fewer keys or a smaller size"
            ))
        })
}

/// The batch of `keys` (`dims` = records x bands x H x W) assembled into a new aligned buffer,
/// left uninitialised until written (zeroing it would cost a large share of the assembly).
pub fn assemble_new(
    db: &Database,
    keys: &[Vec<u8>],
    spec: &BatchSpec,
    dims: [usize; 4],
    dtype: BatchDtype,
    threads: Option<usize>,
) -> Result<Arc<AlignedBuffer>> {
    let n = batch_len(dims, dtype.item_bytes())?;
    let buffer = AlignedBuffer::new(n * dtype.item_bytes())?;
    fill_buffer(db, &[(keys, spec)], dims, dtype, threads, &buffer)?;
    Ok(buffer)
}

/// Assembles a batch of `dims` into the start of `buffer`, which nothing else may read or write
/// meanwhile. Each part is `(keys, spec)`: the parts' keys name records of the same samples
/// (one key per sample each), and their bands fill each sample's channels in turn, so that
/// `dims[1]` is the parts' band count together. On `Ok` the batch's bytes are all written.
pub fn fill_buffer(
    db: &Database,
    parts: &[(&[Vec<u8>], &BatchSpec)],
    dims: [usize; 4],
    dtype: BatchDtype,
    threads: Option<usize>,
    buffer: &AlignedBuffer,
) -> Result<()> {
    match dtype {
        BatchDtype::F32 => fill::<f32>(db, parts, dims, threads, buffer),
        BatchDtype::F64 => fill::<f64>(db, parts, dims, threads, buffer),
    }
}

/// [`fill_buffer`] with elements of `T`.
fn fill<T: Sample>(
    db: &Database,
    parts: &[(&[Vec<u8>], &BatchSpec)],
    dims: [usize; 4],
    threads: Option<usize>,
    buffer: &AlignedBuffer,
) -> Result<()> {
    let n = batch_len(dims, std::mem::size_of::<T>())?;
    if n * std::mem::size_of::<T>() > buffer.len() {
        return Err(Error::usage("batch buffer too small"));
    }
    // SAFETY: n elements of T fit (checked above), f32/f64 alignment divides the buffer's,
    // and the buffer is written by this call alone (the caller's promise: the loader hands a
    // slot to one producer).
    let slots = unsafe { buffer.slots::<T>(n) };
    let [records, channels, h, w] = dims;
    if let [(keys, spec)] = parts {
        return assemble_uninit(db, keys, spec, (h, w), slots, threads);
    }
    // Several parts (e.g. a patch's S2 and S1 records): each fills its run of every sample's
    // channels, in order. Split each sample at the runs' ends: disjoint slices, one per part.
    let plane = h * w;
    if records * channels * plane == 0 {
        return Ok(());
    }
    let mut per_part: Vec<Vec<&mut [MaybeUninit<T>]>> =
        parts.iter().map(|_| Vec::with_capacity(records)).collect();
    for mut sample in slots.chunks_mut(channels * plane) {
        for (p, (_, spec)) in parts.iter().enumerate() {
            let (run, rest) = std::mem::take(&mut sample).split_at_mut(spec.bands.len() * plane);
            per_part[p].push(run);
            sample = rest;
        }
    }
    for ((keys, spec), samples) in parts.iter().zip(per_part) {
        assemble_samples(db, keys, spec, (h, w), samples, threads)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names() {
        assert_eq!(BatchDtype::parse("float32").unwrap(), BatchDtype::F32);
        assert_eq!(BatchDtype::parse("float64").unwrap().item_bytes(), 8);
        let err = BatchDtype::parse("int8").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Usage);
        assert!(err.message.contains("\"int8\""), "{}", err.message);
    }

    #[test]
    fn batch_len_refuses_what_no_machine_holds() {
        assert_eq!(batch_len([2, 3, 4, 5], 4).unwrap(), 120);
        assert_eq!(batch_len([0, 3, 4, 5], 8).unwrap(), 0);
        assert!(batch_len([1 << 20, 1 << 20, 1, 1], 4).is_err());
        assert!(batch_len([usize::MAX, 2, 1, 1], 1).is_err());
    }
}
