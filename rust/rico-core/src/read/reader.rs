//! Reading records back: an LMDB snapshot shared by everything that points into its memory
//! map, and strict validation of each record's safetensors header before any view is made.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use safetensors::tensor::{Dtype, SafeTensors};

use crate::base::error::{Error, Result};

/// One tensor of a record, validated: `start..end` lies inside the record's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    /// The band's name (the tensor's name in the safetensors header).
    pub name: String,
    /// Its safetensors dtype.
    pub dtype: Dtype,
    /// Its shape (two dimensions for every record rico writes).
    pub shape: Vec<usize>,
    /// Start of the byte range within the value.
    pub start: usize,
    /// End of the byte range within the value (exclusive).
    pub end: usize,
}

mod fast_header;
mod private_view;
mod shards;
mod staging;
mod tree_check;
pub use private_view::PrivateRecord;
pub use staging::{force_cold_path, ColdStats, Staged, Stager, MAX_DEPTH};

/// Parses and validates the safetensors header of `value` (key for messages): offsets inside
/// the value, contiguous and non-overlapping, sizes equal to dtype x shape, known dtypes.
/// Tensors come back in the header's (name) order.
pub fn parse_record(key: &[u8], value: &[u8]) -> Result<Vec<TensorRef>> {
    // The plain headers rico and safetensors write take a parser several times faster than
    // serde's, with the same checks; anything else, valid or not, goes to safetensors' own.
    if let Some(tensors) = fast_header::parse(value) {
        return Ok(tensors);
    }
    parse_record_serde(key, value)
}

/// [`parse_record`] through `SafeTensors::read_metadata`: every header, and the error messages.
fn parse_record_serde(key: &[u8], value: &[u8]) -> Result<Vec<TensorRef>> {
    let corrupt = |what: String| {
        Error::data(format!(
            "record {:?} is not a valid safetensors buffer: {what}",
            String::from_utf8_lossy(key)
        ))
        .hint("the database is damaged or was not written by rico/rico-hdl; re-run the conversion")
    };
    let (header_len, metadata) =
        SafeTensors::read_metadata(value).map_err(|e| corrupt(e.to_string()))?;
    let data_start = 8 + header_len;
    let mut names = metadata.offset_keys();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let info = metadata
            .info(&name)
            .ok_or_else(|| corrupt(format!("tensor {name} vanished")))?;
        let (s, e) = info.data_offsets;
        let start = data_start
            .checked_add(s)
            .ok_or_else(|| corrupt("offset overflow".into()))?;
        let end = data_start
            .checked_add(e)
            .ok_or_else(|| corrupt("offset overflow".into()))?;
        // read_metadata already proved this; a second check costs nothing and guards the views.
        if start > end || end > value.len() {
            return Err(corrupt(format!("tensor {name} lies outside the value")));
        }
        out.push(TensorRef {
            name,
            dtype: info.dtype,
            shape: info.shape.clone(),
            start,
            end,
        });
    }
    Ok(out)
}

use shards::{
    changed, descriptor_budget, file_stamp, lmdb_read_err, open_env, open_shard, OpenShard,
};
pub use shards::{damaged, manifest_shards, Shard, Shards, MANIFEST};

/// A record's value in a shard's memory map. It keeps that shard open while it lives, so that
/// the bytes stay mapped (a shard that takes turns with others is not closed under it).
pub struct Value<'db> {
    ptr: *const u8,
    len: usize,
    /// The shard, when it may be closed once this value is dropped (`None`: pinned for the
    /// database's life, which `'db` outlives this value).
    _shard: Option<Arc<OpenShard>>,
    _db: std::marker::PhantomData<&'db [u8]>,
}

// SAFETY: the bytes are read-only memory of a map that stays valid while the value lives (the
// database is borrowed for `'db`, or the shard is held); reading them from any thread is sound.
unsafe impl Send for Value<'_> {}
// SAFETY: as for Send: shared access only reads.
unsafe impl Sync for Value<'_> {}

