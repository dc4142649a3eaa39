//! Batch assembly: selected bands of many records stacked into one `(N, C, H, W)` float array,
//! resampled to a common size and normalised in the same pass, in parallel over records.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;
use safetensors::tensor::Dtype;

use crate::base::error::{Error, Result};
use crate::read::reader::{parse_record, Database, TensorRef};

mod bilinear;
pub mod fill;
pub mod gdal;
pub mod prefetch;
pub mod read_ahead;
pub mod ring;

/// How bands are brought to the batch's size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resample {
    /// `out[y][x] = in[y * h / H][x * w / W]` for whole factors (each side a multiple or a
    /// divisor of the other): for an upsampling factor f this is numpy's
    /// `a.repeat(f, 0).repeat(f, 1)`. Any other ratio is refused (it would pick source pixels
    /// unevenly); [`Resample::NearestAny`] accepts it.
    Nearest,
    /// The same formula, `floor(y * h / H)`, for any ratio (`"nearest-any"`).
    NearestAny,
    /// Bilinear as `torch.nn.functional.interpolate(mode="bilinear")` computes it on CPU, to
    /// within 1 ulp (in practice bit for bit), with `align_corners` as given: `true` is
    /// `"bilinear"` (ConfigILM's BigEarthNet convention), `false` is `"bilinear-half-pixel"`.
    Bilinear {
        /// torch's `align_corners`: corner pixels' centres line up (`true`) or their outer
        /// edges do (`false`).
        align_corners: bool,
    },
    /// Bilinear as GDAL computes it (rasterio's `read(out_shape=..., resampling=bilinear)`):
    /// pixel centres, the kernel widened when shrinking, edge taps cut and reweighted, results
    /// rounded to the band's type as GDAL does ([`gdal`]); `"bilinear-gdal"`, or
    /// `"bilinear-gdal:nodata=V"` for bands whose files declare nodata `V` (left out of the sums,
    /// as GDAL does).
    GdalBilinear {
        /// The source bands' nodata value, if they have one.
        nodata: Option<f64>,
    },
}

impl Resample {
    /// Parses a resample name: `"nearest"`, `"nearest-any"`, `"bilinear"` or
    /// `"bilinear-half-pixel"`; any other name is a usage error.
    pub fn parse(name: &str) -> Result<Resample> {
        match name {
            "nearest" => Ok(Resample::Nearest),
            "nearest-any" => Ok(Resample::NearestAny),
            "bilinear" => Ok(Resample::Bilinear {
                align_corners: true,
            }),
            "bilinear-half-pixel" => Ok(Resample::Bilinear {
                align_corners: false,
            }),
            "bilinear-gdal" => Ok(Resample::GdalBilinear { nodata: None }),
            other => match other.strip_prefix("bilinear-gdal:nodata=") {
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(nodata) => Ok(Resample::GdalBilinear {
                        nodata: Some(nodata),
                    }),
                    Err(_) => Err(Error::usage(format!(
                        "resample {other:?}: the nodata value {v:?} is not a number"
                    ))),
                },
                None => Err(Error::usage(format!(
                    "unknown resample {other:?}; use \"nearest\", \"nearest-any\", \"bilinear\" \
                     (torch's align_corners=True), \"bilinear-half-pixel\" (align_corners=False) \
                     or \"bilinear-gdal\" (rasterio's bilinear; \"bilinear-gdal:nodata=V\" for \
                     bands with nodata V)"
                ))),
            },
        }
    }
}

impl Resample {
    /// The name [`Resample::parse`] reads back.
    pub fn name(&self) -> String {
        match self {
            Resample::Nearest => "nearest".into(),
            Resample::NearestAny => "nearest-any".into(),
            Resample::Bilinear {
                align_corners: true,
            } => "bilinear".into(),
            Resample::Bilinear {
                align_corners: false,
            } => "bilinear-half-pixel".into(),
            Resample::GdalBilinear { nodata: None } => "bilinear-gdal".into(),
            Resample::GdalBilinear { nodata: Some(v) } => format!("bilinear-gdal:nodata={v}"),
        }
    }
}

/// The largest side a batch may be resampled to.
pub const MAX_SIZE: usize = 1 << 16;

