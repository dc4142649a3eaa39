//! Selecting records by key prefix and by the bands they hold, from their safetensors headers
//! only (no tensor data is touched): a BigEarthNet database mixes Sentinel-1 records (VH, VV),
//! Sentinel-2 records (B01..B12) and reference maps, and a batch needs records with its bands.

use std::collections::{BTreeMap, BTreeSet};

use crate::base::error::{Error, Result};
use crate::read::reader::{parse_record, Database};

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

/// Why `selection` keeps no record of `db`, as a usage error that names the database and
/// says what to change; `Ok(None)` when it keeps some. Without a matching key, it says so;
/// with bands that no record holds, it names them and the bands the records do hold; with
/// bands that are each held by some record but never all by one, it lists the sets of bands
/// the records hold (a sample is read from one record: bands of different records, such as a
/// patch's Sentinel-1 and Sentinel-2 records, are not joined).
pub fn why_empty(db: &Database, selection: &Selection) -> Result<Option<Error>> {
    // Each distinct set of bands (sorted) and how many records hold it.
    let mut sets: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    let mut kept = false;
    let mut failure = None;
    db.for_each(|key, value| {
        if !selection.wants(key) {
            return true;
        }
        match parse_record(key, value) {
            Ok(tensors) => {
                let has = |band: &String| tensors.iter().any(|t| &t.name == band);
                if selection.bands.iter().all(has) {
                    kept = true;
                    return false;
                }
                let mut names: Vec<String> = tensors.into_iter().map(|t| t.name).collect();
                names.sort_unstable();
                *sets.entry(names).or_default() += 1;
                true
            }
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if kept {
        return Ok(None);
    }
    let path = db.path().display();
    if sets.is_empty() {
        return Ok(Some(Error::usage(match &selection.prefix {
            Some(p) => format!(
                "no key of the database {path} starts with {:?}",
                String::from_utf8_lossy(p)
            ),
            None => format!("the database {path} holds no record"),
        })));
    }
    let held: BTreeSet<&String> = sets.keys().flatten().collect();
    let missing: Vec<&String> = selection
        .bands
        .iter()
        .filter(|b| !held.contains(b))
        .collect();
    let list = |bands: &mut dyn Iterator<Item = &String>| -> String {
        bands.map(String::as_str).collect::<Vec<_>>().join(", ")
    };
    if !missing.is_empty() {
        let hints: Vec<String> = missing
            .iter()
            .filter_map(|m| {
                held.iter()
                    .find(|h| h.eq_ignore_ascii_case(m))
                    .map(|h| format!("{m} is {h}"))
            })
            .collect();
        let hint = if hints.is_empty() {
            String::new()
        } else {
            format!(" (band names are case-sensitive: {})", hints.join(", "))
        };
        return Ok(Some(Error::usage(format!(
            "no record of the database {path} holds the band{} {}{hint}; its records hold {}",
            if missing.len() == 1 { "" } else { "s" },
            list(&mut missing.iter().copied()),
            list(&mut held.iter().copied()),
        ))));
    }
    const SHOWN: usize = 6;
    let mut by_count: Vec<(&Vec<String>, u64)> = sets.iter().map(|(s, n)| (s, *n)).collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut shown: Vec<String> = by_count
        .iter()
        .take(SHOWN)
        .map(|(set, n)| {
            format!(
                "{} ({n} record{})",
                list(&mut set.iter()),
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect();
    if by_count.len() > SHOWN {
        shown.push(format!("{} more sets", by_count.len() - SHOWN));
    }
    Ok(Some(Error::usage(format!(
        "no record of the database {path} holds all of the bands {} together, and a sample's \
         bands are read from one record; give bands that one record holds: its records hold {}",
        list(&mut selection.bands.iter()),
        shown.join("; ")
    ))))
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
