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
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, ErrorKind, Result};
use crate::base::labels::{LabelRule, Labels, TableRows};
use crate::write::spec::{
    BandRule, FileBands, HeldBytes, InFlight, Patch, PatchFile, Source, Spec, MAX_KEY_BYTES,
};

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
                Event::File(dir, rel) => {
                    files += 1;
                    let added = group.add(dir, rel);
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
    let mut visitor = ContainerVisitor {
        sources,
        source,
        group: Grouper::new(source, index, None, skip_invalid),
        emitted,
        emit,
        scanned,
        total,
        found: 0,
        dir: None,
    };
    let limits = rico_source::Limits {
        max_member_bytes: source.max_held_bytes,
    };
    rico_source::read_members_at(&source.location, container, &limits, &mut visitor)?;
    let found = visitor.found;
    visitor
        .group
        .flush(sources, visitor.emitted, visitor.emit)?;
    Ok(found)
}

/// Groups a container's members into patches as they are read.
struct ContainerVisitor<'v, 's> {
    sources: &'v [Source<'s>],
    source: &'v Source<'s>,
    group: Grouper<'v>,
    emitted: &'v mut HashSet<u64>,
    emit: &'v mut dyn FnMut(Planned) -> Result<()>,
    scanned: &'v dyn Fn(Scanned),
    total: u64,
    found: usize,
    /// The last member's folder (as stored) and its `<container>!<folder>` path, shared by the
    /// files of a patch.
    dir: Option<(String, Arc<Path>)>,
}

impl rico_source::Visitor for ContainerVisitor<'_, '_> {
    type Error = Error;

    fn root(&mut self, name: &str) -> Result<()> {
        self.group.root_name = name.to_string();
        Ok(())
    }

    fn wants(&mut self, rel: &str) -> bool {
        let spec = self.group.spec;
        match &self.source.keys {
            None => spec.pattern.is_match(rel),
            Some(keys) => spec
                .pattern
                .captures(rel)
                .is_some_and(|caps| keys.contains(&spec.key.render(&self.group.root_name, &caps))),
        }
    }

    fn member(&mut self, member: rico_source::Member<'_>) -> Result<()> {
        let folder = member.name.rsplit_once('/').map_or("", |(d, _)| d);
        let dir = match &self.dir {
            Some((f, dir)) if f == folder => dir.clone(),
            _ => {
                let dir: Arc<Path> =
                    PathBuf::from(rico_source::member_location(&self.source.root, folder)).into();
                self.dir = Some((folder.to_string(), dir.clone()));
                dir
            }
        };
        let added = self.group.add_with(
            &dir,
            member.rel,
            Some(Arc::new(HeldBytes::new(member.bytes))),
        );
        for (path, reason) in self.group.skipped.drain(..) {
            (self.emit)(Planned::Skipped(path, reason))?;
        }
        let Some(key) = added? else {
            return Ok(());
        };
        if self.emitted.contains(&key_hash(&key)) {
            // Its patch was complete and handed out: the archive holds this file twice.
            return Err(Error::data(format!(
                "{}: this member repeats a file of patch {key}, which the archive already gave; an unpacked folder holds one file of a name",
                rico_source::member_location(&self.source.root, member.name)
            ))
            .hint("repack the archive with one copy of each file, or download it again"));
        }
        self.found += 1;
        if let Some(ready) = self.group.take_if_complete(&key) {
            self.group
                .hand_out(vec![(key, ready)], self.sources, self.emitted, self.emit)?;
        }
        if self.group.pending_bytes > self.source.max_held_bytes {
            return Err(Error::data(format!(
                "{} MB of incomplete patches are held, above the limit of {} MB: the files of a patch lie far apart in this {}",
                self.group.pending_bytes >> 20,
                self.source.max_held_bytes >> 20,
                self.source.what()
            ))
            .at(&self.source.root)
            .hint("raise the limit with --max-held-mb (max_held_mb= in Python), or repack the archive in name order (tar --sort=name)"));
        }
        Ok(())
    }

    fn progress(&mut self, read: u64) {
        (self.scanned)(Scanned::Bytes {
            read,
            total: self.total,
        });
    }
}