/// What a batch holds.
#[derive(Clone, Debug)]
pub struct BatchSpec {
    /// Bands in channel order.
    pub bands: Vec<String>,
    /// Resample every band to `size x size`; `None` = bands must share their shape.
    pub size: Option<usize>,
    /// How bands are brought to `size`.
    pub resample: Resample,
    /// Per band: `out = (value - mean) / std`.
    pub mean: Option<Vec<f64>>,
    /// Per band divisor of the normalisation (finite, non-zero); see `mean`.
    pub std: Option<Vec<f64>>,
}

impl BatchSpec {
    /// Checks the spec before any record is read: at least one band, one `mean`/`std` value
    /// per band, `std` finite and non-zero, `size` within 1..=[`MAX_SIZE`].
    pub fn validate(&self) -> Result<()> {
        if self.bands.is_empty() {
            return Err(Error::usage("no band selected for the batch"));
        }
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if let Some(v) = v {
                if v.len() != self.bands.len() {
                    return Err(Error::usage(format!(
                        "{name} has {} values for {} bands; give one per band",
                        v.len(),
                        self.bands.len()
                    )));
                }
            }
        }
        if let Some(std) = &self.std {
            if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
                return Err(Error::usage("std values must be finite and non-zero"));
            }
        }
        if let Some(size) = self.size {
            if size == 0 || size > MAX_SIZE {
                return Err(Error::usage(format!(
                    "size must be between 1 and {MAX_SIZE}, not {size}"
                )));
            }
        }
        Ok(())
    }
}

/// A float type a batch is assembled into.
pub trait Sample: bilinear::Float + Default {
    /// Converts from `f64`, rounding to the nearest representable value.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;
}
impl Sample for f32 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Sample for f64 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

fn key_str(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// The `(H, W)` of a batch: `size` if given, else the shape of the first record's bands.
pub fn batch_shape(db: &Database, keys: &[Vec<u8>], spec: &BatchSpec) -> Result<(usize, usize)> {
    spec.validate()?;
    if let Some(s) = spec.size {
        return Ok((s, s));
    }
    let Some(first) = keys.first() else {
        return Ok((0, 0));
    };
    let (_, tensors) = db.record(first)?.ok_or_else(|| missing_key(first))?;
    let t = find_band(&tensors, &spec.bands[0], first)?;
    shape2(t, first)
}

fn missing_key(key: &[u8]) -> Error {
    Error::usage(format!(
        "no record with key {:?} in the database",
        key_str(key)
    ))
}

fn find_band<'t>(tensors: &'t [TensorRef], band: &str, key: &[u8]) -> Result<&'t TensorRef> {
    tensors.iter().find(|t| t.name == band).ok_or_else(|| {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        Error::usage(format!(
            "record {:?} has no band {band:?}; its bands are {}",
            key_str(key),
            names.join(", ")
        ))
    })
}

fn shape2(t: &TensorRef, key: &[u8]) -> Result<(usize, usize)> {
    match t.shape.as_slice() {
        [h, w] => Ok((*h, *w)),
        other => Err(Error::data(format!(
            "band {} of record {:?} has shape {other:?}; batches need 2-D bands",
            t.name,
            key_str(key)
        ))),
    }
}

/// Views initialised values as possibly uninitialised slots, to be written over.
#[inline]
fn as_uninit_mut<T>(values: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: MaybeUninit<T> has T's layout, and every T is a valid MaybeUninit<T>; the
    // slots are only ever written with initialised values, so `values` stays initialised.
    unsafe {
        std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<MaybeUninit<T>>(), values.len())
    }
}

/// Writes `(value - mean) * inv_std` of every element of a band's little-endian bytes into
/// `dst`, one element per slot: the same arithmetic, value for value, as the bilinear path
/// applies to its results, so a batch does not depend on the path taken. On success every slot
/// of `dst` is written (the byte count must be exactly one element per slot).
fn convert_into<T: Sample>(
    dtype: Dtype,
    bytes: &[u8],
    mean: f64,
    inv_std: f64,
    dst: &mut [MaybeUninit<T>],
) -> Result<()> {
    // (v - 0.0) * 1.0 == v for every v (and -0.0 stays -0.0), so the identity skips the arithmetic.
    let identity = mean.to_bits() == 0 && inv_std == 1.0;
    macro_rules! conv {
        ($t:ty, $n:expr) => {{
            if dst.len().checked_mul($n) != Some(bytes.len()) {
                return Err(Error::data(format!(
                    "a {dtype:?} band has {} bytes for {} values",
                    bytes.len(),
                    dst.len()
                )));
            }
            let values = bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n])) as f64);
            if identity {
                for (o, v) in dst.iter_mut().zip(values) {
                    o.write(T::from_f64(v));
                }
            } else {
                for (o, v) in dst.iter_mut().zip(values) {
                    o.write(T::from_f64((v - mean) * inv_std));
                }
            }
        }};
    }
    match dtype {
        Dtype::U8 => conv!(u8, 1),
        Dtype::I8 => conv!(i8, 1),
        Dtype::U16 => conv!(u16, 2),
        Dtype::I16 => conv!(i16, 2),
        Dtype::U32 => conv!(u32, 4),
        Dtype::I32 => conv!(i32, 4),
        Dtype::U64 => conv!(u64, 8),
        Dtype::I64 => conv!(i64, 8),
        Dtype::F32 => conv!(f32, 4),
        Dtype::F64 => conv!(f64, 8),
        other => {
            return Err(Error::usage(format!(
                "batches cannot be made from {other:?} bands"
            )))
        }
    }
    Ok(())
}

