//! Undoing TIFF predictors (libtiff's horAcc*/fpAcc) and byte-order swaps, row by row, in place.

/// Copies an N-byte chunk into an array (the chunk length always equals N here).
#[inline(always)]
fn arr<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(chunk);
    a
}

/// Reverses the bytes of every `size`-byte sample in place (big-endian file to little-endian).
pub(super) fn swap_in_place(buf: &mut [u8], size: usize) {
    match size {
        2 => buf.chunks_exact_mut(2).for_each(|c| c.swap(0, 1)),
        4 => buf.chunks_exact_mut(4).for_each(|c| c.reverse()),
        8 => buf.chunks_exact_mut(8).for_each(|c| c.reverse()),
        _ => {}
    }
}

macro_rules! horizontal {
    ($name:ident, $t:ty, $n:expr) => {
        /// Prefix sum with wrapping add over one row of little-endian samples, per channel.
        fn $name(row: &mut [u8], stride: usize) {
            if stride == 1 {
                // Band-separate data: one running sum, no index arithmetic.
                let mut acc: $t = 0;
                for c in row.chunks_exact_mut($n) {
                    acc = acc.wrapping_add(<$t>::from_le_bytes(arr(c)));
                    c.copy_from_slice(&acc.to_le_bytes());
                }
                return;
            }
            let pixel = stride * $n;
            let mut i = pixel;
            while i + $n <= row.len() {
                let prev = <$t>::from_le_bytes(arr(&row[i - pixel..i - pixel + $n]));
                let cur = <$t>::from_le_bytes(arr(&row[i..i + $n]));
                row[i..i + $n].copy_from_slice(&cur.wrapping_add(prev).to_le_bytes());
                i += $n;
            }
        }
    };
}

horizontal!(horizontal_u16, u16, 2);
horizontal!(horizontal_u32, u32, 4);
horizontal!(horizontal_u64, u64, 8);

fn horizontal_u8(row: &mut [u8], stride: usize) {
    for i in stride..row.len() {
        row[i] = row[i].wrapping_add(row[i - stride]);
    }
}

/// Predictor 2: undoes horizontal differencing on every `row_bytes` row of `buf`, whose samples
/// must already be little-endian. `stride` is the samples per pixel of the block (1 when
/// band-separate). Works on the integer of the sample's width, also for floats, as libtiff does.
pub(super) fn undo_horizontal(buf: &mut [u8], row_bytes: usize, size: usize, stride: usize) {
    let f: fn(&mut [u8], usize) = match size {
        1 => horizontal_u8,
        2 => horizontal_u16,
        4 => horizontal_u32,
        _ => horizontal_u64,
    };
    buf.chunks_exact_mut(row_bytes)
        .for_each(|row| f(row, stride));
}

/// Predictor 3 (floating point): per row, undoes bytewise differencing with stride `stride`, then
/// gathers byte planes (plane 0 holds every sample's most significant byte, whatever the file's
/// byte order) into little-endian samples. `tmp` is reusable scratch.
pub(super) fn undo_float(
    buf: &mut [u8],
    row_bytes: usize,
    size: usize,
    stride: usize,
    tmp: &mut Vec<u8>,
) {
    if tmp.len() < row_bytes {
        tmp.resize(row_bytes, 0);
    }
    let tmp = &mut tmp[..row_bytes];
    let samples = row_bytes / size;
    for row in buf.chunks_exact_mut(row_bytes) {
        horizontal_u8(row, stride);
        tmp.copy_from_slice(row);
        for (plane_index, plane) in tmp.chunks_exact(samples).enumerate() {
            let byte = size - 1 - plane_index;
            for (sample, &b) in row.chunks_exact_mut(size).zip(plane) {
                sample[byte] = b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizontal_restores_per_channel_sums() {
        // Two channels of u16: [1, 10], [+1, +10], [+1, +10] -> [1,10], [2,20], [3,30].
        let mut row: Vec<u8> = [1u16, 10, 1, 10, 1, 10]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        undo_horizontal(&mut row, 12, 2, 2);
        let got: Vec<u16> = row
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(got, [1, 10, 2, 20, 3, 30]);
        // Wrapping u8, two rows restart their sums.
        let mut rows = vec![250u8, 10, 1, 2];
        undo_horizontal(&mut rows, 2, 1, 1);
        assert_eq!(rows, [250, 4, 1, 3]);
    }

    #[test]
    fn float_predictor_inverts_libtiff_encoding() {
        // Encode like libtiff's fpDiff: split into byte planes (MSB first), then difference.
        let values = [1.5f32, -2.25, f32::NAN, 0.0, -0.0, 1e30, f32::INFINITY, 3.0];
        let (stride, size) = (2, 4);
        let n = values.len();
        let mut planes = vec![0u8; n * size];
        for (i, v) in values.iter().enumerate() {
            for (b, byte) in v.to_be_bytes().iter().enumerate() {
                planes[b * n + i] = *byte;
            }
        }
        for i in (stride..planes.len()).rev() {
            planes[i] = planes[i].wrapping_sub(planes[i - stride]);
        }
        let mut tmp = Vec::new();
        undo_float(&mut planes, n * size, size, stride, &mut tmp);
        let expected: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(planes, expected);
    }
}
