//! The conversion pipeline: plan patches, decode them in parallel, write records in sorted
//! order through one LMDB writer. A bounded channel between decoders and writer keeps memory
//! flat whatever the size of the dataset.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use rayon::prelude::*;

use crate::datasets;
use crate::error::{Error, ErrorKind, Result};
use crate::labels;
use crate::lmdb::{Env, LmdbError, PutMode};
use crate::progress::ProgressBar;
use crate::record::{self, Band};
use crate::spec::{self, FileBands, Patch, Source};

/// Map size of a new database; it doubles (up to +64 GiB a step) whenever a transaction needs more.
pub const INITIAL_MAP_SIZE: u64 = 64 << 20;
/// A write transaction commits after this many records...
pub const TXN_MAX_RECORDS: usize = 512;
/// ...or this many bytes of values, whichever comes first: a kill loses at most one such batch.
pub const TXN_MAX_BYTES: usize = 64 << 20;
/// Bytes of records a decoding chunk aims at.
const CHUNK_BYTES: usize = 16 << 20;
/// Name of the report of skipped patches written with `skip_invalid`.
pub const SKIPPED_REPORT: &str = "rico-skipped.tsv";

/// How to run a conversion.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Decoder threads; `None` = one per core.
    pub threads: Option<usize>,
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
    /// Patches per second.
    pub fn patches_per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// The one-line summary printed at the end of a run.
    pub fn line(&self) -> String {
        let mut s = format!(
            "rico: wrote {} records from {} files ({:.1} MB read, {:.1} MB written) in {:.2} s: {:.0} patches/s with {} threads",
            self.records,
            self.files,
            self.source_bytes as f64 / 1e6,
            self.record_bytes as f64 / 1e6,
            self.seconds,
            self.patches_per_second(),
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

/// Resolves the sources and params of dataset `name` and plans its patches (sorted by source
/// path); with `skip_invalid`, patches missing a band come back as (key, reason).
pub fn plan_dataset(
    name: &str,
    sources: &[(String, PathBuf)],
    options: &ConvertOptions,
) -> Result<(Vec<Patch>, Vec<(String, String)>)> {
    let specs = resolve_specs(name, sources, options)?;
    let resolved: Vec<Source<'_>> = specs
        .iter()
        .map(|(flag, root, spec)| Source {
            option: flag.to_string(),
            root: root.clone(),
            spec,
        })
        .collect();
    spec::plan_with(&resolved, options.skip_invalid)
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
            let (patches, skipped) = plan_dataset(name, sources, options)?;
            write_patches(patches, skipped, target, options)?
        }
        (None, Some(_)) => return Err(Error::usage("shard_index needs shards")),
        (Some(n), index) => {
            let n = check_shards(n, index)?;
            if index.is_none() {
                check_sharded_target(target, options.resume)?;
            }
            let (patches, skipped) = plan_dataset(name, sources, options)?;
            convert_shards(name, patches, skipped, target, n, index, options)?
        }
    };
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Writes planned patches into one LMDB directory, with the labels table beside it.
fn write_patches(
    patches: Vec<Patch>,
    skipped: Vec<(String, String)>,
    target: &Path,
    options: &ConvertOptions,
) -> Result<Summary> {
    // Labels were all found while planning (a missing row stops the run before any write);
    // the table goes beside the database once its records are in.
    let patch_labels: Vec<(String, labels::Labels)> = patches
        .iter()
        .filter_map(|p| Some((p.key.clone(), p.labels.clone()?)))
        .collect();
    let (mut summary, skipped) = write(patches, skipped, target, options)?;
    if !patch_labels.is_empty() {
        let rows = patch_labels
            .iter()
            .filter(|(key, _)| !skipped.contains(key))
            .map(|(k, l)| (k.as_str(), l));
        summary.labels_table = Some(labels::write_table(target, rows)?);
    }
    Ok(summary)
}

// ---- shards ------------------------------------------------------------------------------------

/// Name of the file a finished shard holds: its record count and key range.
pub const SHARD_MARKER: &str = "rico-shard.json";
pub use crate::reader::MANIFEST;

/// The directory of shard `index` under `target`.
pub fn shard_dir(target: &Path, index: usize) -> PathBuf {
    target.join(format!("shard-{index:05}"))
}

/// The patches of shard `index` of `shards`: contiguous, deterministic, sizes differing by at most one.
pub fn shard_range(patches: usize, shards: usize, index: usize) -> std::ops::Range<usize> {
    patches * index / shards..patches * (index + 1) / shards
}

fn check_shards(n: usize, index: Option<usize>) -> Result<usize> {
    if n == 0 || n > 99_999 {
        return Err(Error::usage(format!(
            "--shards must be between 1 and 99999, not {n}"
        )));
    }
    if let Some(i) = index {
        if i >= n {
            return Err(Error::usage(format!(
                "shard index {i} is not below the number of shards {n}"
            )));
        }
    }
    Ok(n)
}

/// The root of a sharded dataset is new or empty, or (with `resume`) one rico wrote.
pub fn check_sharded_target(target: &Path, resume: bool) -> Result<()> {
    let Some(entries) = target_entries(target)? else {
        return Ok(());
    };
    if entries.is_empty() {
        return Ok(());
    }
    // A run killed while writing the manifest may leave its temporary file.
    let ours = entries
        .iter()
        .all(|n| n.starts_with(MANIFEST) || n.starts_with("shard-"));
    if !ours {
        return Err(Error::usage(
            "the target directory is not empty and holds no sharded rico dataset",
        )
        .at(target)
        .hint("give a new or empty directory for --target-dir"));
    }
    if !resume {
        return Err(Error::usage("the target already holds a sharded dataset")
            .at(target)
            .hint("pass --resume to finish the shards of an interrupted conversion, or give a new directory"));
    }
    Ok(())
}

fn shard_marker(dir: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(dir.join(SHARD_MARKER)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::output(e.to_string()))?;
    fs::write(&tmp, text + "\n")
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| Error::output(format!("cannot write {}: {e}", path.display())).at(path))
}

