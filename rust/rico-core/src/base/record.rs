//! Records: one patch's bands as one safetensors buffer, byte-identical to what Python's
//! `safetensors.numpy.save({band: array, ...})` writes for the same arrays.

use std::borrow::Cow;

use rico_raster::DType;
use safetensors::tensor::{Dtype, View};

use crate::base::error::{Error, Result};

/// LMDB's limit on key length (bytes): a record's key is 1 to this many bytes.
pub const MAX_KEY_BYTES: usize = 511;

/// One band of a record: a 2-D array `(height, width)` of `dtype`, little-endian bytes.
pub struct Band<'a> {
    /// The band's name, its tensor name in the record (`B04`, ...).
    pub name: String,
    /// Pixel type of the samples.
    pub dtype: DType,
    /// `[height, width]`.
    pub shape: [usize; 2],
    /// `height * width` samples, little-endian, row after row.
    pub bytes: Cow<'a, [u8]>,
}

impl View for &Band<'_> {
    fn dtype(&self) -> Dtype {
        to_safetensors_dtype(self.dtype)
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The safetensors dtype of a raster dtype.
pub fn to_safetensors_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::U8 => Dtype::U8,
        DType::I8 => Dtype::I8,
        DType::U16 => Dtype::U16,
        DType::I16 => Dtype::I16,
        DType::U32 => Dtype::U32,
        DType::I32 => Dtype::I32,
        DType::U64 => Dtype::U64,
        DType::I64 => Dtype::I64,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// The raster dtype of a safetensors dtype, if rico handles it.
pub fn from_safetensors_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::U8 => DType::U8,
        Dtype::I8 => DType::I8,
        Dtype::U16 => DType::U16,
        Dtype::I16 => DType::I16,
        Dtype::U32 => DType::U32,
        Dtype::I32 => DType::I32,
        Dtype::U64 => DType::U64,
        Dtype::I64 => DType::I64,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        _ => return None,
    })
}

/// Serialises the bands of one patch (`key` is for error messages only).
pub fn encode(key: &str, bands: &[Band<'_>]) -> Result<Vec<u8>> {
    for (i, band) in bands.iter().enumerate() {
        if bands[..i].iter().any(|b| b.name == band.name) {
            return Err(Error::data(format!(
                "patch {key}: band {} appears twice",
                band.name
            )));
        }
    }
    safetensors::tensor::serialize(bands.iter().map(|b| (b.name.as_str(), b)), None)
        .map_err(|e| Error::data(format!("patch {key}: cannot serialise record: {e}")))
}
