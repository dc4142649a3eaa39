//! The plan files of a sharded conversion: each shard's `rico-plan.jsonl` (a header with the
//! shard's place in the cut, the number of its lines and their CRC-32, then one line per
//! patch) and the root's `rico-plan.json`; reading them back, and checking them before a
//! resume trusts them.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::base::error::{Error, Result};

use super::{read_plan, shard_dir, PLAN, SHARD_PLAN};

/// The number of patches of the plan at `target` when it can be trusted as it is: the root's
/// plan is readable and every shard's plan is whole and agrees with it.
pub(crate) fn trusted_plan(target: &Path, n: usize) -> Option<u64> {
    let plan = read_plan(target)?;
    let recorded = recorded_sums(&plan, n);
    (0..n)
        .all(|i| {
            let sum = recorded.as_ref().map(|r| r[i]);
            check_shard_plan(&shard_dir(target, i), i, n, sum)
                .damage
                .is_none()
        })
        .then(|| plan["patches"].as_u64().unwrap_or(0))
}

/// On a resume that found a shard's plan damaged or missing: for each shard, the sum of the
/// plan it keeps (`Some`: the one there is whole), or `None` where the plan the walk gave
/// (`new`) replaces it. That is only where the walk gives back the plan the conversion began
/// with: the sum the root's plan recorded for the shard, or, for a plan written without sums
/// (an earlier rico) or a lost root plan, where the walk gives every whole shard's plan back.
/// Otherwise the sources changed since: an error that names the damaged plan.
pub(crate) fn recover(
    target: &Path,
    n: usize,
    new: &[PlanSum],
    flags: &[String],
    patches: u64,
) -> Result<Vec<Option<PlanSum>>> {
    let root = read_plan(target);
    let recorded = root.as_ref().and_then(|p| recorded_sums(p, n));
    let same_sources = root
        .as_ref()
        .is_none_or(|p| p["sources"] == serde_json::json!(flags));
    let states: Vec<PlanState> = (0..n)
        .map(|i| {
            let sum = recorded.as_ref().map(|r| r[i]);
            check_shard_plan(&shard_dir(target, i), i, n, sum)
        })
        .collect();
    let corroborated = same_sources
        && states.iter().any(|s| s.whole.is_some())
        && states
            .iter()
            .zip(new)
            .all(|(s, new)| s.whole.is_none_or(|w| w == *new))
        && root
            .as_ref()
            .and_then(|p| p["patches"].as_u64())
            .is_none_or(|p| p == patches);
    let mut keep = Vec::with_capacity(n);
    for (index, state) in states.into_iter().enumerate() {
        let Some(damage) = state.damage else {
            keep.push(state.whole);
            continue;
        };
        if state.whole == Some(new[index]) {
            // Whole, and what the sources give: the root's record of it was wrong.
            keep.push(state.whole);
            continue;
        }
        let began_with = match &recorded {
            Some(r) => r[index] == new[index],
            None => corroborated,
        };
        if same_sources && began_with {
            keep.push(None);
            continue;
        }
        return Err(Error::data(format!(
            "the plan of shard {index} is damaged ({damage}), and the sources no longer give the plan this conversion began with: it cannot be planned again"
        ))
        .at(shard_dir(target, index).join(SHARD_PLAN))
        .hint("the sources changed since the conversion began: restore them as they were (or this file from a copy) and run the same command again with --resume; or convert into a new directory"));
    }
    Ok(keep)
}

/// CRC-32 as zlib computes it (IEEE polynomial, reflected): the checksum of a plan's lines,
/// by the crc32fast crate (also flate2's and parquet's).
#[derive(Clone, Default)]
pub(crate) struct Crc32(crc32fast::Hasher);

impl Crc32 {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn value(&self) -> u32 {
        self.0.clone().finalize()
    }
}

/// What a shard's plan holds after its header: its patches, its lines (the patches and, in
/// shard 0, those dropped while planning) and the CRC-32 of those lines (newlines included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlanSum {
    pub(crate) patches: u64,
    pub(crate) lines: u64,
    pub(crate) crc32: u32,
}

impl PlanSum {
    pub(crate) fn to_json(self) -> serde_json::Value {
        serde_json::json!({"patches": self.patches, "lines": self.lines, "crc32": self.crc32})
    }

    pub(crate) fn from_json(v: &serde_json::Value) -> Option<PlanSum> {
        Some(PlanSum {
            patches: v["patches"].as_u64()?,
            lines: v["lines"].as_u64()?,
            crc32: u32::try_from(v["crc32"].as_u64()?).ok()?,
        })
    }

    /// The first line of the plan of shard `index` of `n`.
    pub(crate) fn header(&self, index: usize, n: usize) -> serde_json::Value {
        let mut header = self.to_json();
        header["index"] = index.into();
        header["shards"] = n.into();
        header
    }
}

/// Counts and sums a plan's lines.
#[derive(Default)]
pub(crate) struct SumBuilder {
    patches: u64,
    lines: u64,
    crc: Crc32,
}

impl SumBuilder {
    /// One line, without its newline.
    pub(crate) fn line(&mut self, line: &str) {
        self.bytes(line.as_bytes());
        self.crc.update(b"\n");
    }

    pub(crate) fn bytes(&mut self, line: &[u8]) {
        self.crc.update(line);
        self.lines += 1;
        // A patch is a JSON list; a patch dropped while planning, an object.
        self.patches += u64::from(line.first() == Some(&b'['));
    }

