//! Per-band statistics over a set of records: the mean and standard deviation a training run
//! normalises with, computed exactly rather than estimated from a sample.
//!
//! Integer bands are summed in 128-bit integers (sum and sum of squares), so their mean and
//! variance come from exact totals with one rounding at the end. Float bands (and resampled
//! values) are reduced per record in two passes and merged with Chan et al.'s pairwise update,
//! which keeps f64 accuracy over billions of pixels where a running sum of squares would not.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use safetensors::tensor::Dtype;
use serde_json::{json, Value};

use crate::base::error::{Error, Result};
use crate::read::batch::{self, BatchSpec, Resample};
use crate::read::reader::{Database, TensorRef};

/// What to compute.
#[derive(Clone, Debug)]
pub struct StatsOptions {
    /// Bands, in the order they are reported.
    pub bands: Vec<String>,
    /// Resample every band to `size x size` first (as batches do); `None` = the stored values.
    /// Nearest upsampling by an integer factor repeats every pixel equally often, so it gives
    /// the same statistics as the stored values.
    pub size: Option<usize>,
    /// How bands are brought to `size`.
    pub resample: Resample,
    /// Reader threads; `None` = one per core.
    pub threads: Option<usize>,
}

/// Statistics of one band: population mean and standard deviation (ddof = 0).
#[derive(Clone, Debug, PartialEq)]
pub struct BandStats {
    /// The band's name.
    pub band: String,
    /// Records holding the band.
    pub records: u64,
    /// Pixels summed.
    pub count: u64,
    /// Mean of the pixels.
    pub mean: f64,
    /// Population standard deviation of the pixels (ddof = 0).
    pub std: f64,
    /// Smallest pixel value.
    pub min: f64,
    /// Largest pixel value.
    pub max: f64,
}

/// A running total of one band.
#[derive(Clone, Debug, Default)]
struct Acc {
    records: u64,
    /// Exact integer totals (integer dtypes, stored values).
    int_n: u64,
    int_sum: i128,
    int_sumsq: u128,
    /// Float moments: count, mean and sum of squared deviations.
    f_n: u64,
    f_mean: f64,
    f_m2: f64,
    min: f64,
    max: f64,
}

impl Acc {
    fn see_range(&mut self, lo: f64, hi: f64) {
        if self.records == 0 {
            (self.min, self.max) = (lo, hi);
        } else {
            self.min = self.min.min(lo);
            self.max = self.max.max(hi);
        }
        self.records += 1;
    }

