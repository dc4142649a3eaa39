//! Sharded conversion: the sorted plan is cut into contiguous shards, each an LMDB directory
//! `shard-NNNNN/` under the target, with `rico-manifest.json` at the root once all are done.
//!
//! The sources are walked once. Each shard's part of the plan goes into its directory
//! (`shard-NNNNN/rico-plan.jsonl`: the shard's place in the cut, then one line per patch:
//! source, key, directory, file names), and `rico-plan.json` at the root says the cut is
//! complete. A shard (a local loop or one task of a cluster run) converts from its plan file
//! alone: no task walks the tree again, and a resume keeps the cut it began with.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::convert::{self, ConvertOptions, Summary};
use crate::error::{Error, Result};
use crate::planning::{self, Planned};
use crate::progress::Progress;

/// The root file that says the shards' plans are all written: the cut is fixed.
pub const PLAN: &str = "rico-plan.json";
/// A shard's part of the plan, in its directory.
pub const SHARD_PLAN: &str = "rico-plan.jsonl";
/// The plan of every shard while it is being written (removed once cut).
const SPOOL: &str = "rico-plan.spool";

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

pub(crate) fn check_shards(n: usize, index: Option<usize>) -> Result<usize> {
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

/// Whether the names in a target directory are those of a sharded dataset, finished or not: a
/// run stopped while planning leaves only its spool, or shard plans without the root's plan.
pub(crate) fn is_sharded(entries: &[String]) -> bool {
    !entries.is_empty()
        && entries
            .iter()
            .any(|n| n.starts_with("shard-") || n == PLAN || n == MANIFEST || n == SPOOL)
        && entries.iter().all(|n| {
            n.starts_with(MANIFEST) || n.starts_with("shard-") || n.starts_with("rico-plan")
        })
}

/// The number of shards a sharded target was cut into: from its plan or manifest.
pub(crate) fn planned_shards(target: &Path) -> Option<usize> {
    read_plan(target)
        .or_else(|| {
            let text = fs::read_to_string(target.join(MANIFEST)).ok()?;
            serde_json::from_str(&text).ok()
        })
        .and_then(|v| v["shards"].as_u64())
        .map(|n| n as usize)
}

fn read_plan(target: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(target.join(PLAN)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The root of a sharded dataset is new or empty, or (with `resume`) one rico wrote.
pub fn check_sharded_target(target: &Path, resume: bool) -> Result<()> {
    let Some(entries) = convert::target_entries(target)? else {
        return Ok(());
    };
    if entries.is_empty() {
        return Ok(());
    }
    if entries.iter().any(|n| n == "data.mdb") {
        return Err(Error::usage("the target holds one LMDB database, not a sharded dataset")
            .at(target)
            .hint("to finish it, run the same command without --shards, with --resume; or give a new directory"));
    }
    if !is_sharded(&entries) {
        return Err(Error::usage(
            "the target directory is not empty and holds no sharded rico dataset",
        )
        .at(target)
        .hint("give a new or empty directory for --target-dir"));
    }
    if planning_elsewhere(target) {
        return Err(convert::another_writer(target));
    }
    if !resume {
        return Err(Error::usage("the target already holds a sharded dataset")
            .at(target)
            .hint("pass --resume to finish the shards of an interrupted conversion, or give a new directory"));
    }
    Ok(())
}

/// Takes the planner's lock: an exclusive `flock` on the spool, held while the plan is written.
/// On a filesystem without locks, planning goes on without one.
fn lock_spool(target: &Path, file: &fs::File) -> Result<()> {
    // SAFETY: flock on a descriptor the caller owns for as long as the lock is meant to last.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    {
        return Err(convert::another_writer(target));
    }
    Ok(())
}

/// True while another process plans the shards of `target` (it holds the spool's lock).
fn planning_elsewhere(target: &Path) -> bool {
    let Ok(file) = fs::File::open(target.join(SPOOL)) else {
        return false;
    };
    // The lock, if taken here, is released when `file` closes.
    lock_spool(target, &file).is_err()
}

/// The error of a plan that cannot be written: it says whether the disk is full, and that
/// `--resume` plans again once the cause is gone.
fn plan_write_error(e: std::io::Error, path: &Path) -> Error {
    let full = matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
    );
    let what = if full {
        format!("cannot write the plan: {e}: the disk is full (or a quota or file-size limit was reached)")
    } else {
        format!("cannot write the plan: {e}")
    };
    Error::output(what).at(path).hint(
        "free space (or move --target-dir) if need be, then run the same command again with --resume: it plans the shards again",
    )
}

/// Checks that a target's cut is one into `n` shards (a resume with another `--shards` would
/// put records outside their shards' ranges).
fn check_cut(target: &Path, n: usize) -> Result<()> {
    let mut cut = planned_shards(target);
    if cut.is_none() {
        // No plan or manifest (an older rico, or a plan being written): the shard markers and
        // directories still say how the target was cut.
        for entry in fs::read_dir(target).into_iter().flatten().flatten() {
            let dir = entry.path();
            if let Some(m) = shard_marker(&dir).or_else(|| shard_plan_header(&dir)) {
                cut = m["shards"].as_u64().map(|s| s as usize);
                if cut.is_some_and(|c| c != n) {
                    break;
                }
            }
            let index = entry
                .file_name()
                .to_str()
                .and_then(|s| s.strip_prefix("shard-"))
                .and_then(|s| s.parse::<usize>().ok());
            if index.is_some_and(|i| i >= n) {
                return Err(Error::usage(format!(
                    "the target has a shard {} but this run cuts it into {n} shards",
                    index.unwrap_or(0)
                ))
                .at(target)
                .hint("resume with the --shards of the interrupted run, or convert into a new directory"));
            }
        }
    }
    match cut {
        Some(c) if c != n => Err(Error::usage(format!(
            "this target was cut into {c} shards, not {n}; resuming with another --shards would mix the two cuts"
        ))
        .at(target)
        .hint(format!("resume with --shards {c}, or convert into a new directory"))),
        _ => Ok(()),
    }
}

/// Plans a sharded conversion once: walks the sources (or, on a resume, reuses the plan that
/// is there) and writes each shard's part of the plan into its directory. Returns the number
/// of patches. A cluster client calls this, then sends each task its shard index.
pub fn plan_shards(
    name: &str,
    sources: &[(String, PathBuf)],
    target: &Path,
    n: usize,
    options: &ConvertOptions,
) -> Result<u64> {
    check_shards(n, None)?;
    // The options and sources are checked before anything is written.
    convert::with_sources(name, sources, options, |_| Ok(()))?;
    check_sharded_target(target, options.resume)?;
    if target.exists() {
        check_cut(target, n)?;
    }
    if let Some(plan) = read_plan(target) {
        // A spool left by a planner stopped after the plan was written.
        let _ = fs::remove_file(target.join(SPOOL));
        return Ok(plan["patches"].as_u64().unwrap_or(0));
    }
    if (0..n).any(|i| shard_dir(target, i).join("data.mdb").exists()) {
        return Err(Error::usage(
            "the shards of this target were begun without a plan (rico-plan.json), by an older rico",
        )
        .at(target)
        .hint("convert into a new directory"));
    }
    let created = !target.exists();
    fs::create_dir_all(target).map_err(|e| {
        Error::output(format!("cannot create the target directory: {e}")).at(target)
    })?;
    let spool_path = target.join(SPOOL);
    let spool = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&spool_path)
        .map_err(|e| plan_write_error(e, &spool_path))?;
    // One planner at a time. The spool marks the target as a sharded one being planned: a run
    // stopped at any point of planning (killed, or out of space) leaves a target that
    // `--resume` recognises and plans again from the start, since no shard is written before
    // the plan is complete.
    lock_spool(target, &spool)?;
    if let Some(plan) = read_plan(target) {
        // Another planner finished while this one started.
        let _ = fs::remove_file(&spool_path);
        return Ok(plan["patches"].as_u64().unwrap_or(0));
    }
    let planned = write_plan(name, sources, target, n, options, &spool, &spool_path);
    if planned.is_err() {
        // Nothing converted yet: the spool's space is given back, and a target this run created
        // and left empty is removed. Shard plans, if any, stay: `--resume` plans again.
        let _ = fs::remove_file(&spool_path);
        if created {
            let _ = fs::remove_dir(target);
        }
        return planned;
    }
    // The root's plan is written first: a run stopped before the spool is removed resumes
    // from the plan.
    let _ = fs::remove_file(&spool_path);
    drop(spool); // releases the lock
    planned
}

