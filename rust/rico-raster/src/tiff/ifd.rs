//! TIFF / BigTIFF header and first-IFD parsing.
//!
//! Nothing here allocates: tag values stay borrowed slices of the file, decoded on demand, so a
//! hostile header can make us read at most the bytes the file really has. Every offset is checked
//! against the file length with overflow-checked arithmetic before it is used.

use super::MAX_IFD_ENTRIES;
use crate::{RasterError, Result};

/// Byte order and offset width of the file, from its 8- or 16-byte header.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub big_endian: bool,
    pub bigtiff: bool,
    pub first_ifd: u64,
}

/// Reads big- or little-endian integers at checked offsets of the file.
#[derive(Clone, Copy)]
pub(super) struct Bytes<'a> {
    pub data: &'a [u8],
    pub big_endian: bool,
}

impl std::fmt::Debug for Bytes<'_> {
    // The file itself is not printed: it can be gigabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bytes({} bytes, {})",
            self.data.len(),
            if self.big_endian {
                "big-endian"
            } else {
                "little-endian"
            }
        )
    }
}

impl<'a> Bytes<'a> {
    /// `len` bytes at `offset`, or `None` when any of them lies past the end of the file.
    pub fn slice(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let len = usize::try_from(len).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }

    fn array<const N: usize>(&self, offset: u64) -> Option<[u8; N]> {
        self.slice(offset, N as u64)?.try_into().ok()
    }

    /// An `N`-byte integer at `offset` in the file's byte order.
    fn int<const N: usize, T>(
        &self,
        offset: u64,
        from_be: fn([u8; N]) -> T,
        from_le: fn([u8; N]) -> T,
    ) -> Option<T> {
        let b = self.array::<N>(offset)?;
        Some(if self.big_endian {
            from_be(b)
        } else {
            from_le(b)
        })
    }

    pub fn u16(&self, offset: u64) -> Option<u16> {
        self.int(offset, u16::from_be_bytes, u16::from_le_bytes)
    }

    pub fn u32(&self, offset: u64) -> Option<u32> {
        self.int(offset, u32::from_be_bytes, u32::from_le_bytes)
    }

    pub fn u64(&self, offset: u64) -> Option<u64> {
        self.int(offset, u64::from_be_bytes, u64::from_le_bytes)
    }
}

/// Parses the header: byte order mark, magic 42 (classic) or 43 (BigTIFF), first IFD offset.
pub(super) fn parse_header(data: &[u8]) -> Result<Header> {
    let big_endian = match data.get(..2) {
        Some(b"II") => false,
        Some(b"MM") => true,
        _ => {
            return Err(RasterError::new(
                crate::ErrorKind::NotRaster,
                "not a TIFF file (bad byte-order mark)",
            ))
        }
    };
    let bytes = Bytes { data, big_endian };
    let truncated = || RasterError::corrupt("truncated TIFF header");
    match bytes.u16(2).ok_or_else(truncated)? {
        42 => {
            let first_ifd = bytes.u32(4).ok_or_else(truncated)?;
            Ok(Header {
                big_endian,
                bigtiff: false,
                first_ifd: u64::from(first_ifd),
            })
        }
        43 => {
            // BigTIFF: offset byte size (always 8), a zero constant, then the 8-byte offset.
            let offset_size = bytes.u16(4).ok_or_else(truncated)?;
            let zero = bytes.u16(6).ok_or_else(truncated)?;
            if offset_size != 8 || zero != 0 {
                return Err(RasterError::corrupt(format!(
                    "invalid BigTIFF header (offset size {offset_size}, reserved {zero})"
                )));
            }
            let first_ifd = bytes.u64(8).ok_or_else(truncated)?;
            Ok(Header {
                big_endian,
                bigtiff: true,
                first_ifd,
            })
        }
        magic => Err(RasterError::new(
            crate::ErrorKind::NotRaster,
            format!("not a TIFF file (magic number {magic}, expected 42 or 43)"),
        )),
    }
}

