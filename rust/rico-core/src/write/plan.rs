//! Streamed planning: walks each source directory by directory and hands out each patch as
//! soon as it is complete, so that memory depends on the widest directory, not on the dataset.
//!
//! A directory's files are grouped (and its patches handed out) before its subdirectories are
//! entered. For sources whose patches keep their files in one directory (every BigEarthNet,
//! SSL4EO and Major-TOM source, and every whole-file dataset) a patch is complete when its
//! directory has been listed. Sources where that is not known (`bands` with a user pattern,
//! or `uniform_bands`) hand out their patches at the end of the source.
//!
//! Keys handed out are remembered as 64-bit hashes (8 bytes a patch). A key that comes again
//! is a duplicate; the walk is then repeated to name the file that gave it first.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::base::labels::{LabelRule, TableRows};
use crate::write::sources::members::read_members;
use crate::write::sources::walk::walk_dirs;
use crate::write::sources::{check_source, read_tables, Event, Member};

mod duplicates;
mod group;

use crate::write::spec::{InFlight, Patch, Source};
pub use duplicates::is_duplicate_key;
use duplicates::{duplicate, first_file_with_key};
use group::Grouper;

/// What the planner hands out, in plan order.
#[derive(Debug)]
pub enum Planned {
    /// A complete patch: its files sorted by name.
    Patch(Patch),
    /// With `skip_invalid`: a patch (or a path) left out, with the reason.
    Skipped(String, String),
}

pub use crate::base::progress::Scanned;

