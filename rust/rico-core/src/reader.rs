//! Reading records back: an LMDB snapshot shared by everything that points into its memory
//! map, and strict validation of each record's safetensors header before any view is made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use safetensors::tensor::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::lmdb::{Env, Snapshot};

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

/// Name of the manifest at the root of a sharded dataset.
pub use crate::layout::MANIFEST;
use crate::layout::{is_shard_name, DATA_FILE};

/// One LMDB directory of a database: where it is, its key range and its record count (learnt
/// when the database is opened), and its environment while that is open.
///
/// A database of many shards may hold more environments than the process may open files
/// (`ulimit -n`: two descriptors each). Its shards are then opened on demand, and the one used
/// least recently, with nothing of it in use, is closed to make room ([`Database::open`]).
pub struct Shard {
    /// The shard's LMDB directory.
    pub path: PathBuf,
    /// Its smallest key (empty for an empty shard).
    pub first: Vec<u8>,
    /// Its greatest key (empty for an empty shard).
    pub last: Vec<u8>,
    /// Its number of records.
    pub records: u64,
    /// The environment, for good: set when every shard fits in the open-file budget.
    pinned: OnceLock<Arc<OpenShard>>,
    /// The environment while it is open, when shards take turns (see [`Database::open`]).
    open: Mutex<Option<Arc<OpenShard>>>,
    /// When it was last used (a tick of its database), to close the least recently used.
    used: AtomicU64,
    /// Set once its B-tree pages have been checked (see `tree_check`): a reopened shard whose
    /// data file is the same (see [`FileStamp`]) is not checked again.
    checked: AtomicBool,
    /// Its data file when the database was opened: a shard reopened later must still have it.
    stamp: Option<FileStamp>,
}

/// What tells a shard's data file apart between two openings: its device, inode, size and
/// modification time (seconds, nanoseconds).
type FileStamp = (u64, u64, u64, i64, i64);

/// The [`FileStamp`] of the data file in the database directory `dir`.
fn file_stamp(dir: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir.join(DATA_FILE)).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// A shard's open environment: a read snapshot, and where its memory map starts.
struct OpenShard {
    path: PathBuf,
    snapshot: Snapshot,
    /// Start of LMDB's map and its page size: where overflow page headers are checked.
    map: usize,
    page_size: usize,
}

impl OpenShard {
    /// The value of `key`, its overflow page header checked (a damaged one is an error, not
    /// a read past the file).
    fn get(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        // LMDB refuses other lengths as a bad value size; no record can have such a key.
        if key.is_empty() || key.len() > crate::record::MAX_KEY_BYTES {
            return Ok(None);
        }
        let value = self
            .snapshot
            .get(key)
            .map_err(|e| lmdb_read_err(&self.path, e))?;
        if let Some(v) = value {
            let overflow = tree_check::check_overflow(self.map, self.page_size, v);
            // The overflow header read may have met a page that is gone.
            self.intact()?;
            overflow.map_err(|what| {
                Error::data(format!(
                    "the database is damaged: record {:?}: {what}",
                    String::from_utf8_lossy(key)
                ))
                .at(&self.path)
                .hint("restore data.mdb from a copy, or convert the dataset again")
            })?;
        }
        Ok(value)
    }

    /// Fails once a read of this shard's file met a page that no longer exists (the file
    /// shrank under this process): what was read then was zeros.
    #[inline]
    fn intact(&self) -> Result<()> {
        if self.snapshot.env().is_damaged() {
            return Err(changed(&self.path));
        }
        Ok(())
    }
}

/// The shards of an open database, in the manifest's order (one for a plain database).
pub struct Shards(pub Vec<Shard>);

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