impl From<rico_source::SourceError> for Error {
    fn from(e: rico_source::SourceError) -> Error {
        use rico_source::SourceErrorKind as K;
        let message = match &e.member {
            Some(m) => format!(
                "{}: {}",
                rico_source::member_location(&e.container, m),
                e.message
            ),
            None => e.message.clone(),
        };
        let mut err = match e.kind {
            K::Io => Error::usage(message),
            K::Corrupt | K::Hostile | K::Limit | K::Layout => Error::new(ErrorKind::Data, message),
        };
        if e.damage {
            // A mark for the planner: the records of this container may be wrong
            // (see `with_suspect_keys`, which fills in the keys).
            err.discard = Some(Arc::new(Vec::new()));
        }
        if e.member.is_none() {
            err = err.at(&e.container);
        }
        match e.hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
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

/// The label tables of a source whose labels come from tables (read before any image is
/// looked up in them); `None` for other sources.
fn read_tables(source: &Source<'_>) -> Result<Option<TableRows>> {
    let LabelRule::Tables { tables, .. } = &source.spec.labels else {
        return Ok(None);
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    crate::write::spec::walk_each(&source.root, &mut |rel| {
        if tables.is_match(rel) {
            paths.push(source.root.join(rel));
        }
        Ok(())
    })?;
    if paths.is_empty() {
        return Err(Error::usage(format!(
            "no label table found in the directory given with --{} (files whose path matches {:?})",
            source.option,
            tables.as_str()
        ))
        .at(&source.root)
        .hint("point the option at the dataset's root, the directory that holds both the images and the labels directory"));
    }
    Ok(Some(TableRows::read(&paths)?))
}

fn check_source(source: &Source<'_>) -> Result<()> {
    if !matches!(source.location, rico_source::Location::Local(_)) {
        return Ok(()); // opened (and its size and version asked for) when it was resolved
    }
    if source.container.is_some() {
        return match fs::File::open(&source.root) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::usage(format!(
                "cannot open the {} given with --{}: {e}",
                source.what(),
                source.option
            ))
            .at(&source.root)
            .hint("check the path; it must exist and be readable")),
        };
    }
    match fs::metadata(&source.root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::usage(format!(
            "--{} must be a directory, an archive ({}) or a Parquet file; this is another kind of file",
            source.option,
            rico_source::CONTAINER_ENDINGS
        ))
        .at(&source.root)),
        Err(e) => Err(Error::usage(format!(
            "cannot open the directory given with --{}: {e}",
            source.option
        ))
        .at(&source.root)
        .hint("check the path; it must exist and be readable")),
    }
}

// ---- the walk ----------------------------------------------------------------------------------

enum Event<'a> {
    /// A file (anything that is not a directory): its directory and `/`-separated relative path.
    File(&'a Arc<Path>, &'a str),
    /// The files of a directory have all been given (its subdirectories come next).
    DirDone,
    /// With `skip_invalid`: a path left out (escaped), with the reason.
    Invalid(String, String),
}

/// A path's bytes, printable: valid UTF-8 as it is, other bytes as `\xNN`.
pub fn escape_path(path: &Path) -> String {
    path.as_os_str()
        .as_bytes()
        .utf8_chunks()
        .map(|chunk| {
            let mut s = chunk.valid().to_string();
            for b in chunk.invalid() {
                s.push_str(&format!("\\x{b:02X}"));
            }
            s
        })
        .collect()
}

/// What is wrong with a link loop: `link` leads back to `holder`, a directory that holds it.
pub(crate) fn link_loop_reason(link: &Path, holder: &Path) -> String {
    format!(
        "{}: a symbolic link loop: this link leads back to {}, a directory that holds it, so following it would list the same files again without end",
        escape_path(link),
        escape_path(holder)
    )
}

