//! Batch memory: aligned, reusable buffers.
//!
//! A fresh multi-megabyte allocation per batch costs more than assembling the batch: the
//! allocator maps new pages and every one of them faults in on first write. Buffers here are
//! allocated once (64-byte aligned, so that DLPack consumers such as JAX share them without a
//! copy; on 2 MiB boundaries with transparent huge pages asked for when large) and reused.

use std::alloc::Layout;
use std::sync::Arc;

use crate::base::error::{Error, Result};

/// Alignment every batch has at least: what JAX and XLA require to share memory.
pub const ALIGN: usize = 64;
/// Buffers of at least this size are aligned to it and backed by huge pages where the
/// kernel allows (one fault per 2 MiB instead of per 4 KiB).
const HUGE: usize = 2 << 20;

/// A block of memory of fixed size and alignment, freed on drop. Its contents are plain bytes
/// that may be uninitialised until a batch is written into them.
pub struct AlignedBuffer {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the buffer is a plain allocation; who writes when is ruled by its users (the loader
// hands a buffer to one producer at a time).
unsafe impl Send for AlignedBuffer {}
// SAFETY: `&AlignedBuffer` gives out only its length and raw pointer; writing through them
// (`slots`, `as_ptr`) is unsafe and its callers keep each byte range to one writer at a time.
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// Allocates `bytes` bytes (at least 1), uninitialised.
    pub fn new(bytes: usize) -> Result<Arc<AlignedBuffer>> {
        let bytes = bytes.max(1);
        let align = if bytes >= HUGE { HUGE } else { ALIGN };
        let too_large = || Error::usage(format!("a batch of {bytes} bytes is too large"));
        let layout = Layout::from_size_align(bytes.next_multiple_of(align), align)
            .map_err(|_| too_large())?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            return Err(Error::output(format!(
                "cannot allocate a batch of {bytes} bytes"
            )));
        }
        if align == HUGE {
            // SAFETY: the range is this allocation, 2 MiB aligned; madvise only sets a hint
            // (it fails harmlessly where huge pages are off).
            unsafe {
                libc::madvise(ptr.cast(), layout.size(), libc::MADV_HUGEPAGE);
            }
        }
        Ok(Arc::new(AlignedBuffer { ptr, layout }))
    }

    /// Size in bytes: the requested size rounded up to the alignment (never 0).
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Always `false`: a buffer holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The start of the memory, aligned to at least [`ALIGN`].
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The first `n` slots of type `T`, to be written.
    ///
    /// # Safety
    /// `n * size_of::<T>()` must fit in the buffer, `T`'s alignment must divide [`ALIGN`], and
    /// nothing else may read or write those bytes while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slots<T>(&self, n: usize) -> &mut [std::mem::MaybeUninit<T>] {
        debug_assert!(n * std::mem::size_of::<T>() <= self.len());
        std::slice::from_raw_parts_mut(self.ptr.cast(), n)
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_sized() {
        for bytes in [1, 63, 64, 1000, HUGE - 1, HUGE, 3 * HUGE + 5] {
            let b = AlignedBuffer::new(bytes).unwrap();
            assert_eq!(b.as_ptr() as usize % ALIGN, 0, "{bytes}");
            assert!(b.len() >= bytes);
            // Every byte is writable.
            // SAFETY: `b.len()` bytes from `as_ptr` are this one allocation, used by nobody else.
            unsafe { std::ptr::write_bytes(b.as_ptr(), 7, b.len()) };
        }
    }
}