    fn add_ints(&mut self, values: impl Iterator<Item = i64> + Clone) -> Result<()> {
        let (mut n, mut sum, mut sumsq) = (0u64, 0i128, 0u128);
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for v in values {
            n += 1;
            sum += v as i128;
            sumsq += (v as i128 * v as i128) as u128;
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if n == 0 {
            return Ok(());
        }
        self.see_range(lo as f64, hi as f64);
        self.int_n += n;
        self.int_sum += sum;
        self.int_sumsq = self
            .int_sumsq
            .checked_add(sumsq)
            .ok_or_else(|| Error::data("the sum of squares overflows 128 bits"))?;
        Ok(())
    }

    fn add_floats(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let m2 = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        self.see_range(lo, hi);
        self.merge_moments(values.len() as u64, mean, m2);
    }

    fn merge_moments(&mut self, n_b: u64, mean_b: f64, m2_b: f64) {
        if n_b == 0 {
            return;
        }
        if self.f_n == 0 {
            // Taken as they are: the update below would round an exact integer mean.
            (self.f_n, self.f_mean, self.f_m2) = (n_b, mean_b, m2_b);
            return;
        }
        let n = self.f_n + n_b;
        let (na, nb, nn) = (self.f_n as f64, n_b as f64, n as f64);
        let delta = mean_b - self.f_mean;
        self.f_mean += delta * nb / nn;
        self.f_m2 += m2_b + delta * delta * na * nb / nn;
        self.f_n = n;
    }

    fn merge(mut self, other: Acc) -> Acc {
        if other.records == 0 {
            return self;
        }
        if self.records == 0 {
            return other;
        }
        self.see_range(other.min, other.max);
        self.records += other.records - 1;
        self.int_n += other.int_n;
        self.int_sum += other.int_sum;
        self.int_sumsq = self.int_sumsq.saturating_add(other.int_sumsq);
        self.merge_moments(other.f_n, other.f_mean, other.f_m2);
        self
    }

    /// Count, mean and population variance of everything seen.
    fn finish(&self) -> (u64, f64, f64) {
        let mut total = Acc {
            f_n: self.f_n,
            f_mean: self.f_mean,
            f_m2: self.f_m2,
            ..Default::default()
        };
        if self.int_n > 0 {
            let n = self.int_n as i128;
            // n * sumsq - sum^2 = n^2 * variance, exact while it fits 128 bits.
            let exact = (self.int_sumsq as i128)
                .checked_mul(n)
                .and_then(|a| self.int_sum.checked_mul(self.int_sum).map(|b| a - b));
            let mean = self.int_sum as f64 / self.int_n as f64;
            let m2 = match exact {
                Some(v) => v as f64 / self.int_n as f64,
                None => self.int_sumsq as f64 - self.int_sum as f64 * mean,
            };
            total.merge_moments(self.int_n, mean, m2.max(0.0));
        }
        let var = if total.f_n > 0 {
            total.f_m2 / total.f_n as f64
        } else {
            f64::NAN
        };
        (total.f_n, total.f_mean, var)
    }
}

fn key_str(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Adds the stored values of tensor `t` of record `value` to `acc`.
fn add_stored(acc: &mut Acc, t: &TensorRef, value: &[u8], key: &[u8]) -> Result<()> {
    let bytes = &value[t.start..t.end];
    macro_rules! ints {
        ($t:ty, $n:expr) => {
            acc.add_ints(
                bytes
                    .chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n])) as i64),
            )
        };
    }
    macro_rules! floats {
        ($t:ty, $n:expr) => {{
            let values: Vec<f64> = bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n])) as f64)
                .collect();
            acc.add_floats(&values);
            Ok(())
        }};
    }
    match t.dtype {
        Dtype::U8 => ints!(u8, 1),
        Dtype::I8 => ints!(i8, 1),
        Dtype::U16 => ints!(u16, 2),
        Dtype::I16 => ints!(i16, 2),
        Dtype::U32 => ints!(u32, 4),
        Dtype::I32 => ints!(i32, 4),
        Dtype::F32 => floats!(f32, 4),
        Dtype::F64 => floats!(f64, 8),
        other => Err(Error::data(format!(
            "band {} of record {:?} has dtype {other:?}, which rico does not compute statistics for",
            t.name,
            key_str(key)
        ))),
    }
}

