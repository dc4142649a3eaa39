//! Bilinear resampling with GDAL's arithmetic: what `rasterio`'s
//! `read(out_shape=..., resampling=Resampling.bilinear)` returns (GDAL's `RasterIO` with
//! `GRIORA_Bilinear`, as GDAL 3.10 computes it), so that a batch equals TorchGeo's rasterio
//! reads value for value.
//!
//! What GDAL does, step for step (and this module after it):
//! - the source is read in a work type: float32 for 8- and 16-bit integers and float32, float64
//!   otherwise; every sum and weight is a double;
//! - per axis, pixel centres: output `i` sits at source position `src = (i + 0.5) * in / out`;
//!   the kernel is the triangle `1 - |x|` of radius 1, widened by `in / out` when shrinking
//!   (`x` then steps by `out / in`); the taps are the source pixels from
//!   `floor(src - radius + 0.5)` to `trunc(src + radius + 0.5)` (exclusive), cut at the edges,
//!   with `x = scale * (j - src + 0.5)` for tap `j` (added up tap after tap along x, in groups
//!   of four along y);
//! - without nodata the weights are divided by their sum (multiplied by its inverse); each
//!   source row is filtered along x, then the rows along y, the products summed in order;
//! - with nodata, masked taps weigh 0 and each pass divides by the weights left (an output with
//!   none left is the nodata value);
//! - the result is rounded to float32 (float64 for float64 work), and for an integer band to
//!   the band's type: `trunc(v + 0.5)` (`v - 0.5` below zero) in float32, clamped to the type;
//!   a valid result that lands on the nodata value becomes the next value (nodata + 1, or
//!   nodata - 1 at the type's maximum).
//!
//! A band of the output's size is copied as it is (GDAL reads it without resampling).

use safetensors::tensor::Dtype;

/// One output index along an axis: its first source index and the weights of its taps.
#[derive(Clone, Debug)]
struct Taps {
    start: usize,
    weights: Vec<f64>,
}

#[inline(always)]
fn triangle(x: f64) -> f64 {
    let a = x.abs();
    if a <= 1.0 {
        1.0 - a
    } else {
        0.0
    }
}

/// GDAL's taps of every output index of an axis; `normalise`: divided by their sum (the path
/// without nodata); `grouped`: positions of four taps at a time as `x + k * step` (GDAL's
/// vertical pass) instead of a running sum (its horizontal pass).
fn taps(n_in: usize, n_out: usize, normalise: bool, grouped: bool) -> Vec<Taps> {
    let ratio = n_in as f64 / n_out as f64;
    let scale = 1.0 / ratio;
    let step = if scale >= 1.0 { 1.0 } else { scale };
    let radius = 1.0 / step;
    (0..n_out)
        .map(|i| {
            let src = (i as f64 + 0.5) * ratio;
            let start = ((src - radius + 0.5).floor() as i64).max(0) as usize;
            let stop = ((src + radius + 0.5) as i64).min(n_in as i64).max(0) as usize;
            let count = stop.saturating_sub(start);
            let mut weights = Vec::with_capacity(count);
            let mut sum = 0.0;
            let mut x = step * (start as f64 - src + 0.5);
            let mut k = 0;
            while k + 3 < count {
                let xs = if grouped {
                    let v = [x, x + step, x + 2.0 * step, x + 3.0 * step];
                    x += 4.0 * step;
                    v
                } else {
                    let mut v = [0.0; 4];
                    for slot in &mut v {
                        *slot = x;
                        x += step;
                    }
                    v
                };
                let w = xs.map(triangle);
                sum += w[0] + w[1] + w[2] + w[3];
                weights.extend_from_slice(&w);
                k += 4;
            }
            while k < count {
                let w = triangle(x);
                weights.push(w);
                sum += w;
                x += step;
                k += 1;
            }
            if normalise && sum != 0.0 {
                let inv = 1.0 / sum;
                for w in &mut weights {
                    *w *= inv;
                }
            }
            Taps { start, weights }
        })
        .collect()
}