/// Size in bytes of one value of a TIFF field type, `None` for types libtiff does not know
/// (entries of unknown type are skipped, as libtiff does).
fn type_size(field_type: u16) -> Option<u64> {
    Some(match field_type {
        1 | 2 | 6 | 7 => 1,   // BYTE, ASCII, SBYTE, UNDEFINED
        3 | 8 => 2,           // SHORT, SSHORT
        4 | 9 | 11 | 13 => 4, // LONG, SLONG, FLOAT, IFD
        5 | 10 | 12 => 8,     // RATIONAL, SRATIONAL, DOUBLE
        16..=18 => 8,         // LONG8, SLONG8, IFD8 (BigTIFF)
        _ => return None,
    })
}

/// One IFD entry; its value bytes are located (and bounds-checked) only when the tag is used, so
/// a broken tag rico does not need (e.g. a GeoKey) does not fail the file, as with libtiff.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub tag: u16,
    field_type: u16,
    count: u64,
    /// File offset of the value: inside the entry when it fits, else where the entry points.
    value_offset: u64,
}

/// An array of unsigned integers (BYTE, SHORT, LONG, LONG8, IFD, IFD8) still in file bytes.
#[derive(Clone, Copy)]
pub(super) struct UintArray<'a> {
    bytes: &'a [u8],
    size: usize,
    big_endian: bool,
}

impl std::fmt::Debug for UintArray<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UintArray({} x {} bytes)", self.len(), self.size)
    }
}

impl UintArray<'_> {
    pub fn len(&self) -> usize {
        self.bytes.len() / self.size
    }

    /// Element `i`, `None` past the end.
    pub fn get(&self, i: usize) -> Option<u64> {
        let start = i.checked_mul(self.size)?;
        let b = self.bytes.get(start..start.checked_add(self.size)?)?;
        Some(match (self.size, self.big_endian) {
            (1, _) => u64::from(b[0]),
            (2, false) => u64::from(u16::from_le_bytes([b[0], b[1]])),
            (2, true) => u64::from(u16::from_be_bytes([b[0], b[1]])),
            (4, false) => u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            (4, true) => u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            (_, false) => u64::from_le_bytes(b.try_into().ok()?),
            (_, true) => u64::from_be_bytes(b.try_into().ok()?),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl Entry {
    /// The raw value bytes, checked to lie inside the file.
    pub fn raw<'a>(&self, bytes: &Bytes<'a>) -> Result<&'a [u8]> {
        let size = type_size(self.field_type).unwrap_or(1);
        self.count
            .checked_mul(size)
            .and_then(|len| bytes.slice(self.value_offset, len))
            .ok_or_else(|| {
                RasterError::corrupt(format!(
                    "TIFF tag {} value ({} items at offset {}) lies past the end of the file",
                    self.tag, self.count, self.value_offset
                ))
            })
    }

    /// The value as unsigned integers; other field types are an error.
    pub fn uints<'a>(&self, bytes: &Bytes<'a>) -> Result<UintArray<'a>> {
        let size = match self.field_type {
            1 => 1,
            3 => 2,
            4 | 13 => 4,
            16 | 18 => 8,
            other => {
                return Err(RasterError::corrupt(format!(
                    "TIFF tag {} has field type {other}, expected an unsigned integer type",
                    self.tag
                )))
            }
        };
        Ok(UintArray {
            bytes: self.raw(bytes)?,
            size,
            big_endian: bytes.big_endian,
        })
    }

    /// The first value as an unsigned integer.
    pub fn uint(&self, bytes: &Bytes<'_>) -> Result<u64> {
        self.uints(bytes)?
            .get(0)
            .ok_or_else(|| RasterError::corrupt(format!("TIFF tag {} has no value", self.tag)))
    }
}