/// Walks the sources into the spool, cuts it into the shards' plan files, then writes the root's
/// plan. Returns the number of patches.
fn write_plan(
    name: &str,
    sources: &[(String, PathBuf)],
    target: &Path,
    n: usize,
    options: &ConvertOptions,
    spool_file: &fs::File,
    spool_path: &Path,
) -> Result<u64> {
    let out_err = |e: std::io::Error, path: &Path| plan_write_error(e, path);
    spool_file.set_len(0).map_err(|e| out_err(e, spool_path))?;
    let bar = Progress::new(options.progress);
    let mut spool = BufWriter::new(spool_file);
    let mut patches = 0u64;
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    convert::with_sources(name, sources, options, |resolved| {
        flags = resolved.iter().map(|s| s.option.clone()).collect();
        planning::stream(
            resolved,
            options.skip_invalid,
            &|f| bar.scanned(f),
            &mut |item| {
                match item {
                    Planned::Patch(p) => {
                        let root = &resolved[p.source].root;
                        let dir = p.files[0].dir.strip_prefix(root).unwrap_or(&p.files[0].dir);
                        let names: Vec<&str> = p.files.iter().map(|f| &*f.name).collect();
                        let line =
                            serde_json::json!([p.source, p.key, dir.to_string_lossy(), names]);
                        writeln!(spool, "{line}").map_err(|e| out_err(e, spool_path))?;
                        patches += 1;
                        bar.planned(1);
                    }
                    Planned::Skipped(key, reason) => skipped.push((key, reason)),
                }
                Ok(())
            },
        )
    })?;
    bar.finish();
    spool.flush().map_err(|e| out_err(e, spool_path))?;
    drop(spool);
    // Cut the spool into the shards' plan files, each with its place in the cut first.
    let mut lines =
        BufReader::new(fs::File::open(spool_path).map_err(|e| out_err(e, spool_path))?).lines();
    let total = patches as usize;
    for index in 0..n {
        let range = shard_range(total, n, index);
        let dir = shard_dir(target, index);
        fs::create_dir_all(&dir).map_err(|e| out_err(e, &dir))?;
        let path = dir.join(SHARD_PLAN);
        let tmp = dir.join(format!("{SHARD_PLAN}.tmp"));
        let mut out = BufWriter::new(fs::File::create(&tmp).map_err(|e| out_err(e, &tmp))?);
        let header = serde_json::json!({"index": index, "shards": n, "patches": range.len()});
        writeln!(out, "{header}").map_err(|e| out_err(e, &tmp))?;
        if index == 0 {
            // Patches dropped while planning have no place in the ranges: shard 0 lists them.
            for (key, reason) in &skipped {
                writeln!(out, "{}", serde_json::json!({"skipped": [key, reason]}))
                    .map_err(|e| out_err(e, &tmp))?;
            }
        }
        for _ in range {
            let line = lines
                .next()
                .ok_or_else(|| Error::output("the plan ended early").at(spool_path))?
                .map_err(|e| out_err(e, spool_path))?;
            writeln!(out, "{line}").map_err(|e| out_err(e, &tmp))?;
        }
        out.flush().map_err(|e| out_err(e, &tmp))?;
        drop(out);
        fs::rename(&tmp, &path).map_err(|e| out_err(e, &path))?;
    }
    write_json(
        &target.join(PLAN),
        &serde_json::json!({
            "format": "rico-plan-1",
            "dataset": name,
            "shards": n,
            "patches": patches,
            "skipped": skipped.len(),
            "sources": flags,
        }),
    )?;
    Ok(patches)
}