/// Lists `dir`: its files first (sorted), then each subdirectory (sorted), recursively.
/// Symbolic links to files and directories are followed, except a link to a directory that
/// holds it (a link loop, see [`crate::write::spec::link_loop`]): that stops the walk naming the link,
/// or with `skip_invalid` is left out and listed. With `skip_invalid`, a directory below the
/// root that cannot be listed is left out and listed too.
fn walk_dirs(
    dir: &Arc<Path>,
    rel: &mut String,
    depth: usize,
    skip_invalid: bool,
    visit: &mut dyn FnMut(Event<'_>) -> Result<()>,
) -> Result<()> {
    if depth > 64 {
        return Err(
            Error::data("directory nesting deeper than 64 levels (a symbolic link loop?)").at(dir),
        );
    }
    let unlistable = |e: std::io::Error| {
        if crate::base::error::is_out_of_descriptors(&e) {
            return crate::base::error::out_of_descriptors("listing a source directory");
        }
        Error::data(format!("cannot list directory: {e}"))
            .at(dir)
            .hint("check that this user may read it, or pass --skip-invalid to leave it out (it is listed in rico-skipped.tsv)")
    };
    // A directory below the root that cannot be listed: with skip_invalid, its patches are
    // left out (whatever it held is unknown) and it is listed; else the walk stops.
    let entries = match fs::read_dir(dir).map_err(unlistable) {
        Ok(entries) => entries,
        Err(e) if skip_invalid && depth > 0 && e.kind == ErrorKind::Data => {
            return visit(Event::Invalid(escape_path(dir), e.message));
        }
        Err(e) => return Err(e),
    };
    let mut files: Vec<String> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    // Links that lead back to a directory holding them: (name, that directory).
    let mut loops: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = match entry.map_err(unlistable) {
            Ok(entry) => entry,
            Err(e) if skip_invalid && depth > 0 && e.kind == ErrorKind::Data => {
                return visit(Event::Invalid(escape_path(dir), e.message));
            }
            Err(e) => return Err(e),
        };
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            let shown = escape_path(&dir.join(&os_name));
            let reason = format!(
                "{shown}: this name is not valid UTF-8 (bytes shown as \\xNN); rico matches patterns and makes keys from UTF-8 names"
            );
            if skip_invalid {
                visit(Event::Invalid(shown, reason))?;
                continue;
            }
            return Err(Error::data(reason).hint(
                "rename it to a UTF-8 name, or pass --skip-invalid to leave it out (it is listed in rico-skipped.tsv)",
            ));
        };
        let file_type = entry.file_type().ok();
        let mut is_dir = file_type.is_some_and(|t| t.is_dir());
        if file_type.is_some_and(|t| t.is_symlink()) {
            let target = fs::metadata(entry.path()).ok().filter(|m| m.is_dir());
            if let Some(target) = target {
                if let Some(holder) = crate::write::spec::link_loop(dir, depth, &target) {
                    loops.push((name.to_string(), holder));
                    continue;
                }
                is_dir = true;
            }
        }
        if is_dir {
            dirs.push(name.to_string());
        } else {
            files.push(name.to_string());
        }
    }
    // In name order, so that the loop reported is the same on every run.
    loops.sort_unstable();
    for (name, holder) in loops {
        let link = dir.join(name);
        let reason = link_loop_reason(&link, &holder);
        if !skip_invalid {
            return Err(Error::data(reason).hint(
                "remove the link, or pass --skip-invalid to leave it out (it is listed in rico-skipped.tsv)",
            ));
        }
        visit(Event::Invalid(escape_path(&link), reason))?;
    }
    files.sort_unstable();
    dirs.sort_unstable();
    let len = rel.len();
    for name in &files {
        rel.push_str(name);
        visit(Event::File(dir, rel))?;
        rel.truncate(len);
    }
    drop(files);
    visit(Event::DirDone)?;
    for name in &dirs {
        rel.push_str(name);
        rel.push('/');
        let sub: Arc<Path> = dir.join(name).into();
        walk_dirs(&sub, rel, depth + 1, skip_invalid, visit)?;
        rel.truncate(len);
    }
    Ok(())
}

// ---- grouping files into patches ---------------------------------------------------------------

struct Pending {
    files: Vec<PatchFile>,
    whole_file: bool,
    labels: Option<Labels>,
}

