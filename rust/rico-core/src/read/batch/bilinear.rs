//! Bilinear resampling with the arithmetic of torch's CPU kernel
//! (`torch.nn.functional.interpolate(mode="bilinear")` on an `(N, C, H, W)` float tensor), so that
//! a batch equals what a torch pipeline (ConfigILM's BigEarthNet loader) computes, bit for bit in
//! practice and within 1 ulp wherever the compilers' choices differ.
//!
//! What torch does, step for step (and this module after it):
//! - per axis, in the tensor's own precision: `scale = (in - 1) / (out - 1)` (align_corners) or
//!   `in / out`; the source position `scale * i` or `scale * (i + 0.5) - 0.5` (clamped at 0);
//!   `i0 = floor(src)`, `i1 = i0 + 1` inside the band, `l1 = clamp(src - i0, 0, 1)`,
//!   `l0 = 1 - l1`; when in == out, the identity.
//! - outputs with `H + W > 128` take torch's separable kernel: each source row is interpolated
//!   along x, `t = fma(p0, l0x, p1 * l1x)`, then `out = fma(t0, l0y, t1 * l1y)`.
//! - smaller outputs take torch's four-weight kernel: `w_ab = l_ay * l_bx`, then
//!   `out = fma(p11, w11, fma(p10, w10, fma(p00, w00, p01 * w01)))`, and the half-pixel source
//!   position is one fused multiply-add.
//!
//! The fused multiply-adds are those torch's x86-64 build (compiled with FMA contraction) runs;
//! here they are `mul_add`, compiled to the FMA instruction where the CPU has it (checked at run
//! time) and exact in software elsewhere.
//!
//! torch itself sends a 3-channel tensor under `torch.set_num_threads(1)` to the four-weight
//! kernel at any size (up to 3 ulp from its own result for the same bands with 4 channels);
//! this module follows the choice torch makes for a band on its own, as ConfigILM calls it.

use std::mem::MaybeUninit;
use std::ops::{Add, Div, Mul, Sub};

/// The float types a batch is resampled in (float32 like torch's float32, float64 like float64).
pub trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const HALF: Self;
    fn from_usize(n: usize) -> Self;
    /// `floor(self)` as an index (self >= 0).
    fn floor_index(self) -> usize;
    /// `self * a + b` with one rounding.
    fn fma(self, a: Self, b: Self) -> Self;
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const HALF: f32 = 0.5;
    #[inline(always)]
    fn from_usize(n: usize) -> f32 {
        n as f32
    }
    #[inline(always)]
    fn floor_index(self) -> usize {
        self.floor() as usize
    }
    #[inline(always)]
    fn fma(self, a: f32, b: f32) -> f32 {
        self.mul_add(a, b)
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    const HALF: f64 = 0.5;
    #[inline(always)]
    fn from_usize(n: usize) -> f64 {
        n as f64
    }
    #[inline(always)]
    fn floor_index(self) -> usize {
        self.floor() as usize
    }
    #[inline(always)]
    fn fma(self, a: f64, b: f64) -> f64 {
        self.mul_add(a, b)
    }
}

/// One output index along an axis: its two source indices and their weights.
#[derive(Clone, Copy, Debug)]
struct Tap<F> {
    i0: usize,
    i1: usize,
    l0: F,
    l1: F,
}

