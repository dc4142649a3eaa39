//! PNG decoding (through the `png` crate): the stored samples, one band per channel.
//!
//! - 8-bit grey, grey+alpha, RGB, RGBA: 1, 2, 3, 4 uint8 bands, equal to Pillow's
//!   `np.asarray(Image.open(path))` moved bands-first;
//! - palette images: one uint8 band of palette indices (as Pillow's mode "P" and GDAL give);
//! - 1-, 2- and 4-bit grey: one uint8 band scaled to 0..255 (as Pillow's mode "L" unpacks it);
//! - 16-bit images: uint16 bands with every bit kept (as rasterio reads them; Pillow keeps
//!   16-bit grey but reduces 16-bit colour to 8 bits).
//!
//! Transparency chunks (tRNS) and gamma are metadata, not samples: they are not applied.

use crate::{DType, ErrorKind, Raster, RasterError, RasterInfo, Result};

/// Largest decoded size accepted (bytes), as for TIFF.
const MAX_DECODED_BYTES: u64 = 4 << 30;

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Does `bytes` start with the PNG signature?
pub fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(&SIGNATURE)
}

fn png_error(e: png::DecodingError) -> RasterError {
    match e {
        png::DecodingError::LimitsExceeded => RasterError::new(
            ErrorKind::TooLarge,
            "PNG: the image exceeds rico's size limits",
        ),
        png::DecodingError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            RasterError::corrupt("PNG: the file is truncated")
        }
        e => RasterError::corrupt(format!("PNG: {e}")),
    }
}

/// Refuses, before anything is allocated, an image whose decoded bands exceed
/// `MAX_DECODED_BYTES` (`png::Limits` bounds only the png crate's own buffers, not the image),
/// or whose IDAT chunks are too small to inflate to its `raw` bytes even at deflate's maximum
/// ratio (certainly truncated: a tiny hostile file must not make rico allocate gigabytes).
fn check_size(bytes: &[u8], info: &png::Info<'_>, raw: usize) -> Result<()> {
    let bytes_per_sample = if info.bit_depth == png::BitDepth::Sixteen {
        2
    } else {
        1
    };
    let decoded = u64::from(info.width)
        * u64::from(info.height)
        * info.color_type.samples() as u64
        * bytes_per_sample;
    if decoded.max(raw as u64) > MAX_DECODED_BYTES {
        return Err(RasterError::new(
            ErrorKind::TooLarge,
            format!(
                "PNG of {}x{} decodes to {decoded} bytes, over rico's limit of {MAX_DECODED_BYTES}",
                info.width, info.height
            ),
        ));
    }
    // Chunks: length (4, big-endian), type (4), data, CRC (4); the signature is 8 bytes.
    let (mut pos, mut idat) = (8usize, 0u64);
    while let Some(header) = bytes.get(pos..).and_then(|rest| rest.get(..8)) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if &header[4..8] == b"IDAT" {
            idat += bytes.len().saturating_sub(pos + 8).min(len) as u64;
        }
        pos = pos.saturating_add(12).saturating_add(len);
    }
    // Deflate's longest match (258 bytes) costs at least 2 bits: ratio < 1032 (+ slack).
    if raw as u64 > idat.saturating_mul(1032).saturating_add(1 << 17) {
        return Err(RasterError::corrupt(format!(
            "PNG: the file is truncated ({idat} bytes of image data cannot hold {raw} decoded bytes)"
        )));
    }
    Ok(())
}

