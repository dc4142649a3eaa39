//! The cold read path: records that are not in the page cache are read whole, with `pread`
//! on an `O_DIRECT` descriptor of `data.mdb`, into staging buffers, many reads in flight,
//! instead of one 4 KiB page fault at a time through the memory map (and instead of the page
//! cache: a read through it costs the kernel more CPU than decoding the record costs rico).
//!
//! A loader's read-ahead ([`crate::read::batch::read_ahead`]) knows an epoch's keys in order; for
//! each it asks [`Stager::stage`]: a record whose pages are all resident (`mincore`) is left
//! to the zero-copy path; any other is read into a buffer of the [`Staging`] table, which the
//! batch assembly takes ([`Database::take_staged`]) instead of the map. The bytes are the
//! map's bytes (the same file, a committed snapshot), so a batch is the same either way;
//! anything unexpected (a short read, a damaged page header, no `O_DIRECT`) leaves the record
//! to the map, whose path reports it.
//!
//! The queue depth is measured over the first reads: the device's reads per second (reads in
//! flight over their latency) at each depth from 4 doubling up to [`MAX_DEPTH`] and half the
//! read-ahead's window of bytes; the deepest within 10% of the best is kept, for the
//! database's next epochs too.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::{lock, Database, OpenShard};
use crate::base::layout::DATA_FILE;

/// The most reads a stager keeps in flight.
pub const MAX_DEPTH: usize = 64;
/// The depth a stager starts probing at.
const FIRST_DEPTH: usize = 4;
/// Reads completed at each depth while probing, at least.
const PROBE_READS: u64 = 256;
/// Seconds at each depth while probing, at least.
const PROBE_SECONDS: f64 = 0.1;
/// `O_DIRECT` alignment of offsets, lengths and buffers.
const ALIGN: usize = 4096;
/// LMDB's page header, before an overflow value.
const PAGE_HEADER: usize = 16;
/// LMDB's overflow page flag.
const P_OVERFLOW: u16 = 0x04;

/// Which path records take: chosen per record by residency, unless a test forces one.
static FORCE: AtomicU8 = AtomicU8::new(0);