/// A snapshot of the LMDB directory at `path`, on the one environment this process keeps per
/// path (LMDB forbids opening an environment twice in one process: its file locks would be
/// released by the first close).
///
/// Read-only environments map what the file holds when they are opened (address space is
/// limited: `ulimit -v`, thousands of shards). When a writer in another process has grown the
/// file past the map since, the map is remapped in place when nothing else of this process
/// uses the environment; otherwise this is an error that says to close the other handles (a
/// second environment is never opened).
///
/// A newly opened environment has its B-tree pages checked (see `tree_check`).
fn open_snapshot(path: &Path) -> Result<Snapshot> {
    // Keyed by process too: an environment must not be used across fork() (a DataLoader worker
    // forked while its parent holds the database opens its own).
    type Open = HashMap<(u32, PathBuf), Weak<Env>>;
    static OPEN: OnceLock<Mutex<Open>> = OnceLock::new();
    let canonical = std::fs::canonicalize(path).map_err(|e| {
        Error::usage(format!("cannot open the database: {e}"))
            .at(path)
            .hint("give the directory that holds data.mdb")
    })?;
    if !canonical.join(DATA_FILE).is_file() {
        let unfinished = std::fs::read_dir(&canonical)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| is_shard_name(&e.file_name().to_string_lossy()))
            })
            .unwrap_or(false);
        if unfinished {
            return Err(Error::usage("a sharded conversion that has not finished (shard directories, no rico-manifest.json)")
                .at(path)
                .hint("run the same conversion again with --resume to finish it"));
        }
        return Err(Error::usage("not an LMDB database directory (no data.mdb)")
            .at(path)
            .hint("give the --target-dir of a conversion"));
    }
    if std::fs::metadata(canonical.join(DATA_FILE)).is_ok_and(|m| m.len() == 0) {
        return Err(Error::data("data.mdb is empty (0 bytes): this is not a database")
            .at(path)
            .hint("a conversion stopped before its first commit leaves an empty file: run it again (with --resume), or restore data.mdb from a copy"));
    }
    let open_err = |e: crate::lmdb::LmdbError| {
        let err = Error::usage(format!("cannot open the database: {e}")).at(path);
        if e.0 == libc::EMFILE || e.0 == libc::ENFILE {
            crate::error::out_of_descriptors("opening a database").at(path)
        } else if e.is_damaged() {
            damaged(path, e)
        } else if e.0 == -30794 {
            // MDB_VERSION_MISMATCH: the lock file is held by another LMDB build.
            err.hint("another program has this database open with a different LMDB version (e.g. the Python lmdb package with locking on); close it, or open it there with lock=False")
        } else {
            err
        }
    };
    let mut open = OPEN
        .get_or_init(|| {
            // Free in a forked child even if a thread of the parent was opening (`fork`).
            crate::fork::register(crate::fork::Rank::OpenDatabases, || match OPEN.get() {
                Some(m) => Box::new(m.lock().unwrap_or_else(|p| p.into_inner())),
                None => Box::new(()),
            });
            Default::default()
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let cache_key = (std::process::id(), canonical.clone());
    let env = match open.get(&cache_key).and_then(Weak::upgrade) {
        Some(env) => {
            // Held open by other handles: the file may have shrunk under them since.
            env.check_file_size().map_err(|e| lmdb_read_err(path, e))?;
            env
        }
        None => Arc::new(Env::open_read_only(&canonical).map_err(open_err)?),
    };
    let snapshot = match Snapshot::new(env.clone()) {
        Err(e) if e.is_map_resized() => {
            if Arc::strong_count(&env) == 1 {
                // SAFETY: `env` is held only here (the cache keeps a Weak; the OPEN lock stops
                // anyone else taking it meanwhile), so no snapshot or view points into its map.
                unsafe { env.remap() }.map_err(open_err)?;
                Snapshot::new(env.clone())
            } else {
                // A second environment on the same file would break LMDB's locking (closing
                // either releases the process's locks, and a writer may then reuse pages
                // this process still reads): refuse instead.
                return Err(Error::usage(
                    "a writer grew the database past this process's memory map while other handles or views of it are open",
                )
                .at(path)
                .hint("close the other handles of this database and drop their arrays, then open it again"));
            }
        }
        other => other,
    }
    .map_err(|e| lmdb_read_err(path, e))?;
    open.retain(|_, w| w.strong_count() > 0);
    open.insert(cache_key, Arc::downgrade(snapshot.env()));
    Ok(snapshot)
}

/// Checks the B-tree pages of an environment (once per environment; see `tree_check`), its
/// map starting at `map`.
fn check_tree(env: &Env, map: usize, path: &Path) -> Result<()> {
    use std::sync::atomic::Ordering;
    if env.tree_checked.load(Ordering::Acquire) {
        return Ok(());
    }
    let info = env.info().map_err(|e| lmdb_read_err(path, e))?;
    // SAFETY: the environment maps at least used_bytes (its last page's end), and opening it
    // checked that data.mdb holds all of them.
    let pages = unsafe { std::slice::from_raw_parts(map as *const u8, info.used_bytes as usize) };
    let checked = tree_check::check(pages, info.page_size as usize);
    if env.is_damaged() {
        return Err(changed(path));
    }
    checked.map_err(|what| {
        Error::data(format!("the database is damaged: {what}"))
            .at(path)
            .hint("restore data.mdb from a copy, or convert the dataset again")
    })?;
    env.tree_checked.store(true, Ordering::Release);
    Ok(())
}

/// The error of a damaged database: it names the database and says what to do.
pub fn damaged(path: &Path, e: crate::lmdb::LmdbError) -> Error {
    Error::data(format!("the database is damaged: {e}"))
        .at(path)
        .hint("restore data.mdb from a copy, or convert the dataset again")
}

/// The error of a database whose file shrank (or was rewritten in place) while this process
/// read it.
fn changed(path: &Path) -> Error {
    Error::data(format!("the database is damaged: {}", crate::lmdb::LmdbError(crate::lmdb::CHANGED)))
        .at(path)
        .hint("close it (drop its arrays too) and open it again once data.mdb is whole; to replace a database that is being read, copy the new one beside it and rename it into place")
}

fn lmdb_read_err(path: &Path, e: crate::lmdb::LmdbError) -> Error {
    if e.is_changed() {
        changed(path)
    } else if e.is_damaged() {
        damaged(path, e)
    } else {
        Error::data(format!("cannot read the database: {e}")).at(path)
    }
}

/// Opens the environment of the shard at `path`: a snapshot, its map found (and watched for
/// pages that vanish, `fault`), its B-tree checked unless `checked` says it was already.
fn open_env(path: &Path, checked: &AtomicBool) -> Result<OpenShard> {
    let snapshot = open_snapshot(path)?;
    let mut probe = std::ptr::null();
    snapshot
        .for_each(|k, _| {
            probe = k.as_ptr();
            false
        })
        .map_err(|e| lmdb_read_err(path, e))?;
    let env = snapshot.env();
    // An empty database has no page to probe, and no tree to check or value to view. Found
    // from the first key, the map is also watched for pages that vanish (`fault`) from here on.
    let map = if probe.is_null() {
        0
    } else {
        env.map_addr(probe).ok_or_else(|| {
            // The map is looked up in /proc/self/maps, which takes a descriptor.
            if out_of_descriptors() {
                crate::error::out_of_descriptors("opening a database").at(path)
            } else {
                Error::data("cannot find the database's memory map").at(path)
            }
        })?
    };
    let page_size = env.info().map_err(|e| lmdb_read_err(path, e))?.page_size as usize;
    if map != 0 && !checked.load(Ordering::Acquire) {
        check_tree(env, map, path)?;
        checked.store(true, Ordering::Release);
    }
    Ok(OpenShard {
        path: path.to_path_buf(),
        snapshot,
        map,
        page_size,
    })
}

/// Opens the shard at `path` and learns its key range and record count.
fn open_shard(path: &Path) -> Result<(Shard, Arc<OpenShard>)> {
    let checked = AtomicBool::new(false);
    let open = open_env(path, &checked)?;
    let read = |e| lmdb_read_err(path, e);
    let mut first = None;
    open.snapshot
        .for_each(|k, _| {
            first = Some(k.to_vec());
            false
        })
        .map_err(read)?;
    let last = match first {
        Some(_) => open.snapshot.last_key().map_err(read)?,
        None => None,
    };
    let shard = Shard {
        path: path.to_path_buf(),
        first: first.unwrap_or_default(),
        last: last.unwrap_or_default(),
        records: open.snapshot.len().map_err(read)?,
        pinned: OnceLock::new(),
        open: Mutex::new(None),
        used: AtomicU64::new(0),
        checked,
        stamp: file_stamp(path),
    };
    Ok((shard, Arc::new(open)))
}

/// True when this process cannot open one more file (EMFILE or ENFILE).
fn out_of_descriptors() -> bool {
    match std::fs::File::open("/dev/null") {
        Ok(_) => false,
        Err(e) => crate::error::is_out_of_descriptors(&e),
    }
}

/// Descriptors a read-only environment holds open: `data.mdb` and `lock.mdb`.
const FDS_PER_SHARD: u64 = 2;

/// Descriptors left to the caller's own files (and the reader's /proc lookups) when the
/// open-file limit is shared out among shards.
const FDS_TO_SPARE: u64 = 64;

/// How many of a database's `shards` environments may be open at once. Raises this process's
/// soft limit on open files towards its hard limit when the soft one is too low for all of
/// them (as Go and the JVM do at start; a common `ulimit -n 1024` is a soft limit). Where even
/// the hard limit is too low, the shards take turns within half of the descriptors still free
/// (the other half is left to other databases this process opens, and to a forked
/// `DataLoader` worker, which inherits this one's descriptors and opens its own); where not
/// even one shard fits, this fails at once saying how far to raise `ulimit -n`.
fn descriptor_budget(root: &Path, shards: usize) -> Result<usize> {
    // Descriptors already open.
    let open = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count() as u64);
    let needed = (shards as u64) * FDS_PER_SHARD + open;
    // SAFETY: getrlimit/setrlimit on a plain struct.
    let limit = unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0
            || limit.rlim_cur >= needed + FDS_TO_SPARE
        {
            return Ok(shards);
        }
        let raised = libc::rlimit {
            rlim_cur: (needed + FDS_TO_SPARE).min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        if raised.rlim_cur > limit.rlim_cur && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            limit = raised;
        }
        limit
    };
    if limit.rlim_cur >= needed {
        return Ok(shards);
    }
    let free = limit.rlim_cur.saturating_sub(open);
    let half = free.saturating_sub(FDS_TO_SPARE) / 2 / FDS_PER_SHARD;
    // A few descriptors beyond one shard's: the reader's own look-ups take one at a time.
    let one = u64::from(free >= FDS_PER_SHARD + 8);
    let budget = half.max(one);
    if budget >= 1 {
        return Ok((budget as usize).min(shards));
    }
    let least = open + FDS_PER_SHARD + 8;
    let hard = limit.rlim_max;
    Err(Error::usage(format!(
        "this process has {open} files open and `ulimit -n` allows {} (hard limit {}): no room to open one shard of this database",
        limit.rlim_cur,
        if hard == libc::RLIM_INFINITY { "unlimited".to_string() } else { hard.to_string() }
    ))
    .at(root)
    .hint(format!("raise the limit on open files to at least {least} (`ulimit -n {least}` in the shell that starts the reader), or close other files and databases; with {} open files all {shards} shards stay open at once", needed + FDS_TO_SPARE)))
}

