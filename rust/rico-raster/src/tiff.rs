//! TIFF / BigTIFF decoder producing exactly what `rasterio.open(path).read()` returns for
//! GeoTIFFs as GDAL writes them.
//!
//! Supported: classic TIFF and BigTIFF, little- and big-endian; strips and tiles (partial edge
//! tiles, tiles larger than the image, partial last strips, sparse blocks); PlanarConfiguration 1
//! (pixel-interleaved) and 2 (band-separate); compression none, LZW, deflate (8 and 32946), zstd
//! and PackBits; predictor 1, 2 (horizontal) and 3 (floating point); 8/16/32/64-bit samples as
//! uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64; 16-bit floats
//! widened exactly to float32, the dtype GDAL (before 3.11) and so rasterio report for them; any
//! number of samples per pixel. Sparse blocks (byte count 0) read as the GDAL_NODATA value, else
//! 0, as in GDAL.
//! Only the first IFD (the full-resolution image) is decoded; overviews and masks are ignored,
//! so no IFD chain is followed.
//!
//! Everything else (JPEG, LERC, WebP, ... compression; 1/4/12-bit, 24-bit float or complex
//! samples; YCbCr, CMYK and CIELab images, which GDAL converts to RGB) is reported as
//! [`ErrorKind::Unsupported`], never decoded wrongly.
//!
//! The decoder is written for hostile input: every offset is bounds-checked, all size arithmetic
//! is overflow-checked and compared with the limits below *before* anything is allocated, and
//! decompression stops at the expected size. `parse` also checks every strip/tile against the
//! file: one past the end, or too small to expand to its decoded size even at its codec's maximum
//! ratio, is `Corrupt` before any buffer is sized for it. zstd frames needing a window over 128 MiB
//! are refused, as libzstd (and so GDAL) refuses them. What a small file may decode to at all,
//! sparse blocks included, is bounded by [`Limits`] (`max(64 MiB, 4096 x file size)` unless
//! raised).
//!
//! Per strip/tile only the rows inside the image are decoded (tiles larger than the image stop
//! early), into one reused scratch buffer; uncompressed little-endian data is copied straight
//! from the file. Compressed images of at least [`PARALLEL_MIN_BYTES`] with several blocks are
//! decoded across rayon's global pool, block by block; smaller ones stay on the calling thread
//! (a dataset conversion already decodes many files in parallel).

mod codec;
mod half;
mod ifd;
mod placement;
mod predictor;
mod tags;

use codec::{Compression, Decoders, INFLATE_SLACK};
use ifd::{Bytes, UintArray};
use placement::Placement;
use rayon::prelude::*;
use tags::{dimension, dtype_for, fill_value, per_sample, scalar};

use crate::{DType, ErrorKind, Limits, Raster, RasterError, RasterInfo, Result};

/// Largest accepted image width, height, tile width or tile height (pixels).
pub const MAX_DIMENSION: u64 = 1 << 20;
/// Largest accepted SamplesPerPixel (bands).
pub const MAX_BANDS: u64 = 65535;
/// Largest accepted decoded image (all bands), and largest decode buffer for one strip/tile.
pub const MAX_DECODED_BYTES: u64 = 4 << 30;
/// Most entries accepted in an IFD (as libtiff's directory sanity check).
pub const MAX_IFD_ENTRIES: u64 = 4096;
/// Compressed images decoding to at least this many bytes, in more than one block, are decoded
/// in parallel: below it, a thread hand-off costs more than it saves.
pub const PARALLEL_MIN_BYTES: usize = 1 << 20;
/// Most decoded block bytes held at once by a parallel decode (blocks are decoded into their
/// own buffers, then placed).
const PARALLEL_BATCH_BYTES: usize = 64 << 20;

/// True when `bytes` starts with a classic TIFF or BigTIFF signature.
pub fn is_tiff(bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && (bytes[..4] == *b"II*\0"
            || bytes[..4] == *b"MM\0*"
            || bytes[..4] == *b"II+\0"
            || bytes[..4] == *b"MM\0+")
}

