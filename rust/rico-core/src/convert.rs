//! The conversion pipeline: patches stream in from the planner ([`crate::planning`], or a
//! shard's plan, [`crate::sharding`]), their files are read with many reads in flight
//! (`io_depth`, `reading`), decoded on `threads` threads here, and written in plan order
//! through one LMDB writer (`writing`). Bounded channels between the stages keep memory flat
//! whatever the size of the dataset; [`crate::verify`] checks a database against its sources.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::Instant;

use rayon::prelude::*;

use crate::datasets;
use crate::error::{Error, ErrorKind, Result};
use crate::labels;
use crate::lmdb::{Env, LmdbError};
use crate::planning::{self, Planned};
use crate::progress::Progress;
use crate::reading::{self, Fetched, FileBytes, FileReaders};
use crate::record::{self, Band};
use crate::sharding;
use crate::spec::{self, FileBands, Patch, Source};
use crate::writing::write_records;

pub use crate::sharding::{
    check_sharded_target, shard_dir, shard_range, write_manifest, MANIFEST, SHARD_MARKER,
};
pub use crate::verify::{verify_dataset, VerifyReport};

/// Map size of a new database; it doubles (up to +64 GiB a step) whenever a transaction needs more.
pub const INITIAL_MAP_SIZE: u64 = 64 << 20;
/// A write transaction commits after this many records, or after a quarter of the buffer
/// ([`ConvertOptions::buffer_bytes`]) in bytes of values, whichever comes first: a kill loses at
/// most one such batch.
pub const TXN_MAX_RECORDS: usize = 512;
/// Bytes of source files and records a conversion holds at once by default. A quarter of it is
/// a transaction (the writer holds its records and LMDB's copy of them until the commit), a
/// quarter the chunk the decoders work on; about four chunks are in flight between the stages.
/// 64 MB keeps `rico bigearthnet` at 98-108 MB peak RSS from 5,000 to 50,000 real-size patches
/// (`benches/scale.py --record-size real`), where 256 MB (the earlier fixed 64 MB transactions)
/// took 283-348 MB. Commits are not slower at this size: each syncs only its own pages.
pub const DEFAULT_BUFFER_BYTES: usize = 64 << 20;
/// The smallest buffer [`ConvertOptions::buffer_bytes`] accepts.
pub const MIN_BUFFER_BYTES: usize = 4 << 20;
/// The largest buffer [`ConvertOptions::buffer_bytes`] accepts.
pub const MAX_BUFFER_BYTES: usize = 64 << 30;
/// Source files read at once by default: enough to keep a cold disk's queue or a network
/// filesystem's round trips full (32 parallel readers is where a cold local SSD and NFS stop
/// gaining), while the decoders take `threads` cores.
pub const DEFAULT_IO_DEPTH: usize = 32;
/// Name of the report of skipped patches written with `skip_invalid`.
pub const SKIPPED_REPORT: &str = "rico-skipped.tsv";

/// How to run a conversion.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Decoder threads; `None` = one per core.
    pub threads: Option<usize>,
    /// Source files read at once (I/O threads, apart from the decoders); `None` =
    /// [`DEFAULT_IO_DEPTH`].
    pub io_depth: Option<usize>,
    /// Bytes of source files and records held at once (chunks in flight, the open
    /// transaction); `None` = [`DEFAULT_BUFFER_BYTES`]. Peak memory follows it; a larger
    /// buffer means fewer, larger commits and chunks.
    pub buffer_bytes: Option<usize>,
    /// Finish an interrupted run: keep the records present, add the missing ones.
    pub resume: bool,
    /// Leave out patches whose files are bad, list them in `rico-skipped.tsv`, go on.
    pub skip_invalid: bool,
    /// Draw a progress bar on stderr: `None` = only when stderr is a terminal.
    pub progress: Option<bool>,
    /// The dataset's value options (flag, value), e.g. `("pattern", "...")` for `bands`.
    pub params: Vec<(String, String)>,
    /// Cut the sorted patch list into this many contiguous shards, each an LMDB directory
    /// `shard-NNNNN/` under the target, with `rico-manifest.json` at the root.
    pub shards: Option<usize>,
    /// With `shards`: write only this shard (one task of a cluster run); no manifest.
    pub shard_index: Option<usize>,
    /// Set from another thread to stop the run: committed records stay (finish with `resume`).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// With archives and Parquet files: the most bytes of incomplete patches held while a
    /// container is read (a patch's files far apart in it); `None` =
    /// [`crate::spec::DEFAULT_MAX_HELD_BYTES`]. Also the largest member read.
    pub max_held_bytes: Option<u64>,
    /// How sources behind URLs are fetched (parts in flight, part size, TLS verification).
    pub remote: rico_source::RemoteOptions,
    /// Convert only the patches with these keys (`None`: every patch). Files of other patches
    /// are not read: a container's members are skipped, a Parquet file's row groups not fetched.
    pub keys: Option<std::sync::Arc<HashSet<String>>>,
}