/// The shard directories a manifest lists, in order.
pub fn manifest_shards(root: &Path) -> Result<Vec<PathBuf>> {
    let path = root.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::usage(format!("cannot read the manifest: {e}")).at(&path))?;
    let bad = |what: &str| Error::data(format!("invalid manifest: {what}")).at(&path);
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let shards = json
        .get("shards")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("no \"shards\" list"))?;
    shards
        .iter()
        .map(|s| {
            let rel = s
                .get("path")
                .and_then(|p| p.as_str())
                .ok_or_else(|| bad("a shard has no \"path\""))?;
            if rel.contains("..") || Path::new(rel).is_absolute() {
                return Err(bad("shard paths must lie inside the dataset directory"));
            }
            Ok(root.join(rel))
        })
        .collect()
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
        if crate::fault::any() {
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

/// What `rico info` reports about a database.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Records in the database (every shard).
    pub records: u64,
    /// Size of `data.mdb` in bytes.
    pub bytes: u64,
    /// `(band, dtype, shapes seen)` over the sampled records, sorted by band name.
    pub bands: Vec<(String, String, Vec<Vec<usize>>)>,
    /// Records whose headers were read.
    pub sampled: u64,
    /// True for a sharded dataset.
    pub sharded: bool,
}

impl Summary {
    /// Human-readable lines, as `rico info` prints them.
    pub fn text(&self, path: &Path) -> String {
        let mut s = format!(
            "{}\n  records: {}\n  size:    {:.1} MB\n  sharded: {}\n  bands (from {} sampled records):\n",
            path.display(),
            self.records,
            self.bytes as f64 / 1e6,
            if self.sharded { "yes" } else { "no" },
            self.sampled
        );
        for (name, dtype, shapes) in &self.bands {
            let shapes: Vec<String> = shapes
                .iter()
                .map(|sh| {
                    sh.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("x")
                })
                .collect();
            s.push_str(&format!(
                "    {name:<12} {dtype:<8} {}\n",
                shapes.join(", ")
            ));
        }
        s
    }
}

