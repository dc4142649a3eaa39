//! The conversion pipeline, one run into one LMDB directory: patches stream in from the
//! planner ([`crate::write::plan`], or a shard's plan, [`crate::write::sharding`]), their files are read
//! with many reads in flight (`io_depth`, `reading`), decoded on `threads` threads
//! (`decode`), and written in plan order through one LMDB writer (`writing`). Bounded channels
//! between the stages keep memory flat whatever the size of the dataset. A single run
//! ([`crate::write::convert`]) and each shard of a sharded run ([`crate::write::sharding`]) go through
//! [`write_patches`]; [`with_sources`] resolves the sources of both (and of `rico verify`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};

use rayon::prelude::*;

use crate::base::error::{Error, ErrorKind, Result};
use crate::base::labels;
use crate::base::lmdb::Env;
use crate::base::progress::Progress;
use crate::write::commit::{key_hash128, lmdb_error, write_records, INITIAL_MAP_SIZE};
use crate::write::datasets;
use crate::write::decode::{decode_patch, Record};
use crate::write::fetch::{Fetched, FileReaders};
use crate::write::plan::Planned;
use crate::write::spec::{self, Patch, Source};
use crate::write::target::{self, SKIPPED_REPORT};

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
    /// [`crate::write::spec::DEFAULT_MAX_HELD_BYTES`]. Also the largest member read.
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
pub(crate) fn resolve_specs(
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
        for found in crate::write::sources::expand(flag, root, name, &options.remote)? {
            // Parts of a split archive given as a list: each names the whole archive once.
            if let rico_source::Location::Parts(p) = &found.location {
                if resolved.iter().any(|s| {
                    s.option == *flag
                        && matches!(&s.location, rico_source::Location::Parts(q) if q == p)
                }) {
                    continue;
                }
            }
            resolved.push(Source {
                option: flag.to_string(),
                container: found.container,
                root: found.shown,
                location: found.location,
                spec,
                max_held_bytes,
                keys: options.keys.clone(),
                in_flight_bytes: buffer_bytes(options) as u64,
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

/// The buffer a conversion runs with ([`ConvertOptions::buffer_bytes`]).
fn buffer_bytes(options: &ConvertOptions) -> usize {
    options
        .buffer_bytes
        .unwrap_or(DEFAULT_BUFFER_BYTES)
        .max(MIN_BUFFER_BYTES)
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
        // Container members arrive with their bytes: a chunk is full at a quarter of the buffer
        // of them, however few patches that is (an archive's members can be any size).
        let mut held = 0usize;
        let mut failed = None;
        while chunk.len() < chunk_len && held < chunk_bytes {
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
                        held += patch
                            .files
                            .iter()
                            .map(|f| f.data.as_ref().map_or(0, |d| d.len()))
                            .sum::<usize>();
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
    target::create(target)?;
    let env = Env::open_writable(target, INITIAL_MAP_SIZE)
        .map_err(|e| lmdb_error(target, "cannot open the database", e))?;
    let _lock = target::lock(target)?;
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
        let (env, txn_bytes, present) = (&env, buffer_bytes(options) / 4, &present);
        let writer =
            scope.spawn(move || write_records(env, target, receiver, txn_bytes, present, bar));
        let readers = FileReaders::start(options.io_depth.unwrap_or(DEFAULT_IO_DEPTH));
        let fetcher = scope.spawn(|| {
            fetch(
                planned, fetch_tx, present, readers, threads, options, target, bar,
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
                        // A panic of a decoder on hostile bytes names the patch's file as
                        // damaged; it never takes the process down.
                        let record = files.and_then(|files| {
                            rico_source::catch_panics(|| decode_patch(&patch, files))
                                .unwrap_or_else(|panic| {
                                    Err(Error::data(format!(
                                        "the decoder stopped on this file's bytes ({panic}); it is damaged"
                                    ))
                                    .at(patch.files[0].path())
                                    .hint("re-download this patch (or pass --skip-invalid to leave it out)"))
                                })
                        });
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
        target::write_skipped_report(target, &all_skipped)?;
    }
    if let Some(e) = written.error {
        return Err(e);
    }
    if !options.skip_invalid {
        // A run without --skip-invalid that finished wrote every patch: an old report of
        // skipped patches (from an earlier --skip-invalid run) would no longer be true.
        target::remove_skipped_report(target)?;
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