/// Decodes the first image of a TIFF file into a band-sequential little-endian [`Raster`],
/// under the default [`Limits`].
pub fn decode(bytes: &[u8]) -> Result<Raster> {
    decode_with(bytes, &Limits::default())
}

/// Decodes the first image of a TIFF file under the given [`Limits`].
pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Raster> {
    let image = TiffImage::parse_with(bytes, limits)?;
    let info = image.info();
    // Validated against the limits by `parse`; zeroed allocation is lazy on most systems, and
    // sparse blocks of zeros are then left untouched.
    let mut data = vec![0u8; image.decoded_len];
    image.decode_checked(&mut data, true)?;
    Ok(Raster { info, data })
}

fn too_large(message: String) -> RasterError {
    RasterError::new(ErrorKind::TooLarge, message)
}

/// A parsed, validated TIFF image, borrowing the file bytes; decode it with [`TiffImage::decode_into`].
#[derive(Debug)]
pub struct TiffImage<'a> {
    bytes: Bytes<'a>,
    width: usize,
    height: usize,
    bands: usize,
    /// The decoded dtype (float32 for 16-bit floats).
    dtype: DType,
    /// Bytes per sample as stored in the file (2 for 16-bit floats).
    sample_size: usize,
    /// 16-bit float samples, widened to float32 after decoding.
    half: bool,
    compression: Compression,
    predictor: Predictor,
    /// PlanarConfiguration 2 with more than one band: blocks hold one band each.
    separate: bool,
    tiled: bool,
    block_width: usize,
    block_height: usize,
    blocks_across: usize,
    blocks_down: usize,
    offsets: UintArray<'a>,
    /// `None` only for uncompressed strips without StripByteCounts (each is then a full strip).
    byte_counts: Option<UintArray<'a>>,
    /// The value GDAL fills sparse (never written) blocks with: GDAL_NODATA, else zero.
    fill: [u8; 8],
    decoded_len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Predictor {
    None,
    Horizontal,
    Float,
}