/// Records, size and bands (dtype, shapes) from up to `sample` records spread over the keys.
/// Every key is walked, and their count checked against the records the database counts.
pub fn summarize(db: &Database, sample: usize) -> Result<Summary> {
    let records = db.len()?;
    let bytes = db
        .shards()
        .0
        .iter()
        .map(|s| std::fs::metadata(s.path.join(DATA_FILE)).map_or(0, |m| m.len()))
        .sum();
    let step = (records as usize / sample.max(1)).max(1);
    let mut bands: std::collections::BTreeMap<String, (String, Vec<Vec<usize>>)> =
        Default::default();
    let mut sampled = 0u64;
    let mut index = 0usize;
    let mut failure = None;
    db.for_each(|k, v| {
        if index.is_multiple_of(step) && (sampled as usize) < sample.max(1) {
            match parse_record(k, v) {
                Ok(tensors) => {
                    sampled += 1;
                    for t in tensors {
                        let entry = bands.entry(t.name).or_insert_with(|| {
                            let dtype = crate::record::from_safetensors_dtype(t.dtype).map_or_else(
                                || format!("{:?}", t.dtype),
                                |d| d.numpy_name().to_string(),
                            );
                            (dtype, Vec::new())
                        });
                        if !entry.1.contains(&t.shape) {
                            entry.1.push(t.shape);
                        }
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
        }
        index += 1;
        true
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    // Every key was walked: a tree whose pages lost keys (a damaged leaf) counts more records
    // than it holds, and says so here instead of at a later read.
    if index as u64 != records {
        return Err(Error::data(format!(
            "the database is damaged: its tree holds {index} keys, but it counts {records} records"
        ))
        .at(db.path())
        .hint("restore data.mdb from a copy, or convert the dataset again"));
    }
    let bands = bands
        .into_iter()
        .map(|(name, (dtype, shapes))| (name, dtype, shapes))
        .collect();
    Ok(Summary {
        records,
        bytes,
        bands,
        sampled,
        sharded: db.is_sharded(),
    })
}