impl ConvertOptions {
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// What a conversion did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Records written by this run.
    pub records: u64,
    /// Records already in the target (with `resume`) and left as they were.
    pub already_present: u64,
    /// Patches left out because of bad files (with `skip_invalid`).
    pub skipped: u64,
    /// Source files decoded.
    pub files: u64,
    /// Bytes of source files read.
    pub source_bytes: u64,
    /// Bytes of record values written.
    pub record_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Decoder threads used.
    pub threads: usize,
    /// The labels table written beside the database, for datasets with labels.
    pub labels_table: Option<PathBuf>,
}

impl Summary {
    /// Records written per second (a record is one patch of one source: a BigEarthNet place
    /// with S1, S2 and a reference map is three records).
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// The one-line summary printed at the end of a run.
    pub fn line(&self) -> String {
        let mut s = format!(
            "rico: wrote {} records from {} files ({:.1} MB read, {:.1} MB written) in {:.2} s: {:.0} records/s with {} threads",
            self.records,
            self.files,
            self.source_bytes as f64 / 1e6,
            self.record_bytes as f64 / 1e6,
            self.seconds,
            self.records_per_second(),
            self.threads
        );
        if self.already_present > 0 {
            s.push_str(&format!(
                "; {} records were already present",
                self.already_present
            ));
        }
        if self.skipped > 0 {
            s.push_str(&format!(
                "; skipped {} invalid patches (see {SKIPPED_REPORT})",
                self.skipped
            ));
        }
        if let Some(table) = &self.labels_table {
            s.push_str(&format!("; labels in {}", table.display()));
        }
        s
    }
}

/// Checks the sources and params of dataset `name` and builds the spec of each source.
fn resolve_specs(
    name: &str,
    sources: &[(String, PathBuf)],
    options: &ConvertOptions,
) -> Result<Vec<(&'static str, PathBuf, spec::Spec)>> {
    let preset = datasets::preset(name)?;
    crate::thread_count(options.threads)?;
    if let Some(depth) = options.io_depth {
        crate::check_count("io_depth", depth)?;
    }
    if let Some(bytes) = options.buffer_bytes {
        if !(MIN_BUFFER_BYTES..=MAX_BUFFER_BYTES).contains(&bytes) {
            return Err(Error::usage(format!(
                "the buffer (--buffer-mb, buffer_mb=) must be {} to {} MB, not {} MB",
                MIN_BUFFER_BYTES >> 20,
                MAX_BUFFER_BYTES >> 20,
                bytes >> 20
            )));
        }
    }
    if sources.is_empty() {
        return Err(Error::usage(format!(
            "no source directory given; give at least one of {}",
            preset.flags_list()
        )));
    }
    let params = preset.params_from(&options.params)?;
    let mut specs = Vec::new();
    for (flag, root) in sources {
        let option = preset.source(flag).ok_or_else(|| {
            Error::usage(format!(
                "{name} has no source option {flag:?}; its options are {}",
                preset.flags_list()
            ))
        })?;
        specs.push((option.flag, root.clone(), option.spec(&params)?));
    }
    Ok(specs)
}