/// The entries of the first IFD that the decoder looks at; anything else is ignored.
#[derive(Default, Debug)]
pub(super) struct Ifd {
    pub image_width: Option<Entry>,
    pub image_length: Option<Entry>,
    pub bits_per_sample: Option<Entry>,
    pub compression: Option<Entry>,
    pub photometric: Option<Entry>,
    pub strip_offsets: Option<Entry>,
    pub samples_per_pixel: Option<Entry>,
    pub rows_per_strip: Option<Entry>,
    pub strip_byte_counts: Option<Entry>,
    pub planar_configuration: Option<Entry>,
    pub predictor: Option<Entry>,
    pub tile_width: Option<Entry>,
    pub tile_length: Option<Entry>,
    pub tile_offsets: Option<Entry>,
    pub tile_byte_counts: Option<Entry>,
    pub sample_format: Option<Entry>,
    pub gdal_nodata: Option<Entry>,
}

/// Reads the first IFD's entries. Later IFDs (overviews, masks) are never visited, so there is no
/// IFD chain to follow and no cycle to guard against.
pub(super) fn read_first_ifd(bytes: &Bytes<'_>, header: &Header) -> Result<Ifd> {
    let (count_size, entry_size, inline_size) = if header.bigtiff {
        (8u64, 20u64, 8u64)
    } else {
        (2, 12, 4)
    };
    let at = header.first_ifd;
    if at == 0 {
        return Err(RasterError::corrupt(
            "TIFF file has no image directory (first IFD offset is 0)",
        ));
    }
    let count = if header.bigtiff {
        bytes.u64(at)
    } else {
        bytes.u16(at).map(u64::from)
    };
    let count = count.ok_or_else(|| {
        RasterError::corrupt(format!(
            "first TIFF directory offset {at} lies past the end of the file"
        ))
    })?;
    if count > MAX_IFD_ENTRIES {
        return Err(RasterError::corrupt(format!(
            "TIFF directory claims {count} entries (more than {MAX_IFD_ENTRIES}); not a valid directory"
        )));
    }
    let entries_start = at + count_size; // cannot overflow: the u16/u64 read at `at` succeeded
    if bytes.slice(entries_start, count * entry_size).is_none() {
        return Err(RasterError::corrupt(
            "TIFF directory is truncated (entries run past the end of the file)",
        ));
    }

    let mut ifd = Ifd::default();
    for i in 0..count {
        let e = entries_start + i * entry_size;
        let (Some(tag), Some(field_type)) = (bytes.u16(e), bytes.u16(e + 2)) else {
            return Err(RasterError::corrupt("TIFF directory is truncated"));
        };
        let value_count = if header.bigtiff {
            bytes.u64(e + 4)
        } else {
            bytes.u32(e + 4).map(u64::from)
        };
        let Some(value_count) = value_count else {
            return Err(RasterError::corrupt("TIFF directory is truncated"));
        };
        let Some(size) = type_size(field_type) else {
            continue;
        };
        let slot = match tag {
            256 => &mut ifd.image_width,
            257 => &mut ifd.image_length,
            258 => &mut ifd.bits_per_sample,
            259 => &mut ifd.compression,
            262 => &mut ifd.photometric,
            273 => &mut ifd.strip_offsets,
            277 => &mut ifd.samples_per_pixel,
            278 => &mut ifd.rows_per_strip,
            279 => &mut ifd.strip_byte_counts,
            284 => &mut ifd.planar_configuration,
            317 => &mut ifd.predictor,
            322 => &mut ifd.tile_width,
            323 => &mut ifd.tile_length,
            324 => &mut ifd.tile_offsets,
            325 => &mut ifd.tile_byte_counts,
            339 => &mut ifd.sample_format,
            42113 => &mut ifd.gdal_nodata,
            _ => continue,
        };
        if slot.is_some() {
            continue; // duplicate tag: keep the first, as libtiff does
        }
        let value_field = e + 4 + if header.bigtiff { 8 } else { 4 };
        let fits_inline = value_count
            .checked_mul(size)
            .is_some_and(|len| len <= inline_size);
        let value_offset = if fits_inline {
            value_field
        } else if header.bigtiff {
            bytes.u64(value_field).unwrap_or(u64::MAX)
        } else {
            bytes.u32(value_field).map_or(u64::MAX, u64::from)
        };
        *slot = Some(Entry {
            tag,
            field_type,
            count: value_count,
            value_offset,
        });
    }
    Ok(ifd)
}