/// Marks a finished shard with its record count, first and last keys, and its place in the
/// sharding (so that a resume with another `--shards` is refused, not mixed).
fn mark_shard(dir: &Path, index: usize, shards: usize) -> Result<serde_json::Value> {
    let db = crate::reader::Database::open(dir)?;
    let shard = &db.shards().0[0];
    let marker = serde_json::json!({
        "index": index,
        "shards": shards,
        "records": db.len()?,
        "first_key": String::from_utf8_lossy(&shard.first),
        "last_key": String::from_utf8_lossy(&shard.last),
    });
    write_json(&dir.join(SHARD_MARKER), &marker)?;
    Ok(marker)
}

fn convert_shards(
    name: &str,
    patches: Vec<Patch>,
    skipped: Vec<(String, String)>,
    target: &Path,
    n: usize,
    only: Option<usize>,
    options: &ConvertOptions,
) -> Result<Summary> {
    fs::create_dir_all(target).map_err(|e| {
        Error::output(format!("cannot create the target directory: {e}")).at(target)
    })?;
    let mut total = Summary::default();
    // Patches dropped while planning (a band missing) have no place in the shard ranges; they
    // are reported once, in the skipped list of shard 0 (every cluster task plans them all).
    let mut skipped = Some(skipped);
    let count = patches.len();
    let mut patches = patches.into_iter();
    let mut taken = 0;
    for index in 0..n {
        let range = shard_range(count, n, index);
        let shard: Vec<Patch> = patches.by_ref().take(range.end - taken).collect();
        taken = range.end;
        if only.is_some_and(|i| i != index) {
            continue;
        }
        let dir = shard_dir(target, index);
        if let Some(marker) = shard_marker(&dir) {
            if marker["shards"].as_u64() != Some(n as u64) {
                return Err(Error::usage(format!(
                    "this shard was written by a conversion into {} shards, not {n}",
                    marker["shards"]
                ))
                .at(&dir)
                .hint("resume with the --shards of the interrupted run, or convert into a new directory"));
            }
            // Finished by an earlier run (or attempt): leave it as it is.
            total.already_present += marker["records"].as_u64().unwrap_or(0);
            continue;
        }
        // Every shard resumes: a rerun of a task after a lost worker finishes what it began.
        let shard_options = ConvertOptions {
            resume: true,
            ..options.clone()
        };
        let shard_skipped = if index == 0 {
            skipped.take().unwrap_or_default()
        } else {
            Vec::new()
        };
        let summary = write_patches(shard, shard_skipped, &dir, &shard_options)?;
        mark_shard(&dir, index, n)?;
        total.records += summary.records;
        total.already_present += summary.already_present;
        total.skipped += summary.skipped;
        total.files += summary.files;
        total.source_bytes += summary.source_bytes;
        total.record_bytes += summary.record_bytes;
        total.threads = summary.threads;
    }
    if only.is_none() {
        write_manifest(target, name, n)?;
    }
    Ok(total)
}

