//! Pure-Rust raster decoders for rico.
//!
//! One entry point, [`decode`], sniffs the format and returns a [`Raster`]: every band as
//! little-endian bytes, band after band, exactly the values GDAL/rasterio would read. No GDAL,
//! no C library: the `rico` binary stays self-contained.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod jpeg;
pub mod png;
pub mod tiff;

/// Pixel type of a band, named as numpy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    F64,
}

impl DType {
    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::F64 => 8,
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
    pub width: usize,
    pub height: usize,
    pub bands: usize,
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
    pub info: RasterInfo,
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
    pub kind: ErrorKind,
    pub message: String,
    pub path: Option<PathBuf>,
}

impl RasterError {
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

    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

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

pub type Result<T> = std::result::Result<T, RasterError>;

/// Decodes an in-memory raster file (format sniffed from its first bytes).
pub fn decode(bytes: &[u8]) -> Result<Raster> {
    if tiff::is_tiff(bytes) {
        return tiff::decode(bytes);
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

/// Reads and decodes a raster file; errors name the file.
pub fn decode_file(path: &Path) -> Result<Raster> {
    let bytes = std::fs::read(path).map_err(|e| {
        RasterError::new(ErrorKind::Io, format!("cannot read file: {e}")).with_path(path)
    })?;
    decode(&bytes).map_err(|e| e.with_path(path))
}