/// `row[x] = src[x / F]`: each source value repeated F times (F known at compile time, so the
/// copies unroll into vector stores; Sentinel-2's 20/60/10 m bands need factors 6 and 2).
/// Writes every slot of `row` when `row.len() == src.len() * F`.
#[inline]
fn repeat_each<T: Copy, const F: usize>(row: &mut [MaybeUninit<T>], src: &[T]) {
    debug_assert_eq!(row.len(), src.len() * F);
    for (run, &v) in row.chunks_exact_mut(F).zip(src) {
        let run: &mut [MaybeUninit<T>; F] =
            run.try_into().expect("chunks_exact_mut yields F elements");
        *run = [MaybeUninit::new(v); F];
    }
}

/// Per-thread buffers of batch assembly, reused from record to record.
#[derive(Default)]
struct Scratch<T: Sample> {
    /// A band at its own size: normalised (nearest) or as is (bilinear).
    narrow: Vec<T>,
    /// Bilinear: the plan of the last shapes resampled, and its intermediate rows.
    bilinear: bilinear::Scratch<T>,
    /// GDAL's bilinear: a band's values as f64.
    wide: Vec<f64>,
    /// GDAL's bilinear: its plans and buffers.
    gdal: gdal::Scratch,
}

/// Fills `out` (one record: C x H x W) from the record `key`. On success every slot of `out` has
/// been written; on error some may not have been.
fn fill_record<T: Sample>(
    db: &Database,
    key: &[u8],
    spec: &BatchSpec,
    (oh, ow): (usize, usize),
    out: &mut [MaybeUninit<T>],
    scratch: &mut Scratch<T>,
) -> Result<()> {
    // A record the cold path read is in a staging buffer; any other is read in place.
    let staged = db.take_staged(key);
    let mapped;
    let value: &[u8] = match &staged {
        Some(bytes) => bytes,
        None => {
            mapped = db.get(key)?.ok_or_else(|| missing_key(key))?;
            &mapped
        }
    };
    let tensors = parse_record(key, value)?;
    for (c, band) in spec.bands.iter().enumerate() {
        let t = find_band(&tensors, band, key)?;
        let (h, w) = shape2(t, key)?;
        if spec.size.is_none() && (h, w) != (oh, ow) {
            return Err(Error::usage(format!(
                "band {band} of record {:?} is {h}x{w} but the batch is {oh}x{ow}; pass size= to resample all bands to one size",
                key_str(key)
            )));
        }
        if h == 0 || w == 0 {
            return Err(Error::data(format!(
                "band {band} of record {:?} is empty",
                key_str(key)
            )));
        }
        let bytes = &value[t.start..t.end];
        let (mean, inv_std) = (
            spec.mean.as_ref().map_or(0.0, |m| m[c]),
            spec.std.as_ref().map_or(1.0, |s| 1.0 / s[c]),
        );
        let plane = &mut out[c * oh * ow..(c + 1) * oh * ow];
        if (h, w) == (oh, ow) {
            convert_into(t.dtype, bytes, mean, inv_std, plane)?;
            continue;
        }
        match spec.resample {
            Resample::Nearest | Resample::NearestAny => {
                if spec.resample == Resample::Nearest && !(whole(h, oh) && whole(w, ow)) {
                    return Err(Error::usage(format!(
                        "band {band} of record {:?} is {h}x{w}: nearest resampling to {oh}x{ow} \
                         is not a whole factor and would pick source pixels unevenly; pass a size \
                         that is a multiple or divisor of {h}x{w}, resample=\"bilinear\", or \
                         resample=\"nearest-any\" to accept uneven nearest resampling",
                        key_str(key)
                    )));
                }
                // Normalise each source pixel once, then gather: output rows that come from the
                // same source row (all but one in f for an integer factor f) are plain copies.
                // convert_into overwrites every element: no need to clear.
                scratch.narrow.resize(h * w, T::default());
                convert_into(
                    t.dtype,
                    bytes,
                    mean,
                    inv_std,
                    as_uninit_mut(&mut scratch.narrow),
                )?;
                let xs: Vec<usize> = (0..ow).map(|x| x * w / ow).collect();
                // For an integer factor f, x * w / ow == x / f: runs of f equal values.
                let factor = (ow % w == 0).then_some(ow / w);
                // Every row is written: y == 0 (and each new source row) by gathering, the others
                // as a copy of row y - 1, which was written the step before.
                let mut previous = usize::MAX;
                for y in 0..oh {
                    let sy = y * h / oh;
                    if sy == previous {
                        // Copies MaybeUninit slots (of an initialised row): no value is read as T.
                        let (done, rest) = plane.split_at_mut(y * ow);
                        rest[..ow].copy_from_slice(&done[(y - 1) * ow..]);
                        continue;
                    }
                    let src = &scratch.narrow[sy * w..][..w];
                    let row = &mut plane[y * ow..(y + 1) * ow];
                    match factor {
                        Some(2) => repeat_each::<T, 2>(row, src),
                        Some(3) => repeat_each::<T, 3>(row, src),
                        Some(4) => repeat_each::<T, 4>(row, src),
                        Some(6) => repeat_each::<T, 6>(row, src),
                        _ => {
                            // xs has ow entries: every slot of the row.
                            for (o, &sx) in row.iter_mut().zip(&xs) {
                                o.write(src[sx]);
                            }
                        }
                    }
                    previous = sy;
                }
            }
            Resample::GdalBilinear { nodata } => {
                scratch.wide.resize(h * w, 0.0);
                convert_into(t.dtype, bytes, 0.0, 1.0, as_uninit_mut(&mut scratch.wide))?;
                let done = scratch
                    .gdal
                    .resample(&scratch.wide, t.dtype, (h, w), (oh, ow), nodata);
                if done.is_some() {
                    // gdal.out has oh * ow values: every slot of the plane is written.
                    if mean.to_bits() == 0 && inv_std == 1.0 {
                        for (o, &v) in plane.iter_mut().zip(&scratch.gdal.out) {
                            o.write(T::from_f64(v));
                        }
                    } else {
                        for (o, &v) in plane.iter_mut().zip(&scratch.gdal.out) {
                            o.write(T::from_f64((v - mean) * inv_std));
                        }
                    }
                } else {
                    return Err(Error::usage(format!(
                        "band {band} of record {:?} is {:?}: resample=\"bilinear-gdal\" takes 8-, \
                         16- and 32-bit integer and float bands",
                        key_str(key),
                        t.dtype
                    )));
                }
            }
            Resample::Bilinear { align_corners } => {
                // Resampled in T's own precision (float32 as torch computes float32), then
                // normalised: the order ConfigILM applies (interpolate, then normalise).
                scratch.narrow.resize(h * w, T::default());
                convert_into(t.dtype, bytes, 0.0, 1.0, as_uninit_mut(&mut scratch.narrow))?;
                scratch.bilinear.plan((h, w), (oh, ow), align_corners);
                // Two instantiations, so that the identity's loop has no normalisation in it.
                if mean.to_bits() == 0 && inv_std == 1.0 {
                    scratch.bilinear.resample(&scratch.narrow, plane, |v| v);
                } else {
                    scratch.bilinear.resample(&scratch.narrow, plane, |v: T| {
                        T::from_f64((v.to_f64() - mean) * inv_std)
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether nearest resampling from `n_in` to `n_out` takes every source pixel equally often.
fn whole(n_in: usize, n_out: usize) -> bool {
    // rem_euclid: `is_multiple_of` is newer than the crate's minimum Rust version.
    n_out.rem_euclid(n_in) == 0 || n_in.rem_euclid(n_out) == 0
}

/// A pool of `threads` threads, shared by every batch of this process asking for that many.
///
/// Pools belong to the process that made them: a child forked by a `DataLoader` inherits the
/// parent's pool objects but none of their threads, and work sent there would wait forever.
/// The child gets its own pools; the parent's copies are left alone (dropping one would wake
/// threads that do not exist in the child).
pub fn pool(threads: Option<usize>) -> Result<Arc<rayon::ThreadPool>> {
    type Pools = HashMap<usize, Arc<rayon::ThreadPool>>;
    static POOLS: OnceLock<Mutex<(u32, Pools)>> = OnceLock::new();
    let n = crate::thread_count(threads)?;
    // The pid is compared on every call (it also covers a fork made by any library); the lock
    // itself is free in a forked child even if a thread of the parent held it (`fork`).
    let mut guard = POOLS
        .get_or_init(|| {
            crate::base::fork::register(crate::base::fork::Rank::BatchPools, || {
                match POOLS.get() {
                    Some(m) => Box::new(m.lock().unwrap_or_else(|p| p.into_inner())),
                    None => Box::new(()),
                }
            });
            Mutex::new((std::process::id(), HashMap::new()))
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if guard.0 != pid {
        let inherited = std::mem::take(&mut guard.1);
        std::mem::forget(inherited);
        guard.0 = pid;
    }
    let pools = &mut guard.1;
    if let Some(p) = pools.get(&n) {
        return Ok(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("rico-batch-{i}"))
            .build()
            .map_err(|e| Error::output(format!("cannot start batch threads: {e}")))?,
    );
    pools.insert(n, p.clone());
    Ok(p)
}

/// Assembles the batch of `keys` into `out` (`keys.len() x bands x H x W`, C order).
pub fn assemble<T: Sample>(
    db: &Database,
    keys: &[Vec<u8>],
    spec: &BatchSpec,
    shape: (usize, usize),
    out: &mut [T],
    threads: Option<usize>,
) -> Result<()> {
    assemble_uninit(db, keys, spec, shape, as_uninit_mut(out), threads)
}

/// [`assemble`] into possibly uninitialised memory. On `Ok` every element of `out` has been
/// written (so it may be treated as `[T]`); on `Err` any of them may still be uninitialised.
pub fn assemble_uninit<T: Sample>(
    db: &Database,
    keys: &[Vec<u8>],
    spec: &BatchSpec,
    shape: (usize, usize),
    out: &mut [MaybeUninit<T>],
    threads: Option<usize>,
) -> Result<()> {
    spec.validate()?;
    let per_record = spec.bands.len() * shape.0 * shape.1;
    if out.len() != keys.len() * per_record {
        return Err(Error::usage("batch buffer has the wrong size"));
    }
    if per_record == 0 {
        return Ok(());
    }
    assemble_samples(
        db,
        keys,
        spec,
        shape,
        out.chunks_mut(per_record).collect(),
        threads,
    )
}

/// [`assemble_uninit`] into one slice per record, each of `bands x height x width` elements:
/// the samples of a batch need not be adjacent, e.g. a channel range of a bigger batch, so
/// that several sensors' bands land in one array without a copy.
pub fn assemble_samples<T: Sample>(
    db: &Database,
    keys: &[Vec<u8>],
    spec: &BatchSpec,
    shape: (usize, usize),
    mut samples: Vec<&mut [MaybeUninit<T>]>,
    threads: Option<usize>,
) -> Result<()> {
    spec.validate()?;
    // The count is checked even where no pool is needed (one key), so that an absurd count
    // fails the same way whatever the batch.
    crate::thread_count(threads)?;
    let per_record = spec.bands.len() * shape.0 * shape.1;
    if samples.len() != keys.len() || samples.iter().any(|s| s.len() != per_record) {
        return Err(Error::usage("batch buffer has the wrong size"));
    }
    if per_record == 0 {
        return Ok(());
    }
    // Cold records: one read each, all started at once, instead of a fault per 4 KiB page.
    db.will_need(keys);
    if threads == Some(1) || keys.len() == 1 {
        let mut scratch = Scratch::default();
        for (sample, key) in samples.iter_mut().zip(keys) {
            fill_record(db, key, spec, shape, sample, &mut scratch)?;
        }
    } else {
        pool(threads)?.install(|| {
            samples
                .par_iter_mut()
                .zip(keys.par_iter())
                .try_for_each_init(Scratch::default, |scratch, (sample, key)| {
                    fill_record(db, key, spec, shape, sample, scratch)
                })
        })?;
    }
    // Pixels of a file that shrank meanwhile were read as zeros: an error, not a batch.
    db.check_intact()
}
