//! libjpeg-turbo's upsampling (jdsample.c, do_fancy_upsampling = TRUE): subsampled
//! components brought to full size with triangle filters (2x1, 1x2, 2x2) or box replication.

use super::headers::{Component, Frame};
use super::unsupported;
use crate::Result;

/// The component at full size (`f.width` x `f.height`), from its plane of `blocks_w*8` columns.
pub(super) fn upsample(c: &Component, plane: Vec<u8>, f: &Frame) -> Result<Vec<u8>> {
    let stride = c.blocks_w * 8;
    let (w, h) = (f.width, f.height);
    let (cw, ch) = (c.width, c.height);
    let row = |y: usize| &plane[y * stride..y * stride + cw];
    let mut out = vec![0u8; w * h];
    let (hin, vin, hout, vout) = (c.h, c.v, f.max_h, f.max_v);
    if hin == hout && vin == vout {
        for y in 0..h {
            out[y * w..(y + 1) * w].copy_from_slice(&row(y)[..w]);
        }
    } else if hin * 2 == hout && vin == vout {
        let mut line = vec![0u8; cw * 2];
        for y in 0..h {
            if cw > 2 {
                h2v1_fancy(row(y), &mut line);
            } else {
                h2_narrow(row(y), &mut line);
            }
            out[y * w..(y + 1) * w].copy_from_slice(&line[..w]);
        }
    } else if hin == hout && vin * 2 == vout {
        // h1v2: each output row mixes its input row (3/4) with the nearer neighbour (1/4).
        for y in 0..h {
            let (iy, below) = (y / 2, y % 2 == 1);
            let near = row(iy);
            let other = row(if below {
                (iy + 1).min(ch - 1)
            } else {
                iy.saturating_sub(1)
            });
            let bias = if below { 2 } else { 1 };
            for x in 0..w {
                out[y * w + x] = ((near[x] as u32 * 3 + other[x] as u32 + bias) >> 2) as u8;
            }
        }
    } else if hin * 2 == hout && vin * 2 == vout {
        let mut line = vec![0u8; cw * 2];
        for y in 0..h {
            let (iy, below) = (y / 2, y % 2 == 1);
            let other = if below {
                (iy + 1).min(ch - 1)
            } else {
                iy.saturating_sub(1)
            };
            if cw > 2 {
                h2v2_fancy(row(iy), row(other), &mut line);
            } else {
                h2_narrow(row(iy), &mut line);
            }
            out[y * w..(y + 1) * w].copy_from_slice(&line[..w]);
        }
    } else if hout % hin == 0 && vout % vin == 0 {
        // Generic integral factors: box replication (int_upsample).
        let (fx, fy) = (hout / hin, vout / vin);
        for y in 0..h {
            let src = row(y / fy);
            for x in 0..w {
                out[y * w + x] = src[x / fx];
            }
        }
    } else {
        return Err(unsupported(format!(
            "sampling factors {}x{} of a component against {}x{} are not supported",
            c.h, c.v, hout, vout
        )));
    }
    Ok(out)
}

/// A component row of at most 2 samples, too narrow for the triangle filters: each sample
/// twice.
fn h2_narrow(input: &[u8], out: &mut [u8]) {
    input
        .iter()
        .enumerate()
        .for_each(|(i, &v)| out[2 * i..2 * i + 2].fill(v));
}

/// h2v1_fancy_upsample: 3/4 of the nearer sample plus 1/4 of the further one.
pub(super) fn h2v1_fancy(input: &[u8], out: &mut [u8]) {
    let n = input.len();
    let v = |i: usize| input[i] as u32;
    out[0] = input[0];
    out[1] = ((v(0) * 3 + v(1) + 2) >> 2) as u8;
    for i in 1..n - 1 {
        let c = v(i) * 3;
        out[2 * i] = ((c + v(i - 1) + 1) >> 2) as u8;
        out[2 * i + 1] = ((c + v(i + 1) + 2) >> 2) as u8;
    }
    out[2 * n - 2] = ((v(n - 1) * 3 + v(n - 2) + 1) >> 2) as u8;
    out[2 * n - 1] = input[n - 1];
}

/// h2v2_fancy_upsample for one output row: `near` is the input row, `far` the vertical
/// neighbour on the output row's side.
pub(super) fn h2v2_fancy(near: &[u8], far: &[u8], out: &mut [u8]) {
    let n = near.len();
    let sum = |i: usize| near[i] as i32 * 3 + far[i] as i32;
    let mut this = sum(0);
    let mut next = sum(1);
    out[0] = ((this * 4 + 8) >> 4) as u8;
    out[1] = ((this * 3 + next + 7) >> 4) as u8;
    let mut last = this;
    this = next;
    for i in 1..n - 1 {
        next = sum(i + 1);
        out[2 * i] = ((this * 3 + last + 8) >> 4) as u8;
        out[2 * i + 1] = ((this * 3 + next + 7) >> 4) as u8;
        last = this;
        this = next;
    }
    out[2 * n - 2] = ((this * 3 + last + 8) >> 4) as u8;
    out[2 * n - 1] = ((this * 4 + 7) >> 4) as u8;
}
