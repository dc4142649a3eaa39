//! `rico verify`: re-decodes the sources of a conversion and compares them with the database,
//! record by record; in a sharded database also checks that every record lies in its shard.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::base::error::{Error, ErrorKind, Result};
use crate::base::lmdb::Env;
use crate::base::progress::Progress;
use crate::write::decode::{build_record, Record};
use crate::write::pipeline::{with_sources, ConvertOptions};
use crate::write::plan::{self, Planned};
use crate::write::spec::Patch;
use crate::write::target::{self, MANIFEST, SHARD_MARKER, SHARD_PLAN};

/// What `rico verify` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerifyReport {
    /// Records compared (patches of the sources).
    pub checked: u64,
    /// Records identical to a fresh decode of their sources.
    pub matching: u64,
    /// Keys of the sources with no record in the database.
    pub missing: Vec<String>,
    /// Keys in the database that no source gives.
    pub extra: Vec<String>,
    /// Keys whose record differs from a fresh decode of the sources.
    pub differing: Vec<String>,
    /// Patches whose sources cannot be decoded (or miss a band), with the reason: a database
    /// written with `--skip-invalid` leaves them out.
    pub unreadable: Vec<(String, String)>,
    /// In a sharded database: records stored in a shard whose part of the plan does not hold
    /// them ("key (shard N)").
    pub misplaced: Vec<String>,
    /// In a sharded database: keys stored in more than one shard ("key (shards N, M)").
    pub duplicated: Vec<String>,
    /// In a sharded database: where the manifest, a shard's marker or a shard's plan disagrees
    /// with what the shards hold (their count, key range, order; a damaged plan).
    pub manifest: Vec<String>,
}

impl VerifyReport {
    /// True when no problem was found: nothing missing, extra, differing, unreadable,
    /// misplaced or duplicated, and the manifest, markers and plans agree with the shards.
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.differing.is_empty()
            && self.unreadable.is_empty()
            && self.misplaced.is_empty()
            && self.duplicated.is_empty()
            && self.manifest.is_empty()
    }

    /// One line per problem, then a summary line.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (what, keys) in [
            ("missing", &self.missing),
            ("extra", &self.extra),
            ("differing", &self.differing),
            ("outside its shard", &self.misplaced),
            ("in more than one shard", &self.duplicated),
            ("inconsistent", &self.manifest),
        ] {
            for key in keys {
                s.push_str(&format!("{what}: {key}\n"));
            }
        }
        for (key, reason) in &self.unreadable {
            s.push_str(&format!(
                "unreadable: {key}: {}\n",
                reason.replace('\n', " ")
            ));
        }
        s.push_str(&format!(
            "{} of {} records match; {} missing, {} extra, {} differing, {} unreadable in the sources",
            self.matching,
            self.checked,
            self.missing.len(),
            self.extra.len(),
            self.differing.len(),
            self.unreadable.len()
        ));
        if !self.misplaced.is_empty() || !self.duplicated.is_empty() {
            s.push_str(&format!(
                "; {} outside their shard, {} in more than one shard",
                self.misplaced.len(),
                self.duplicated.len()
            ));
        }
        if !self.manifest.is_empty() {
            s.push_str(&format!(
                "; {} disagreements of the manifest, shard markers or plans with the shards",
                self.manifest.len()
            ));
        }
        s.push('\n');
        if self.ok() {
            return format!(
                "{} records match: the database holds exactly the sources' values\n",
                self.matching
            );
        }
        s
    }
}