/// Resolves the sources of dataset `name` and calls `f` with them: each path is a directory,
/// an archive or a Parquet file (by its ending), a glob of them (`parts/*.tar.gz`), or, for
/// Major-TOM, a folder of Parquet files.
pub(crate) fn with_sources<T>(
    name: &str,
    sources: &[(String, PathBuf)],
    options: &ConvertOptions,
    f: impl FnOnce(&[Source<'_>]) -> Result<T>,
) -> Result<T> {
    let specs = resolve_specs(name, sources, options)?;
    let max_held_bytes = options
        .max_held_bytes
        .unwrap_or(spec::DEFAULT_MAX_HELD_BYTES);
    let mut resolved: Vec<Source<'_>> = Vec::new();
    for (flag, root, spec) in &specs {
        for found in crate::sources::expand(flag, root, name, &options.remote)? {
            resolved.push(Source {
                option: flag.to_string(),
                container: found.container,
                root: found.shown,
                location: found.location,
                spec,
                max_held_bytes,
                keys: options.keys.clone(),
            });
        }
    }
    f(&resolved)
}

/// How many planned patches may wait for the reading stage: a directory's are paths (many may
/// wait); a container's carry their files' bytes (a few, so that memory stays flat).
pub(crate) fn plan_depth(sources: &[Source<'_>]) -> usize {
    if sources.iter().any(|s| s.container.is_some()) {
        8
    } else {
        1024
    }
}

/// Resolves the sources and params of dataset `name` and plans all its patches (in plan
/// order); with `skip_invalid`, patches missing a band come back as (key, reason). Holds the
/// whole plan: conversions stream it instead.
#[allow(clippy::type_complexity)]
pub fn plan_dataset(
    name: &str,
    sources: &[(String, PathBuf)],
    options: &ConvertOptions,
) -> Result<(Vec<Patch>, Vec<(String, String)>)> {
    with_sources(name, sources, options, |resolved| {
        spec::plan_with(resolved, options.skip_invalid)
    })
}

/// Converts the dataset `name` from `sources` (option name, directory) into `target`.
pub fn convert_dataset(
    name: &str,
    sources: &[(String, PathBuf)],
    target: &Path,
    options: &ConvertOptions,
) -> Result<Summary> {
    let start = Instant::now();
    // Arguments, then the target, are checked before the (possibly long) walk of the sources.
    resolve_specs(name, sources, options)?;
    let mut summary = match (options.shards, options.shard_index) {
        (None, None) => {
            check_target(target, options.resume)?;
            let new_target = !target.exists();
            let bar = Progress::new(options.progress);
            let summary = with_sources(name, sources, options, |resolved| {
                let plan = |emit: &mut dyn FnMut(Planned) -> Result<()>| {
                    planning::stream(resolved, options.skip_invalid, &|n| bar.scanned(n), emit)
                };
                write_patches(&plan, plan_depth(resolved), target, options, &bar)
            });
            bar.finish();
            if let (Err(e), true) = (&summary, new_target) {
                // Planning streams, so a bad source can stop the run after the target was made.
                // A duplicate key is fixed by other keys (e.g. --key-parents) and a usage error
                // (a source without patches) by other options: the records this run wrote
                // would not fit the next run, so the new target goes. Otherwise (Ctrl-C, a
                // full disk) it stays for --resume, unless it is empty.
                if planning::is_duplicate_key(e) || e.kind == ErrorKind::Usage {
                    remove_target(target);
                } else {
                    remove_if_empty(target);
                }
            }
            summary?
        }
        (None, Some(_)) => return Err(Error::usage("shard_index needs shards")),
        (Some(n), index) => sharding::convert_sharded(name, sources, target, n, index, options)?,
    };
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Removes a target this run created if no record was committed into it.
fn remove_if_empty(target: &Path) {
    let empty = Env::open_read_only(target)
        .ok()
        .and_then(|env| {
            let txn = env.begin_read().ok()?;
            let mut any = false;
            txn.for_each(|_, _| {
                any = true;
                false
            })
            .ok()?;
            Some(!any)
        })
        .unwrap_or(false);
    if empty {
        remove_target(target);
    }
}

/// Removes a target this run created: its database files, then the directory if empty.
fn remove_target(target: &Path) {
    for name in ["data.mdb", "lock.mdb", SKIPPED_REPORT, labels::LABELS_TABLE] {
        let _ = fs::remove_file(target.join(name));
    }
    let _ = fs::remove_dir(target);
}

/// Hands out the patches of a conversion, in order, to `emit`.
pub(crate) type Plan<'a> = dyn Fn(&mut dyn FnMut(Planned) -> Result<()>) -> Result<()> + Sync + 'a;

/// Writes the patches `plan` hands out into one LMDB directory, with the labels table and the
/// report of skipped patches beside it.
pub(crate) fn write_patches(
    plan: &Plan<'_>,
    depth: usize,
    target: &Path,
    options: &ConvertOptions,
    bar: &Progress,
) -> Result<Summary> {
    let (mut summary, skipped, patch_labels) = write(plan, depth, target, options, bar)?;
    // The table goes beside the database once its records are in.
    if !patch_labels.is_empty() {
        let rows = patch_labels
            .iter()
            .filter(|(key, _)| !skipped.contains(key))
            .map(|(k, l)| (k.as_str(), l));
        summary.labels_table = Some(labels::write_table(target, rows)?);
    }
    Ok(summary)
}

/// The names in an existing target directory; `None` if it does not exist yet.
pub(crate) fn target_entries(target: &Path) -> Result<Option<Vec<String>>> {
    match fs::metadata(target) {
        Err(_) => return Ok(None),
        Ok(m) if !m.is_dir() => {
            return Err(Error::usage("the target exists and is not a directory")
                .at(target)
                .hint("give a new directory for --target-dir"))
        }
        Ok(_) => {}
    }
    let entries = fs::read_dir(target)
        .map_err(|e| Error::usage(format!("cannot list the target directory: {e}")).at(target))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    Ok(Some(entries))
}

/// A target is a new or empty directory, or (with `resume`) an LMDB directory.
fn check_target(target: &Path, resume: bool) -> Result<()> {
    let Some(entries) = target_entries(target)? else {
        return Ok(());
    };
    let is_lmdb = entries.iter().any(|n| n == "data.mdb");
    if !is_lmdb && sharding::is_sharded(&entries) {
        let n = sharding::planned_shards(target);
        let how = match n {
            Some(n) => format!("--shards {n} --resume"),
            None => "--shards N --resume, with the N of the run that began it".to_string(),
        };
        return Err(Error::usage(
            "the target is a sharded dataset (shard-NNNNN/ directories), not one LMDB database",
        )
        .at(target)
        .hint(format!(
            "to finish it, run the same command with {how}; or give a new directory"
        )));
    }
    if !is_lmdb && !entries.is_empty() {
        return Err(Error::usage("the target directory is not empty and holds no LMDB database (no data.mdb)")
            .at(target)
            .hint("give a new or empty directory for --target-dir; rico never writes into other files' directories"));
    }
    if is_lmdb && !resume {
        return Err(Error::usage("the target already holds an LMDB database")
            .at(target)
            .hint("pass --resume to finish an interrupted conversion into it, or give a new directory"));
    }
    Ok(())
}

pub(crate) fn lmdb_error(target: &Path, what: &str, e: LmdbError) -> Error {
    if e.0 == libc::EMFILE || e.0 == libc::ENFILE {
        crate::error::out_of_descriptors("opening the database").at(target)
    } else if e.is_damaged() {
        crate::reader::damaged(target, e)
    } else if e.is_disk_full() {
        Error::output(format!("{what}: {e}: the disk is full (or a quota or file-size limit was reached)"))
            .at(target)
            .hint("free space (or move --target-dir), then run the same command again with --resume; the records committed so far are kept and valid")
    } else if e.is_map_resized() {
        another_writer(target)
    } else {
        Error::output(format!("{what}: {e}")).at(target)
    }
}

pub(crate) fn another_writer(target: &Path) -> Error {
    Error::output(format!(
        "another process is writing into {}",
        target.display()
    ))
    .at(target)
    .hint("run one conversion into a target at a time: wait for the other one (or stop it), then finish with --resume")
}

/// Takes the target's writer lock (an exclusive `flock` on `data.mdb`, which LMDB itself does
/// not lock), so that a second conversion into the same target stops with a clear message.
fn lock_target(target: &Path) -> Result<fs::File> {
    let path = target.join("data.mdb");
    let file = fs::OpenOptions::new().read(true).open(&path).map_err(|e| {
        if crate::error::is_out_of_descriptors(&e) {
            return crate::error::out_of_descriptors("opening the database").at(&path);
        }
        Error::output(format!("cannot open the database: {e}")).at(&path)
    })?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Err(another_writer(target));
        }
        // A filesystem without locks: go on without one.
    }
    Ok(file)
}

/// One decoded patch, ready for the writer.
pub(crate) struct Record {
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
    pub(crate) files: u64,
    pub(crate) source_bytes: u64,
}

/// Reads and decodes the files of `patch` and serialises its record.
pub(crate) fn build_record(patch: &Patch) -> Result<Record> {
    decode_patch(patch, reading::read_patch(patch)?)
}

/// The buffer a conversion runs with ([`ConvertOptions::buffer_bytes`]).
fn buffer_bytes(options: &ConvertOptions) -> usize {
    options
        .buffer_bytes
        .unwrap_or(DEFAULT_BUFFER_BYTES)
        .max(MIN_BUFFER_BYTES)
}

/// Decodes the files of `patch` (read into `files`) and serialises its record.
fn decode_patch(patch: &Patch, files: Vec<FileBytes>) -> Result<Record> {
    let mut rasters = Vec::with_capacity(patch.files.len());
    let mut source_bytes = 0u64;
    for (file, bytes) in patch.files.iter().zip(&files) {
        source_bytes += bytes.len() as u64;
        let raster =
            rico_raster::decode(bytes).map_err(|e| Error::from(e.with_path(&file.path())))?;
        rasters.push(raster);
    }
    drop(files);
    let mut bands = Vec::new();
    for (file, raster) in patch.files.iter().zip(&rasters) {
        let info = raster.info;
        let shape = [info.height, info.width];
        let band = |name: String, i: usize| Band {
            name,
            dtype: info.dtype,
            shape,
            bytes: Cow::Borrowed(raster.band(i)),
        };
        match &file.bands {
            FileBands::One(name) => {
                if info.bands != 1 {
                    return Err(Error::data(format!(
                        "expected a single-band file for band {name} of patch {}, found {} bands",
                        patch.key, info.bands
                    ))
                    .at(file.path()));
                }
                bands.push(band(name.to_string(), 0));
            }
            FileBands::Names(names) => {
                if names.len() != info.bands {
                    return Err(Error::data(format!(
                        "expected {} bands ({}), found {}",
                        names.len(),
                        names.join(" "),
                        info.bands
                    ))
                    .at(file.path()));
                }
                bands.extend(names.iter().enumerate().map(|(i, n)| band(n.clone(), i)));
            }
            FileBands::Numbered(prefix) => {
                bands.extend((0..info.bands).map(|i| band(format!("{prefix}{}", i + 1), i)));
            }
        }
    }
    let value = record::encode(&patch.key, &bands)?;
    Ok(Record {
        key: patch.key.clone(),
        value,
        files: patch.files.len() as u64,
        source_bytes,
    })
}

/// What the reading stage hands back when the run is over.
#[derive(Default)]
struct Fetching {
    already_present: u64,
    skipped: Vec<(String, String)>,
    labels: Vec<(String, labels::Labels)>,
}

/// The keys in the database, as 128-bit hashes (16 bytes a record): what a resume leaves out.
fn present_keys(env: &Env, target: &Path) -> Result<HashSet<u128>> {
    let txn = env
        .begin_read()
        .map_err(|e| lmdb_error(target, "cannot read the database", e))?;
    let mut keys = HashSet::new();
    txn.for_each(|k, _| {
        keys.insert(key_hash128(k));
        true
    })
    .map_err(|e| lmdb_error(target, "cannot read the database", e))?;
    Ok(keys)
}

fn key_hash128(key: &[u8]) -> u128 {
    use std::hash::{Hash, Hasher};
    let mut a = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    (0xA5u8, key).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Runs the planner, sending what it hands out (or its error) down `sender`.
fn run_planner(plan: &Plan<'_>, sender: SyncSender<Result<Planned>>, bar: &Progress) {
    let mut emit = |item: Planned| -> Result<()> {
        if matches!(item, Planned::Patch(_)) {
            bar.planned(1);
        }
        sender
            .send(Ok(item))
            .map_err(|_| Error::output("the conversion stopped"))
    };
    if let Err(e) = plan(&mut emit) {
        // Fails only when the stages below stopped on their own error, which they report.
        let _ = sender.send(Err(e));
    }
}

/// The reading stage: gathers planned patches into chunks, leaves out those already present,
/// and reads their files on the I/O threads (`io_depth` reads in flight).
#[allow(clippy::too_many_arguments)]
fn fetch(
    planned: impl Iterator<Item = Result<Planned>>,
    sender: SyncSender<Result<Fetched>>,
    present: &HashSet<u128>,
    readers: FileReaders,
    threads: usize,
    options: &ConvertOptions,
    target: &Path,
    bar: &Progress,
) -> Fetching {
    let mut out = Fetching::default();
    // Chunks small enough to keep memory flat, large enough to keep every reader and decoder
    // busy. Chunk length adapts to the bytes read per patch so that a chunk holds about a
    // quarter of the buffer, whether a record is 100 KB (BigEarthNet) or 13 MB (Major-TOM), but
    // at least one patch per decoder thread. Output does not depend on it.
    let chunk_bytes = buffer_bytes(options) / 4;
    let max_chunk = (threads * 8).max(readers.count()).clamp(8, 256);
    let mut chunk_len = threads.max(readers.count()).clamp(1, max_chunk);
    let mut planned = planned;
    let mut done = false;
    while !done {
        let mut chunk: Vec<Patch> = Vec::with_capacity(chunk_len);
        let mut failed = None;
        while chunk.len() < chunk_len {
            match planned.next() {
                None => {
                    done = true;
                    break;
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                Some(Ok(Planned::Skipped(key, reason))) => {
                    out.skipped.push((key, reason));
                    bar.done(1);
                }
                Some(Ok(Planned::Patch(patch))) => {
                    if let Some(l) = &patch.labels {
                        out.labels.push((patch.key.clone(), l.clone()));
                    }
                    if present.contains(&key_hash128(patch.key.as_bytes())) {
                        out.already_present += 1;
                        bar.done(1);
                    } else {
                        chunk.push(patch);
                    }
                }
            }
        }
        if options.cancelled() {
            failed = Some(interrupted(target));
        }
        if !chunk.is_empty() {
            let fetched = readers.read_chunk(chunk);
            let bytes: usize = fetched
                .iter()
                .map(|(_, r)| r.as_ref().map_or(0, |f| f.iter().map(|b| b.len()).sum()))
                .sum();
            let per_patch = (bytes / fetched.len()).max(1);
            chunk_len = (chunk_bytes / per_patch).clamp(threads.min(max_chunk), max_chunk);
            if sender.send(Ok(fetched)).is_err() {
                return out;
            }
        }
        if let Some(e) = failed {
            let _ = sender.send(Err(e));
            return out;
        }
    }
    out
}

/// Writes the records of the patches `plan` hands out into `target`, in plan order; returns the
/// summary, the keys of the patches skipped (with `skip_invalid`) and the labels of the patches.
#[allow(clippy::type_complexity)]
fn write(
    plan: &Plan<'_>,
    depth: usize,
    target: &Path,
    options: &ConvertOptions,
    bar: &Progress,
) -> Result<(Summary, HashSet<String>, Vec<(String, labels::Labels)>)> {
    let (plan_tx, plan_rx) = sync_channel::<Result<Planned>>(depth);
    std::thread::scope(|scope| {
        scope.spawn(|| run_planner(plan, plan_tx, bar));
        // The target is made once the plan has a first patch: a source without patches (or
        // one that fails before its first) leaves nothing behind.
        let first = match plan_rx.recv() {
            Ok(Err(e)) => return Err(e),
            Ok(Ok(first)) => Some(Ok(first)),
            Err(_) => None,
        };
        let planned = first.into_iter().chain(plan_rx);
        write_planned(planned, target, options, bar)
    })
}

/// `write`'s stages once the plan has started: reading, decoding and the single writer.
#[allow(clippy::type_complexity)]
fn write_planned(
    planned: impl Iterator<Item = Result<Planned>> + Send,
    target: &Path,
    options: &ConvertOptions,
    bar: &Progress,
) -> Result<(Summary, HashSet<String>, Vec<(String, labels::Labels)>)> {
    fs::create_dir_all(target).map_err(|e| {
        Error::output(format!("cannot create the target directory: {e}")).at(target)
    })?;
    let env = Env::open_writable(target, INITIAL_MAP_SIZE)
        .map_err(|e| lmdb_error(target, "cannot open the database", e))?;
    let _lock = lock_target(target)?;
    let mut summary = Summary::default();

    // With resume, leave out what is already there (committed transactions are whole).
    let present = if options.resume {
        present_keys(&env, target)?
    } else {
        HashSet::new()
    };

    let threads = crate::thread_count(options.threads)?;
    summary.threads = threads;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("rico-decode-{i}"))
        .build()
        .map_err(|e| Error::output(format!("cannot start decoder threads: {e}")))?;
    let mut skipped: Vec<(String, String)> = Vec::new();

    let (fetch_tx, fetch_rx) = sync_channel::<Result<Fetched>>(2);
    let (sender, receiver) = sync_channel::<Vec<Result<Record>>>(2);
    let (write_result, fetching) = std::thread::scope(|scope| {
        let (env, txn_bytes) = (&env, buffer_bytes(options) / 4);
        let writer = scope.spawn(move || write_records(env, target, receiver, txn_bytes, bar));
        let readers = FileReaders::start(options.io_depth.unwrap_or(DEFAULT_IO_DEPTH));
        let fetcher = scope.spawn(|| {
            fetch(
                planned, fetch_tx, &present, readers, threads, options, target, bar,
            )
        });
        for fetched in fetch_rx {
            // Ctrl-C stops the run here too, so that what was read ahead is not decoded and
            // written first: the writer commits what it has and stops.
            let fetched = match fetched {
                Ok(_) if options.cancelled() => Err(interrupted(target)),
                other => other,
            };
            let fetched = match fetched {
                Ok(f) => f,
                Err(e) => {
                    let _ = sender.send(vec![Err(e)]);
                    break;
                }
            };
            let results: Vec<(Patch, Result<Record>)> = pool.install(|| {
                fetched
                    .into_par_iter()
                    .map(|(patch, files)| {
                        let record = files.and_then(|files| decode_patch(&patch, files));
                        (patch, record)
                    })
                    .collect()
            });
            let mut batch = Vec::with_capacity(results.len());
            let mut failed = None;
            for (patch, result) in results {
                match result {
                    Ok(r) => batch.push(Ok(r)),
                    Err(e) if options.skip_invalid && e.kind == ErrorKind::Data => {
                        skipped.push((patch.key, e.to_string().replace(['\n', '\t'], " ")));
                        bar.done(1);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let stop = failed.is_some();
            if let Some(e) = failed {
                batch.push(Err(e));
            }
            // A send fails only when the writer stopped on an error; it reports that error.
            if sender.send(batch).is_err() || stop {
                break;
            }
        }
        drop(sender);
        let fetching = fetcher.join().unwrap_or_default();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::output("the writer thread panicked")));
        (written, fetching)
    });
    let written = write_result?;
    summary.records = written.records;
    summary.already_present = fetching.already_present;
    summary.files = written.files;
    summary.source_bytes = written.source_bytes;
    summary.record_bytes = written.record_bytes;
    let mut all_skipped = fetching.skipped;
    all_skipped.extend(skipped);
    summary.skipped = all_skipped.len() as u64;
    if options.skip_invalid {
        write_skipped_report(target, &all_skipped)?;
    }
    if let Some(e) = written.error {
        return Err(e);
    }
    if !options.skip_invalid {
        // A run without --skip-invalid that finished wrote every patch: an old report of
        // skipped patches (from an earlier --skip-invalid run) would no longer be true.
        remove_skipped_report(target)?;
    }
    env.sync()
        .map_err(|e| lmdb_error(target, "cannot flush the database to disk", e))?;
    Ok((
        summary,
        all_skipped.into_iter().map(|(key, _)| key).collect(),
        fetching.labels,
    ))
}

/// The error of a run stopped by Ctrl-C (or `cancel`).
fn interrupted(target: &Path) -> Error {
    Error::output("interrupted")
        .at(target)
        .hint("run the same command again with --resume (resume=True) to finish it")
}

fn remove_skipped_report(target: &Path) -> Result<()> {
    let path = target.join(SKIPPED_REPORT);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::output(format!(
            "cannot remove the outdated report of skipped patches: {e}"
        ))
        .at(&path)),
        _ => Ok(()),
    }
}

fn write_skipped_report(target: &Path, skipped: &[(String, String)]) -> Result<()> {
    let path = target.join(SKIPPED_REPORT);
    let mut text = String::from("key\treason\n");
    for (key, reason) in skipped {
        // One line per patch: the reason loses its line breaks and tabs.
        text.push_str(&format!("{key}\t{}\n", reason.replace(['\n', '\t'], " ")));
    }
    fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            Error::output(format!("cannot write the report of skipped patches: {e}")).at(&path)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_records_per_second() {
        let s = Summary {
            records: 30,
            seconds: 2.0,
            ..Summary::default()
        };
        assert_eq!(s.records_per_second(), 15.0);
        assert!(s.line().contains("15 records/s"), "{}", s.line());
    }
}
