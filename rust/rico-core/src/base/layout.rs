//! The names of the files and folders of a database and of a conversion's target, declared
//! once: the reader finds a sharded dataset by its manifest and shards by their prefix, the
//! write path ([`crate::write::target`]) creates them, and the bindings hand them to Python.

/// LMDB's data file in a database directory; the writer's lock is an `flock` on it.
pub const DATA_FILE: &str = "data.mdb";
/// LMDB's lock file in a database directory.
pub const LOCK_FILE: &str = "lock.mdb";
/// Name of the manifest at the root of a sharded dataset.
pub const MANIFEST: &str = "rico-manifest.json";
/// What the directory of every shard is named with, before its index (`shard-00000`).
pub const SHARD_PREFIX: &str = "shard-";
/// Name of the file a finished shard holds: its record count and key range.
pub const SHARD_MARKER: &str = "rico-shard.json";
/// The root file that says the shards' plans are all written: the cut is fixed.
pub const PLAN: &str = "rico-plan.json";
/// A shard's part of the plan, in its directory.
pub const SHARD_PLAN: &str = "rico-plan.jsonl";
/// The plan of every shard while it is being written (removed once cut); the planner holds
/// its lock.
pub const SPOOL: &str = "rico-plan.spool";
/// Name of the report of skipped patches written with `skip_invalid`.
pub const SKIPPED_REPORT: &str = "rico-skipped.tsv";
/// The labels table a BigEarthNet conversion writes beside its records.
pub const LABELS_TABLE: &str = "labels.csv";

/// The name of the directory of shard `index` (`shard-00042`).
pub fn shard_name(index: usize) -> String {
    format!("{SHARD_PREFIX}{index:05}")
}

/// The index of the shard whose directory is named `name`, if it is a shard's name.
pub fn shard_index(name: &str) -> Option<usize> {
    name.strip_prefix(SHARD_PREFIX)?.parse::<usize>().ok()
}

/// Whether `name` (an entry of a target) is named like a shard's directory.
pub fn is_shard_name(name: &str) -> bool {
    name.starts_with(SHARD_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_round_trip() {
        assert_eq!(shard_name(42), "shard-00042");
        assert_eq!(shard_index(&shard_name(7)), Some(7));
        assert_eq!(shard_index("shard-x"), None);
        assert!(is_shard_name("shard-00000") && !is_shard_name("data.mdb"));
    }
}