/// Groups the files of one source into patches.
struct Grouper<'s> {
    source: &'s Source<'s>,
    index: usize,
    spec: &'s Spec,
    tables: Option<&'s TableRows>,
    skip_invalid: bool,
    root_name: String,
    pending: BTreeMap<String, Pending>,
    /// With `uniform_bands`: every band seen, in order of first appearance.
    seen_bands: Vec<String>,
    /// Shared by every file of the source: one allocation, not one per file.
    names: Option<Arc<[String]>>,
    prefix: Option<Arc<str>>,
    band_names: HashSet<Arc<str>>,
    group_labels: HashMap<String, Arc<[String]>>,
    /// Bytes of container members held in pending patches, with their bookkeeping.
    pending_bytes: u64,
    /// With `skip_invalid`: files left out as they were added (path, reason), for the caller
    /// to report.
    skipped: Vec<(String, String)>,
}

/// What a member held in a pending patch costs beside its bytes (its file entry, its name, its
/// patch's share of the map): counted with the bytes, so that a million empty members are
/// bounded by the same limit as a few large ones.
const MEMBER_BOOKKEEPING: u64 = 256;

/// What a planned file holds in memory: its container member's bytes and their bookkeeping.
fn held_by(file: &PatchFile) -> u64 {
    file.data.as_ref().map_or(0, |d| {
        d.len() as u64 + MEMBER_BOOKKEEPING + file.name.len() as u64
    })
}

impl<'s> Grouper<'s> {
    fn new(
        source: &'s Source<'s>,
        index: usize,
        tables: Option<&'s TableRows>,
        skip_invalid: bool,
    ) -> Self {
        let spec = source.spec;
        Grouper {
            source,
            index,
            spec,
            tables,
            skip_invalid,
            root_name: source
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pending: BTreeMap::new(),
            seen_bands: Vec::new(),
            names: match &spec.bands {
                BandRule::Names(names) => Some(names.clone().into()),
                _ => None,
            },
            prefix: match &spec.bands {
                BandRule::Numbered(prefix) => Some(prefix.as_str().into()),
                _ => None,
            },
            band_names: HashSet::new(),
            group_labels: HashMap::new(),
            pending_bytes: 0,
            skipped: Vec::new(),
        }
    }

    /// Whether a patch is complete once its directory has been listed: whole-file patches
    /// always are; one-file-per-band patches when the spec says they share a directory.
    fn local(&self) -> bool {
        !self.spec.uniform_bands
            && (!matches!(self.spec.bands, BandRule::FromPath) || self.spec.patch_per_directory)
    }

    /// Adds the file at `rel` (in `dir`); returns whether it is image data of this source.
    fn add(&mut self, dir: &Arc<Path>, rel: &str) -> Result<bool> {
        Ok(self.add_with(dir, rel, None)?.is_some())
    }