impl<'a> TiffImage<'a> {
    /// Parses the header and first IFD and validates every size and strip/tile location, so
    /// that decoding can only fail on bad compressed data; under the default [`Limits`].
    pub fn parse(data: &'a [u8]) -> Result<TiffImage<'a>> {
        Self::parse_with(data, &Limits::default())
    }

    /// [`TiffImage::parse`] under the given [`Limits`].
    pub fn parse_with(data: &'a [u8], limits: &Limits) -> Result<TiffImage<'a>> {
        let header = ifd::parse_header(data)?;
        let bytes = Bytes {
            data,
            big_endian: header.big_endian,
        };
        let tags = ifd::read_first_ifd(&bytes, &header)?;

        let width = dimension(&bytes, tags.image_width, "ImageWidth")?;
        let height = dimension(&bytes, tags.image_length, "ImageLength")?;
        let bands = scalar(&bytes, tags.samples_per_pixel, 1)?;
        if bands == 0 {
            return Err(RasterError::corrupt("TIFF SamplesPerPixel is zero"));
        }
        if bands > MAX_BANDS {
            return Err(too_large(format!(
                "TIFF SamplesPerPixel {bands} exceeds rico's limit of {MAX_BANDS}"
            )));
        }
        let bands = bands as usize;

        let compression = Compression::from_code(scalar(&bytes, tags.compression, 1)?)?;
        match scalar(&bytes, tags.photometric, 1)? {
            // GDAL converts these to RGB(A) instead of returning the stored samples.
            5 => {
                return Err(RasterError::unsupported(
                    "unsupported TIFF photometric interpretation: CMYK (Separated)",
                ))
            }
            6 => {
                return Err(RasterError::unsupported(
                    "unsupported TIFF photometric interpretation: YCbCr",
                ))
            }
            8..=10 => {
                return Err(RasterError::unsupported(
                    "unsupported TIFF photometric interpretation: CIELab",
                ))
            }
            32844 | 32845 => {
                return Err(RasterError::unsupported(
                    "unsupported TIFF photometric interpretation: LogL/LogLuv",
                ))
            }
            _ => {}
        }
        let bits = per_sample(&bytes, tags.bits_per_sample, 1, "BitsPerSample")?;
        let sample_format = per_sample(&bytes, tags.sample_format, 1, "SampleFormat")?;
        let dtype = dtype_for(sample_format, bits)?;
        let half = sample_format == 3 && bits == 16;
        let size = if half { 2 } else { dtype.size() };

        let separate = match scalar(&bytes, tags.planar_configuration, 1)? {
            1 => false,
            2 => bands > 1,
            other => {
                return Err(RasterError::corrupt(format!(
                    "invalid TIFF PlanarConfiguration {other}"
                )))
            }
        };
        let predictor =
            if compression.uses_predictor() {
                match scalar(&bytes, tags.predictor, 1)? {
                    1 => Predictor::None,
                    2 => Predictor::Horizontal,
                    3 if sample_format == 3 => Predictor::Float,
                    3 => return Err(RasterError::corrupt(
                        "TIFF floating-point predictor (3) on integer samples (libtiff rejects it)",
                    )),
                    other => {
                        return Err(RasterError::unsupported(format!(
                            "unsupported TIFF predictor {other}"
                        )))
                    }
                }
            } else {
                Predictor::None // libtiff ignores the tag for uncompressed and PackBits data
            };

        let tiled = tags.tile_width.is_some();
        let (block_width, block_height, offsets, byte_counts) = if tiled {
            let tile_width = dimension(&bytes, tags.tile_width, "TileWidth")?;
            let tile_length = dimension(&bytes, tags.tile_length, "TileLength")?;
            // libtiff reads strip and tile offsets into the same field: accept either tag.
            let offsets = tags.tile_offsets.or(tags.strip_offsets);
            let counts = tags.tile_byte_counts.or(tags.strip_byte_counts);
            (tile_width, tile_length, offsets, counts)
        } else {
            let rows = scalar(&bytes, tags.rows_per_strip, u64::from(u32::MAX))?;
            if rows == 0 {
                return Err(RasterError::corrupt("TIFF RowsPerStrip is zero"));
            }
            (
                width,
                rows.min(height as u64) as usize,
                tags.strip_offsets,
                tags.strip_byte_counts,
            )
        };
        let kind = if tiled { "tile" } else { "strip" };
        let offsets = offsets
            .ok_or_else(|| {
                RasterError::corrupt(format!("TIFF directory lacks the {kind} offsets tag"))
            })?
            .uints(&bytes)?;
        let byte_counts = match byte_counts {
            Some(entry) => Some(entry.uints(&bytes)?),
            None if compression == Compression::None && !tiled => None,
            None => {
                return Err(RasterError::corrupt(format!(
                    "TIFF directory lacks the {kind} byte counts tag"
                )))
            }
        };

        // Size checks, all in u64 so nothing can overflow (every factor is <= 2^20 or <= 2^16).
        let decoded = (width as u64) * (height as u64) * (bands as u64) * (dtype.size() as u64);
        if decoded > MAX_DECODED_BYTES {
            return Err(too_large(format!(
                "TIFF image {width}x{height}x{bands} {dtype} decodes to {decoded} bytes, over rico's limit of {MAX_DECODED_BYTES}"
            )));
        }
        let allowed = limits.decoded_bytes_allowed(data.len());
        if decoded > allowed {
            return Err(too_large(format!(
                "TIFF image {width}x{height}x{bands} {dtype} decodes to {decoded} bytes from a {}-byte file, over rico's limit of {allowed} bytes (max(64 MiB, 4096 x file size)); if it is a real sparse raster, raise the limit with rico_raster::Limits::max_decoded_bytes",
                data.len()
            )));
        }
        let samples_per_block = if separate { 1 } else { bands };
        let block_rows_needed = block_height.min(height) as u64;
        let block_buffer =
            (block_width as u64) * (samples_per_block as u64) * (size as u64) * block_rows_needed;
        if block_buffer > MAX_DECODED_BYTES {
            return Err(too_large(format!(
                "TIFF {kind} of {block_width}x{block_height} pixels needs {block_buffer} bytes, over rico's limit of {MAX_DECODED_BYTES}"
            )));
        }
        let decoded_len = usize::try_from(decoded).map_err(|_| {
            too_large(format!(
                "TIFF image of {decoded} bytes does not fit in memory"
            ))
        })?;
        usize::try_from(block_buffer).map_err(|_| {
            too_large(format!(
                "TIFF {kind} of {block_buffer} bytes does not fit in memory"
            ))
        })?;

        let blocks_across = width.div_ceil(block_width);
        let blocks_down = height.div_ceil(block_height);
        let planes = if separate { bands } else { 1 };
        let needed = (blocks_across as u64) * (blocks_down as u64) * (planes as u64);
        if (offsets.len() as u64) < needed {
            return Err(RasterError::corrupt(format!(
                "TIFF has {} {kind} offsets, the image needs {needed}",
                offsets.len()
            )));
        }
        if let Some(counts) = &byte_counts {
            if (counts.len() as u64) < needed {
                return Err(RasterError::corrupt(format!(
                    "TIFF has {} {kind} byte counts, the image needs {needed}",
                    counts.len()
                )));
            }
        }

        let image = TiffImage {
            bytes,
            width,
            height,
            bands,
            dtype,
            sample_size: size,
            half,
            compression,
            predictor,
            separate,
            tiled,
            block_width,
            block_height,
            blocks_across,
            blocks_down,
            offsets,
            byte_counts,
            fill: fill_value(&bytes, tags.gdal_nodata, dtype),
            decoded_len,
        };
        image.validate_blocks()?;
        Ok(image)
    }

    /// Shape and pixel type of the decoded raster.
    pub fn info(&self) -> RasterInfo {
        RasterInfo {
            width: self.width,
            height: self.height,
            bands: self.bands,
            dtype: self.dtype,
        }
    }

    /// Bytes `decode_into` writes: all bands, band after band.
    pub fn decoded_len(&self) -> usize {
        self.decoded_len
    }

    fn block_name(&self) -> &'static str {
        if self.tiled {
            "tile"
        } else {
            "strip"
        }
    }

    /// Geometry of block `index`: (first band, x0, y0, valid width, valid rows).
    fn block_geometry(&self, index: usize) -> (usize, usize, usize, usize, usize) {
        let per_plane = self.blocks_across * self.blocks_down;
        let plane = index / per_plane;
        let within = index % per_plane;
        let x0 = (within % self.blocks_across) * self.block_width;
        let y0 = (within / self.blocks_across) * self.block_height;
        (
            plane,
            x0,
            y0,
            self.block_width.min(self.width - x0),
            self.block_height.min(self.height - y0),
        )
    }

    fn block_count(&self) -> usize {
        let planes = if self.separate { self.bands } else { 1 };
        self.blocks_across * self.blocks_down * planes
    }

    /// Bytes of one decoded row of a block (a full block row, including any padding columns).
    fn block_row_bytes(&self) -> usize {
        let samples = if self.separate { 1 } else { self.bands };
        self.block_width * samples * self.sample_size
    }

    /// Location of block `index` in the file, `None` for a sparse block (byte count 0), as well
    /// as the number of decoded bytes needed from it (its rows that lie inside the image).
    fn block_source(&self, index: usize) -> Result<(Option<&'a [u8]>, usize)> {
        let rows = self.block_geometry(index).4;
        let need = rows * self.block_row_bytes(); // <= the block buffer checked in parse
        let offset = self.offsets.get(index).unwrap_or(0);
        let count = match &self.byte_counts {
            Some(counts) => counts.get(index).unwrap_or(0),
            None => need as u64,
        };
        if count == 0 {
            return Ok((None, need)); // never written: GDAL reads it as nodata
        }
        let name = self.block_name();
        let src = self.bytes.slice(offset, count).ok_or_else(|| {
            RasterError::corrupt(format!(
                "TIFF {name} {index} ({count} bytes at offset {offset}) lies past the end of the file ({} bytes)",
                self.bytes.data.len()
            ))
        })?;
        if (need as u64) > self.compression.max_expansion(count) {
            return Err(RasterError::corrupt(format!(
                "truncated or corrupt compressed data in {name} {index}: {count} bytes cannot hold {need} decoded bytes"
            )));
        }
        Ok((Some(src), need))
    }

    fn validate_blocks(&self) -> Result<()> {
        (0..self.block_count()).try_for_each(|i| self.block_source(i).map(|_| ()))
    }

    /// Decodes all bands into `out` (band-sequential, little-endian), which must be exactly
    /// [`TiffImage::decoded_len`] bytes long.
    pub fn decode_into(&self, out: &mut [u8]) -> Result<()> {
        self.decode_checked(out, false)
    }

    /// [`TiffImage::decode_into`]; `zeroed` says `out` holds only zeros, so that sparse blocks
    /// filled with zeros need not be written (nor their pages touched).
    fn decode_checked(&self, out: &mut [u8], zeroed: bool) -> Result<()> {
        if out.len() != self.decoded_len {
            return Err(RasterError::new(
                ErrorKind::Io,
                format!(
                    "output buffer holds {} bytes, the image needs {}",
                    out.len(),
                    self.decoded_len
                ),
            ));
        }
        if self.half {
            // Decode the 16-bit samples (sparse blocks left as zeros), widen them, then fill
            // the sparse blocks with the float32 nodata value, as GDAL does.
            let mut raw = vec![0u8; self.decoded_len / 2];
            self.decode_samples(&mut raw, true)?;
            half::widen_into(&raw, out);
            for index in 0..self.block_count() {
                if self.block_source(index)?.0.is_none() {
                    let mut dst = self.placement(index);
                    dst.band_bytes = self.width * self.height * 4;
                    self.fill_sparse(out, &dst, false, 4);
                }
            }
            return Ok(());
        }
        self.decode_samples(out, zeroed)
    }

    /// Fills the region of a sparse block with the nodata value (`size` bytes a sample).
    fn fill_sparse(&self, out: &mut [u8], dst: &Placement, zeroed: bool, size: usize) {
        let value = &self.fill[..size];
        if zeroed && value.iter().all(|&b| b == 0) {
            return;
        }
        let samples = if self.separate { 1 } else { self.bands };
        dst.fill(out, samples, value);
    }

    /// Decompresses block `index` from `src` into the first `need` bytes of `room` and undoes
    /// the predictor; deflate may write a little past `need` when `room` allows (see
    /// `Decoders::decompress_with_room`). Returns whether the samples are still in the file's
    /// big-endian order, and whether bytes past `need` were written.
    fn decode_block(
        &self,
        index: usize,
        src: &[u8],
        room: &mut [u8],
        need: usize,
        decoders: &mut Decoders,
        row_tmp: &mut Vec<u8>,
    ) -> Result<(bool, bool)> {
        let size = self.sample_size;
        let samples_per_block = if self.separate { 1 } else { self.bands };
        let row_bytes = self.block_row_bytes();
        let written = decoders
            .decompress_with_room(self.compression, src, room, need)
            .map_err(|reason| {
                RasterError::corrupt(format!(
                    "truncated or corrupt compressed data in {} {index}: {reason}",
                    self.block_name()
                ))
            })?;
        let overran = written > need;
        let block = &mut room[..need];
        let swap = self.bytes.big_endian && size > 1;
        let swapped = match self.predictor {
            Predictor::None => swap,
            Predictor::Horizontal => {
                // libtiff swaps to native order first, then sums.
                if swap {
                    predictor::swap_in_place(block, size);
                }
                predictor::undo_horizontal(block, row_bytes, size, samples_per_block);
                false
            }
            Predictor::Float => {
                predictor::undo_float(block, row_bytes, size, samples_per_block, row_tmp);
                false // byte planes are MSB-first in either byte order
            }
        };
        Ok((swapped, overran))
    }

    /// Decodes the stored samples (2 bytes each for half floats) into `out`.
    fn decode_samples(&self, out: &mut [u8], zeroed: bool) -> Result<()> {
        if self.compression != Compression::None
            && out.len() >= PARALLEL_MIN_BYTES
            && self.block_count() > 1
            && rayon::current_num_threads() > 1
        {
            return self.decode_parallel(out, zeroed);
        }
        let size = self.sample_size;
        let row_bytes = self.block_row_bytes();
        let samples_per_block = if self.separate { 1 } else { self.bands };
        let swap = self.bytes.big_endian && size > 1;
        let mut decoders = Decoders::default();
        let mut scratch: Vec<u8> = Vec::new();
        let mut row_tmp: Vec<u8> = Vec::new();
        // Blocks land in increasing output order, so bytes a block writes past its end (see
        // `decode_block`) belong to blocks decoded later: those must then be written even when
        // they are sparse zeros.
        let mut zeroed = zeroed;

        for index in 0..self.block_count() {
            let dst = self.placement(index);
            let (src, need) = self.block_source(index)?;
            let Some(src) = src else {
                if !self.half {
                    self.fill_sparse(out, &dst, zeroed, size);
                }
                continue;
            };
            if self.compression == Compression::None {
                // Uncompressed: copy straight from the file, no scratch buffer.
                let src = src.get(..need).ok_or_else(|| {
                    RasterError::corrupt(format!(
                        "TIFF {} {index} holds {} bytes, {need} expected",
                        self.block_name(),
                        src.len()
                    ))
                })?;
                dst.copy(out, src, row_bytes, samples_per_block, size, swap);
                continue;
            }
            // A single-band block spanning the image width (a strip, or a full-width tile) is a
            // contiguous run of the output: decode straight into it, no scratch and no copy.
            if samples_per_block == 1 && self.block_width == self.width {
                let start = dst.offset(dst.first_band, 0, size);
                let room = &mut out[start..];
                let (swapped, overran) =
                    self.decode_block(index, src, room, need, &mut decoders, &mut row_tmp)?;
                zeroed &= !overran;
                if swapped {
                    predictor::swap_in_place(&mut room[..need], size);
                }
            } else {
                if scratch.len() < need + INFLATE_SLACK {
                    scratch.resize(need + INFLATE_SLACK, 0);
                }
                let (swapped, _) =
                    self.decode_block(index, src, &mut scratch, need, &mut decoders, &mut row_tmp)?;
                dst.copy(
                    out,
                    &scratch[..need],
                    row_bytes,
                    samples_per_block,
                    size,
                    swapped,
                );
            }
        }
        Ok(())
    }

    /// Decodes blocks on rayon's global pool, each into its own buffer, in batches of at most
    /// [`PARALLEL_BATCH_BYTES`]; the calling thread places each batch in order.
    fn decode_parallel(&self, out: &mut [u8], zeroed: bool) -> Result<()> {
        let size = self.sample_size;
        let row_bytes = self.block_row_bytes();
        let samples_per_block = if self.separate { 1 } else { self.bands };
        let largest_block = row_bytes * self.block_height.min(self.height);
        let batch = (PARALLEL_BATCH_BYTES / largest_block.max(1)).max(1);
        let count = self.block_count();
        let mut first = 0;
        while first < count {
            let end = (first + batch).min(count);
            let decoded: Vec<Result<Option<DecodedBlock>>> = (first..end)
                .into_par_iter()
                .map_init(
                    || (Decoders::default(), Vec::new()),
                    |(decoders, row_tmp), index| {
                        let (src, need) = self.block_source(index)?;
                        let Some(src) = src else {
                            return Ok(None);
                        };
                        let mut block = vec![0u8; need + INFLATE_SLACK];
                        let (swapped, _) =
                            self.decode_block(index, src, &mut block, need, decoders, row_tmp)?;
                        Ok(Some((block, swapped)))
                    },
                )
                .collect();
            for (index, result) in (first..end).zip(decoded) {
                let dst = self.placement(index);
                match result? {
                    None if self.half => {}
                    None => self.fill_sparse(out, &dst, zeroed, size),
                    Some((block, swapped)) => dst.copy(
                        out,
                        &block, // its first `rows` rows; the slack past them is ignored
                        row_bytes,
                        samples_per_block,
                        size,
                        swapped,
                    ),
                }
            }
            first = end;
        }
        Ok(())
    }
}

/// A block decoded into its own buffer (with slack past its rows), and whether its samples are
/// still big-endian; `None` in its place is a sparse block.
type DecodedBlock = (Vec<u8>, bool);

#[cfg(test)]
mod tests;