/// Writes `rico-manifest.json` for the `n` shards under `target`; every shard must be finished.
pub fn write_manifest(target: &Path, dataset: &str, n: usize) -> Result<serde_json::Value> {
    let mut shards = Vec::with_capacity(n);
    let mut records = 0u64;
    for index in 0..n {
        let dir = shard_dir(target, index);
        let marker = shard_marker(&dir).ok_or_else(|| {
            Error::usage(format!("shard {index} is not finished (no {SHARD_MARKER})"))
                .at(&dir)
                .hint("run the same conversion again with --resume to finish it")
        })?;
        records += marker["records"].as_u64().unwrap_or(0);
        shards.push(serde_json::json!({
            "path": format!("shard-{index:05}"),
            "records": marker["records"],
            "first_key": marker["first_key"],
            "last_key": marker["last_key"],
        }));
    }
    let manifest = serde_json::json!({
        "format": "rico-sharded-1",
        "rico_version": env!("CARGO_PKG_VERSION"),
        "dataset": dataset,
        "records": records,
        "shards": shards,
    });
    write_json(&target.join(MANIFEST), &manifest)?;
    Ok(manifest)
}

// ---- verify ------------------------------------------------------------------------------------

/// What `rico verify` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerifyReport {
    /// Records compared (patches of the sources).
    pub checked: u64,
    pub matching: u64,
    /// Keys of the sources with no record in the database.
    pub missing: Vec<String>,
    /// Keys in the database that no source gives.
    pub extra: Vec<String>,
    /// Keys whose record differs from a fresh decode of the sources.
    pub differing: Vec<String>,
    /// Patches whose sources cannot be decoded (or miss a band), with the reason: a database
    /// written with `--skip-invalid` leaves them out.
    pub unreadable: Vec<(String, String)>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.differing.is_empty()
            && self.unreadable.is_empty()
    }

    /// One line per problem, then a summary line.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (what, keys) in [
            ("missing", &self.missing),
            ("extra", &self.extra),
            ("differing", &self.differing),
        ] {
            for key in keys {
                s.push_str(&format!("{what}: {key}\n"));
            }
        }
        for (key, reason) in &self.unreadable {
            s.push_str(&format!(
                "unreadable: {key}: {}\n",
                reason.replace('\n', " ")
            ));
        }
        s.push_str(&format!(
            "{} of {} records match; {} missing, {} extra, {} differing, {} unreadable in the sources\n",
            self.matching,
            self.checked,
            self.missing.len(),
            self.extra.len(),
            self.differing.len(),
            self.unreadable.len()
        ));
        if self.ok() {
            return format!(
                "{} records match: the database holds exactly the sources' values\n",
                self.matching
            );
        }
        s
    }
}