/// `sum(v[k] * w[k])` in GDAL's order: in order, but four taps or more as two running sums
/// of pairs (`(a0 + a1) + (a2 + a3)`...), as its unrolled loops add them.
#[inline(always)]
fn dot(values: impl Iterator<Item = f64>, weights: &[f64]) -> f64 {
    if weights.len() < 4 {
        let mut acc = 0.0;
        for (v, w) in values.zip(weights) {
            acc += v * w;
        }
        return acc;
    }
    let (mut a, mut b) = (0.0, 0.0);
    let mut it = values.zip(weights).enumerate();
    let full = weights.len() / 4 * 4;
    for (k, (v, w)) in &mut it {
        if k % 4 < 2 {
            a += v * w;
        } else {
            b += v * w;
        }
        if k + 1 == full {
            break;
        }
    }
    for (_, (v, w)) in it {
        a += v * w;
    }
    a + b
}

/// The integer range of a band type, and whether its work type is float32.
fn band_kind(dtype: Dtype) -> Option<(Option<(f64, f64)>, bool)> {
    Some(match dtype {
        Dtype::U8 => (Some((0.0, 255.0)), true),
        Dtype::I8 => (Some((-128.0, 127.0)), true),
        Dtype::U16 => (Some((0.0, 65535.0)), true),
        Dtype::I16 => (Some((-32768.0, 32767.0)), true),
        Dtype::U32 => (Some((0.0, u32::MAX as f64)), false),
        Dtype::I32 => (Some((i32::MIN as f64, i32::MAX as f64)), false),
        Dtype::F32 => (None, true),
        Dtype::F64 => (None, false),
        _ => return None,
    })
}

/// GDAL's conversion of a float32 result to an integer type: half away from zero in float32,
/// clamped to the type (NaN to 0).
#[inline(always)]
pub fn round_to_int(v: f32, (lo, hi): (f64, f64)) -> f64 {
    if v.is_nan() {
        return 0.0;
    }
    let r = if v >= 0.0 { v + 0.5 } else { v - 0.5 };
    // + 0.0: an integer has no negative zero.
    (r.trunc() as f64).clamp(lo, hi) + 0.0
}

/// [`round_to_int`] of a double (GDAL's float64 work type): half away from zero, clamped.
#[inline(always)]
pub fn round_to_int_f64(v: f64, (lo, hi): (f64, f64)) -> f64 {
    if v.is_nan() {
        return 0.0;
    }
    let r = if v >= 0.0 { v + 0.5 } else { v - 0.5 };
    r.trunc().clamp(lo, hi) + 0.0
}

/// The taps of one resampling, `(h, w) -> (oh, ow)`, with or without nodata.
struct Plan {
    key: ((usize, usize), (usize, usize), bool),
    xs: Vec<Taps>,
    ys: Vec<Taps>,
}

/// Plans of the shapes met so far (a batch mixes a few) and the buffers of one resampling; one
/// per thread, reused from band to band.
#[derive(Default)]
pub struct Scratch {
    plans: Vec<Plan>,
    rows: Vec<f64>,
    ok: Vec<bool>,
    valid: Vec<bool>,
    column: Vec<f64>,
    /// The output of the last [`Scratch::resample`], row by row.
    pub out: Vec<f64>,
}

impl Scratch {
    fn plan(&mut self, (h, w): (usize, usize), (oh, ow): (usize, usize), masked: bool) -> usize {
        let key = ((h, w), (oh, ow), masked);
        if let Some(i) = self.plans.iter().position(|p| p.key == key) {
            return i;
        }
        self.plans.push(Plan {
            key,
            xs: taps(w, ow, !masked, false),
            ys: taps(h, oh, !masked, true),
        });
        self.plans.len() - 1
    }