    pub(crate) fn sum(&self) -> PlanSum {
        PlanSum {
            patches: self.patches,
            lines: self.lines,
            crc32: self.crc.value(),
        }
    }
}

/// The sums the root's plan recorded for its `n` shards (a plan written by an earlier rico has
/// none).
pub(crate) fn recorded_sums(plan: &serde_json::Value, n: usize) -> Option<Vec<PlanSum>> {
    let plans = plan["plans"].as_array()?;
    if plans.len() != n {
        return None;
    }
    plans.iter().map(PlanSum::from_json).collect()
}

/// What a shard's plan file is found to be.
pub(crate) struct PlanState {
    /// Its sum, when the file is whole in itself: a header for this shard, whole lines, as many
    /// and with the checksum its header says.
    whole: Option<PlanSum>,
    /// What is wrong with it (a disagreement with the root's record included), if anything.
    damage: Option<String>,
}

/// Reads the plan of shard `index` of `n` in `dir` through, and checks it against its header
/// and against `recorded`, the sum the root's plan holds for it.
pub(crate) fn check_shard_plan(
    dir: &Path,
    index: usize,
    n: usize,
    recorded: Option<PlanSum>,
) -> PlanState {
    let damaged = |what: String| PlanState {
        whole: None,
        damage: Some(what),
    };
    let file = match fs::File::open(dir.join(SHARD_PLAN)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return damaged(if dir.exists() {
                "the file is missing".into()
            } else {
                "the shard's directory is missing".into()
            })
        }
        Err(e) => return damaged(format!("it cannot be read: {e}")),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut next = |line: &mut Vec<u8>| -> std::result::Result<bool, String> {
        line.clear();
        match reader.read_until(b'\n', line) {
            Ok(0) => Ok(false),
            Ok(_) if line.last() != Some(&b'\n') => Err("it ends in the middle of a line".into()),
            Ok(_) => Ok(true),
            Err(e) => Err(format!("it cannot be read: {e}")),
        }
    };
    match next(&mut line) {
        Ok(true) => {}
        Ok(false) => return damaged("the file is empty".into()),
        Err(e) => return damaged(e),
    }
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&line) else {
        return damaged("its first line is not its header".into());
    };
    if header["index"].as_u64() != Some(index as u64) || header["shards"].as_u64() != Some(n as u64)
    {
        return damaged(format!(
            "its header is that of shard {} of {}",
            header["index"], header["shards"]
        ));
    }
    let mut sum = SumBuilder::default();
    loop {
        match next(&mut line) {
            Ok(true) => sum.bytes(&line[..line.len() - 1]),
            Ok(false) => break,
            Err(e) => return damaged(e),
        }
        sum.crc.update(b"\n");
    }
    let sum = sum.sum();
    // A plan written by an earlier rico has a count of patches only.
    let stated = PlanSum {
        patches: header["patches"].as_u64().unwrap_or(u64::MAX),
        lines: header["lines"].as_u64().unwrap_or(sum.lines),
        crc32: header["crc32"].as_u64().map_or(sum.crc32, |c| c as u32),
    };
    let wrong = if sum.lines != stated.lines {
        Some(format!(
            "it has {} lines after its header, which says {}",
            sum.lines, stated.lines
        ))
    } else if sum.patches != stated.patches {
        Some(format!(
            "it lists {} patches, its header says {}",
            sum.patches, header["patches"]
        ))
    } else if sum.crc32 != stated.crc32 {
        Some("its lines do not match their checksum: a line is changed, repeated or moved".into())
    } else {
        None
    };
    if let Some(wrong) = wrong {
        return damaged(wrong);
    }
    PlanState {
        whole: Some(sum),
        damage: recorded
            .filter(|r| *r != sum)
            .map(|_| format!("it is not the plan {PLAN} records for this shard")),
    }
}

/// What is wrong with the plan of shard `index` of `n` under `target`, if anything (checked
/// against its header and the root's plan).
pub(crate) fn plan_damage(target: &Path, index: usize, n: usize) -> Option<String> {
    let recorded = read_plan(target).and_then(|p| recorded_sums(&p, n));
    let sum = recorded.map(|r| r[index]);
    check_shard_plan(&shard_dir(target, index), index, n, sum).damage
}

pub(crate) fn shard_plan_header(dir: &Path) -> Option<serde_json::Value> {
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
            .hint("run the same conversion again with --resume: it plans a missing or damaged shard plan again from the sources")
    })?;
    let bad = move |path: &Path| {
        Error::data("the shard's plan is damaged")
            .at(path)
            .hint("run the same conversion again with --resume: it plans a damaged shard plan again from the sources")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        let mut crc = Crc32::default();
        crc.update(b"1234");
        crc.update(b"56789");
        assert_eq!(crc.value(), 0xCBF4_3926);
        assert_eq!(Crc32::default().value(), 0);
    }

    #[test]
    fn a_plan_sum_counts_patches_and_lines() {
        let mut sum = SumBuilder::default();
        sum.line(r#"{"skipped":["a","bad"]}"#);
        sum.line(r#"[0,"b","d",["f"]]"#);
        let sum = sum.sum();
        assert_eq!((sum.patches, sum.lines), (1, 2));
        assert_eq!(PlanSum::from_json(&sum.to_json()), Some(sum));
        let header = sum.header(3, 4);
        assert_eq!(
            (header["index"].as_u64(), header["shards"].as_u64()),
            (Some(3), Some(4))
        );
    }
}