/// Re-decodes the sources of a conversion and compares them with the database at `target`
/// (a plain or sharded one), record by record.
pub fn verify_dataset(
    name: &str,
    sources: &[(String, PathBuf)],
    target: &Path,
    options: &ConvertOptions,
) -> Result<VerifyReport> {
    let db = crate::reader::Database::open(target)?;
    let (patches, planning_skipped) = plan_dataset(
        name,
        sources,
        &ConvertOptions {
            skip_invalid: true,
            ..options.clone()
        },
    )?;
    let threads = crate::thread_count(options.threads);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::output(format!("cannot start decoder threads: {e}")))?;
    let mut report = VerifyReport::default();
    let bar = ProgressBar::new(patches.len() as u64, options.progress);
    let mut done = 0u64;
    for chunk in patches.chunks(64) {
        let results: Vec<Result<Record>> =
            pool.install(|| chunk.par_iter().map(build_record).collect());
        for (patch, result) in chunk.iter().zip(results) {
            report.checked += 1;
            let record = match result {
                Ok(record) => record,
                Err(e) if e.kind == ErrorKind::Data => {
                    report.unreadable.push((patch.key.clone(), e.to_string()));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match db.get(patch.key.as_bytes())? {
                None => report.missing.push(patch.key.clone()),
                Some(v) if v == record.value.as_slice() => report.matching += 1,
                Some(_) => report.differing.push(patch.key.clone()),
            }
        }
        done += chunk.len() as u64;
        bar.set(done);
    }
    bar.finish();
    report.checked += planning_skipped.len() as u64;
    report.unreadable.extend(planning_skipped);
    let expected: HashSet<&[u8]> = patches
        .iter()
        .map(|p| p.key.as_bytes())
        .chain(report.unreadable.iter().map(|(k, _)| k.as_bytes()))
        .collect();
    db.for_each(|k, _| {
        if !expected.contains(k) {
            report.extra.push(String::from_utf8_lossy(k).into_owned());
        }
        true
    })?;
    report.extra.sort();
    Ok(report)
}

/// The names in an existing target directory; `None` if it does not exist yet.
fn target_entries(target: &Path) -> Result<Option<Vec<String>>> {
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

fn lmdb_error(target: &Path, what: &str, e: LmdbError) -> Error {
    if e.is_damaged() {
        crate::reader::damaged(target, e)
    } else if e.is_disk_full() {
        Error::output(format!("{what}: {e}: the disk is full (or a quota or file-size limit was reached)"))
            .at(target)
            .hint("free space (or move --target-dir), then run the same command again with --resume; the records committed so far are kept and valid")
    } else {
        Error::output(format!("{what}: {e}")).at(target)
    }
}

/// One decoded patch, ready for the writer.
struct Record {
    key: String,
    value: Vec<u8>,
    files: u64,
    source_bytes: u64,
}

/// Decodes the files of `patch` and serialises its record.
fn build_record(patch: &Patch) -> Result<Record> {
    let mut rasters = Vec::with_capacity(patch.files.len());
    let mut source_bytes = 0u64;
    for file in &patch.files {
        let path = file.path();
        let bytes = fs::read(&path).map_err(|e| {
            Error::data(format!("cannot read file: {e}"))
                .at(&path)
                .hint("check that the file exists and is readable by this user")
        })?;
        source_bytes += bytes.len() as u64;
        let raster = rico_raster::decode(&bytes).map_err(|e| Error::from(e.with_path(&path)))?;
        rasters.push(raster);
    }
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

/// Writes the records of `patches` into `target` in order; returns the summary and the keys
/// of the patches skipped (with `skip_invalid`).
fn write(
    patches: Vec<Patch>,
    planning_skipped: Vec<(String, String)>,
    target: &Path,
    options: &ConvertOptions,
) -> Result<(Summary, HashSet<String>)> {
    fs::create_dir_all(target).map_err(|e| {
        Error::output(format!("cannot create the target directory: {e}")).at(target)
    })?;
    let env = Env::open_writable(target, INITIAL_MAP_SIZE)
        .map_err(|e| lmdb_error(target, "cannot open the database", e))?;
    let mut summary = Summary::default();

    // With resume, leave out what is already there (committed transactions are whole).
    let patches = if options.resume {
        let txn = env
            .begin_read()
            .map_err(|e| lmdb_error(target, "cannot read the database", e))?;
        let mut todo = Vec::with_capacity(patches.len());
        for patch in patches {
            match txn.get(patch.key.as_bytes()) {
                Ok(Some(_)) => summary.already_present += 1,
                Ok(None) => todo.push(patch),
                Err(e) => return Err(lmdb_error(target, "cannot read the database", e)),
            }
        }
        todo
    } else {
        patches
    };

    let threads = crate::thread_count(options.threads);
    summary.threads = threads;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("rico-decode-{i}"))
        .build()
        .map_err(|e| Error::output(format!("cannot start decoder threads: {e}")))?;
    let bar = ProgressBar::new(patches.len() as u64, options.progress);
    let mut skipped: Vec<(String, String)> = planning_skipped;

    // Chunks small enough to keep memory flat, large enough to keep every decoder busy.
    // Chunk length adapts to record size so that the records in flight (a chunk being decoded,
    // two queued, the writer's transaction) stay within a few times CHUNK_BYTES, whether a
    // record is 100 KB (BigEarthNet) or 13 MB (Major-TOM). Output does not depend on it.
    let max_chunk = (threads * 8).clamp(8, 256);
    let mut chunk_len = threads.clamp(1, max_chunk);
    let (sender, receiver) = sync_channel::<Vec<Result<Record>>>(2);
    let write_result = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_records(&env, target, receiver, &bar));
        let mut rest = &patches[..];
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(chunk_len.min(rest.len()));
            rest = tail;
            if options.cancelled() {
                let interrupted = Error::output("interrupted")
                    .at(target)
                    .hint("run the same command again with --resume (resume=True) to finish it");
                let _ = sender.send(vec![Err(interrupted)]);
                break;
            }
            let results: Vec<Result<Record>> =
                pool.install(|| chunk.par_iter().map(build_record).collect());
            let bytes: usize = results
                .iter()
                .map(|r| r.as_ref().map_or(0, |r| r.value.len()))
                .sum();
            let per_record = (bytes / results.len().max(1)).max(1);
            chunk_len = (CHUNK_BYTES / per_record).clamp(threads.min(max_chunk), max_chunk);
            let mut batch = Vec::with_capacity(results.len());
            let mut failed = None;
            for (patch, result) in chunk.iter().zip(results) {
                match result {
                    Ok(r) => batch.push(Ok(r)),
                    Err(e) if options.skip_invalid && e.kind == ErrorKind::Data => {
                        skipped.push((patch.key.clone(), e.to_string().replace(['\n', '\t'], " ")));
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
        writer
            .join()
            .unwrap_or_else(|_| Err(Error::output("the writer thread panicked")))
    });
    bar.finish();
    let written = write_result?;
    summary.records = written.records;
    summary.files = written.files;
    summary.source_bytes = written.source_bytes;
    summary.record_bytes = written.record_bytes;
    summary.skipped = skipped.len() as u64;
    if options.skip_invalid {
        write_skipped_report(target, &skipped)?;
    }
    if let Some(e) = written.error {
        return Err(e);
    }
    env.sync()
        .map_err(|e| lmdb_error(target, "cannot flush the database to disk", e))?;
    Ok((summary, skipped.into_iter().map(|(key, _)| key).collect()))
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

#[derive(Default)]
struct Written {
    records: u64,
    files: u64,
    source_bytes: u64,
    record_bytes: u64,
    /// A decoding error that stopped the run after the records before it were committed.
    error: Option<Error>,
}

/// The single writer: puts records in arrival order (= sorted source order), commits in bounded
/// transactions, grows the map when it fills.
fn write_records(
    env: &Env,
    target: &Path,
    receiver: std::sync::mpsc::Receiver<Vec<Result<Record>>>,
    bar: &ProgressBar,
) -> Result<Written> {
    let mut written = Written::default();
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut last_key = {
        let txn = env
            .begin_write()
            .map_err(|e| lmdb_error(target, "cannot start a transaction", e))?;
        txn.last_key()
            .map_err(|e| lmdb_error(target, "cannot read the database", e))?
    };
    let mut done = 0u64;
    for batch in receiver {
        for result in batch {
            match result {
                Ok(record) => {
                    pending_bytes += record.value.len();
                    pending.push(record);
                    if pending.len() >= TXN_MAX_RECORDS || pending_bytes >= TXN_MAX_BYTES {
                        commit(env, target, &mut pending, &mut last_key, &mut written)?;
                        pending_bytes = 0;
                    }
                    done += 1;
                    bar.set(done);
                }
                Err(e) => {
                    commit(env, target, &mut pending, &mut last_key, &mut written)?;
                    written.error = Some(e);
                    return Ok(written);
                }
            }
        }
    }
    commit(env, target, &mut pending, &mut last_key, &mut written)?;
    Ok(written)
}

/// Commits `pending` in one transaction, growing the map and retrying if it is full.
fn commit(
    env: &Env,
    target: &Path,
    pending: &mut Vec<Record>,
    last_key: &mut Option<Vec<u8>>,
    written: &mut Written,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    loop {
        match try_commit(env, pending, last_key.as_deref()) {
            Ok(()) => {
                env.release_mapped_pages();
                break;
            }
            Err(TxnError::Lmdb(e)) if e.is_map_full() => {
                let info = env
                    .info()
                    .map_err(|e| lmdb_error(target, "cannot read the database size", e))?;
                let step = info.map_size.clamp(INITIAL_MAP_SIZE, 64 << 30);
                // SAFETY: the writer thread is the only user of this environment while it writes,
                // and it holds no transaction here (the failed one was dropped).
                unsafe { env.set_map_size(info.map_size + step) }
                    .map_err(|e| lmdb_error(target, "cannot grow the database map", e))?;
            }
            Err(TxnError::Lmdb(e)) => return Err(lmdb_error(target, "cannot write records", e)),
            Err(TxnError::Duplicate(key)) => {
                // Planning refuses duplicate sources and --resume skips committed keys, so this
                // means something else wrote into the database during the run.
                return Err(Error::output(format!(
                    "record {key:?} appeared in the database while this run was writing it"
                ))
                .at(target)
                .hint("another conversion is writing into the same --target-dir; run one at a time, then finish with --resume"));
            }
        }
    }
    for record in pending.drain(..) {
        written.records += 1;
        written.files += record.files;
        written.source_bytes += record.source_bytes;
        written.record_bytes += record.value.len() as u64;
        // The greatest key in the database, not the last one put: source order is not key order
        // across sources (maps after S2 patches), and appending needs the true maximum.
        if last_key
            .as_deref()
            .is_none_or(|l| record.key.as_bytes() > l)
        {
            *last_key = Some(record.key.into_bytes());
        }
    }
    Ok(())
}

enum TxnError {
    Lmdb(LmdbError),
    Duplicate(String),
}

fn try_commit(
    env: &Env,
    pending: &[Record],
    last_key: Option<&[u8]>,
) -> std::result::Result<(), TxnError> {
    let mut txn = env.begin_write().map_err(TxnError::Lmdb)?;
    let mut last = last_key;
    for record in pending {
        let key = record.key.as_bytes();
        // Appending is LMDB's fast bulk load; it needs keys in increasing order, which sorted
        // source paths usually give. Otherwise an ordinary insert that refuses to overwrite.
        let mode = if last.is_none_or(|l| key > l) {
            PutMode::Append
        } else {
            PutMode::NoOverwrite
        };
        txn.put(key, &record.value, mode).map_err(|e| {
            if e.is_key_exist() {
                TxnError::Duplicate(record.key.clone())
            } else {
                TxnError::Lmdb(e)
            }
        })?;
        if last.is_none_or(|l| key > l) {
            last = Some(key);
        }
    }
    txn.commit().map_err(TxnError::Lmdb)
}
