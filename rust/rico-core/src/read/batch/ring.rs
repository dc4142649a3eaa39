//! The reusable memory of a loader's batches: a ring of buffers handed out in turn.
//!
//! A new multi-megabyte block per batch is what made large batches slow (fresh pages, each
//! faulted in); a ring is allocated once and reused across epochs, so that the steady state
//! touches only pages already mapped. Which slot holds what is ruled by the
//! [`Prefetcher`](super::prefetch::Prefetcher)s that fill it, one at a time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::base::buffer::AlignedBuffer;
use crate::base::error::{Error, Result};

/// The most slots (whole batches held in memory) a [`BatchRing`] may have.
pub const MAX_RING_SLOTS: usize = 4096;

/// `slots` buffers, each (re)allocated to the size of the largest batch it has held.
pub struct BatchRing {
    slots: Mutex<Vec<Option<Arc<AlignedBuffer>>>>,
    /// Slots of the batches yielded and still valid, oldest first. Kept here, not in an
    /// iteration, so that the last batches of an epoch stay valid into the next one.
    held: Mutex<VecDeque<usize>>,
    /// Held by the one thread filling slots: a new epoch's thread waits for the last one.
    producer: Mutex<()>,
}

/// Locks `m`, whatever a panicking holder left behind (the data are slot numbers and buffers,
/// valid at every step).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BatchRing {
    /// A ring of `slots` buffers, none allocated yet; `slots` is 2 to [`MAX_RING_SLOTS`] (a
    /// usage error otherwise).
    pub fn new(slots: usize) -> Result<BatchRing> {
        if slots < 2 {
            return Err(Error::usage("a batch ring needs at least 2 slots"));
        }
        if slots > MAX_RING_SLOTS {
            return Err(Error::usage(format!(
                "a batch ring holds at most {MAX_RING_SLOTS} batches (keep + 1 + prefetch), not {slots}"
            )));
        }
        Ok(BatchRing {
            slots: Mutex::new(vec![None; slots]),
            held: Mutex::new(VecDeque::new()),
            producer: Mutex::new(()),
        })
    }

    /// The number of slots.
    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    /// Always `false`: a ring has at least 2 slots.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Slot `i`'s buffer, (re)allocated if smaller than `bytes`. Arrays still viewing a
    /// replaced block keep it alive; the ring takes a new one.
    ///
    /// # Panics
    /// If `i` is not below [`BatchRing::len`].
    pub fn slot(&self, i: usize, bytes: usize) -> Result<Arc<AlignedBuffer>> {
        let mut slots = lock(&self.slots);
        match &slots[i] {
            Some(b) if b.len() >= bytes => Ok(b.clone()),
            _ => {
                let b = AlignedBuffer::new(bytes)?;
                slots[i] = Some(b.clone());
                Ok(b)
            }
        }
    }

    /// The slots of the batches yielded and still valid, oldest first.
    pub(super) fn held(&self) -> MutexGuard<'_, VecDeque<usize>> {
        lock(&self.held)
    }

    /// Waits until no other thread fills slots, and keeps the others out while the guard lives.
    pub(super) fn producing(&self) -> MutexGuard<'_, ()> {
        lock(&self.producer)
    }

    /// Whether a thread is filling slots now.
    #[cfg(test)]
    pub(super) fn is_producing(&self) -> bool {
        self.producer.try_lock().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_counts_out_of_range_are_refused() {
        for slots in [0, 1, MAX_RING_SLOTS + 1] {
            let err = BatchRing::new(slots).err().expect("refused");
            assert_eq!(err.kind, crate::ErrorKind::Usage, "{slots}");
        }
        assert_eq!(BatchRing::new(2).unwrap().len(), 2);
        assert_eq!(
            BatchRing::new(MAX_RING_SLOTS).unwrap().len(),
            MAX_RING_SLOTS
        );
    }

    #[test]
    fn a_slot_is_reused_until_a_batch_outgrows_it() {
        let ring = BatchRing::new(3).unwrap();
        let a = ring.slot(0, 1000).unwrap();
        // As large or smaller: the same block.
        assert!(Arc::ptr_eq(&a, &ring.slot(0, 1000).unwrap()));
        assert!(Arc::ptr_eq(&a, &ring.slot(0, 10).unwrap()));
        // Another slot: another block.
        let b = ring.slot(1, 1000).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        // Larger: a new block, kept from then on; the old one lives while it is viewed.
        let c = ring.slot(0, 1 << 20).unwrap();
        assert!(!Arc::ptr_eq(&a, &c) && c.len() >= 1 << 20);
        assert!(a.len() >= 1000);
        assert!(Arc::ptr_eq(&c, &ring.slot(0, 1000).unwrap()));
    }
}
