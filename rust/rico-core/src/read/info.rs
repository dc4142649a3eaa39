//! `rico info`: what a database holds — its records (every key walked against the count), its
//! size and the bands of a sample of records.

use std::path::Path;

use crate::base::error::{Error, Result};

use crate::base::layout::DATA_FILE;

use super::reader::{parse_record, Database};

/// What `rico info` reports about a database.
#[derive(Clone, Debug, Default)]
pub struct Info {
    /// Records in the database (every shard).
    pub records: u64,
    /// Size of `data.mdb` in bytes.
    pub bytes: u64,
    /// `(band, dtype, shapes seen)` over the sampled records, sorted by band name.
    pub bands: Vec<(String, String, Vec<Vec<usize>>)>,
    /// Records whose headers were read.
    pub sampled: u64,
    /// True for a sharded dataset.
    pub sharded: bool,
}

impl Info {
    /// Human-readable lines, as `rico info` prints them.
    pub fn text(&self, path: &Path) -> String {
        let mut s = format!(
            "{}\n  records: {}\n  size:    {:.1} MB\n  sharded: {}\n  bands (from {} sampled records):\n",
            path.display(),
            self.records,
            self.bytes as f64 / 1e6,
            if self.sharded { "yes" } else { "no" },
            self.sampled
        );
        for (name, dtype, shapes) in &self.bands {
            let shapes: Vec<String> = shapes
                .iter()
                .map(|sh| {
                    sh.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("x")
                })
                .collect();
            s.push_str(&format!(
                "    {name:<12} {dtype:<8} {}\n",
                shapes.join(", ")
            ));
        }
        s
    }
}

/// Records, size and bands (dtype, shapes) from up to `sample` records spread over the keys.
/// Every key is walked, and their count checked against the records the database counts.
pub fn summarize(db: &Database, sample: usize) -> Result<Info> {
    let records = db.len()?;
    let bytes = db
        .shards()
        .0
        .iter()
        .map(|s| std::fs::metadata(s.path.join(DATA_FILE)).map_or(0, |m| m.len()))
        .sum();
    let step = (records as usize / sample.max(1)).max(1);
    let mut bands: std::collections::BTreeMap<String, (String, Vec<Vec<usize>>)> =
        Default::default();
    let mut sampled = 0u64;
    let mut index = 0usize;
    let mut failure = None;
    db.for_each(|k, v| {
        if index.is_multiple_of(step) && (sampled as usize) < sample.max(1) {
            match parse_record(k, v) {
                Ok(tensors) => {
                    sampled += 1;
                    for t in tensors {
                        let entry = bands.entry(t.name).or_insert_with(|| {
                            let dtype = crate::base::record::from_safetensors_dtype(t.dtype)
                                .map_or_else(
                                    || format!("{:?}", t.dtype),
                                    |d| d.numpy_name().to_string(),
                                );
                            (dtype, Vec::new())
                        });
                        if !entry.1.contains(&t.shape) {
                            entry.1.push(t.shape);
                        }
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
        }
        index += 1;
        true
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    // Every key was walked: a tree whose pages lost keys (a damaged leaf) counts more records
    // than it holds, and says so here instead of at a later read.
    if index as u64 != records {
        return Err(Error::data(format!(
            "the database is damaged: its tree holds {index} keys, but it counts {records} records"
        ))
        .at(db.path())
        .hint("restore data.mdb from a copy, or convert the dataset again"));
    }
    let bands = bands
        .into_iter()
        .map(|(name, (dtype, shapes))| (name, dtype, shapes))
        .collect();
    Ok(Info {
        records,
        bytes,
        bands,
        sampled,
        sharded: db.is_sharded(),
    })
}