impl<'db> Value<'db> {
    fn pinned(bytes: &'db [u8]) -> Value<'db> {
        Value {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            _shard: None,
            _db: std::marker::PhantomData,
        }
    }
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a value LMDB returned from a map that stays mapped while
        // this value lives (see the type's doc).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsRef<[u8]> for Value<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// A database opened for reading: one LMDB directory, or a sharded dataset (a directory with
/// `rico-manifest.json` and one LMDB directory per shard) that behaves as one.
pub struct Database {
    path: PathBuf,
    shards: Arc<Shards>,
    sharded: bool,
    /// How many shards may be open at once (all of them, unless `ulimit -n` is too low).
    budget: usize,
    /// Held while a shard is opened, or closed to make room.
    turns: Mutex<()>,
    /// The clock of [`Shard::used`].
    tick: AtomicU64,
    /// The cold read path's records and measures (`staging`).
    staging: staging::Staging,
}

impl Database {
    /// Opens the database at `path` read-only, at its latest committed state.
    ///
    /// Every shard is opened once here: its key range, record count and B-tree are checked
    /// before any read. When `ulimit -n` cannot hold all of a sharded database's environments
    /// at once (two descriptors each), shards take turns: one is opened when a read needs it,
    /// and the one used least recently, with no value of it still in use, is closed to make
    /// room.
    pub fn open(path: &Path) -> Result<Database> {
        let (paths, sharded) = if path.join(MANIFEST).is_file() {
            (manifest_shards(path)?, true)
        } else {
            (vec![path.to_path_buf()], false)
        };
        let budget = if sharded {
            descriptor_budget(path, paths.len())?
        } else {
            1
        };
        let mut shards = Vec::with_capacity(paths.len());
        let mut open = std::collections::VecDeque::new();
        for p in &paths {
            let (shard, env) = open_shard(p)?;
            if budget >= paths.len() {
                let _ = shard.pinned.set(env);
            } else {
                // The last ones opened stay open, within the budget.
                if open.len() == budget {
                    open.pop_front();
                }
                open.push_back((shards.len(), env));
            }
            shards.push(shard);
        }
        for (i, env) in open {
            shards[i].used.store(i as u64, Ordering::Relaxed);
            *lock(&shards[i].open) = Some(env);
        }
        Ok(Database {
            path: path.to_path_buf(),
            shards: Arc::new(Shards(shards)),
            sharded,
            budget,
            turns: Mutex::new(()),
            tick: AtomicU64::new(paths.len() as u64),
            staging: Default::default(),
        })
    }

    /// The directory given to [`Database::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True for a sharded dataset.
    pub fn is_sharded(&self) -> bool {
        self.sharded
    }

    /// The shards, in order: their paths, key ranges and record counts.
    pub fn shards(&self) -> &Arc<Shards> {
        &self.shards
    }

    /// How many shards may be open at once: all of them, unless `ulimit -n` is too low.
    pub fn open_shards_at_most(&self) -> usize {
        self.budget
    }

    /// Shard `i`'s environment, opened if it is not (closing the least recently used one that
    /// nothing holds, when the budget is spent).
    fn shard(&self, i: usize) -> Result<Arc<OpenShard>> {
        let shard = &self.shards.0[i];
        if let Some(open) = shard.pinned.get() {
            return Ok(open.clone());
        }
        shard
            .used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        if let Some(open) = lock(&shard.open).as_ref() {
            return Ok(open.clone());
        }
        let _turn = lock(&self.turns);
        if let Some(open) = lock(&shard.open).as_ref() {
            return Ok(open.clone()); // opened by another thread meanwhile
        }
        // The shard was checked and counted when the database was opened: a data file
        // replaced or rewritten since is not what was checked, and its key ranges may not hold.
        if file_stamp(&shard.path) != shard.stamp {
            return Err(changed(&shard.path));
        }
        self.make_room();
        let open = Arc::new(open_env(&shard.path, &shard.checked)?);
        let records = open
            .snapshot
            .len()
            .map_err(|e| lmdb_read_err(&shard.path, e))?;
        if records != shard.records {
            return Err(changed(&shard.path));
        }
        *lock(&shard.open) = Some(open.clone());
        Ok(open)
    }

    /// Closes open shards, least recently used first, until one more fits in the budget. A
    /// shard whose values are still held stays open (then the budget is overrun, and opening
    /// one more may fail with a clear "too many open files").
    fn make_room(&self) {
        loop {
            let mut count = 0;
            let mut oldest: Option<(u64, usize)> = None;
            for (i, shard) in self.shards.0.iter().enumerate() {
                if let Some(open) = lock(&shard.open).as_ref() {
                    count += 1;
                    let used = shard.used.load(Ordering::Relaxed);
                    if Arc::strong_count(open) == 1 && oldest.is_none_or(|(u, _)| used < u) {
                        oldest = Some((used, i));
                    }
                }
            }
            if count < self.budget {
                return;
            }
            let Some((_, i)) = oldest else {
                return;
            };
            let mut slot = lock(&self.shards.0[i].open);
            // Taken only while still unheld (a reader clones under this same lock).
            if slot
                .as_ref()
                .is_some_and(|open| Arc::strong_count(open) == 1)
            {
                let closed = slot.take();
                drop(slot);
                drop(closed);
            }
        }
    }

    /// Number of records.
    pub fn len(&self) -> Result<u64> {
        Ok(self.shards.0.iter().map(|s| s.records).sum())
    }

    /// True when the database holds no record.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fails when a read of any shard met a page of its file that no longer exists (the file
    /// shrank under this process, and that read saw zeros). Reads check their own shard; a
    /// caller that goes on reading a value after [`Database::get`] returned it (a batch copying
    /// pixels) checks here once it is done.
    #[inline]
    pub fn check_intact(&self) -> Result<()> {
        if crate::base::fault::any() {
            for shard in &self.shards.0 {
                if let Some(open) = shard.pinned.get() {
                    open.intact()?;
                } else if let Some(open) = lock(&shard.open).as_ref() {
                    open.intact()?;
                }
            }
        }
        Ok(())
    }

    /// The shards whose key range holds `key` (shards are cut by source order, so key ranges
    /// may overlap: every candidate is tried).
    fn candidates<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
        self.shards.0.iter().enumerate().filter_map(move |(i, s)| {
            (!self.sharded || (s.first.as_slice() <= key && key <= s.last.as_slice())).then_some(i)
        })
    }

    /// The raw value of `key`, from the shard whose key range holds it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'_>>> {
        for i in self.candidates(key) {
            if let Some(open) = self.shards.0[i].pinned.get() {
                if let Some(v) = open.get(key)? {
                    return Ok(Some(Value::pinned(v)));
                }
                continue;
            }
            let open = self.shard(i)?;
            let found = open.get(key)?.map(|v| (v.as_ptr(), v.len()));
            if let Some((ptr, len)) = found {
                return Ok(Some(Value {
                    ptr,
                    len,
                    _shard: Some(open),
                    _db: std::marker::PhantomData,
                }));
            }
        }
        Ok(None)
    }

