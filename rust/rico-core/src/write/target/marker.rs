//! The marker of a finished shard (`rico-shard.json`: its record count and key range) and the
//! check that a marker, or a manifest entry, agrees with what the shard's database holds.

use std::fs;
use std::path::Path;

use crate::base::error::{Error, Result};

use super::{shard_marker, write_json, DATA_FILE, SHARD_MARKER};

/// The number of records and the first and last keys of the LMDB directory `dir`.
pub(crate) fn shard_contents(dir: &Path) -> Result<(u64, Vec<u8>, Vec<u8>)> {
    let read = |e: crate::base::lmdb::LmdbError| {
        Error::data(format!("cannot read the shard's database: {e}")).at(dir)
    };
    if !dir.join(DATA_FILE).is_file() {
        return Err(Error::data("the shard's database (data.mdb) is missing").at(dir));
    }
    let env = crate::base::lmdb::Env::open_read_only(dir).map_err(read)?;
    let snapshot = crate::base::lmdb::Snapshot::new(std::sync::Arc::new(env)).map_err(read)?;
    let mut first = Vec::new();
    snapshot
        .for_each(|k, _| {
            first = k.to_vec();
            false
        })
        .map_err(read)?;
    let last = snapshot.last_key().map_err(read)?.unwrap_or_default();
    Ok((snapshot.len().map_err(read)?, first, last))
}

/// What is wrong with a shard's marker, if anything: its count and key range must be what the
/// shard's database holds.
pub(crate) fn marker_mismatch(dir: &Path, marker: &serde_json::Value) -> Option<String> {
    match shard_contents(dir) {
        Ok((records, first, last)) => disagreement(SHARD_MARKER, marker, records, &first, &last),
        Err(e) => Some(e.message),
    }
}

/// Where `entry` (a shard's marker, or its entry in the manifest, named `what`) disagrees with
/// what the shard holds: `records` records, keys from `first` to `last`.
pub(crate) fn disagreement(
    what: &str,
    entry: &serde_json::Value,
    records: u64,
    first: &[u8],
    last: &[u8],
) -> Option<String> {
    let (first, last) = (
        String::from_utf8_lossy(first),
        String::from_utf8_lossy(last),
    );
    if entry["records"].as_u64() != Some(records) {
        Some(format!(
            "{what} says {} records, the shard holds {records}",
            entry["records"]
        ))
    } else if entry["first_key"].as_str() != Some(&first)
        || entry["last_key"].as_str() != Some(&last)
    {
        Some(format!(
            "{what} says its keys run from {} to {}, the shard's run from {first:?} to {last:?}",
            entry["first_key"], entry["last_key"]
        ))
    } else {
        None
    }
}

/// A finished shard's marker counts only if its database holds what the marker says: one that
/// does not (the database deleted, or its marker changed) is removed, and the shard is resumed.
pub(crate) fn check_marker(dir: &Path) -> Result<()> {
    let path = dir.join(SHARD_MARKER);
    if !path.exists() {
        return Ok(());
    }
    let stale = match shard_marker(dir) {
        Some(marker) => marker_mismatch(dir, &marker).is_some(),
        None => true,
    };
    if stale {
        fs::remove_file(&path).map_err(|e| {
            Error::output(format!(
                "cannot remove a shard marker that does not hold: {e}"
            ))
            .at(&path)
        })?;
    }
    Ok(())
}

/// Marks a finished shard with its record count, first and last keys, and its place in the
/// sharding (so that a resume with another `--shards` is refused, not mixed).
pub(crate) fn mark_shard(dir: &Path, index: usize, shards: usize) -> Result<serde_json::Value> {
    let db = crate::read::reader::Database::open(dir)?;
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
