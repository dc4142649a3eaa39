//! Selecting records by key prefix and by the bands they hold, from their safetensors headers
//! only (no tensor data is touched): a BigEarthNet database mixes Sentinel-1 records (VH, VV),
//! Sentinel-2 records (B01..B12) and reference maps, and a batch needs records with its bands.

use crate::error::Result;
use crate::reader::{parse_record, Database};

/// Which records to keep.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Keys that start with these bytes.
    pub prefix: Option<Vec<u8>>,
    /// Records that hold every one of these bands.
    pub bands: Vec<String>,
}

impl Selection {
    fn wants(&self, key: &[u8]) -> bool {
        self.prefix.as_ref().is_none_or(|p| key.starts_with(p))
    }
}

/// The keys of the records `selection` keeps, sorted (LMDB's byte order, across shards too).
/// A record whose header is damaged is an error naming its key, never silently left out.
pub fn select_keys(db: &Database, selection: &Selection) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    let mut failure = None;
    db.for_each(|key, value| {
        if !selection.wants(key) {
            return true;
        }
        if !selection.bands.is_empty() {
            match parse_record(key, value) {
                Ok(tensors) => {
                    let has = |band: &String| tensors.iter().any(|t| &t.name == band);
                    if !selection.bands.iter().all(has) {
                        return true;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
        }
        keys.push(key.to_vec());
        true
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if db.is_sharded() {
        keys.sort_unstable();
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::Selection;

    #[test]
    fn prefix_matches_the_start_of_keys() {
        let s = Selection {
            prefix: Some(b"S2".to_vec()),
            bands: vec![],
        };
        assert!(s.wants(b"S2A_1") && !s.wants(b"S1A_1") && !s.wants(b"S"));
        assert!(Selection::default().wants(b"anything"));
    }
}