    /// Asks the kernel to start reading the whole values of `keys` now, in the background
    /// (`MADV_WILLNEED` over each value's pages). The environment is opened without LMDB's
    /// readahead, so that a random record does not drag its neighbours in, but then a cold
    /// record faults in one 4 KiB page at a time; a hint per record turns that into one read of
    /// the whole record, and hints for records still to come keep many reads in flight.
    /// Unknown keys are skipped (the read itself reports them).
    pub fn will_need(&self, keys: &[Vec<u8>]) {
        // A loader's cold path reads its records itself: a hint would read them twice.
        if self.staging.active.load(Ordering::Acquire) > 0 {
            return;
        }
        for key in keys {
            self.will_need_key(key);
        }
    }

    /// [`Database::will_need`] for one key; the size of its value, `None` for an unknown key
    /// (or one whose lookup failed: the read itself reports it).
    pub fn will_need_key(&self, key: &[u8]) -> Option<usize> {
        let page = 4096;
        let value = self.get(key).ok().flatten()?;
        let start = value.as_ptr() as usize / page * page;
        let end = value.as_ptr() as usize + value.len();
        // SAFETY: the range lies in LMDB's map of data.mdb (rounded down to a page start
        // within it), which `value` keeps mapped; WILLNEED only starts reads, it changes no
        // memory.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_WILLNEED) };
        Some(value.len())
    }

    /// Every key, sorted (LMDB's byte order).
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        self.for_each(|k, _| {
            keys.push(k.to_vec());
            true
        })?;
        if self.sharded {
            keys.sort_unstable();
        }
        Ok(keys)
    }

    /// Every record, shard after shard (each in key order), until `visit` returns false.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let mut go_on = true;
        for i in 0..self.shards.0.len() {
            let open = self.shard(i)?;
            open.snapshot
                .for_each(|k, v| {
                    go_on = visit(k, v);
                    go_on
                })
                .map_err(|e| lmdb_read_err(&open.path, e))?;
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    /// `key`'s record as a private copy-on-write mapping (writes stay in it), with its
    /// validated tensors, or `None` if there is no such key.
    pub fn private_record(&self, key: &[u8]) -> Result<Option<(PrivateRecord, Vec<TensorRef>)>> {
        for i in self.candidates(key) {
            let open = self.shard(i)?;
            if let Some(v) = open.get(key)? {
                let tensors = parse_record(key, v);
                let record = PrivateRecord::new(open.snapshot.env(), open.map, v);
                open.intact()?;
                return Ok(Some((record, tensors?)));
            }
        }
        Ok(None)
    }

    /// The validated tensors of `key`'s record with its value, or `None` if there is no such key.
    pub fn record(&self, key: &[u8]) -> Result<Option<(Value<'_>, Vec<TensorRef>)>> {
        match self.get(key)? {
            None => Ok(None),
            Some(value) => {
                let tensors = parse_record(key, &value);
                self.check_intact()?;
                Ok(Some((value, tensors?)))
            }
        }
    }
}

/// Locks `m`, whatever a panicking holder left (the data here stays consistent: an `Option`
/// set or taken whole).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn valid_record_parses() {
        let v = record(
            r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
            &[0; 8],
        );
        let t = parse_record(b"k", &v).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].shape, vec![2, 2]);
        assert_eq!(t[0].end - t[0].start, 8);
        assert_eq!(t[0].end, v.len());
    }

    #[test]
    fn hostile_headers_are_refused_with_the_key() {
        let cases = [
            // offsets past the value
            record(
                r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,800]}}"#,
                &[0; 8],
            ),
            // size not matching dtype x shape
            record(
                r#"{"a":{"dtype":"U16","shape":[2,3],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            // overlapping tensors
            record(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
                &[0; 6],
            ),
            // unknown dtype
            record(
                r#"{"a":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}}"#,
                &[0; 1],
            ),
            // header length beyond the value
            {
                let mut v = (1u64 << 40).to_le_bytes().to_vec();
                v.extend_from_slice(b"{}");
                v
            },
            // too short for a header length
            vec![1, 2, 3],
        ];
        for (i, v) in cases.iter().enumerate() {
            let err = parse_record(b"patch_7", v).expect_err(&format!("case {i} must fail"));
            assert!(err.message.contains("patch_7"), "case {i}: {}", err.message);
        }
    }
}