/// Decodes a PNG file; see the module docs for the bands it gives.
pub fn decode(bytes: &[u8]) -> Result<Raster> {
    if !is_png(bytes) {
        return Err(RasterError::new(ErrorKind::NotRaster, "not a PNG file"));
    }
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_limits(png::Limits {
        bytes: MAX_DECODED_BYTES as usize,
    });
    // The stored samples, nothing expanded or converted: rico maps them to bands below.
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(png_error)?;
    let (width, height) = (reader.info().width as usize, reader.info().height as usize);
    let size = reader.output_buffer_size().ok_or_else(|| {
        RasterError::new(
            ErrorKind::TooLarge,
            "PNG: the image exceeds rico's size limits",
        )
    })?;
    check_size(bytes, reader.info(), size)?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(png_error)?;
    let line = frame.line_size;
    let bands = frame.color_type.samples();
    let depth = frame.bit_depth as u8 as usize;
    let pixels = width * height;

    let (dtype, data) = match depth {
        8 => {
            let mut out = vec![0u8; pixels * bands];
            for y in 0..height {
                let row = &buf[y * line..y * line + width * bands];
                for x in 0..width {
                    for b in 0..bands {
                        out[b * pixels + y * width + x] = row[x * bands + b];
                    }
                }
            }
            (DType::U8, out)
        }
        16 => {
            let mut out = vec![0u8; pixels * bands * 2];
            for y in 0..height {
                let row = &buf[y * line..y * line + width * bands * 2];
                for x in 0..width {
                    for b in 0..bands {
                        let s = (x * bands + b) * 2;
                        let v = u16::from_be_bytes([row[s], row[s + 1]]);
                        let d = (b * pixels + y * width + x) * 2;
                        out[d..d + 2].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            (DType::U16, out)
        }
        1 | 2 | 4 => {
            // Only grey and palette images have sub-byte depths (one sample per pixel).
            let scale = if frame.color_type == png::ColorType::Indexed {
                1
            } else {
                255 / ((1 << depth) - 1)
            };
            let per_byte = 8 / depth;
            let mask = (1u8 << depth) - 1;
            let mut out = vec![0u8; pixels];
            for y in 0..height {
                let row = &buf[y * line..(y + 1) * line];
                for x in 0..width {
                    let byte = row[x / per_byte];
                    let shift = 8 - depth * (x % per_byte + 1);
                    out[y * width + x] = ((byte >> shift) & mask) * scale as u8;
                }
            }
            (DType::U8, out)
        }
        d => {
            return Err(RasterError::corrupt(format!(
                "PNG: bit depth {d} is not valid"
            )))
        }
    };
    Ok(Raster {
        info: RasterInfo {
            width,
            height,
            bands,
            dtype,
        },
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(
        width: u32,
        height: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, width, height);
            enc.set_color(color);
            enc.set_depth(depth);
            if color == png::ColorType::Indexed {
                enc.set_palette(vec![0u8; 3 * 16]);
            }
            let mut w = enc.write_header().unwrap();
            w.write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn rgb_is_band_sequential() {
        let png = encode(
            2,
            1,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &[1, 2, 3, 4, 5, 6],
        );
        let r = decode(&png).unwrap();
        assert_eq!((r.info.bands, r.info.dtype), (3, DType::U8));
        assert_eq!(r.data, [1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn sixteen_bit_grey_is_little_endian_u16() {
        let png = encode(
            2,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            &[0x01, 0x02, 0xFF, 0x00],
        );
        let r = decode(&png).unwrap();
        assert_eq!(r.info.dtype, DType::U16);
        assert_eq!(r.data, [0x02, 0x01, 0x00, 0xFF]);
    }

    #[test]
    fn low_depths_scale_grey_and_keep_indices() {
        let grey = decode(&encode(
            4,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Two,
            &[0b00_01_10_11],
        ))
        .unwrap();
        assert_eq!(grey.data, [0, 85, 170, 255]);
        let pal = decode(&encode(
            3,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Four,
            &[0x12, 0x30],
        ))
        .unwrap();
        assert_eq!(pal.data, [1, 2, 3]);
    }

    #[test]
    fn truncated_png_is_corrupt() {
        let png = encode(8, 8, png::ColorType::Rgb, png::BitDepth::Eight, &[7u8; 192]);
        assert_eq!(
            decode(&png[..png.len() - 20]).unwrap_err().kind,
            ErrorKind::Corrupt
        );
    }
}