    /// Resamples one band (`values`, `h x w`, already widened to f64 from `dtype`) to
    /// `oh x ow` as GDAL does, into [`Scratch::out`] (row by row, in the band's type as f64).
    /// `None` if the dtype is not one GDAL resamples this way (64-bit integers).
    pub fn resample(
        &mut self,
        values: &[f64],
        dtype: Dtype,
        (h, w): (usize, usize),
        (oh, ow): (usize, usize),
        nodata: Option<f64>,
    ) -> Option<()> {
        let (int_range, work_f32) = band_kind(dtype)?;
        assert_eq!(
            values.len(),
            h * w,
            "GDAL bilinear source of the wrong size"
        );
        // The result in the work type, then in the band's type.
        let finish = |v: f64| -> f64 {
            if work_f32 {
                let f = v as f32;
                match int_range {
                    Some(r) => round_to_int(f, r),
                    None => f as f64,
                }
            } else {
                // Float64 work: the result stays a double until rounded to the band's type.
                match int_range {
                    Some(r) => round_to_int_f64(v, r),
                    None => v,
                }
            }
        };
        let plan = self.plan((h, w), (oh, ow), nodata.is_some());
        let Scratch {
            plans,
            rows,
            ok,
            valid,
            column,
            out,
        } = self;
        let Plan { xs, ys, .. } = &plans[plan];
        rows.clear();
        rows.resize(h * ow, 0.0);
        out.clear();
        out.resize(oh * ow, 0.0);
        match nodata {
            None => {
                // First pass: every source row along x.
                for (line, src) in rows.chunks_exact_mut(ow).zip(values.chunks_exact(w)) {
                    for (o, t) in line.iter_mut().zip(xs) {
                        *o = dot(src[t.start..].iter().copied(), &t.weights);
                    }
                }
                // Second pass: along y. GDAL adds a line's first columns in groups of 8
                // (vector code, in order) and the last `ow % 8` one at a time (in pairs of
                // running sums); float64 work takes the scalar loop for every column.
                let grouped = if work_f32 { ow / 8 * 8 } else { 0 };
                for (line, t) in out.chunks_exact_mut(ow).zip(ys) {
                    let n = t.weights.len();
                    let in_order = if n < 4 { ow } else { grouped };
                    for (k, wt) in t.weights.iter().enumerate() {
                        let src = &rows[(t.start + k) * ow..][..in_order];
                        for (o, v) in line[..in_order].iter_mut().zip(src) {
                            *o += v * wt;
                        }
                    }
                    for (j, o) in line.iter_mut().enumerate().skip(in_order) {
                        column.clear();
                        column.extend((0..n).map(|k| rows[(t.start + k) * ow + j]));
                        *o = dot(column.iter().copied(), &t.weights);
                    }
                    for o in line.iter_mut() {
                        *o = finish(*o);
                    }
                }
            }
            Some(nd) => {
                valid.clear();
                valid.extend(
                    values
                        .iter()
                        .map(|&v| v != nd && !(v.is_nan() && nd.is_nan())),
                );
                ok.clear();
                ok.resize(h * ow, true);
                for r in 0..h {
                    let src = &values[r * w..][..w];
                    let mask = &valid[r * w..][..w];
                    for (j, t) in xs.iter().enumerate() {
                        let (mut acc, mut sum) = (0.0, 0.0);
                        for ((&v, &m), &wt) in
                            src[t.start..].iter().zip(&mask[t.start..]).zip(&t.weights)
                        {
                            let wt = if m { wt } else { 0.0 };
                            acc += v * wt;
                            sum += wt;
                        }
                        if sum > 0.0 {
                            rows[r * ow + j] = acc / sum;
                        } else {
                            ok[r * ow + j] = false;
                        }
                    }
                }
                // Along y, a whole output line at a time (each column's sums in tap order).
                column.clear();
                column.resize(ow, 0.0);
                for (line, t) in out.chunks_exact_mut(ow).zip(ys) {
                    line.fill(0.0);
                    column.fill(0.0);
                    for (k, &wt) in t.weights.iter().enumerate() {
                        let at = (t.start + k) * ow;
                        let (src, good) = (&rows[at..][..ow], &ok[at..][..ow]);
                        for (((acc, sum), &v), &g) in
                            line.iter_mut().zip(column.iter_mut()).zip(src).zip(good)
                        {
                            let wt = if g { wt } else { 0.0 };
                            *acc += v * wt;
                            *sum += wt;
                        }
                    }
                    for (o, &sum) in line.iter_mut().zip(column.iter()) {
                        let acc = *o;
                        *o = if sum > 0.0 {
                            let v = finish(acc / sum);
                            if v == nd {
                                replacement(nd, int_range, work_f32)
                            } else {
                                v
                            }
                        } else {
                            nd
                        };
                    }
                }
            }
        }
        Some(())
    }
}

/// Resamples one band as [`Scratch::resample`] does, calling `emit` with each output value.
pub fn resample(
    values: &[f64],
    dtype: Dtype,
    hw: (usize, usize),
    ohw: (usize, usize),
    nodata: Option<f64>,
    mut emit: impl FnMut(f64),
) -> Option<()> {
    let mut scratch = Scratch::default();
    scratch.resample(values, dtype, hw, ohw, nodata)?;
    scratch.out.iter().for_each(|&v| emit(v));
    Some(())
}