/// Forces the path every record takes from now on, in this process: `Some(true)` reads every
/// record through the cold path (resident or not), `Some(false)` none, `None` chooses per
/// record (the default). For tests that compare the paths' batches; not a setting.
#[doc(hidden)]
pub fn force_cold_path(cold: Option<bool>) {
    FORCE.store(
        match cold {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Ordering::SeqCst,
    );
}

/// A buffer aligned for `O_DIRECT`.
struct Block {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain owned memory.
unsafe impl Send for Block {}
// SAFETY: shared access only reads.
unsafe impl Sync for Block {}

impl Block {
    fn new(len: usize) -> Option<Block> {
        let len = len.max(ALIGN).next_multiple_of(ALIGN);
        let layout = std::alloc::Layout::from_size_align(len, ALIGN).ok()?;
        // SAFETY: a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        (!ptr.is_null()).then_some(Block { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes owned by this block; written by `pread` before being read (a
        // block is read only after its read succeeded, up to what it returned).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    #[allow(clippy::mut_from_ref)]
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, exclusively borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe {
            std::alloc::dealloc(
                self.ptr,
                std::alloc::Layout::from_size_align_unchecked(self.len, ALIGN),
            )
        };
    }
}

/// Blocks kept for reuse: a new block per read would fault its pages in on every read.
#[derive(Default)]
struct Blocks(Mutex<Vec<Block>>);

impl Blocks {
    fn get(&self, len: usize) -> Option<Block> {
        let mut free = lock(&self.0);
        if let Some(i) = free.iter().position(|b| b.len >= len) {
            return Some(free.swap_remove(i));
        }
        drop(free);
        Block::new(len)
    }

    fn put(&self, block: Block) {
        let mut free = lock(&self.0);
        if free.len() < 2 * MAX_DEPTH + 256 {
            free.push(block);
        }
    }
}

enum SlotState {
    Pending,
    /// The block, and where the value lies in it.
    Ready(Block, usize, usize),
    /// Left to the map.
    Failed,
}

/// One record being read (or read) into a staging buffer.
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

/// A record's bytes read by the cold path; its buffer goes back to the pool when dropped.
pub struct Staged {
    block: Option<Block>,
    start: usize,
    len: usize,
    blocks: Arc<Blocks>,
}

impl std::ops::Deref for Staged {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.block {
            Some(b) => &b.bytes()[self.start..self.start + self.len],
            None => &[],
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(b) = self.block.take() {
            self.blocks.put(b);
        }
    }
}

/// What the cold path did, for `rico bench` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColdStats {
    /// Records read whole by the cold path (not resident when their turn came).
    pub staged: u64,
    /// Records found resident and left to the zero-copy path.
    pub resident: u64,
    /// Records the cold path left to the map (a failed or short read, a damaged header).
    pub fallback: u64,
    /// The queue depth measured for this database (0: none measured yet).
    pub depth: usize,
    /// Reads per second at that depth, when measured.
    pub reads_per_second: u64,
    /// Whether `O_DIRECT` was refused (the reads then go through the page cache).
    pub buffered: bool,
}

/// A database's cold-path state: the records staged, and what it measured.
#[derive(Default)]
pub(crate) struct Staging {
    table: Mutex<HashMap<Vec<u8>, Arc<Slot>>>,
    /// Stagers running on this database: while one is, batches hint nothing themselves.
    pub(crate) active: AtomicUsize,
    blocks: Arc<Blocks>,
    staged: AtomicU64,
    resident: AtomicU64,
    fallback: AtomicU64,
    depth: AtomicUsize,
    rate: AtomicU64,
    buffered: AtomicU8,
}

impl Database {
    /// The record of `key` if the cold path read it: waits for its read to finish, and takes
    /// it from the table. `None`: read it from the map.
    pub fn take_staged(&self, key: &[u8]) -> Option<Staged> {
        let staging = &self.staging;
        if staging.active.load(Ordering::Acquire) == 0 && lock(&staging.table).is_empty() {
            return None;
        }
        let slot = lock(&staging.table).remove(key)?;
        let mut state = lock(&slot.state);
        while matches!(*state, SlotState::Pending) {
            state = slot.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        match std::mem::replace(&mut *state, SlotState::Failed) {
            SlotState::Ready(block, start, len) => Some(Staged {
                block: Some(block),
                start,
                len,
                blocks: staging.blocks.clone(),
            }),
            _ => None,
        }
    }

    /// What the cold path has done on this database so far.
    pub fn cold_stats(&self) -> ColdStats {
        let s = &self.staging;
        ColdStats {
            staged: s.staged.load(Ordering::Relaxed),
            resident: s.resident.load(Ordering::Relaxed),
            fallback: s.fallback.load(Ordering::Relaxed),
            depth: s.depth.load(Ordering::Relaxed),
            reads_per_second: s.rate.load(Ordering::Relaxed),
            buffered: s.buffered.load(Ordering::Relaxed) != 0,
        }
    }

    /// Where `key`'s value lies: its shard and its address in that shard's map. The overflow
    /// pages are not touched (LMDB computes the address from the page number).
    fn extent(&self, key: &[u8]) -> Option<(Arc<OpenShard>, usize, usize)> {
        if key.is_empty() || key.len() > crate::base::record::MAX_KEY_BYTES {
            return None;
        }
        for i in self.candidates(key) {
            let open = self.shard(i).ok()?;
            let found = open
                .snapshot
                .get(key)
                .ok()?
                .map(|v| (v.as_ptr() as usize, v.len()));
            if let Some((ptr, len)) = found {
                return Some((open, ptr, len));
            }
        }
        None
    }
}

/// Whether every page of `start..start + len` (a range of a live map) is in the page cache.
fn resident(start: usize, len: usize) -> bool {
    let page = ALIGN;
    let first = start / page * page;
    let pages = (start + len - first).div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: mincore writes one byte per page of the range into `vec` (of that many bytes);
    // it reads no memory. An unmapped range fails (ENOMEM): treated as not resident.
    let rc = unsafe { libc::mincore(first as *mut libc::c_void, pages * page, vec.as_mut_ptr()) };
    rc == 0 && vec.iter().all(|b| b & 1 == 1)
}

struct Job {
    file: Arc<File>,
    offset: u64,
    len: usize,
    /// Where the value starts in the read, its length, and its first page's number and the
    /// page size (for the overflow header check; `None`: no header to check).
    value: (usize, usize, Option<(u64, usize)>),
    slot: Arc<Slot>,
    /// When it was queued (for the depth probe's latencies).
    queued: Instant,
}

/// In-flight accounting shared by the issuing thread and the I/O threads.
struct Flight {
    count: Mutex<usize>,
    done: Condvar,
    completed: AtomicU64,
    /// Nanoseconds from queueing to completion, summed over completed reads.
    latency_ns: AtomicU64,
}

/// One read-ahead's cold path: I/O threads, each doing blocking `pread`s (a thread per read in
/// flight costs a context switch per record, no CPU while it waits), and the depth probe.
pub struct Stager {
    db: Arc<Database>,
    files: HashMap<PathBuf, Option<Arc<File>>>,
    jobs: Option<Sender<Job>>,
    queue: Arc<Mutex<Receiver<Job>>>,
    threads: Vec<JoinHandle<()>>,
    flight: Arc<Flight>,
    depth: usize,
    /// The bound of memory in flight, in reads of the last record's size.
    window_bytes: usize,
    probe: Option<Probe>,
    /// Keys this stager put in the table, to take out again if the loader never does.
    issued: Vec<(Vec<u8>, Arc<Slot>)>,
}

struct Probe {
    since: Instant,
    /// Completed reads and their summed latency when this depth's interval began.
    from: u64,
    latency_from: u64,
    /// Reads in flight, summed at each submission of this interval, and the submissions.
    in_flight: u64,
    submits: u64,
    /// (depth, reads/s) of each depth probed so far.
    seen: Vec<(usize, f64)>,
}

impl Stager {
    /// A stager for `db`, keeping at most `window_bytes` of records in flight.
    pub fn new(db: Arc<Database>, window_bytes: usize) -> Stager {
        let (jobs, queue) = channel();
        let measured = db.staging.depth.load(Ordering::Relaxed);
        db.staging.active.fetch_add(1, Ordering::AcqRel);
        Stager {
            db,
            files: HashMap::new(),
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            threads: Vec::new(),
            flight: Arc::new(Flight {
                count: Mutex::new(0),
                done: Condvar::new(),
                completed: AtomicU64::new(0),
                latency_ns: AtomicU64::new(0),
            }),
            depth: if measured > 0 { measured } else { FIRST_DEPTH },
            window_bytes,
            probe: (measured == 0).then(|| Probe {
                since: Instant::now(),
                from: 0,
                latency_from: 0,
                in_flight: 0,
                submits: 0,
                seen: Vec::new(),
            }),
            issued: Vec::new(),
        }
    }

    /// Reads `key`'s record into the staging table unless it is resident; returns its size
    /// (`None`: an unknown key, which the batch reports).
    pub fn stage(&mut self, key: &[u8]) -> Option<usize> {
        let (shard, ptr, len) = self.db.extent(key)?;
        let force = FORCE.load(Ordering::Relaxed);
        if force == 2 || (force == 0 && resident(ptr, len)) {
            self.db.staging.resident.fetch_add(1, Ordering::Relaxed);
            return Some(len);
        }
        let Some(offset) = ptr.checked_sub(shard.map) else {
            return Some(len);
        };
        let Some(file) = self.file(&shard) else {
            // No descriptor: the kernel reads the record ahead instead.
            self.db.will_need_key(key);
            return Some(len);
        };
        let start = offset / ALIGN * ALIGN;
        let end = (offset + len).next_multiple_of(ALIGN);
        let header = offset
            .checked_sub(PAGE_HEADER)
            .filter(|o| shard.page_size > 0 && o.is_multiple_of(shard.page_size))
            .map(|o| ((o / shard.page_size) as u64, shard.page_size));
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState::Pending),
            done: Condvar::new(),
        });
        {
            let mut table = lock(&self.db.staging.table);
            if table.contains_key(key) {
                return Some(len); // already on its way (a key twice in an epoch)
            }
            table.insert(key.to_vec(), slot.clone());
        }
        if self.issued.len() >= 1024 && self.issued.len().is_power_of_two() {
            // Records taken and read: nothing left to forget.
            self.issued.retain(|(_, s)| Arc::strong_count(s) > 1);
        }
        self.issued.push((key.to_vec(), slot.clone()));
        self.wait_for_room(end - start);
        if self.threads.len() < self.depth {
            self.spawn();
        }
        if self.threads.is_empty() {
            // No I/O thread could start: the record is left to the map.
            finish(&slot, SlotState::Failed);
            return Some(len);
        }
        let job = Job {
            file,
            offset: start as u64,
            len: end - start,
            value: (offset - start, len, header),
            slot,
            queued: Instant::now(),
        };
        let in_flight = {
            let mut count = lock(&self.flight.count);
            *count += 1;
            *count
        };
        if let Some(probe) = &mut self.probe {
            probe.in_flight += in_flight as u64;
            probe.submits += 1;
        }
        if let Some(jobs) = &self.jobs {
            if let Err(e) = jobs.send(job) {
                // No I/O thread left: the record is left to the map.
                finish(&e.0.slot, SlotState::Failed);
                *lock(&self.flight.count) -= 1;
            }
        }
        Some(len)
    }

    /// Takes out of the table the records staged before the `keep` newest that the loader
    /// did not take (it passed them: a key twice in an epoch, say), freeing their buffers.
    pub fn forget_passed(&mut self, passed: impl Fn(&[u8]) -> bool) {
        let mut table = lock(&self.db.staging.table);
        self.issued.retain(|(key, slot)| {
            if !passed(key) {
                return true;
            }
            if table.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                table.remove(key);
            }
            false
        });
    }

    /// Waits until fewer than `depth` reads are in flight (and, probing, measures).
    fn wait_for_room(&mut self, bytes: usize) {
        let bound = (self.window_bytes / 2 / bytes.max(1)).clamp(1, MAX_DEPTH);
        let flight = self.flight.clone();
        let mut count = lock(&flight.count);
        loop {
            self.probe_step(bound);
            let depth = self.depth.min(bound);
            if *count < depth {
                return;
            }
            count = flight.done.wait(count).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// One step of the depth probe: after [`PROBE_READS`] reads (and [`PROBE_SECONDS`]) at a
    /// depth, the device's rate at that depth by Little's law (reads in flight over their
    /// mean latency: what the device serves, whether or not the loader kept the queue full
    /// meanwhile). Every depth from [`FIRST_DEPTH`] doubling up to `bound` is measured; the
    /// depth kept is the deepest whose rate is within 10% of the best (a shared disk's rate
    /// varies that much from one tenth of a second to the next, and a deeper queue costs only
    /// buffers, within the bound on memory in flight).
    fn probe_step(&mut self, bound: usize) {
        let Some(probe) = &mut self.probe else { return };
        let completed = self.flight.completed.load(Ordering::Acquire);
        let latency = self.flight.latency_ns.load(Ordering::Acquire);
        let elapsed = probe.since.elapsed().as_secs_f64();
        if completed < probe.from + PROBE_READS || elapsed < PROBE_SECONDS || probe.submits == 0 {
            return;
        }
        let mean_latency =
            (latency - probe.latency_from) as f64 / 1e9 / (completed - probe.from) as f64;
        let in_flight = probe.in_flight as f64 / probe.submits as f64;
        probe
            .seen
            .push((self.depth, in_flight / mean_latency.max(1e-9)));
        if self.depth * 2 <= bound.min(MAX_DEPTH) {
            self.depth *= 2;
            probe.from = completed;
            probe.latency_from = latency;
            probe.in_flight = 0;
            probe.submits = 0;
            probe.since = Instant::now();
            return;
        }
        let best = probe.seen.iter().map(|s| s.1).fold(0.0, f64::max);
        let settled = probe
            .seen
            .iter()
            .rev()
            .find(|s| s.1 >= best * 0.9)
            .copied()
            .unwrap_or((self.depth, best));
        self.depth = settled.0;
        self.probe = None;
        let staging = &self.db.staging;
        staging.depth.store(settled.0, Ordering::Relaxed);
        staging.rate.store(settled.1 as u64, Ordering::Relaxed);
    }

    fn spawn(&mut self) {
        let queue = self.queue.clone();
        let flight = self.flight.clone();
        let staging = self.db.clone();
        let spawned = std::thread::Builder::new()
            .name("rico-cold-read".into())
            .stack_size(64 << 10)
            .spawn(move || loop {
                let job = match lock(&queue).recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                let queued = job.queued;
                read(&staging.staging, job);
                let nanos = queued.elapsed().as_nanos().min(u64::MAX as u128) as u64;
                flight.latency_ns.fetch_add(nanos, Ordering::AcqRel);
                flight.completed.fetch_add(1, Ordering::AcqRel);
                *lock(&flight.count) -= 1;
                flight.done.notify_all();
            });
        if let Ok(handle) = spawned {
            self.threads.push(handle);
        }
    }

    /// An `O_DIRECT` descriptor of the shard's data file (a buffered one where the
    /// filesystem has no `O_DIRECT`); `None` where it cannot be opened.
    fn file(&mut self, shard: &OpenShard) -> Option<Arc<File>> {
        let staging = &self.db.staging;
        self.files
            .entry(shard.path.clone())
            .or_insert_with(|| {
                use std::os::unix::fs::OpenOptionsExt;
                let path = shard.path.join(DATA_FILE);
                let direct = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(&path);
                let file = direct.or_else(|_| {
                    staging.buffered.store(1, Ordering::Relaxed);
                    File::open(&path)
                });
                file.ok().map(Arc::new)
            })
            .clone()
    }
}

impl Drop for Stager {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.db.staging.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Stager {
    /// Ends the stager, taking out of the table every record it staged that the loader did
    /// not take (the read-ahead stopped early).
    pub fn forget_all(&mut self) {
        self.forget_passed(|_| true);
    }
}

fn finish(slot: &Slot, state: SlotState) {
    *lock(&slot.state) = state;
    slot.done.notify_all();
}

/// One read: the block filled, its overflow header checked, the slot set.
fn read(staging: &Staging, job: Job) {
    let (start, len, pgno) = job.value;
    let state = match staging.blocks.get(job.len) {
        None => None,
        Some(mut block) => {
            let buf = &mut block.bytes_mut()[..job.len];
            let mut got = 0;
            let ok = loop {
                match job.file.read_at(&mut buf[got..], job.offset + got as u64) {
                    Ok(0) => break got >= start + len,
                    Ok(n) => {
                        got += n;
                        if got >= start + len {
                            break true;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break false,
                }
            };
            let header_ok = match pgno {
                None => true,
                Some((pgno, psize)) => {
                    start >= PAGE_HEADER && {
                        let h = &buf[start - PAGE_HEADER..start];
                        let count = (PAGE_HEADER + len).div_ceil(psize) as u32;
                        u64::from_le_bytes(h[0..8].try_into().unwrap_or_default()) == pgno
                            && u16::from_le_bytes([h[10], h[11]]) == P_OVERFLOW
                            && u32::from_le_bytes(h[12..16].try_into().unwrap_or_default()) >= count
                    }
                }
            };
            if ok && header_ok {
                Some(SlotState::Ready(block, start, len))
            } else {
                staging.blocks.put(block);
                None
            }
        }
    };
    match state {
        Some(s) => {
            staging.staged.fetch_add(1, Ordering::Relaxed);
            finish(&job.slot, s);
        }
        None => {
            staging.fallback.fetch_add(1, Ordering::Relaxed);
            finish(&job.slot, SlotState::Failed);
        }
    }
}