/// torch's `compute_source_index_and_lambda` for every output index of an axis; `fused`: the
/// half-pixel position as one fused multiply-add (torch's four-weight kernel).
fn taps<F: Float>(n_in: usize, n_out: usize, align_corners: bool, fused: bool) -> Vec<Tap<F>> {
    if n_in == n_out {
        return (0..n_out)
            .map(|i| Tap {
                i0: i,
                i1: i,
                l0: F::ONE,
                l1: F::ZERO,
            })
            .collect();
    }
    let scale = match (align_corners, n_out > 1) {
        (true, true) => F::from_usize(n_in - 1) / F::from_usize(n_out - 1),
        (true, false) => F::ZERO,
        (false, _) => F::from_usize(n_in) / F::from_usize(n_out),
    };
    (0..n_out)
        .map(|i| {
            let src = if align_corners {
                scale * F::from_usize(i)
            } else {
                let at = F::from_usize(i) + F::HALF;
                let src = if fused {
                    scale.fma(at, F::ZERO - F::HALF)
                } else {
                    scale * at - F::HALF
                };
                if src < F::ZERO {
                    F::ZERO
                } else {
                    src
                }
            };
            let i0 = src.floor_index().min(n_in - 1);
            let mut l1 = src - F::from_usize(i0);
            if l1 < F::ZERO {
                l1 = F::ZERO;
            }
            if l1 > F::ONE {
                l1 = F::ONE;
            }
            let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
            Tap {
                i0,
                i1,
                l0: F::ONE - l1,
                l1,
            }
        })
        .collect()
}

/// Output sides up to this sum take torch's four-weight kernel, larger ones the separable one
/// (`_use_vectorized_kernel_cond_2d` in torch's UpSampleKernel.cpp).
const FOUR_WEIGHT_MAX: usize = 128;

/// The taps of one resampling, `(h, w) -> (oh, ow)`.
struct Plan<F> {
    /// Input shape, output shape, align_corners.
    key: ((usize, usize), (usize, usize), bool),
    ys: Vec<Tap<F>>,
    xs: Vec<Tap<F>>,
    /// Per source row: whether an output row uses it.
    used: Vec<bool>,
}

/// Plans of the shapes met so far (a batch mixes a few: 20, 60 and 120 for Sentinel-2) and the
/// buffer of source rows interpolated along x; one per thread, reused from record to record.
pub struct Scratch<F> {
    plans: Vec<Plan<F>>,
    current: usize,
    rows: Vec<F>,
}

impl<F> Default for Scratch<F> {
    fn default() -> Self {
        Scratch {
            plans: Vec::new(),
            current: usize::MAX,
            rows: Vec::new(),
        }
    }
}

impl<F: Float> Scratch<F> {
    /// Prepares resampling `(h, w)` bands to `(oh, ow)`.
    pub fn plan(&mut self, (h, w): (usize, usize), (oh, ow): (usize, usize), align_corners: bool) {
        let key = ((h, w), (oh, ow), align_corners);
        if let Some(i) = self.plans.iter().position(|p| p.key == key) {
            self.current = i;
            return;
        }
        let fused = oh + ow <= FOUR_WEIGHT_MAX;
        let ys = taps(h, oh, align_corners, fused);
        let mut used = vec![false; h];
        for t in &ys {
            used[t.i0] = true;
            used[t.i1] = true;
        }
        self.plans.push(Plan {
            key,
            ys,
            xs: taps(w, ow, align_corners, fused),
            used,
        });
        self.current = self.plans.len() - 1;
    }

