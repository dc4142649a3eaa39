//! A conversion from end to end: [`convert_dataset`] checks the arguments and the target,
//! then runs the pipeline (reading, decoding, one writer) into one LMDB directory, or cuts the
//! dataset into shards ([`crate::write::sharding`]); a new target that a failed first run leaves
//! unusable is removed ([`crate::write::target`]). [`crate::write::verify`] checks a database against its
//! sources.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::base::error::{Error, ErrorKind, Result};
use crate::base::progress::Progress;
use crate::write::pipeline::{plan_depth, resolve_specs, with_sources, write_patches};
use crate::write::plan::{self, Planned};
use crate::write::sharding;
use crate::write::spec::Patch;
use crate::write::target;

pub use crate::write::commit::{INITIAL_MAP_SIZE, TXN_MAX_RECORDS};
pub use crate::write::pipeline::{
    ConvertOptions, Summary, DEFAULT_BUFFER_BYTES, DEFAULT_IO_DEPTH, MAX_BUFFER_BYTES,
    MIN_BUFFER_BYTES,
};
pub use crate::write::target::SKIPPED_REPORT;

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
        plan::plan_with(resolved, options.skip_invalid)
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
            target::check(target, options.resume)?;
            let new_target = !target.exists();
            let bar = Progress::new(options.progress);
            let summary = with_sources(name, sources, options, |resolved| {
                let plan = |emit: &mut dyn FnMut(Planned) -> Result<()>| {
                    plan::stream(resolved, options.skip_invalid, &|n| bar.scanned(n), emit)
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
                if plan::is_duplicate_key(e) || e.kind == ErrorKind::Usage {
                    target::remove(target);
                } else {
                    target::remove_if_empty(target);
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