fn shard_plan_header(dir: &Path) -> Option<serde_json::Value> {
    let file = fs::File::open(dir.join(SHARD_PLAN)).ok()?;
    let line = BufReader::new(file).lines().next()?.ok()?;
    serde_json::from_str(&line).ok()
}

/// One line of a shard's plan.
pub(crate) enum PlanLine {
    /// (source index in the plan's order, key, directory relative to the source, file names).
    Patch(usize, String, String, Vec<String>),
    Skipped(String, String),
}

/// Reads the plan file of the shard in `dir`: its lines after the header.
pub(crate) fn read_shard_plan(dir: &Path) -> Result<impl Iterator<Item = Result<PlanLine>>> {
    let path = dir.join(SHARD_PLAN);
    let file = fs::File::open(&path).map_err(|e| {
        Error::usage(format!("cannot read the shard's plan: {e}"))
            .at(&path)
            .hint("plan the shards first: run the conversion with --shards (a cluster client does this before sending tasks)")
    })?;
    let bad = move |path: &Path| {
        Error::data("the shard's plan is damaged")
            .at(path)
            .hint("convert into a new directory")
    };
    Ok(BufReader::new(file).lines().skip(1).map(move |line| {
        let line =
            line.map_err(|e| Error::data(format!("cannot read the shard's plan: {e}")).at(&path))?;
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|_| bad(&path))?;
        if let Some(s) = v.get("skipped") {
            return Ok(PlanLine::Skipped(
                s[0].as_str().unwrap_or_default().to_string(),
                s[1].as_str().unwrap_or_default().to_string(),
            ));
        }
        let names = v[3]
            .as_array()
            .ok_or_else(|| bad(&path))?
            .iter()
            .map(|n| n.as_str().unwrap_or_default().to_string())
            .collect();
        Ok(PlanLine::Patch(
            v[0].as_u64().ok_or_else(|| bad(&path))? as usize,
            v[1].as_str().ok_or_else(|| bad(&path))?.to_string(),
            v[2].as_str().ok_or_else(|| bad(&path))?.to_string(),
            names,
        ))
    }))
}

