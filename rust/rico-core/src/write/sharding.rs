//! Sharded conversion, the cut and the schedule: the sorted plan is cut into contiguous shards,
//! each an LMDB directory `shard-NNNNN/` under the target, with `rico-manifest.json` at the
//! root once all are done. The files themselves are the target's (`target::plan_file`,
//! `target::marker`).
//!
//! The sources are walked once. Each shard's part of the plan goes into its directory
//! (`shard-NNNNN/rico-plan.jsonl`: the shard's place in the cut, then one line per patch:
//! source, key, directory, file names), and `rico-plan.json` at the root says the cut is
//! complete. A shard (a local loop or one task of a cluster run) converts from its plan file
//! alone: no task walks the tree again, and a resume keeps the cut it began with.
//!
//! A resume takes none of these files on trust. Each shard's plan carries the number of its
//! lines and their CRC-32 in its header, and the root's plan carries them for every shard; a
//! plan that is missing, short, or has a line repeated or changed is planned again from a walk
//! of the sources, and kept only if it is the plan the conversion began with (nothing is
//! lost); otherwise the run stops and names the file. A finished shard's marker counts only
//! when its database holds what the marker says.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::base::error::{Error, Result};
use crate::base::progress::Progress;
use crate::write::pipeline::{self, ConvertOptions, Summary};
use crate::write::plan::{self, Planned};
use crate::write::target::{
    self, check_marker, mark_shard, plan_damage, read_plan, read_shard_plan, recover, shard_dir,
    shard_marker, shard_plan_header, trusted_plan, PlanLine, PlanSum, SumBuilder, DATA_FILE,
    SHARD_PLAN,
};

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