/// Re-decodes the sources of a conversion and compares them with the database at `target`
/// (a plain or sharded one), record by record.
pub fn verify_dataset(
    name: &str,
    sources: &[(String, PathBuf)],
    target: &Path,
    options: &ConvertOptions,
) -> Result<VerifyReport> {
    let threads = crate::thread_count(options.threads)?;
    let db = crate::read::reader::Database::open(target)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::output(format!("cannot start decoder threads: {e}")))?;
    let mut report = VerifyReport::default();
    let bar = Progress::new(options.progress);
    // Patches are checked as planning hands them out, 64 at a time: a directory's plan is
    // never held whole, and a container's members (which carry their bytes) are read once.
    let mut expected: HashSet<Vec<u8>> = HashSet::new();
    let mut chunk: Vec<Patch> = Vec::with_capacity(64);
    let check = |chunk: &mut Vec<Patch>, report: &mut VerifyReport| -> Result<()> {
        let results: Vec<Result<Record>> =
            pool.install(|| chunk.par_iter().map(build_record).collect());
        for (patch, result) in chunk.iter().zip(results) {
            report.checked += 1;
            let record = match result {
                Ok(record) => record,
                Err(e) if e.kind == ErrorKind::Data => {
                    report.unreadable.push((patch.key.clone(), e.to_string()));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match db.get(patch.key.as_bytes())? {
                None => report.missing.push(patch.key.clone()),
                Some(v) if *v == *record.value => report.matching += 1,
                Some(_) => report.differing.push(patch.key.clone()),
            }
        }
        bar.done(chunk.len() as u64);
        chunk.clear();
        Ok(())
    };
    let options = ConvertOptions {
        skip_invalid: true,
        ..options.clone()
    };
    with_sources(name, sources, &options, |resolved| {
        plan::stream(resolved, true, &|n| bar.scanned(n), &mut |item| {
            match item {
                Planned::Patch(patch) => {
                    bar.planned(1);
                    expected.insert(patch.key.as_bytes().to_vec());
                    chunk.push(patch);
                    if chunk.len() == 64 {
                        check(&mut chunk, &mut report)?;
                    }
                }
                Planned::Skipped(key, reason) => {
                    report.checked += 1;
                    expected.insert(key.as_bytes().to_vec());
                    report.unreadable.push((key, reason));
                }
            }
            Ok(())
        })
    })?;
    check(&mut chunk, &mut report)?;
    bar.finish();
    db.for_each(|k, _| {
        if !expected.contains(k) {
            report.extra.push(String::from_utf8_lossy(k).into_owned());
        }
        true
    })?;
    report.extra.sort();
    check_shards(target, &mut report)?;
    Ok(report)
}

/// In a sharded database: every record lies in the shard whose part of the plan holds it, no
/// key is in two shards, and the manifest (and each shard's marker) says what the shards hold:
/// every shard directory listed, in order, with its count and key range.
fn check_shards(target: &Path, report: &mut VerifyReport) -> Result<()> {
    let Ok(text) = fs::read_to_string(target.join(MANIFEST)) else {
        return Ok(());
    };
    let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::data(format!("the manifest is not valid JSON: {e}")).at(target.join(MANIFEST))
    })?;
    let Some(shards) = manifest["shards"].as_array() else {
        return Ok(());
    };
    let n = shards.len();
    let cut = target::planned_cut(target).unwrap_or(n);
    if cut != n {
        report.manifest.push(format!(
            "the manifest lists {n} shards, {} cuts the dataset into {cut}",
            target::PLAN
        ));
    }
    // Key -> the first shard that holds it.
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut listed = HashSet::new();
    let mut total = 0u64;
    for (index, shard) in shards.iter().enumerate() {
        let rel = shard["path"].as_str().unwrap_or_default();
        let name = target::shard_name(index);
        if rel != name {
            report.manifest.push(format!(
                "the manifest lists {rel:?} as shard {index}, where {name} belongs"
            ));
        }
        listed.insert(rel.to_string());
        let dir = target.join(rel);
        // The plan of the shard in this directory (its own index, whatever the manifest says).
        let own = target::shard_index(rel);
        let damage = own
            .filter(|_| dir.join(SHARD_PLAN).exists())
            .and_then(|i| target::plan_damage(target, i, cut));
        if let Some(damage) = &damage {
            report.manifest.push(format!(
                "{rel}: its plan ({}) is damaged: {damage}; `--resume` plans it again",
                SHARD_PLAN
            ));
        }
        let planned: Option<HashSet<String>> = damage
            .is_none()
            .then(|| target::planned_keys(&dir))
            .flatten()
            .map(|keys| keys.into_iter().collect());
        let env = Env::open_read_only(&dir)
            .map_err(|e| Error::data(format!("cannot open shard {index}: {e}")).at(&dir))?;
        let txn = env
            .begin_read()
            .map_err(|e| Error::data(format!("cannot read shard {index}: {e}")).at(&dir))?;
        let (mut records, mut first, mut last) = (0u64, None, Vec::new());
        txn.for_each(|key, _| {
            records += 1;
            if first.is_none() {
                first = Some(key.to_vec());
            }
            last.clear();
            last.extend_from_slice(key);
            let shown = String::from_utf8_lossy(key);
            if let Some(planned) = &planned {
                if !planned.contains(shown.as_ref()) {
                    report.misplaced.push(format!("{shown} (shard {index})"));
                }
            }
            if let Some(first) = seen.get(key) {
                report
                    .duplicated
                    .push(format!("{shown} (shards {first}, {index})"));
            } else {
                seen.insert(key.to_vec(), index);
            }
            true
        })
        .map_err(|e| Error::data(format!("cannot read shard {index}: {e}")).at(&dir))?;
        total += records;
        let first = first.unwrap_or_default();
        if let Some(wrong) = target::disagreement("the manifest", shard, records, &first, &last) {
            report.manifest.push(format!("{rel}: {wrong}"));
        }
        if let Some(marker) = target::shard_marker(&dir) {
            if let Some(wrong) = target::disagreement(SHARD_MARKER, &marker, records, &first, &last)
            {
                report.manifest.push(format!("{rel}: {wrong}"));
            }
        }
    }
    if manifest["records"].as_u64() != Some(total) {
        report.manifest.push(format!(
            "the manifest says {} records in all, the shards hold {total}",
            manifest["records"]
        ));
    }
    let mut unlisted: Vec<String> = fs::read_dir(target)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| target::is_shard_name(name) && !listed.contains(name))
        .collect();
    unlisted.sort();
    for name in unlisted {
        report
            .manifest
            .push(format!("{name} is not listed in the manifest"));
    }
    Ok(())
}