/// Statistics of `options.bands` over `keys` (every record when `None`). Each band is taken
/// from the records that hold it, so one call covers records of different kinds (e.g.
/// BigEarthNet's S2 patches and their S1 partners). A missing key is an error; so is a band
/// that no record holds.
pub fn compute(
    db: &Database,
    keys: Option<&[Vec<u8>]>,
    options: &StatsOptions,
) -> Result<Vec<BandStats>> {
    if options.bands.is_empty() {
        return Err(Error::usage("no band given for the statistics"));
    }
    let all;
    let keys = match keys {
        Some(k) => k,
        None => {
            all = db.keys()?;
            &all
        }
    };
    if keys.is_empty() {
        return Err(Error::usage("no record selected for the statistics"));
    }
    let nb = options.bands.len();
    let per_record = |key: &Vec<u8>| -> Result<Vec<Acc>> {
        let mut accs = vec![Acc::default(); nb];
        let (value, tensors) = db.record(key)?.ok_or_else(|| {
            Error::usage(format!(
                "no record with key {:?} in the database {}",
                key_str(key),
                db.path().display()
            ))
        })?;
        for (acc, band) in accs.iter_mut().zip(&options.bands) {
            let Some(t) = tensors.iter().find(|t| &t.name == band) else {
                continue;
            };
            match options.size {
                None => add_stored(acc, t, &value, key)?,
                Some(size) => {
                    let spec = BatchSpec {
                        bands: vec![band.clone()],
                        size: Some(size),
                        resample: options.resample,
                        mean: None,
                        std: None,
                    };
                    let mut out = vec![0f64; size * size];
                    batch::assemble(
                        db,
                        std::slice::from_ref(key),
                        &spec,
                        (size, size),
                        &mut out,
                        Some(1),
                    )?;
                    acc.add_floats(&out);
                }
            }
        }
        Ok(accs)
    };
    let merge = |a: Vec<Acc>, b: Vec<Acc>| -> Vec<Acc> {
        a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect()
    };
    let totals = batch::pool(options.threads)?.install(|| {
        keys.par_iter()
            .map(per_record)
            .try_reduce(|| vec![Acc::default(); nb], |a, b| Ok(merge(a, b)))
    })?;
    let mut out = Vec::with_capacity(nb);
    for (band, acc) in options.bands.iter().zip(&totals) {
        if acc.records == 0 {
            return Err(Error::usage(format!(
                "no record of the {} selected holds the band {band:?}",
                keys.len()
            ))
            .hint("check the band names with `rico info`"));
        }
        let (count, mean, var) = acc.finish();
        out.push(BandStats {
            band: band.clone(),
            records: acc.records,
            count,
            mean,
            std: var.sqrt(),
            min: acc.min,
            max: acc.max,
        });
    }
    Ok(out)
}

/// Where the statistics of the database at `db` go by default: `<db>.stats.json` beside it.
pub fn default_path(db: &Path) -> PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".to_string());
    db.with_file_name(format!("{name}.stats.json"))
}

/// The statistics as the JSON document `rico stats` writes; `split` is recorded as given.
pub fn to_json(
    db: &Path,
    stats: &[BandStats],
    options: &StatsOptions,
    split: Option<&str>,
) -> Value {
    let bands: serde_json::Map<String, Value> = stats
        .iter()
        .map(|s| {
            (
                s.band.clone(),
                json!({"mean": s.mean, "std": s.std, "count": s.count, "records": s.records, "min": s.min, "max": s.max}),
            )
        })
        .collect();
    json!({
        "database": db.display().to_string(),
        "split": split,
        "size": options.size,
        "resample": options.resample.name(),
        "order": options.bands,
        "bands": bands,
    })
}

/// Writes `doc` to `path` (pretty-printed, newline at the end).
pub fn write_json(path: &Path, doc: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(doc)
        .map_err(|e| Error::output(format!("cannot serialise the statistics: {e}")))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Error::output(format!("cannot write the statistics: {e}")).at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_totals_are_exact() {
        let mut acc = Acc::default();
        acc.add_ints([1i64, 2, 3, 4].into_iter()).unwrap();
        acc.add_ints([10i64].into_iter()).unwrap();
        let (n, mean, var) = acc.finish();
        assert_eq!(n, 5);
        assert_eq!(mean, 4.0);
        // values 1 2 3 4 10: deviations -3 -2 -1 0 6 -> 50 / 5
        assert_eq!(var, 10.0);
        assert_eq!((acc.min, acc.max, acc.records), (1.0, 10.0, 2));
    }

    #[test]
    fn float_moments_merge_like_one_pass() {
        let a = [0.5f64, -1.25, 3.0];
        let b = [2.0f64, 2.5];
        let mut x = Acc::default();
        x.add_floats(&a);
        let mut y = Acc::default();
        y.add_floats(&b);
        let (n, mean, var) = x.merge(y).finish();
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let m = all.iter().sum::<f64>() / 5.0;
        let v = all.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / 5.0;
        assert_eq!(n, 5);
        assert!((mean - m).abs() < 1e-15 && (var - v).abs() < 1e-14);
    }

    #[test]
    fn default_path_is_beside_the_database() {
        assert_eq!(
            default_path(Path::new("/data/ben.lmdb")),
            PathBuf::from("/data/ben.lmdb.stats.json")
        );
    }
}