/// Checks that a target's cut is one into `n` shards (a resume with another `--shards` would
/// put records outside their shards' ranges).
fn check_cut(target: &Path, n: usize) -> Result<()> {
    let mut cut = target::planned_shards(target);
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
            let index = entry.file_name().to_str().and_then(target::shard_index);
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
/// is there, once every shard's part of it is found whole) and writes each shard's part of the
/// plan into its directory. Returns the number of patches. A cluster client calls this, then
/// sends each task its shard index.
pub fn plan_shards(
    name: &str,
    sources: &[(String, PathBuf)],
    target: &Path,
    n: usize,
    options: &ConvertOptions,
) -> Result<u64> {
    check_shards(n, None)?;
    // The options and sources are checked before anything is written.
    pipeline::with_sources(name, sources, options, |_| Ok(()))?;
    target::check_sharded_target(target, options.resume)?;
    if target.exists() {
        check_cut(target, n)?;
        for index in 0..n {
            check_marker(&shard_dir(target, index))?;
        }
    }
    if let Some(patches) = trusted_plan(target, n) {
        // A spool left by a planner stopped after the plan was written.
        target::remove_spool(target);
        return Ok(patches);
    }
    let converted = (0..n).any(|i| shard_dir(target, i).join(DATA_FILE).exists());
    if converted
        && read_plan(target).is_none()
        && !(0..n).any(|i| shard_dir(target, i).join(SHARD_PLAN).exists())
    {
        return Err(Error::usage(
            "the shards of this target were begun without a plan (rico-plan.json), by an older rico",
        )
        .at(target)
        .hint("convert into a new directory"));
    }
    let created = !target.exists();
    target::create(target)?;
    // One planner at a time. The spool marks the target as a sharded one being planned: a run
    // stopped at any point of planning (killed, or out of space) leaves a target that
    // `--resume` recognises and plans again from the start, since no shard is written before
    // the plan is complete.
    let (spool, spool_path) = target::open_spool(target)?;
    if let Some(patches) = trusted_plan(target, n) {
        // Another planner finished while this one started.
        target::remove_spool(target);
        return Ok(patches);
    }
    let planned = write_plan(
        name,
        sources,
        target,
        n,
        options,
        (&spool, &spool_path),
        converted,
    );
    if planned.is_err() {
        // The spool's space is given back, and a target this run created and left empty is
        // removed. Shard plans, if any, stay: `--resume` plans again.
        target::remove_spool(target);
        if created {
            target::remove(target);
        }
        return planned;
    }
    // The root's plan is written first: a run stopped before the spool is removed resumes
    // from the plan.
    target::remove_spool(target);
    drop(spool); // releases the lock
    planned
}

/// Walks the sources into the spool, cuts it into the shards' plan files, then writes the root's
/// plan. Returns the number of patches.
///
/// Once shards are `converted` (this is a resume that found a plan damaged or missing), a
/// shard's plan is written only where the one there is not whole, and only if the walk gives
/// back the plan the conversion began with (see [`recover`]): the other shards' records were
/// written from the plan they have.
fn write_plan(
    name: &str,
    sources: &[(String, PathBuf)],
    target: &Path,
    n: usize,
    options: &ConvertOptions,
    (spool_file, spool_path): (&fs::File, &Path),
    converted: bool,
) -> Result<u64> {
    let out_err = |e: std::io::Error, path: &Path| target::plan_write_error(e, path);
    spool_file.set_len(0).map_err(|e| out_err(e, spool_path))?;
    let bar = Progress::new(options.progress);
    let mut spool = BufWriter::new(spool_file);
    let mut patches = 0u64;
    let mut skipped: Vec<String> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    // Sources are numbered in the plan in the order they are given. A resume that plans
    // again (and may be given them in another order: the command line's, or Python's sorted
    // keyword arguments) takes them in the order of the run that began the conversion, so that
    // the walk gives back the plan it wrote.
    let mut sources = sources.to_vec();
    if let Some(order) = read_plan(target).filter(|_| converted) {
        let order = order["sources"].as_array().cloned().unwrap_or_default();
        sources.sort_by_key(|(flag, _)| {
            let flag = serde_json::Value::from(flag.replace('_', "-"));
            order.iter().position(|o| *o == flag).unwrap_or(usize::MAX)
        });
    }
    pipeline::with_sources(name, &sources, options, |resolved| {
        flags = resolved.iter().map(|s| s.option.clone()).collect();
        plan::stream(
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
                    // Patches dropped while planning have no place in the ranges: shard 0
                    // lists them.
                    Planned::Skipped(key, reason) => {
                        skipped.push(serde_json::json!({"skipped": [key, reason]}).to_string())
                    }
                }
                Ok(())
            },
        )
    })?;
    bar.finish();
    spool.flush().map_err(|e| out_err(e, spool_path))?;
    drop(spool);
    let total = patches as usize;
    let spool_lines = || -> Result<_> {
        let file = fs::File::open(spool_path).map_err(|e| out_err(e, spool_path))?;
        let mut lines = BufReader::new(file).lines();
        Ok(move || -> Result<String> {
            lines
                .next()
                .ok_or_else(|| Error::output("the plan ended early").at(spool_path))?
                .map_err(|e| out_err(e, spool_path))
        })
    };
    // Each shard's lines counted and summed (its header carries them, so they are known
    // before the file is written).
    let mut sums = Vec::with_capacity(n);
    let mut next = spool_lines()?;
    for index in 0..n {
        let mut sum = SumBuilder::default();
        if index == 0 {
            skipped.iter().for_each(|line| sum.line(line));
        }
        for _ in shard_range(total, n, index) {
            sum.line(&next()?);
        }
        sums.push(sum.sum());
    }
    // Which shards keep the plan they have (with its sum): none, unless shards are converted.
    let keep = if converted {
        recover(target, n, &sums, &flags, patches)?
    } else {
        vec![None; n]
    };
    // Cut the spool into the shards' plan files, each with its place in the cut first.
    let mut next = spool_lines()?;
    for index in 0..n {
        let range = shard_range(total, n, index);
        let mut out = None;
        let dir = shard_dir(target, index);
        let tmp = dir.join(format!("{SHARD_PLAN}.tmp"));
        if keep[index].is_none() {
            fs::create_dir_all(&dir).map_err(|e| out_err(e, &dir))?;
            let mut file = BufWriter::new(fs::File::create(&tmp).map_err(|e| out_err(e, &tmp))?);
            let header = sums[index].header(index, n);
            writeln!(file, "{header}").map_err(|e| out_err(e, &tmp))?;
            out = Some(file);
        }
        let mut put = |line: &str| -> Result<()> {
            match &mut out {
                Some(file) => writeln!(file, "{line}").map_err(|e| out_err(e, &tmp)),
                None => Ok(()),
            }
        };
        if index == 0 {
            for line in &skipped {
                put(line)?;
            }
        }
        for _ in range {
            put(&next()?)?;
        }
        if let Some(mut file) = out {
            file.flush().map_err(|e| out_err(e, &tmp))?;
            drop(file);
            let path = dir.join(SHARD_PLAN);
            fs::rename(&tmp, &path).map_err(|e| out_err(e, &path))?;
        }
    }
    let sums: Vec<PlanSum> = sums
        .iter()
        .zip(&keep)
        .map(|(new, kept)| kept.unwrap_or(*new))
        .collect();
    let patches: u64 = sums.iter().map(|s| s.patches).sum();
    target::write_plan(
        target,
        &serde_json::json!({
            "format": "rico-plan-1",
            "dataset": name,
            "shards": n,
            "patches": patches,
            "skipped": sums[0].lines - sums[0].patches,
            "sources": flags,
            "plans": sums.iter().map(|s| s.to_json()).collect::<Vec<_>>(),
        }),
    )?;
    Ok(patches)
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
        // A task reads its shard's plan alone: it must be whole (a finished shard needs none).
        for index in only.iter().copied() {
            let dir = shard_dir(target, index);
            if shard_marker(&dir).is_some() {
                continue;
            }
            if let Some(damage) = plan_damage(target, index, n) {
                return Err(Error::data(format!("the plan of shard {index} is damaged: {damage}"))
                    .at(dir.join(SHARD_PLAN))
                    .hint("run the conversion again with resume (--resume, or rico.convert(..., resume=True)): it checks every shard's plan and plans a damaged one again from the sources"));
            }
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
    pipeline::with_sources(name, sources, options, |resolved| {
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
                plan::replan(resolved, &mut listed.into_iter(), emit)?;
                // A container is read front to back (it has no index to seek by): each shard
                // reads the containers its patches are in, and keeps its own patches.
                for (source, keys) in in_containers {
                    plan::stream(
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
            let depth = pipeline::plan_depth(resolved);
            let summary = pipeline::write_patches(&plan, depth, &dir, &shard_options, &bar)?;
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
        target::write_manifest(target, name, n)?;
    }
    Ok(total)
}