/// The value GDAL writes instead of a valid result equal to nodata.
fn replacement(nodata: f64, int_range: Option<(f64, f64)>, work_f32: bool) -> f64 {
    match int_range {
        Some((_, hi)) => {
            if nodata == hi {
                nodata - 1.0
            } else {
                nodata + 1.0
            }
        }
        None if work_f32 => {
            let f = nodata as f32;
            let next = if f == f32::MAX {
                f32::from_bits(f.to_bits() - 1)
            } else {
                next_up_f32(f)
            };
            next as f64
        }
        None => {
            if nodata == f64::MAX {
                f64::from_bits(nodata.to_bits() - 1)
            } else {
                next_up_f64(nodata)
            }
        }
    }
}

fn next_up_f32(f: f32) -> f32 {
    if f == 0.0 {
        return f32::from_bits(1);
    }
    let b = f.to_bits();
    f32::from_bits(if f > 0.0 { b + 1 } else { b - 1 })
}

fn next_up_f64(f: f64) -> f64 {
    if f == 0.0 {
        return f64::from_bits(1);
    }
    let b = f.to_bits();
    f64::from_bits(if f > 0.0 { b + 1 } else { b - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &[f64], dtype: Dtype, hw: (usize, usize), out: (usize, usize)) -> Vec<f64> {
        let mut v = Vec::new();
        resample(src, dtype, hw, out, None, |x| v.push(x)).unwrap();
        v
    }

    #[test]
    fn doubling_keeps_edges_and_quarters_between() {
        // 1 x 2 -> 1 x 4: centres at 0.25, 0.75, 1.25, 1.75 of the source: the edges are the
        // edge pixels (one tap), the middle 3/4 and 1/4 of the two.
        assert_eq!(
            run(&[0.0, 8.0], Dtype::F32, (1, 2), (1, 4)),
            [0.0, 2.0, 6.0, 8.0]
        );
        // uint16: 2.0 and 6.0 stay; 0 and 3 -> 0.75 and 2.25 round half away from zero.
        assert_eq!(
            run(&[0.0, 3.0], Dtype::U16, (1, 2), (1, 4)),
            [0.0, 1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn rounding_is_half_away_from_zero_in_float32() {
        assert_eq!(round_to_int(0.5, (-10.0, 10.0)), 1.0);
        assert_eq!(round_to_int(-0.5, (-10.0, 10.0)), -1.0);
        assert_eq!(round_to_int(2.5, (-10.0, 10.0)), 3.0);
        // 0.49999997 + 0.5 rounds to 1.0 in float32.
        assert_eq!(round_to_int(0.49999997, (-10.0, 10.0)), 1.0);
        assert_eq!(round_to_int(70000.0, (0.0, 65535.0)), 65535.0);
        assert_eq!(round_to_int(f32::NAN, (0.0, 65535.0)), 0.0);
    }

    #[test]
    fn nodata_is_left_out_and_never_produced() {
        // 1 x 2 -> 1 x 4 with nodata 0: the zero pixel weighs nothing, so every output with a
        // valid tap is 3; the first output's only tap is the zero: nodata.
        let mut v = Vec::new();
        resample(&[0.0, 3.0], Dtype::U16, (1, 2), (1, 4), Some(0.0), |x| {
            v.push(x)
        })
        .unwrap();
        assert_eq!(v, [0.0, 3.0, 3.0, 3.0]);
        // Valid values stay; a valid result equal to nodata (6) becomes 7; all nodata: nodata.
        let mut v = Vec::new();
        resample(&[7.0, 7.0], Dtype::U16, (1, 2), (1, 3), Some(0.0), |x| {
            v.push(x)
        })
        .unwrap();
        assert_eq!(v, [7.0; 3]);
        let mut v = Vec::new();
        resample(&[5.0, 9.0], Dtype::U16, (1, 2), (1, 4), Some(6.0), |x| {
            v.push(x)
        })
        .unwrap();
        assert_eq!(v, [5.0, 7.0, 8.0, 9.0]);
        let mut v = Vec::new();
        resample(&[0.0, 0.0], Dtype::U16, (1, 2), (1, 3), Some(0.0), |x| {
            v.push(x)
        })
        .unwrap();
        assert_eq!(v, [0.0; 3]);
    }

    #[test]
    fn sixfold_weights_sum_to_one() {
        for t in taps(20, 120, true, true) {
            let s: f64 = t.weights.iter().sum();
            assert!((s - 1.0).abs() < 1e-12, "{t:?}");
        }
    }
}