    /// Adds the file at `rel` (in `dir`, with a container member's bytes in `data`); returns
    /// the key of its patch when it is image data of this source.
    fn add_with(
        &mut self,
        dir: &Arc<Path>,
        rel: &str,
        data: Option<Arc<HeldBytes>>,
    ) -> Result<Option<String>> {
        let spec = self.spec;
        let Some(caps) = spec.pattern.captures(rel) else {
            return Ok(None);
        };
        let key = spec.key.render(&self.root_name, &caps);
        if self
            .source
            .keys
            .as_ref()
            .is_some_and(|keys| !keys.contains(&key))
        {
            return Ok(None);
        }
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            let reason = format!(
                "the key made for this file is {} bytes long; LMDB keys must be 1 to {MAX_KEY_BYTES} bytes",
                key.len()
            );
            // A container's member is named `container!member`, a file by its path.
            let shown = match self.source.container {
                Some(_) => {
                    let stored = match self.root_name.as_str() {
                        "" => rel.to_string(),
                        root => format!("{root}/{rel}"),
                    };
                    rico_source::member_location(&self.source.root, &stored)
                }
                None => self.source.root.join(rel).display().to_string(),
            };
            if self.skip_invalid {
                self.skipped.push((shown, reason));
                return Ok(None);
            }
            return Err(Error::data(reason).at(shown));
        }
        let name = rel.rsplit_once('/').map_or(rel, |(_, n)| n);
        let bands = match &spec.bands {
            BandRule::FromPath => {
                let band = caps.name("band").map_or("", |m| m.as_str());
                FileBands::One(match self.band_names.get(band) {
                    Some(band) => band.clone(),
                    None => {
                        let arc: Arc<str> = band.into();
                        self.band_names.insert(arc.clone());
                        arc
                    }
                })
            }
            BandRule::Names(_) => {
                FileBands::Names(self.names.clone().expect("set for BandRule::Names"))
            }
            BandRule::Numbered(_) => {
                FileBands::Numbered(self.prefix.clone().expect("set for BandRule::Numbered"))
            }
        };
        let whole_file = !matches!(bands, FileBands::One(_));
        let file = PatchFile {
            dir: dir.clone(),
            name: name.into(),
            bands,
            data,
        };
        if let (true, FileBands::One(band)) = (spec.uniform_bands, &file.bands) {
            if !self.seen_bands.iter().any(|b| b.as_str() == &**band) {
                self.seen_bands.push(band.to_string());
            }
        }
        let entry = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            files: Vec::new(),
            whole_file,
            labels: None,
        });
        // Two whole-file patches, or the same band twice, under one key: refuse, naming both.
        let clash = entry.files.iter().find(|f| {
            whole_file
                || entry.whole_file
                || matches!((&f.bands, &file.bands), (FileBands::One(a), FileBands::One(b)) if a == b)
        });
        if let Some(other) = clash {
            return Err(duplicate(spec, &key, &other.path(), &file.path()));
        }
        if entry.labels.is_none() {
            entry.labels = match (&spec.labels, self.tables) {
                (LabelRule::Group(g), _) => {
                    let name = caps.name(g).map_or("", |m| m.as_str());
                    let names = match self.group_labels.get(name) {
                        Some(names) => names.clone(),
                        None => {
                            let names = Labels::one(name).names;
                            self.group_labels.insert(name.to_string(), names.clone());
                            names
                        }
                    };
                    Some(Labels {
                        names,
                        values: vec![true],
                    })
                }
                (LabelRule::Tables { row, .. }, Some(tables)) => {
                    Some(tables.get(caps.name(row).map_or("", |m| m.as_str()), &file.path())?)
                }
                _ => None,
            };
        }
        self.pending_bytes += held_by(&file);
        entry.files.push(file);
        Ok(Some(key))
    }

    /// Takes the pending patch `key` out when it is complete whatever comes next: a whole-file
    /// patch, or one that has every band its spec lists.
    fn take_if_complete(&mut self, key: &str) -> Option<Pending> {
        let pending = self.pending.get(key)?;
        let complete = pending.whole_file
            || (!self.spec.required_bands.is_empty()
                && self.spec.required_bands.iter().all(|band| {
                    pending
                        .files
                        .iter()
                        .any(|f| matches!(&f.bands, FileBands::One(b) if **b == **band))
                }));
        if complete {
            self.pending.remove(key)
        } else {
            None
        }
    }

    /// Hands out every pending patch, in the order of their first files.
    fn flush(
        &mut self,
        sources: &[Source<'_>],
        emitted: &mut HashSet<u64>,
        emit: &mut dyn FnMut(Planned) -> Result<()>,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let ready: Vec<(String, Pending)> = std::mem::take(&mut self.pending).into_iter().collect();
        self.hand_out(ready, sources, emitted, emit)
    }

    /// Hands out `ready` patches (taken out of `pending`), in the order of their first files.
    fn hand_out(
        &mut self,
        mut ready: Vec<(String, Pending)>,
        sources: &[Source<'_>],
        emitted: &mut HashSet<u64>,
        emit: &mut dyn FnMut(Planned) -> Result<()>,
    ) -> Result<()> {
        for (_, pending) in &ready {
            let held: u64 = pending.files.iter().map(held_by).sum();
            self.pending_bytes -= held;
        }
        for (_, pending) in &mut ready {
            pending.files.sort_by(PatchFile::cmp_path);
        }
        ready.sort_by(|a, b| a.1.files[0].cmp_path(&b.1.files[0]));
        let spec = self.spec;
        let listed = !spec.required_bands.is_empty();
        let required = if listed {
            Some(&spec.required_bands)
        } else if spec.uniform_bands {
            Some(&self.seen_bands)
        } else {
            None
        };
        // Bands are checked for every ready patch before any is handed out: a source handed out
        // at its end (see `local`) then fails before any of its records is written.
        let mut missing: Vec<Option<Error>> = Vec::with_capacity(ready.len());
        for (key, pending) in &ready {
            let mut err = None;
            if let Some(required) = required {
                if let Some(band) = required.iter().find(|band| {
                    !pending
                        .files
                        .iter()
                        .any(|f| matches!(&f.bands, FileBands::One(b) if **b == ***band))
                }) {
                    let why = if listed {
                        ""
                    } else {
                        " (other patches of this source have one)"
                    };
                    let e = Error::data(format!("patch {key} has no file for band {band}{why}"))
                        .at(&pending.files[0].dir)
                        .hint("the download is probably incomplete; re-download this patch (or pass --skip-invalid to leave it out)");
                    if !self.skip_invalid {
                        return Err(e);
                    }
                    err = Some(e);
                }
            }
            missing.push(err);
        }
        for ((key, pending), missing) in ready.into_iter().zip(missing) {
            if !emitted.insert(key_hash(&key)) {
                let this = pending.files[0].path();
                if let Some(first) = first_file_with_key(sources, &key, &this)? {
                    return Err(duplicate(spec, &key, &first, &this));
                }
                if sources.iter().any(|s| s.container.is_some()) {
                    // Containers are read once: the earlier file is not looked for again.
                    return Err(duplicate(spec, &key, Path::new("an earlier file"), &this));
                }
                // Two keys with one hash (about one chance in 10^19): not a duplicate.
            }
            if let Some(err) = missing {
                emit(Planned::Skipped(key, err.to_string()))?;
                continue;
            }
            let mut files = pending.files;
            files.shrink_to_fit();
            emit(Planned::Patch(Patch {
                key,
                files,
                labels: pending.labels,
                source: self.index,
            }))?;
        }
        Ok(())
    }
}

/// Whether `e` is planning's duplicate-key error.
pub fn is_duplicate_key(e: &Error) -> bool {
    e.kind == crate::base::error::ErrorKind::Data && e.message.starts_with(DUPLICATE)
}

const DUPLICATE: &str = "duplicate key ";

fn duplicate(spec: &Spec, key: &str, first: &Path, second: &Path) -> Error {
    Error::data(format!(
        "{DUPLICATE}{key:?}: both {} and {} would be stored under it",
        first.display(),
        second.display()
    ))
    .hint(spec.duplicate_hint.clone().unwrap_or_else(|| {
        "keys must be unique within one database; convert these sources into separate databases, or rename one of them".to_string()
    }))
}

/// The first file (other than `not`) whose key is `key`: walks the sources again. Only for
/// the error of a duplicate key, which stops the run.
fn first_file_with_key(sources: &[Source<'_>], key: &str, not: &Path) -> Result<Option<PathBuf>> {
    let mut order: Vec<&Source<'_>> = sources.iter().filter(|s| s.container.is_none()).collect();
    order.sort_by(|a, b| a.root.cmp(&b.root));
    for source in order {
        let root_name = source
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut found = None;
        let root: Arc<Path> = source.root.clone().into();
        let _ = walk_dirs(&root, &mut String::new(), 0, true, &mut |event| {
            if let Event::File(_, rel) = event {
                if let Some(caps) = source.spec.pattern.captures(rel) {
                    let path = source.root.join(rel);
                    if source.spec.key.render(&root_name, &caps) == key && path != not {
                        found = Some(path);
                        // Stops the walk: the error is dropped.
                        return Err(Error::data("found"));
                    }
                }
            }
            Ok(())
        });
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::ffi::OsStrExt;

    /// A scratch source tree of empty files (planning never opens image files).
    fn tree(name: &str, files: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("rico-plan-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for f in files {
            let path = root.join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"").unwrap();
        }
        root
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
