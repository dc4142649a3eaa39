//! The shards of a database: finding them (the manifest), opening each one's LMDB environment
//! once per process and checking it, and the descriptor budget that decides whether all of
//! them stay open or they take turns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::base::error::{Error, Result};
use crate::base::lmdb::{Env, Snapshot};

use super::tree_check;

/// Name of the manifest at the root of a sharded dataset.
pub use crate::base::layout::MANIFEST;
use crate::base::layout::{is_shard_name, DATA_FILE};

/// One LMDB directory of a database: where it is, its key range and its record count (learnt
/// when the database is opened), and its environment while that is open.
///
/// A database of many shards may hold more environments than the process may open files
/// (`ulimit -n`: two descriptors each). Its shards are then opened on demand, and the one used
/// least recently, with nothing of it in use, is closed to make room ([`Database::open`](super::Database::open)).
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
    pub(super) pinned: OnceLock<Arc<OpenShard>>,
    /// The environment while it is open, when shards take turns (see [`Database::open`](super::Database::open)).
    pub(super) open: Mutex<Option<Arc<OpenShard>>>,
    /// When it was last used (a tick of its database), to close the least recently used.
    pub(super) used: AtomicU64,
    /// Set once its B-tree pages have been checked (see `tree_check`): a reopened shard whose
    /// data file is the same (see [`FileStamp`]) is not checked again.
    pub(super) checked: AtomicBool,
    /// Its data file when the database was opened: a shard reopened later must still have it.
    pub(super) stamp: Option<FileStamp>,
}

/// What tells a shard's data file apart between two openings: its device, inode, size and
/// modification time (seconds, nanoseconds).
pub(super) type FileStamp = (u64, u64, u64, i64, i64);

/// The [`FileStamp`] of the data file in the database directory `dir`.
pub(super) fn file_stamp(dir: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir.join(DATA_FILE)).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// A shard's open environment: a read snapshot, and where its memory map starts.
pub(super) struct OpenShard {
    pub(super) path: PathBuf,
    pub(super) snapshot: Snapshot,
    /// Start of LMDB's map and its page size: where overflow page headers are checked.
    pub(super) map: usize,
    pub(super) page_size: usize,
}

impl OpenShard {
    /// The value of `key`, its overflow page header checked (a damaged one is an error, not
    /// a read past the file).
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        // LMDB refuses other lengths as a bad value size; no record can have such a key.
        if key.is_empty() || key.len() > crate::base::record::MAX_KEY_BYTES {
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
    pub(super) fn intact(&self) -> Result<()> {
        if self.snapshot.env().is_damaged() {
            return Err(changed(&self.path));
        }
        Ok(())
    }
}

/// The shards of an open database, in the manifest's order (one for a plain database).
pub struct Shards(pub Vec<Shard>);

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
pub(super) fn open_snapshot(path: &Path) -> Result<Snapshot> {
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
    let open_err = |e: crate::base::lmdb::LmdbError| {
        let err = Error::usage(format!("cannot open the database: {e}")).at(path);
        if e.0 == libc::EMFILE || e.0 == libc::ENFILE {
            crate::base::error::out_of_descriptors("opening a database").at(path)
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
            crate::base::fork::register(crate::base::fork::Rank::OpenDatabases, || {
                match OPEN.get() {
                    Some(m) => Box::new(m.lock().unwrap_or_else(|p| p.into_inner())),
                    None => Box::new(()),
                }
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
pub(super) fn check_tree(env: &Env, map: usize, path: &Path) -> Result<()> {
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
pub fn damaged(path: &Path, e: crate::base::lmdb::LmdbError) -> Error {
    Error::data(format!("the database is damaged: {e}"))
        .at(path)
        .hint("restore data.mdb from a copy, or convert the dataset again")
}

/// The error of a database whose file shrank (or was rewritten in place) while this process
/// read it.
pub(super) fn changed(path: &Path) -> Error {
    Error::data(format!("the database is damaged: {}", crate::base::lmdb::LmdbError(crate::base::lmdb::CHANGED)))
        .at(path)
        .hint("close it (drop its arrays too) and open it again once data.mdb is whole; to replace a database that is being read, copy the new one beside it and rename it into place")
}

pub(super) fn lmdb_read_err(path: &Path, e: crate::base::lmdb::LmdbError) -> Error {
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
pub(super) fn open_env(path: &Path, checked: &AtomicBool) -> Result<OpenShard> {
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
                crate::base::error::out_of_descriptors("opening a database").at(path)
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
pub(super) fn open_shard(path: &Path) -> Result<(Shard, Arc<OpenShard>)> {
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
pub(super) fn out_of_descriptors() -> bool {
    match std::fs::File::open("/dev/null") {
        Ok(_) => false,
        Err(e) => crate::base::error::is_out_of_descriptors(&e),
    }
}

/// Descriptors a read-only environment holds open: `data.mdb` and `lock.mdb`.
pub(super) const FDS_PER_SHARD: u64 = 2;

/// Descriptors left to the caller's own files (and the reader's /proc lookups) when the
/// open-file limit is shared out among shards.
pub(super) const FDS_TO_SPARE: u64 = 64;

/// How many of a database's `shards` environments may be open at once. Raises this process's
/// soft limit on open files towards its hard limit when the soft one is too low for all of
/// them (as Go and the JVM do at start; a common `ulimit -n 1024` is a soft limit). Where even
/// the hard limit is too low, the shards take turns within half of the descriptors still free
/// (the other half is left to other databases this process opens, and to a forked
/// `DataLoader` worker, which inherits this one's descriptors and opens its own); where not
/// even one shard fits, this fails at once saying how far to raise `ulimit -n`.
pub(super) fn descriptor_budget(root: &Path, shards: usize) -> Result<usize> {
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
