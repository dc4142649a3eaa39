//! The target directory of a conversion, from the first check to the last file, and the one
//! owner of everything a run puts on disk beside the records: what the target may hold before a
//! run begins (`check`, [`check_sharded_target`]), the writer's and the planner's locks and
//! the spool, its removal after a failed first run, the plan files of a sharded run and their
//! checksums (`plan_file`), the markers of finished shards (`marker`), the report of skipped
//! patches and the manifest of a sharded dataset.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::base::error::{Error, Result};
use crate::base::lmdb::Env;

mod marker;
mod plan_file;

pub(crate) use marker::*;
pub(crate) use plan_file::*;

pub(crate) use crate::base::layout::{is_shard_name, shard_index};
pub use crate::base::layout::{
    shard_name, DATA_FILE, LABELS_TABLE, LOCK_FILE, MANIFEST, PLAN, SHARD_MARKER, SHARD_PLAN,
    SHARD_PREFIX, SKIPPED_REPORT, SPOOL,
};

/// The directory of shard `index` under `target`.
pub fn shard_dir(target: &Path, index: usize) -> PathBuf {
    target.join(shard_name(index))
}

// ---- before a run: what the target holds -------------------------------------------------

/// The names in an existing target directory; `None` if it does not exist yet.
pub(crate) fn entries(target: &Path) -> Result<Option<Vec<String>>> {
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
pub(crate) fn check(target: &Path, resume: bool) -> Result<()> {
    let Some(entries) = entries(target)? else {
        return Ok(());
    };
    let is_lmdb = entries.iter().any(|n| n == DATA_FILE);
    if !is_lmdb && is_sharded(&entries) {
        let n = planned_shards(target);
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

/// The root of a sharded dataset is new or empty, or (with `resume`) one rico wrote.
pub fn check_sharded_target(target: &Path, resume: bool) -> Result<()> {
    let Some(entries) = entries(target)? else {
        return Ok(());
    };
    if entries.is_empty() {
        return Ok(());
    }
    if entries.iter().any(|n| n == DATA_FILE) {
        return Err(Error::usage("the target holds one LMDB database, not a sharded dataset")
            .at(target)
            .hint("to finish it, run the same command without --shards, with --resume; or give a new directory"));
    }
    // Before judging what the target holds: another run may be creating it right now.
    if planning_elsewhere(target) || converting_elsewhere(target, &entries) {
        return Err(another_writer(target));
    }
    if !is_sharded(&entries) {
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

/// Whether the names in a target directory are those of a sharded dataset, finished or not: a
/// run stopped while planning leaves only its spool, or shard plans without the root's plan.
pub(crate) fn is_sharded(entries: &[String]) -> bool {
    !entries.is_empty()
        && entries
            .iter()
            .any(|n| is_shard_name(n) || n == PLAN || n == MANIFEST || n == SPOOL)
        && entries.iter().all(|n| {
            // The manifest's temporary file, the plans and the spool.
            n.starts_with(MANIFEST)
                || is_shard_name(n)
                || n.starts_with(PLAN)
                || n.starts_with(SPOOL)
        })
}

/// The root's plan ([`PLAN`]), if it is readable.
pub(crate) fn read_plan(target: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(target.join(PLAN)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the root's plan ([`PLAN`]), once every shard's part of it is written.
pub(crate) fn write_plan(target: &Path, plan: &serde_json::Value) -> Result<()> {
    write_json(&target.join(PLAN), plan)
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

/// The number of shards the root's plan cuts the target into, if it is readable.
pub(crate) fn planned_cut(target: &Path) -> Option<usize> {
    read_plan(target)?["shards"].as_u64().map(|n| n as usize)
}

/// Makes the target directory (and its parents) if it is not there.
pub(crate) fn create(target: &Path) -> Result<()> {
    fs::create_dir_all(target)
        .map_err(|e| Error::output(format!("cannot create the target directory: {e}")).at(target))
}

// ---- one writer at a time ----------------------------------------------------------------

/// The error of a target another process is writing into (it holds the writer's or the
/// planner's lock, or LMDB saw the map grown under this run).
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
/// The lock lasts as long as the file returned.
pub(crate) fn lock(target: &Path) -> Result<fs::File> {
    let path = target.join(DATA_FILE);
    let file = fs::OpenOptions::new().read(true).open(&path).map_err(|e| {
        if crate::base::error::is_out_of_descriptors(&e) {
            return crate::base::error::out_of_descriptors("opening the database").at(&path);
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

/// Takes the planner's lock: an exclusive `flock` on the spool, held while the plan is written.
/// On a filesystem without locks, planning goes on without one.
fn lock_spool(target: &Path, file: &fs::File) -> Result<()> {
    // SAFETY: flock on a descriptor the caller owns for as long as the lock is meant to last.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    {
        return Err(another_writer(target));
    }
    Ok(())
}

/// Opens (or makes) the spool ([`SPOOL`]) at the root of `target` and takes the planner's lock
/// on it, which lasts as long as the file returned (with the spool's path).
pub(crate) fn open_spool(target: &Path) -> Result<(fs::File, PathBuf)> {
    let path = target.join(SPOOL);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| plan_write_error(e, &path))?;
    lock_spool(target, &file)?;
    Ok((file, path))
}

/// Removes the spool, if it is there: its space is given back (its lock goes when its file
/// closes).
pub(crate) fn remove_spool(target: &Path) {
    let _ = fs::remove_file(target.join(SPOOL));
}

/// The error of a plan that cannot be written: it says whether the disk is full, and that
/// `--resume` plans again once the cause is gone.
pub(crate) fn plan_write_error(e: std::io::Error, path: &Path) -> Error {
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

/// True while another process plans the shards of `target` (it holds the spool's lock).
fn planning_elsewhere(target: &Path) -> bool {
    let Ok(file) = fs::File::open(target.join(SPOOL)) else {
        return false;
    };
    // The lock, if taken here, is released when `file` closes.
    lock_spool(target, &file).is_err()
}

/// True while another process converts a shard of `target` (it holds the writer's lock on the
/// shard's `data.mdb`, see [`lock`]).
fn converting_elsewhere(target: &Path, entries: &[String]) -> bool {
    entries.iter().filter(|n| is_shard_name(n)).any(|n| {
        let Ok(file) = fs::File::open(target.join(n).join(DATA_FILE)) else {
            return false;
        };
        // SAFETY: flock on a descriptor owned here; a lock taken is released when it closes.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        locked != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    })
}

// ---- after a failed first run --------------------------------------------------------------

/// Removes a target this run created if no record was committed into it.
pub(crate) fn remove_if_empty(target: &Path) {
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
        remove(target);
    }
}

/// Removes a target this run created: its database files, then the directory if empty.
pub(crate) fn remove(target: &Path) {
    for name in [DATA_FILE, LOCK_FILE, SKIPPED_REPORT, LABELS_TABLE] {
        let _ = fs::remove_file(target.join(name));
    }
    let _ = fs::remove_dir(target);
}

// ---- what a run leaves beside the database ------------------------------------------------

/// Writes the report of skipped patches ([`SKIPPED_REPORT`]): one line of key and reason each.
pub(crate) fn write_skipped_report(target: &Path, skipped: &[(String, String)]) -> Result<()> {
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

/// Removes an earlier run's report of skipped patches, if there is one.
pub(crate) fn remove_skipped_report(target: &Path) -> Result<()> {
    let path = target.join(SKIPPED_REPORT);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::output(format!(
            "cannot remove the outdated report of skipped patches: {e}"
        ))
        .at(&path)),
        _ => Ok(()),
    }
}

/// Writes `value` to `path` as pretty JSON, through a temporary file renamed into place.
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::output(e.to_string()))?;
    fs::write(&tmp, text + "\n")
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| Error::output(format!("cannot write {}: {e}", path.display())).at(path))
}

/// The marker of the finished shard in `dir` ([`SHARD_MARKER`]), if it is there and readable.
pub(crate) fn shard_marker(dir: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(dir.join(SHARD_MARKER)).ok()?;
    serde_json::from_str(&text).ok()
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
            "path": shard_name(index),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_round_trip() {
        assert_eq!(shard_name(42), "shard-00042");
        assert_eq!(shard_index(&shard_name(42)), Some(42));
        assert_eq!(shard_index("shard-x"), None);
        assert!(is_sharded(&[shard_name(0), PLAN.into()]));
        assert!(!is_sharded(&[shard_name(0), "notes.txt".into()]));
    }
}
