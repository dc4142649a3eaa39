//! Decoded blocks placed in the band-sequential output: the valid region of each strip/tile
//! copied (byte-swapped where asked) or deinterleaved into the band planes, and sparse blocks
//! filled with the nodata value.

use super::TiffImage;

/// Where a decoded block lands in the band-sequential output.
pub(super) struct Placement {
    pub(super) band_bytes: usize,
    width: usize,
    pub(super) first_band: usize,
    x0: usize,
    y0: usize,
    valid_width: usize,
    rows: usize,
}

impl TiffImage<'_> {
    /// Where block `index` lands in the output.
    pub(super) fn placement(&self, index: usize) -> Placement {
        let (plane, x0, y0, valid_width, rows) = self.block_geometry(index);
        Placement {
            band_bytes: self.width * self.height * self.sample_size,
            width: self.width,
            first_band: plane,
            x0,
            y0,
            valid_width,
            rows,
        }
    }
}

impl Placement {
    /// Byte offset in `out` of the block's first valid pixel in `band`, row `r`.
    pub(super) fn offset(&self, band: usize, r: usize, size: usize) -> usize {
        band * self.band_bytes + ((self.y0 + r) * self.width + self.x0) * size
    }

    /// Copies the valid region of a decoded block (`rows` rows of `row_bytes`, `samples`
    /// interleaved samples per pixel) into the output planes, swapping bytes if asked.
    pub(super) fn copy(
        &self,
        out: &mut [u8],
        block: &[u8],
        row_bytes: usize,
        samples: usize,
        size: usize,
        swap: bool,
    ) {
        if samples == 1
            && self.valid_width * size == row_bytes
            && self.x0 == 0
            && self.valid_width == self.width
        {
            // Whole-width single-band block (a strip): one contiguous run in the output.
            let start = self.offset(self.first_band, 0, size);
            let len = self.rows * row_bytes;
            copy_samples(&mut out[start..start + len], &block[..len], size, swap);
            return;
        }
        let run = self.valid_width * size;
        for (r, row) in block.chunks_exact(row_bytes).take(self.rows).enumerate() {
            if samples == 1 {
                let start = self.offset(self.first_band, r, size);
                copy_samples(&mut out[start..start + run], &row[..run], size, swap);
            } else {
                let offsets = self.offset(0, r, size);
                let pixels = &row[..self.valid_width * samples * size];
                deinterleave(
                    out,
                    pixels,
                    samples,
                    size,
                    swap,
                    self.band_bytes,
                    offsets,
                    run,
                );
            }
        }
    }

    /// Fills the valid region of a sparse block with `value` in every band it covers.
    pub(super) fn fill(&self, out: &mut [u8], samples: usize, value: &[u8]) {
        let run = self.valid_width * value.len();
        for band in self.first_band..self.first_band + samples {
            for r in 0..self.rows {
                let start = self.offset(band, r, value.len());
                let dst = &mut out[start..start + run];
                if value.iter().all(|&b| b == 0) {
                    dst.fill(0);
                } else {
                    dst.chunks_exact_mut(value.len())
                        .for_each(|c| c.copy_from_slice(value));
                }
            }
        }
    }
}

fn copy_samples(dst: &mut [u8], src: &[u8], size: usize, swap: bool) {
    if !swap {
        dst.copy_from_slice(src);
        return;
    }
    match size {
        2 => copy_swapped::<2>(dst, src),
        4 => copy_swapped::<4>(dst, src),
        8 => copy_swapped::<8>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

fn copy_swapped<const N: usize>(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.chunks_exact_mut(N).zip(src.chunks_exact(N)) {
        d.copy_from_slice(s);
        d.reverse();
    }
}

/// Splits one row of pixel-interleaved samples into the band planes of `out`; `dst_offset` is
/// the row's byte offset within band 0, `run` the row's byte length within one band.
#[allow(clippy::too_many_arguments)]
fn deinterleave(
    out: &mut [u8],
    pixels: &[u8],
    samples: usize,
    size: usize,
    swap: bool,
    band_bytes: usize,
    dst_offset: usize,
    run: usize,
) {
    // Monomorphised per sample size and byte order, so the inner loop has no branches.
    let f: fn(&mut [u8], &[u8], usize) = match (size, swap) {
        (1, _) => deinterleave_band::<1, false>,
        (2, false) => deinterleave_band::<2, false>,
        (2, true) => deinterleave_band::<2, true>,
        (4, false) => deinterleave_band::<4, false>,
        (4, true) => deinterleave_band::<4, true>,
        (_, false) => deinterleave_band::<8, false>,
        (_, true) => deinterleave_band::<8, true>,
    };
    for band in 0..samples {
        let start = band * band_bytes + dst_offset;
        f(
            &mut out[start..start + run],
            &pixels[band * size..],
            samples * size,
        );
    }
}

/// Copies every `pixel`-th N-byte sample of `src` (starting at its first byte) into `dst`.
fn deinterleave_band<const N: usize, const SWAP: bool>(dst: &mut [u8], src: &[u8], pixel: usize) {
    for (d, s) in dst.chunks_exact_mut(N).zip(src.chunks(pixel)) {
        d.copy_from_slice(&s[..N]);
        if SWAP {
            d.reverse();
        }
    }
}
