//! Pure-Rust raster decoders for rico.
//!
//! One entry point, [`decode`], sniffs the format and returns a [`Raster`]: every band as
//! little-endian bytes, band after band, exactly the values GDAL/rasterio would read. No GDAL,
//! no C library: the `rico` binary stays self-contained.
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::fmt;
use std::path::{Path, PathBuf};

pub mod jpeg;
pub mod png;
pub mod tiff;

/// Pixel type of a band, named as numpy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// Unsigned 8-bit integer (`uint8`).
    U8,
    /// Signed 8-bit integer (`int8`).
    I8,
    /// Unsigned 16-bit integer (`uint16`).
    U16,
    /// Signed 16-bit integer (`int16`).
    I16,
    /// Unsigned 32-bit integer (`uint32`).
    U32,
    /// Signed 32-bit integer (`int32`).
    I32,
    /// Unsigned 64-bit integer (`uint64`).
    U64,
    /// Signed 64-bit integer (`int64`).
    I64,
    /// 32-bit IEEE float (`float32`).
    F32,
    /// 64-bit IEEE float (`float64`).
    F64,
}

impl DType {
    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// The numpy name (`uint16`, `float32`, ...).
    pub fn numpy_name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Parses a numpy name (`uint16`, ...).
    pub fn from_numpy_name(name: &str) -> Option<DType> {
        Some(match name {
            "uint8" => DType::U8,
            "int8" => DType::I8,
            "uint16" => DType::U16,
            "int16" => DType::I16,
            "uint32" => DType::U32,
            "int32" => DType::I32,
            "uint64" => DType::U64,
            "int64" => DType::I64,
            "float32" => DType::F32,
            "float64" => DType::F64,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.numpy_name())
    }
}

/// Shape and pixel type of a raster, known from its header before any pixel is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RasterInfo {
    /// Columns: samples per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Number of bands (planes).
    pub bands: usize,
    /// Pixel type, the same for every band.
    pub dtype: DType,
}

impl RasterInfo {
    /// Bytes of one decoded band.
    pub fn band_bytes(&self) -> usize {
        self.width * self.height * self.dtype.size()
    }
}

/// A decoded raster: `bands` planes of `height x width` samples, little-endian, band-sequential.
#[derive(Clone, Debug)]
pub struct Raster {
    /// Shape and pixel type.
    pub info: RasterInfo,
    /// Every band's samples, little-endian, band after band ([`RasterInfo::band_bytes`] each).
    pub data: Vec<u8>,
}

impl Raster {
    /// The bytes of band `index` (0-based).
    pub fn band(&self, index: usize) -> &[u8] {
        let n = self.info.band_bytes();
        &self.data[index * n..(index + 1) * n]
    }
}

/// What went wrong while decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read (missing, permissions, ...).
    Io,
    /// Not a format rico decodes (not a TIFF, JPEG or PNG).
    NotRaster,
    /// A valid file using a feature rico does not decode (e.g. JPEG-in-TIFF, complex ints).
    Unsupported,
    /// The file is truncated or its structure/compressed data is malformed.
    Corrupt,
    /// The header claims sizes beyond rico's documented safety limits.
    TooLarge,
}

/// A decoding error: what failed, and in which file when known.
#[derive(Clone, Debug)]
pub struct RasterError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What went wrong, without the path.
    pub message: String,
    /// The file being decoded, when known (see [`RasterError::with_path`]).
    pub path: Option<PathBuf>,
}

impl RasterError {
    /// An error of `kind` with `message`, not yet tied to a file.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RasterError {
            kind,
            message: message.into(),
            path: None,
        }
    }

    /// Attaches the path of the file being decoded.
    pub fn with_path(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }

    /// An [`ErrorKind::Corrupt`] error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// An [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
}

impl fmt::Display for RasterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RasterError {}

/// The result of a decoding step.
pub type Result<T> = std::result::Result<T, RasterError>;

/// Bounds on what one file may make rico allocate, so that a tiny file cannot claim gigabytes.
///
/// The rule: a TIFF may decode to at most `max(64 MiB, 4096 x its size in bytes)` (4096 is the
/// most an LZW code can expand, and more than deflate's 1032), whatever its header claims; and
/// never more than [`tiff::MAX_DECODED_BYTES`]. Only images of mostly sparse (never written)
/// blocks, or zstd data compressed beyond 4096:1, reach the rule; raise it with
/// [`Limits::max_decoded_bytes`] for such real rasters. JPEG and PNG data cannot expand that
/// far, so their own size checks apply.
///
/// ```
/// let limits = rico_raster::Limits { max_decoded_bytes: Some(2 << 30) };
/// assert_eq!(limits.decoded_bytes_allowed(100), 2 << 30);
/// assert_eq!(rico_raster::Limits::default().decoded_bytes_allowed(100), 64 << 20);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes one image may decode to; `None` for the default rule above.
    pub max_decoded_bytes: Option<u64>,
}

impl Limits {
    /// The default rule's floor: any file may decode to this much.
    pub const FLOOR_BYTES: u64 = 64 << 20;
    /// The default rule's ratio of decoded bytes to file bytes.
    pub const RATIO: u64 = 4096;

    /// Bytes a file of `file_len` bytes may decode to under these limits.
    pub fn decoded_bytes_allowed(&self, file_len: usize) -> u64 {
        let allowed = self.max_decoded_bytes.unwrap_or_else(|| {
            Self::FLOOR_BYTES.max((file_len as u64).saturating_mul(Self::RATIO))
        });
        allowed.min(tiff::MAX_DECODED_BYTES)
    }
}

/// Decodes an in-memory raster file (format sniffed from its first bytes), under the default
/// [`Limits`].
pub fn decode(bytes: &[u8]) -> Result<Raster> {
    decode_with(bytes, &Limits::default())
}

/// Decodes an in-memory raster file under the given [`Limits`].
pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Raster> {
    if tiff::is_tiff(bytes) {
        return tiff::decode_with(bytes, limits);
    }
    if jpeg::is_jpeg(bytes) {
        return jpeg::decode(bytes);
    }
    if png::is_png(bytes) {
        return png::decode(bytes);
    }
    Err(RasterError::new(
        ErrorKind::NotRaster,
        "not a TIFF, JPEG or PNG file (no known signature); rico decodes GeoTIFF, JPEG and PNG",
    ))
}

/// Reads and decodes a raster file under the default [`Limits`]; errors name the file.
pub fn decode_file(path: &Path) -> Result<Raster> {
    decode_file_with(path, &Limits::default())
}

/// Reads and decodes a raster file under the given [`Limits`]; errors name the file.
pub fn decode_file_with(path: &Path, limits: &Limits) -> Result<Raster> {
    let bytes = std::fs::read(path).map_err(|e| {
        RasterError::new(ErrorKind::Io, format!("cannot read file: {e}")).with_path(path)
    })?;
    decode_with(&bytes, limits).map_err(|e| e.with_path(path))
}
