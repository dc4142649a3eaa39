//! 16-bit (IEEE 754 half) floats widened to float32, exactly: every half value, NaN payloads
//! and signed zeros included, is a float32 value. GDAL before 3.11 (and so rasterio) reads
//! half-float TIFFs as float32 the same way.

/// The float32 bits of the half float `h`.
pub(super) fn to_f32_bits(h: u16) -> u32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exponent = u32::from(h >> 10) & 0x1f;
    let mantissa = u32::from(h & 0x3ff);
    match exponent {
        0 if mantissa == 0 => sign,
        0 => {
            // Subnormal: mantissa x 2^-24. Shift until the implicit bit (bit 10) is set.
            let (mut m, mut e) = (mantissa, 127 - 14);
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        // Infinity or NaN, payload kept.
        31 => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 127 - 15) << 23) | (mantissa << 13),
    }
}

/// Widens little-endian half floats in `src` into little-endian float32s in `dst`
/// (twice as long).
pub(super) fn widen_into(src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
        let bits = to_f32_bits(u16::from_le_bytes([s[0], s[1]]));
        d.copy_from_slice(&bits.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widens_every_class_of_half_exactly() {
        let cases: [(u16, f32); 9] = [
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8), // smallest subnormal, 2^-24
            (0x03ff, 6.097_555e-5),   // largest subnormal
            (0x0400, 6.103_515_6e-5), // smallest normal, 2^-14
            (0xfc00, f32::NEG_INFINITY),
        ];
        for (h, f) in cases {
            assert_eq!(f32::from_bits(to_f32_bits(h)), f, "half {h:#06x}");
        }
        assert_eq!(to_f32_bits(0x8000), 0x8000_0000); // -0.0
        assert_eq!(to_f32_bits(0x7e01), 0x7fc0_2000); // NaN payload kept
                                                      // Every finite half round-trips through f64 arithmetic: value = m * 2^(e-25).
        for h in 0..0x7c00u16 {
            let (e, m) = (i32::from(h >> 10), f64::from(h & 0x3ff));
            let value = if e == 0 {
                m * 2f64.powi(-24)
            } else {
                (1024.0 + m) * 2f64.powi(e - 25)
            };
            assert_eq!(
                f64::from(f32::from_bits(to_f32_bits(h))),
                value,
                "half {h:#06x}"
            );
        }
    }
}
