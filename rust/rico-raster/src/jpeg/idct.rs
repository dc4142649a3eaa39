//! libjpeg's accurate integer IDCT (jidctint.c, jpeg_idct_islow): dequantisation, the
//! inverse transform and libjpeg's range limiting, block by block.

use super::headers::Component;

const CONST_BITS: i64 = 13;
const PASS1_BITS: i64 = 2;
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

#[inline(always)]
fn descale(x: i64, n: i64) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's post-IDCT range limit: the sample (before the +128 level shift) masked to 10 bits
/// and clamped, wrapping exactly as libjpeg's table does for wild values.
fn range_limit_table() -> &'static [u8; 1024] {
    static TABLE: std::sync::OnceLock<[u8; 1024]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u8; 1024];
        for (i, v) in t.iter_mut().enumerate() {
            *v = match i {
                0..=127 => (i + 128) as u8,
                128..=511 => 255,
                512..=895 => 0,
                _ => (i - 896) as u8,
            };
        }
        t
    })
}

/// The even/odd butterfly shared by both passes; returns the 8 outputs before descaling.
#[inline(always)]
fn idct_1d(s: [i64; 8]) -> [i64; 8] {
    let (z2, z3) = (s[2], s[6]);
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (s[0] + s[4]) << CONST_BITS;
    let tmp1 = (s[0] - s[4]) << CONST_BITS;
    let tmp10 = tmp0 + tmp3;
    let tmp13 = tmp0 - tmp3;
    let tmp11 = tmp1 + tmp2;
    let tmp12 = tmp1 - tmp2;

    let (mut t0, mut t1, mut t2, mut t3) = (s[7], s[5], s[3], s[1]);
    let z1 = t0 + t3;
    let z2 = t1 + t2;
    let z3 = t0 + t2;
    let z4 = t1 + t3;
    let z5 = (z3 + z4) * FIX_1_175875602;
    t0 *= FIX_0_298631336;
    t1 *= FIX_2_053119869;
    t2 *= FIX_3_072711026;
    t3 *= FIX_1_501321110;
    let z1 = z1 * -FIX_0_899976223;
    let z2 = z2 * -FIX_2_562915447;
    let z3 = z3 * -FIX_1_961570560 + z5;
    let z4 = z4 * -FIX_0_390180644 + z5;
    t0 += z1 + z3;
    t1 += z2 + z4;
    t2 += z2 + z3;
    t3 += z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// Dequantises and inverse-transforms one block into 8x8 samples at `out` (row stride `stride`).
pub(super) fn idct_block(coef: &[i16], qt: &[u16; 64], out: &mut [u8], stride: usize) {
    let limit = range_limit_table();
    // libjpeg computes in JLONG (64 bits), keeps the workspace in int and the quantisation
    // table in short; the same widths here give the same numbers even for wild coefficients.
    let mut ws = [0i32; 64];
    for col in 0..8 {
        let q = |row: usize| coef[row * 8 + col] as i64 * qt[row * 8 + col] as i16 as i64;
        if (1..8).all(|row| coef[row * 8 + col] == 0) {
            let dc = (q(0) << PASS1_BITS) as i32;
            for row in 0..8 {
                ws[row * 8 + col] = dc;
            }
            continue;
        }
        let out = idct_1d([q(0), q(1), q(2), q(3), q(4), q(5), q(6), q(7)]);
        for row in 0..8 {
            ws[row * 8 + col] = descale(out[row], CONST_BITS - PASS1_BITS) as i32;
        }
    }
    for row in 0..8 {
        let w = &ws[row * 8..row * 8 + 8];
        let dst = &mut out[row * stride..row * stride + 8];
        if w[1..].iter().all(|&v| v == 0) {
            let v = limit[(descale(w[0] as i64, PASS1_BITS + 3) & 1023) as usize];
            dst.fill(v);
            continue;
        }
        let o = idct_1d(std::array::from_fn(|i| w[i] as i64));
        for i in 0..8 {
            dst[i] = limit[(descale(o[i], CONST_BITS + PASS1_BITS + 3) & 1023) as usize];
        }
    }
}

/// The component's samples: `blocks_w*8` per row, `blocks_h*8` rows (padding included).
pub(super) fn idct_component(c: &Component, coef: &[i16], qt: &[u16; 64]) -> Vec<u8> {
    let stride = c.blocks_w * 8;
    let mut plane = vec![0u8; stride * c.blocks_h * 8];
    // Only blocks that hold real samples are needed; padding blocks stay 0 and are never read.
    for by in 0..c.real_blocks_h {
        for bx in 0..c.real_blocks_w {
            let block = &coef[(by * c.blocks_w + bx) * 64..][..64];
            idct_block(block, qt, &mut plane[by * 8 * stride + bx * 8..], stride);
        }
    }
    plane
}
