//! Tag values read into what the decoder needs: optional scalars, per-sample values that must
//! agree across bands, image and tile dimensions, the sample dtype, and the GDAL_NODATA fill.

use super::ifd::{Bytes, Entry};
use super::{too_large, MAX_DIMENSION};
use crate::{DType, RasterError, Result};

/// Reads an optional scalar tag, `default` when absent.
pub(super) fn scalar(bytes: &Bytes<'_>, entry: Option<Entry>, default: u64) -> Result<u64> {
    entry.map_or(Ok(default), |e| e.uint(bytes))
}

/// Reads a per-sample tag (BitsPerSample, SampleFormat) whose values must all be equal.
pub(super) fn per_sample(
    bytes: &Bytes<'_>,
    entry: Option<Entry>,
    default: u64,
    what: &str,
) -> Result<u64> {
    let Some(entry) = entry else {
        return Ok(default);
    };
    let values = entry.uints(bytes)?;
    let first = values
        .get(0)
        .ok_or_else(|| RasterError::corrupt(format!("TIFF {what} tag has no value")))?;
    if values.iter().any(|v| v != first) {
        return Err(RasterError::unsupported(format!(
            "TIFF with a different {what} per band; rico needs one {what} for all bands"
        )));
    }
    Ok(first)
}

pub(super) fn dimension(bytes: &Bytes<'_>, entry: Option<Entry>, what: &str) -> Result<usize> {
    let entry = entry
        .ok_or_else(|| RasterError::corrupt(format!("TIFF directory lacks the {what} tag")))?;
    let value = entry.uint(bytes)?;
    if value == 0 {
        return Err(RasterError::corrupt(format!("TIFF {what} is zero")));
    }
    if value > MAX_DIMENSION {
        return Err(too_large(format!(
            "TIFF {what} {value} exceeds rico's limit of {MAX_DIMENSION}"
        )));
    }
    Ok(value as usize) // <= 2^20: fits any usize rico runs on
}

pub(super) fn dtype_for(sample_format: u64, bits: u64) -> Result<DType> {
    Ok(match (sample_format, bits) {
        // 4 (void) is read as unsigned by GDAL.
        (1 | 4, 8) => DType::U8,
        (2, 8) => DType::I8,
        (1 | 4, 16) => DType::U16,
        (2, 16) => DType::I16,
        (1 | 4, 32) => DType::U32,
        (2, 32) => DType::I32,
        (1 | 4, 64) => DType::U64,
        (2, 64) => DType::I64,
        // Half floats are widened to float32 (exactly), as GDAL before 3.11 reads them.
        (3, 16 | 32) => DType::F32,
        (3, 64) => DType::F64,
        (3, b) => {
            return Err(RasterError::unsupported(format!(
                "unsupported TIFF sample type: {b}-bit floats; rico decodes 16, 32 and 64"
            )))
        }
        (5 | 6, _) => {
            return Err(RasterError::unsupported(
                "unsupported TIFF sample type: complex numbers",
            ))
        }
        (1 | 2 | 4, b) => {
            return Err(RasterError::unsupported(format!(
                "unsupported TIFF sample type: {b} bits per sample; rico decodes 8, 16, 32 and 64"
            )))
        }
        (f, _) => {
            return Err(RasterError::corrupt(format!(
                "invalid TIFF SampleFormat {f}"
            )))
        }
    })
}

/// Parses GDAL_NODATA and converts it to a sample the way GDAL fills sparse blocks
/// (GDALCopyWords from double: round to nearest, clamp to the type's range, NaN -> 0).
///
/// 64-bit integer nodata is parsed as an integer first (GDAL keeps it exact). 16-bit float
/// images are float32 to GDAL, and their sparse blocks hold the float32 nodata value.
pub(super) fn fill_value(bytes: &Bytes<'_>, entry: Option<Entry>, dtype: DType) -> [u8; 8] {
    let mut out = [0u8; 8];
    let Some(text) = entry
        .and_then(|e| e.raw(bytes).ok())
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .map(|s| s.trim_matches(|c: char| c == '\0' || c.is_whitespace()))
    else {
        return out;
    };
    match dtype {
        DType::I64 => {
            if let Ok(v) = text.parse::<i64>() {
                return v.to_le_bytes();
            }
        }
        DType::U64 => {
            if let Ok(v) = text.parse::<u64>() {
                return v.to_le_bytes();
            }
        }
        _ => {}
    }
    let Ok(value) = text.parse::<f64>() else {
        return out;
    };

    let int = |min: f64, max: f64| {
        if value.is_nan() {
            0.0
        } else {
            value.round().clamp(min, max)
        }
    };
    match dtype {
        DType::U8 => out[0] = int(0.0, 255.0) as u8,
        DType::I8 => out[0] = (int(-128.0, 127.0) as i8) as u8,
        DType::U16 => out[..2].copy_from_slice(&(int(0.0, 65535.0) as u16).to_le_bytes()),
        DType::I16 => out[..2].copy_from_slice(&(int(-32768.0, 32767.0) as i16).to_le_bytes()),
        DType::U32 => out[..4].copy_from_slice(&(int(0.0, u32::MAX as f64) as u32).to_le_bytes()),
        DType::I32 => {
            out[..4].copy_from_slice(&(int(i32::MIN as f64, i32::MAX as f64) as i32).to_le_bytes())
        }
        // `as` saturates, and 2^63 and 2^64 are exact doubles: the types' clamps.
        DType::U64 => out = (int(0.0, u64::MAX as f64) as u64).to_le_bytes(),
        DType::I64 => out = (int(i64::MIN as f64, i64::MAX as f64) as i64).to_le_bytes(),
        DType::F32 => out[..4].copy_from_slice(&(value as f32).to_le_bytes()),
        DType::F64 => out = value.to_le_bytes(),
    }
    out
}