/// The keys planned for the shard in `dir`, if it has a plan.
pub(crate) fn planned_keys(dir: &Path) -> Option<Vec<String>> {
    let lines = read_shard_plan(dir).ok()?;
    let mut keys = Vec::new();
    for line in lines {
        if let Ok(PlanLine::Patch(_, key, _, _)) = line {
            keys.push(key);
        }
    }
    Some(keys)
}

/// Converts a sharded dataset: plans the shards (unless `only` names one shard: a cluster
/// task, which needs the plan written by its client), converts each shard from its plan, and
/// writes the manifest once all are done.
pub(crate) fn convert_sharded(
    name: &str,
    sources: &[(String, PathBuf)],
    target: &Path,
    n: usize,
    only: Option<usize>,
    options: &ConvertOptions,
) -> Result<Summary> {
    let n = check_shards(n, only)?;
    if only.is_none() {
        plan_shards(name, sources, target, n, options)?;
    } else {
        check_cut(target, n)?;
        if read_plan(target).is_none() {
            return Err(Error::usage("the shards of this target are not planned (no rico-plan.json)")
                .at(target)
                .hint("plan them first: rico.convert(..., shards=N, client=...) does, or a local run with --shards N"));
        }
    }
    // Sources in the plan are numbered in the order of the run that planned them.
    let plan_flags: Vec<String> = read_plan(target)
        .and_then(|p| p["sources"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|f| f.as_str().unwrap_or_default().to_string())
        .collect();
    let mut total = Summary::default();
    let bar = Progress::new(options.progress);
    convert::with_sources(name, sources, options, |resolved| {
        let index_of = |planned: usize| -> Result<usize> {
            let flag = plan_flags.get(planned).ok_or_else(|| {
                Error::usage(format!(
                    "the shard plan names source {planned}, which the plan does not list"
                ))
            })?;
            // Parts of one source share its option: the planned index names the part.
            if resolved.get(planned).is_some_and(|s| s.option == *flag) {
                return Ok(planned);
            }
            resolved
                .iter()
                .position(|s| s.option == *flag)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "the shards were planned with --{flag}, which this run does not give"
                    ))
                    .at(target)
                    .hint(
                        "resume with the same source options as the run that began the conversion",
                    )
                })
        };
        for index in 0..n {
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
                bar.planned(marker["records"].as_u64().unwrap_or(0));
                bar.done(marker["records"].as_u64().unwrap_or(0));
                continue;
            }
            let plan = |emit: &mut dyn FnMut(Planned) -> Result<()>| -> Result<()> {
                let mut listed = Vec::new();
                // Patches of containers: re-read from their container (keys by source).
                let mut in_containers: HashMap<usize, HashSet<String>> = HashMap::new();
                for line in read_shard_plan(&dir)? {
                    match line? {
                        PlanLine::Skipped(key, reason) => emit(Planned::Skipped(key, reason))?,
                        PlanLine::Patch(source, key, rel_dir, names) => {
                            let source = index_of(source)?;
                            if resolved[source].container.is_some() {
                                in_containers.entry(source).or_default().insert(key);
                            } else {
                                listed.push(Ok((source, rel_dir, names)));
                            }
                        }
                    }
                    // A shard's plan is a slice of the dataset: held while it is converted.
                }
                planning::replan(resolved, &mut listed.into_iter(), emit)?;
                // A container is read front to back (it has no index to seek by): each shard
                // reads the containers its patches are in, and keeps its own patches.
                for (source, keys) in in_containers {
                    planning::stream(
                        &resolved[source..=source],
                        false,
                        &|n| bar.scanned(n),
                        &mut |item| match item {
                            Planned::Patch(mut p) if keys.contains(&p.key) => {
                                p.source = source;
                                emit(Planned::Patch(p))
                            }
                            _ => Ok(()),
                        },
                    )?;
                }
                Ok(())
            };
            // Every shard resumes: a rerun of a task after a lost worker finishes what it began.
            let shard_options = ConvertOptions {
                resume: true,
                ..options.clone()
            };
            let depth = convert::plan_depth(resolved);
            let summary = convert::write_patches(&plan, depth, &dir, &shard_options, &bar)?;
            mark_shard(&dir, index, n)?;
            total.records += summary.records;
            total.already_present += summary.already_present;
            total.skipped += summary.skipped;
            total.files += summary.files;
            total.source_bytes += summary.source_bytes;
            total.record_bytes += summary.record_bytes;
            total.threads = summary.threads;
        }
        Ok(())
    })?;
    bar.finish();
    if only.is_none() {
        write_manifest(target, name, n)?;
    }
    Ok(total)
}

pub(crate) fn shard_marker(dir: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(dir.join(SHARD_MARKER)).ok()?;
    serde_json::from_str(&text).ok()
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
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