    /// Resamples `src` (`h x w`, as planned) into `out` (`oh x ow`), passing each value through
    /// `finish` (normalisation). Writes every slot of `out`.
    pub fn resample(
        &mut self,
        src: &[F],
        out: &mut [MaybeUninit<F>],
        finish: impl Fn(F) -> F + Copy,
    ) {
        let ((h, w), (oh, ow), _) = self.plans[self.current].key;
        assert!(
            src.len() == h * w && out.len() == oh * ow,
            "bilinear buffers of the wrong size"
        );
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has FMA (checked just above).
                unsafe { self.resample_fma(src, out, finish) };
                return;
            }
        }
        self.resample_any(src, out, finish);
    }

    /// [`Scratch::resample`] compiled with FMA instructions (mul_add inlines to vfmadd).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn resample_fma(
        &mut self,
        src: &[F],
        out: &mut [MaybeUninit<F>],
        finish: impl Fn(F) -> F + Copy,
    ) {
        self.resample_any(src, out, finish)
    }

    #[inline(always)]
    fn resample_any(
        &mut self,
        src: &[F],
        out: &mut [MaybeUninit<F>],
        finish: impl Fn(F) -> F + Copy,
    ) {
        let plan = &self.plans[self.current];
        let ((h, w), (oh, ow), _) = plan.key;
        if oh + ow <= FOUR_WEIGHT_MAX {
            for (row, y) in out.chunks_exact_mut(ow).zip(&plan.ys) {
                let r0 = &src[y.i0 * w..][..w];
                let r1 = &src[y.i1 * w..][..w];
                for (o, x) in row.iter_mut().zip(&plan.xs) {
                    let (w00, w01) = (y.l0 * x.l0, y.l0 * x.l1);
                    let (w10, w11) = (y.l1 * x.l0, y.l1 * x.l1);
                    let v = r1[x.i1].fma(w11, r1[x.i0].fma(w10, r0[x.i0].fma(w00, r0[x.i1] * w01)));
                    o.write(finish(v));
                }
            }
            return;
        }
        // Separable: each used source row once along x (the value torch computes for it at
        // every output row that uses it), then the rows combined along y.
        self.rows.resize(h * ow, F::ZERO);
        for (r, line) in self.rows.chunks_exact_mut(ow).enumerate().take(h) {
            if !plan.used[r] {
                continue;
            }
            let s = &src[r * w..][..w];
            for (t, x) in line.iter_mut().zip(&plan.xs) {
                *t = s[x.i0].fma(x.l0, s[x.i1] * x.l1);
            }
        }
        for (row, y) in out.chunks_exact_mut(ow).zip(&plan.ys) {
            let t0 = &self.rows[y.i0 * ow..][..ow];
            let t1 = &self.rows[y.i1 * ow..][..ow];
            for ((o, &a), &b) in row.iter_mut().zip(t0).zip(t1) {
                o.write(finish(a.fma(y.l0, b * y.l1)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize), ac: bool) -> Vec<f32> {
        let mut s = Scratch::default();
        s.plan((h, w), (oh, ow), ac);
        let mut out = vec![MaybeUninit::uninit(); oh * ow];
        s.resample(src, &mut out, |v| v);
        out.into_iter()
            // SAFETY: `resample` wrote every one of the `oh * ow` outputs.
            .map(|v| unsafe { v.assume_init() })
            .collect()
    }

    #[test]
    fn align_corners_keeps_the_corners_and_halves_between() {
        // 2x2 -> 3x3 with align_corners: the corners stay, the middle is the mean of four.
        let src = [0.0, 4.0, 8.0, 12.0];
        assert_eq!(
            run(&src, (2, 2), (3, 3), true),
            [0.0, 2.0, 4.0, 4.0, 6.0, 8.0, 8.0, 10.0, 12.0]
        );
        // The separable kernel (outputs over 128 wide) gives the same on the edges.
        let big = run(&src, (2, 2), (2, 200), true);
        assert_eq!(
            (big[0], big[199], big[200], big[399]),
            (0.0, 4.0, 8.0, 12.0)
        );
    }

    #[test]
    fn half_pixel_clamps_at_the_border() {
        // 2 -> 4 without align_corners: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (-> 1).
        assert_eq!(
            run(&[0.0, 8.0], (1, 2), (1, 4), false),
            [0.0, 2.0, 6.0, 8.0]
        );
    }

    #[test]
    fn same_size_is_the_identity_and_plans_are_reused() {
        let src: Vec<f32> = (0..12).map(|v| v as f32 * 1.5).collect();
        assert_eq!(run(&src, (3, 4), (3, 4), true), src);
        let mut s = Scratch::<f32>::default();
        s.plan((3, 4), (6, 8), true);
        s.plan((2, 2), (6, 8), true);
        s.plan((3, 4), (6, 8), true);
        assert_eq!((s.plans.len(), s.current), (2, 0));
    }
}
