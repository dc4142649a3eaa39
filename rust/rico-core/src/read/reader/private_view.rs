//! Records handed out as copy-on-write private mappings of `data.mdb`.
//!
//! LMDB maps the database read-only, and a write into that map (a tensor made from a view and
//! changed in place) kills the process. Each record handed to Python gets instead its own
//! `MAP_PRIVATE`, `PROT_READ | PROT_WRITE` mapping of the same file bytes: reading it shares
//! the page cache as LMDB's map does, and a write copies only the page it touches, into memory
//! of that record alone. A later read of the same key gets a fresh mapping, with the stored
//! values.

use std::sync::OnceLock;

use crate::base::buffer::AlignedBuffer;
use crate::base::lmdb::Env;

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize)
}

enum Memory {
    /// `len` bytes mapped at `base`, registered with the SIGBUS handler (a page past the end
    /// of a file that shrank reads zeros and marks the environment damaged).
    Mapped {
        base: *mut u8,
        len: usize,
        watch: Option<crate::base::fault::Watch>,
    },
    /// Where no mapping could be made (the process's mapping count is exhausted): a copy.
    Copied(std::sync::Arc<AlignedBuffer>),
}

/// The bytes of one record value, writable and private to this object.
pub struct PrivateRecord {
    memory: Memory,
    /// Offset of the value in `memory`.
    start: usize,
    len: usize,
}

// SAFETY: the memory is owned by this object alone and freed on drop.
unsafe impl Send for PrivateRecord {}
// SAFETY: `&PrivateRecord` only reads its fields and hands out a raw pointer; writing through
// that pointer is unsafe, and keeping it to one writer at a time is the caller's part.
unsafe impl Sync for PrivateRecord {}

impl PrivateRecord {
    /// A private mapping of `value`, a value LMDB returned from `env`'s map, which starts at
    /// address `map_addr`.
    pub fn new(env: &Env, map_addr: usize, value: &[u8]) -> PrivateRecord {
        Self::map(env, map_addr, value).unwrap_or_else(|| Self::copy(value))
    }

    fn map(env: &Env, map_addr: usize, value: &[u8]) -> Option<PrivateRecord> {
        if value.is_empty() || map_addr == 0 {
            return None;
        }
        let fd = env.data_fd().ok()?;
        let offset = (value.as_ptr() as usize).checked_sub(map_addr)?;
        let aligned = offset - offset % page_size();
        let start = offset - aligned;
        let len = start + value.len();
        // SAFETY: a new private mapping of bytes of data.mdb that LMDB itself maps (the file
        // was checked at open to hold every page the meta page names, so no page lies past
        // its end); it is unmapped only on drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                fd,
                aligned as libc::off_t,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let Some(watch) =
            crate::base::fault::watch(base as usize, len, true, env.damage_flag(), false)
        else {
            // No room to register it: a copy, read through LMDB's map, which is registered.
            // SAFETY: the mapping just made, unmapped once.
            unsafe { libc::munmap(base, len) };
            return None;
        };
        // No readahead hint: unlike LMDB's map (MADV_RANDOM), this mapping has the kernel's
        // default readahead, so a cold record's first fault reads on past its first page;
        // a madvise per record cost ~1 us on a warm cache for nothing.
        Some(PrivateRecord {
            memory: Memory::Mapped {
                base: base.cast(),
                len,
                watch: Some(watch),
            },
            start,
            len: value.len(),
        })
    }

    fn copy(value: &[u8]) -> PrivateRecord {
        let buffer = AlignedBuffer::new(value.len())
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<u8>()));
        // SAFETY: the buffer is new and at least value.len() bytes long.
        unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), buffer.as_ptr(), value.len()) };
        PrivateRecord {
            memory: Memory::Copied(buffer),
            start: 0,
            len: value.len(),
        }
    }

    /// Address of the value's first byte: writable, `len()` bytes.
    pub fn as_ptr(&self) -> *mut u8 {
        let base = match &self.memory {
            Memory::Mapped { base, .. } => *base,
            Memory::Copied(b) => b.as_ptr(),
        };
        // SAFETY: start lies inside the memory.
        unsafe { base.add(self.start) }
    }

    /// Bytes of the value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the value has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the value is a private mapping (false: a copy).
    pub fn is_mapped(&self) -> bool {
        matches!(self.memory, Memory::Mapped { .. })
    }
}

impl Drop for PrivateRecord {
    fn drop(&mut self) {
        if let Memory::Mapped { base, len, watch } = &mut self.memory {
            // Unregistered before it is unmapped (the address may be reused at once).
            drop(watch.take());
            // SAFETY: the mapping made in `map`, unmapped once.
            unsafe { libc::munmap(base.cast(), *len) };
        }
    }
}