/// Walks every source and groups its files into patches, sorted by source path. Fails before
/// anything is written when a source is missing or empty, a key repeats, or a band is missing.
pub fn plan(sources: &[Source<'_>]) -> Result<Vec<Patch>> {
    Ok(plan_with(sources, false)?.0)
}

/// [`plan`], and with `skip_invalid` a patch missing a band is left out and listed with the
/// reason (key, reason) instead of stopping the run. Collects the whole plan: conversions use
/// [`stream`], which hands out each patch as soon as it is complete.
#[allow(clippy::type_complexity)]
pub fn plan_with(
    sources: &[Source<'_>],
    skip_invalid: bool,
) -> Result<(Vec<Patch>, Vec<(String, String)>)> {
    let mut patches = Vec::new();
    let mut skipped = Vec::new();
    stream(sources, skip_invalid, &|_| {}, &mut |item| {
        match item {
            Planned::Patch(p) => patches.push(p),
            Planned::Skipped(k, r) => skipped.push((k, r)),
        }
        Ok(())
    })?;
    Ok((patches, skipped))
}

/// The hash by which handed-out keys are remembered (SipHash with fixed keys: deterministic).
pub fn key_hash(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Walks `sources` (in the order of their root paths) and calls `emit` with every patch as soon
/// as it is complete; `scanned` is told the number of files walked so far, once per directory
/// (or the bytes of a container read so far).
///
/// A container (archive or Parquet file) is read once, front to back: a patch is handed out
/// as soon as its last file has been read, with its files' bytes; a patch whose files are not
/// complete when the container ends is handled as a directory's patch missing a band.
pub fn stream(
    sources: &[Source<'_>],
    skip_invalid: bool,
    scanned: &dyn Fn(Scanned),
    emit: &mut dyn FnMut(Planned) -> Result<()>,
) -> Result<()> {
    // Check every source before walking any: a typo in the third option should not cost a long walk.
    for source in sources {
        check_source(source)?;
    }
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by(|a, b| sources[*a].root.cmp(&sources[*b].root));
    let mut emitted = HashSet::new();
    let mut files = 0u64;
    // Directories first, walked one after another; then the containers, several at once.
    let containers: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| sources[i].container.is_some())
        .collect();
    order.retain(|&i| sources[i].container.is_none());
    for index in order {
        let source = &sources[index];
        let tables = read_tables(source)?;
        let mut group = Grouper::new(source, index, tables.as_ref(), skip_invalid);
        let local = group.local();
        let mut found = 0usize;
        let mut step = |event: Event<'_>| -> Result<()> {
            match event {
                Event::Member(member) => {
                    files += 1;
                    let added = group.add(member.dir, member.rel);
                    for (path, reason) in group.skipped.drain(..) {
                        emit(Planned::Skipped(path, reason))?;
                    }
                    if added? {
                        found += 1;
                    }
                }
                Event::DirDone => {
                    scanned(Scanned::Files(files));
                    if local {
                        group.flush(sources, &mut emitted, emit)?;
                    }
                }
                Event::Invalid(path, reason) => emit(Planned::Skipped(path, reason))?,
                Event::Root(_) | Event::Progress(_) => {}
            }
            Ok(())
        };
        let root: Arc<Path> = source.root.clone().into();
        walk_dirs(&root, &mut String::new(), 0, skip_invalid, &mut step)?;
        group.flush(sources, &mut emitted, emit)?;
        if found == 0 && source.keys.is_none() {
            return Err(no_patch(source));
        }
    }
    if !containers.is_empty() {
        let width = std::thread::available_parallelism().map_or(1, |n| n.get());
        read_containers(
            sources,
            &containers,
            width,
            skip_invalid,
            &mut emitted,
            scanned,
            emit,
        )?;
    }
    Ok(())
}

/// What a container's reader thread sends to the planner.
enum FromReader {
    /// A patch (or a skipped one), in the container's order, with its members' bytes.
    Item(Planned, u64),
    /// The container is read: the number of its files that were image data.
    Done(usize),
    /// Reading stopped on this error.
    Failed(Error),
}

/// Reads the containers `indices` (in that order), up to `width` at once, each on its own
/// thread (decompression, the slow part of reading a container, takes one core). Their patches
/// are handed out in turn, one from each container being read, so that the plan's order, and
/// with it the database, does not depend on which thread runs ahead; a container's turn goes
/// to the next one when it ends.
fn read_containers(
    sources: &[Source<'_>],
    indices: &[usize],
    width: usize,
    skip_invalid: bool,
    emitted: &mut HashSet<u64>,
    scanned: &dyn Fn(Scanned),
    emit: &mut dyn FnMut(Planned) -> Result<()>,
) -> Result<()> {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc::{sync_channel, Receiver};

    let read: Vec<AtomicU64> = indices.iter().map(|_| AtomicU64::new(0)).collect();
    // Bytes of complete patches: handed to the stages below (`in_flight`), and sent by each
    // reader thread but not yet taken (`queued`, one budget a container): both bounded.
    let limit = sources[indices[0]].in_flight_bytes;
    let in_flight = InFlight::new(limit);
    let queued: Vec<Arc<InFlight>> = indices.iter().map(|_| InFlight::new(limit)).collect();
    struct CloseOnDrop<'q>(&'q [Arc<InFlight>]);
    impl Drop for CloseOnDrop<'_> {
        fn drop(&mut self) {
            self.0.iter().for_each(|q| q.close());
        }
    }
    let total: u64 = indices.iter().map(|&i| sources[i].location.size()).sum();
    std::thread::scope(|scope| {
        let start = |slot: usize| -> (usize, Receiver<FromReader>) {
            let (tx, rx) = sync_channel::<FromReader>(4);
            let read = &read[slot];
            let queue = &queued[slot];
            let index = indices[slot];
            scope.spawn(move || {
                let container = sources[index].container.expect("a container source");
                let mut mine = HashSet::new();
                let mut send = |item: Planned| {
                    let n = match &item {
                        Planned::Patch(p) => InFlight::bytes_of(&p.files),
                        Planned::Skipped(..) => 0,
                    };
                    queue.acquire(n);
                    tx.send(FromReader::Item(item, n))
                        .map_err(|_| Error::output("the conversion stopped"))
                };
                let progress = |s: Scanned| {
                    if let Scanned::Bytes { read: n, .. } = s {
                        read.store(n, Ordering::Relaxed);
                    }
                };
                let result = stream_container(
                    sources,
                    index,
                    container,
                    skip_invalid,
                    &mut mine,
                    &progress,
                    &mut send,
                );
                let _ = tx.send(match result {
                    Ok(found) => FromReader::Done(found),
                    Err(e) => FromReader::Failed(e),
                });
            });
            (slot, rx)
        };
        // Ends the reader threads' waits when this loop returns (an error stops the run).
        let _close = CloseOnDrop(&queued);
        let mut next = 0;
        let mut window: VecDeque<(usize, Receiver<FromReader>)> = VecDeque::new();
        while window.len() < width.max(1) && next < indices.len() {
            window.push_back(start(next));
            next += 1;
        }
        while let Some((slot, rx)) = window.pop_front() {
            let message = rx.recv().unwrap_or_else(|_| {
                FromReader::Failed(Error::output("a container's reader thread stopped"))
            });
            match message {
                FromReader::Item(mut item, n) => {
                    queued[slot].release(n);
                    if let Planned::Patch(p) = &mut item {
                        if !emitted.insert(key_hash(&p.key)) {
                            let spec = sources[p.source].spec;
                            let this = p.files[0].path();
                            let first = Path::new("a file of another part");
                            return Err(duplicate(spec, &p.key, first, &this));
                        }
                        in_flight.admit(&mut p.files);
                    }
                    emit(item)?;
                    window.push_back((slot, rx));
                }
                FromReader::Done(found) => {
                    if found == 0 && sources[indices[slot]].keys.is_none() {
                        return Err(no_patch(&sources[indices[slot]]));
                    }
                    if next < indices.len() {
                        window.push_back(start(next));
                        next += 1;
                    }
                }
                FromReader::Failed(e) => {
                    return Err(with_suspect_keys(sources, indices[slot], skip_invalid, e))
                }
            }
            scanned(Scanned::Bytes {
                read: read.iter().map(|r| r.load(Ordering::Relaxed)).sum(),
                total,
            });
        }
        Ok(())
    })
}

/// A container whose compressed stream failed its integrity check (a gzip CRC, a zstd frame
/// checksum) or ended early: its members were decompressed before the check could tell, so the
/// records made from any of them may be wrong. The error then carries every key the container
/// handed out ([`Error::discard`]), found by reading it again up to the same failure (the same
/// bytes give the same patches), and the writer removes those it wrote. A zip member and a
/// Parquet page are checked before they are handed out; a plain tar has no checksum.
fn with_suspect_keys(
    sources: &[Source<'_>],
    index: usize,
    skip_invalid: bool,
    mut e: Error,
) -> Error {
    let suspect = e.discard.take().is_some();
    let compressed = matches!(
        sources[index].container,
        Some(rico_source::Container::Tar(
            rico_source::Compression::Gzip | rico_source::Compression::Zstd
        ))
    );
    if !(suspect && compressed) {
        return e;
    }
    let mut keys = Vec::new();
    let mut collect = |item: Planned| {
        if let Planned::Patch(p) = item {
            keys.push(p.key);
        }
        Ok(())
    };
    let container = sources[index].container.expect("a container source");
    let _ = stream_container(
        sources,
        index,
        container,
        skip_invalid,
        &mut HashSet::new(),
        &|_| {},
        &mut collect,
    );
    e.discard = Some(Arc::new(keys));
    e.hint = Some(
        "download it again (compare its checksum with the one the dataset publishes), then run the same command with --resume: this run's records from this archive were not kept".to_string(),
    );
    e
}

fn no_patch(source: &Source<'_>) -> Error {
    Error::usage(format!(
        "no patch found in this {} {} (given with --{}); expected {}",
        source.option.trim_end_matches("-dir"),
        source.what(),
        source.option,
        source.spec.describe
    ))
    .at(&source.root)
    .hint(match source.container {
        None => "check that the option points at the dataset's root directory",
        Some(_) => "check that the option points at the dataset's own archive (or Parquet file) for this option",
    })
}

/// Reads one container source front to back; returns the number of its files that are image
/// data. Patches are handed out as they complete.
fn stream_container(
    sources: &[Source<'_>],
    index: usize,
    container: rico_source::Container,
    skip_invalid: bool,
    emitted: &mut HashSet<u64>,
    scanned: &dyn Fn(Scanned),
    emit: &mut dyn FnMut(Planned) -> Result<()>,
) -> Result<usize> {
    let source = &sources[index];
    if matches!(source.spec.labels, LabelRule::Tables { .. }) {
        return Err(Error::usage(format!(
            "this dataset's labels come from tables beside its images; rico reads it from a directory, not from {}",
            source.what()
        ))
        .at(&source.root)
        .hint("unpack it and give the folder"));
    }
    let total = source.location.size();
    let mut group = Grouper::new(source, index, None, skip_invalid);
    let mut found = 0usize;
    read_members(source, container, &mut |event| {
        match event {
            Event::Root(name) => group.root_name = name.to_string(),
            Event::Member(member) => {
                if take_member(sources, source, &mut group, member, emitted, emit)? {
                    found += 1;
                }
            }
            Event::Progress(read) => scanned(Scanned::Bytes { read, total }),
            Event::DirDone | Event::Invalid(..) => {}
        }
        Ok(())
    })?;
    group.flush(sources, emitted, emit)?;
    Ok(found)
}

/// Groups a container's member as it is read: hands out its patch once complete, and stops
/// the run when the archive repeats a file or holds more incomplete patches than allowed.
/// Returns whether the member was image data.
fn take_member(
    sources: &[Source<'_>],
    source: &Source<'_>,
    group: &mut Grouper<'_>,
    member: Member<'_>,
    emitted: &mut HashSet<u64>,
    emit: &mut dyn FnMut(Planned) -> Result<()>,
) -> Result<bool> {
    let added = group.add_with(member.dir, member.rel, member.held);
    for (path, reason) in group.skipped.drain(..) {
        emit(Planned::Skipped(path, reason))?;
    }
    let Some(key) = added? else {
        return Ok(false);
    };
    if emitted.contains(&key_hash(&key)) {
        // Its patch was complete and handed out: the archive holds this file twice.
        return Err(Error::data(format!(
            "{}: this member repeats a file of patch {key}, which the archive already gave; an unpacked folder holds one file of a name",
            rico_source::member_location(&source.root, member.name)
        ))
        .hint("repack the archive with one copy of each file, or download it again"));
    }
    if let Some(ready) = group.take_if_complete(&key) {
        group.hand_out(vec![(key, ready)], sources, emitted, emit)?;
    }
    if group.pending_bytes > source.max_held_bytes {
        return Err(Error::data(format!(
            "{} MB of incomplete patches are held, above the limit of {} MB: the files of a patch lie far apart in this {}",
            group.pending_bytes >> 20,
            source.max_held_bytes >> 20,
            source.what()
        ))
        .at(&source.root)
        .hint("raise the limit with --max-held-mb (max_held_mb= in Python), or repack the archive in name order (tar --sort=name)"));
    }
    Ok(true)
}

/// Re-makes planned patches from their listed files, without walking: each item of `listed`
/// is (source index, directory relative to the source root, file names) of one patch.
pub fn replan(
    sources: &[Source<'_>],
    listed: &mut dyn Iterator<Item = Result<(usize, String, Vec<String>)>>,
    emit: &mut dyn FnMut(Planned) -> Result<()>,
) -> Result<()> {
    let mut tables: Vec<Option<Option<TableRows>>> = (0..sources.len()).map(|_| None).collect();
    let mut emitted = HashSet::new();
    for item in listed {
        let (index, rel_dir, names) = item?;
        let source = sources.get(index).ok_or_else(|| {
            Error::usage(format!(
                "the shard plan names source {index}, which this conversion does not have"
            ))
            .hint("resume with the same source options as the run that planned the shards")
        })?;
        if tables[index].is_none() {
            tables[index] = Some(read_tables(source)?);
        }
        let table = tables[index].as_ref().and_then(|t| t.as_ref());
        let mut group = Grouper::new(source, index, table, false);
        let dir: Arc<Path> = if rel_dir.is_empty() {
            source.root.clone().into()
        } else {
            source.root.join(&rel_dir).into()
        };
        for name in &names {
            let rel = if rel_dir.is_empty() {
                name.clone()
            } else {
                format!("{rel_dir}/{name}")
            };
            group.add(&dir, &rel)?;
        }
        group.flush(sources, &mut emitted, emit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::spec::{BandRule, Spec};
    use std::cell::Cell;
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    fn tree(name: &str, files: &[&str]) -> PathBuf {
        crate::write::scratch::tree(&format!("plan-{name}"), files)
    }

    fn per_dir_spec() -> Spec {
        Spec::new(
            r"(?:^|/)(?P<key>p\d+)/[^/]*_(?P<band>B\d)\.tif$",
            "{key}",
            BandRule::FromPath,
            "x",
        )
        .unwrap()
        .require_bands(&["B1", "B2"])
        .patch_per_directory()
    }

    fn source<'a>(root: &Path, spec: &'a Spec) -> Source<'a> {
        Source::directory("dataset-dir", root, spec)
    }

    #[allow(clippy::type_complexity)]
    fn collect(sources: &[Source<'_>], skip: bool) -> Result<(Vec<Patch>, Vec<(String, String)>)> {
        let (mut patches, mut skipped) = (Vec::new(), Vec::new());
        stream(sources, skip, &|_| {}, &mut |item| {
            match item {
                Planned::Patch(p) => patches.push(p),
                Planned::Skipped(k, r) => skipped.push((k, r)),
            }
            Ok(())
        })?;
        Ok((patches, skipped))
    }

    #[test]
    fn patches_are_handed_out_as_soon_as_their_directory_is_listed() {
        let files: Vec<String> = (0..10)
            .flat_map(|i| [format!("t/p{i}/p{i}_B1.tif"), format!("t/p{i}/p{i}_B2.tif")])
            .collect();
        let refs: Vec<&str> = files.iter().map(String::as_str).collect();
        let root = tree("stream", &refs);
        let spec = per_dir_spec();
        let scanned = Cell::new(0u64);
        let mut seen_at = Vec::new();
        stream(
            &[source(&root, &spec)],
            false,
            &|n| {
                if let Scanned::Files(n) = n {
                    scanned.set(n)
                }
            },
            &mut |item| {
                if let Planned::Patch(p) = item {
                    assert_eq!(p.files.len(), 2);
                    seen_at.push((p.key, scanned.get()));
                }
                Ok(())
            },
        )
        .unwrap();
        let keys: Vec<&str> = seen_at.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"]
        );
        // Patch i is handed out once its own two files are scanned, not at the end of the walk.
        let at: Vec<u64> = seen_at.iter().map(|(_, n)| *n).collect();
        assert_eq!(at, (1..=10).map(|i| 2 * i).collect::<Vec<u64>>());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_key_in_two_directories_is_a_duplicate_naming_both_files() {
        let root = tree(
            "dup",
            &[
                "a/p1/p1_B1.tif",
                "a/p1/p1_B2.tif",
                "b/p1/p1_B1.tif",
                "b/p1/p1_B2.tif",
            ],
        );
        let spec = per_dir_spec();
        let err = collect(&[source(&root, &spec)], false).unwrap_err();
        assert!(
            err.message.contains("duplicate key \"p1\""),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains(&root.join("a/p1/p1_B1.tif").display().to_string())
                && err
                    .message
                    .contains(&root.join("b/p1/p1_B1.tif").display().to_string()),
            "{}",
            err.message
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn patches_spread_over_directories_are_grouped_when_the_spec_is_not_per_directory() {
        let spec = Spec::new(
            r"^(?P<band>B\d)/(?P<key>[^/]+)\.tif$",
            "{key}",
            BandRule::FromPath,
            "x",
        )
        .unwrap()
        .uniform_bands();
        let root = tree("spread", &["B1/a.tif", "B1/b.tif", "B2/a.tif", "B2/b.tif"]);
        let (patches, _) = collect(&[source(&root, &spec)], false).unwrap();
        assert_eq!(patches.len(), 2);
        assert!(patches.iter().all(|p| p.files.len() == 2));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_non_utf8_name_is_named_escaped_and_can_be_skipped() {
        let root = tree("utf8", &["t/p1/p1_B1.tif", "t/p1/p1_B2.tif"]);
        let bad = root.join("t").join(std::ffi::OsStr::from_bytes(b"p2\xff"));
        fs::create_dir_all(&bad).unwrap();
        fs::write(bad.join("p2_B1.tif"), b"").unwrap();
        let spec = per_dir_spec();
        let err = collect(&[source(&root, &spec)], false).unwrap_err();
        assert!(
            err.message.contains("p2\\xFF") && err.message.contains("not valid UTF-8"),
            "{}",
            err.message
        );
        assert!(err.hint.as_deref().unwrap().contains("--skip-invalid"));
        let (patches, skipped) = collect(&[source(&root, &spec)], true).unwrap();
        assert_eq!(patches.len(), 1);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].0.ends_with("t/p2\\xFF"), "{}", skipped[0].0);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn replan_makes_the_same_patches_from_the_listed_files() {
        let root = tree(
            "replan",
            &[
                "t/p1/p1_B1.tif",
                "t/p1/p1_B2.tif",
                "t/p2/p2_B2.tif",
                "t/p2/p2_B1.tif",
            ],
        );
        let spec = per_dir_spec();
        let sources = [source(&root, &spec)];
        let (walked, _) = collect(&sources, false).unwrap();
        let mut listed = walked.iter().map(|p| {
            let dir = p.files[0].dir.strip_prefix(&root).unwrap();
            let names = p.files.iter().map(|f| f.name.to_string()).collect();
            Ok((p.source, dir.to_str().unwrap().to_string(), names))
        });
        let mut again = Vec::new();
        replan(&sources, &mut listed, &mut |item| {
            if let Planned::Patch(p) = item {
                again.push(p);
            }
            Ok(())
        })
        .unwrap();
        let paths = |ps: &[Patch]| -> Vec<(String, Vec<PathBuf>)> {
            ps.iter()
                .map(|p| (p.key.clone(), p.files.iter().map(|f| f.path()).collect()))
                .collect()
        };
        assert_eq!(paths(&again), paths(&walked));
        fs::remove_dir_all(root).unwrap();
    }
}
