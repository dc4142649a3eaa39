//! JPEG decoding, bit-exact with libjpeg-turbo's default decompression (what Pillow, OpenCV
//! and GDAL use): the accurate integer IDCT (`jidctint.c`, "islow"), fancy upsampling
//! (`jdsample.c`: triangle filters for 2x1, 1x2 and 2x2 chroma, box replication otherwise) and
//! the fixed-point YCbCr to RGB tables of `jdcolor.c`. The general-purpose Rust decoders use
//! other IDCTs and colour arithmetic and differ from Pillow by up to a few grey levels, which
//! would break rico's promise that records hold the same numbers as the reference readers.
//!
//! Baseline and extended sequential (SOF0/SOF1) and progressive (SOF2) Huffman-coded 8-bit
//! JPEG, 1 (grey) or 3 (YCbCr or RGB) components, any sampling factors libjpeg accepts,
//! restart intervals. Arithmetic coding, lossless, 12-bit and CMYK files are refused as
//! unsupported. A scan whose data ends early is an error, not grey padding.

mod color;
mod headers;
mod huffman;
mod idct;
mod scan;
mod upsample;

use color::ycc_to_rgb;
use headers::{read_dht, read_dqt, read_sof, read_sos, Frame};
use huffman::Huffman;
use idct::idct_component;
use scan::decode_scan;
use upsample::upsample;

use crate::{DType, ErrorKind, Raster, RasterError, RasterInfo, Result};

/// Largest decoded size accepted (bytes), as for TIFF.
const MAX_DECODED_BYTES: u64 = 4 << 30;

/// Does `bytes` start like a JPEG file (SOI then a marker)?
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
}

fn corrupt(message: impl Into<String>) -> RasterError {
    RasterError::corrupt(format!("JPEG: {}", message.into()))
}

fn unsupported(message: impl Into<String>) -> RasterError {
    RasterError::unsupported(format!("JPEG: {}", message.into()))
}

/// Zig-zag position -> natural (row-major) position, with 16 spare entries as libjpeg has, so
/// that a corrupt run length lands on coefficient 63 instead of out of bounds.
const NATURAL_ORDER: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63,
];

/// Decodes a JPEG file into `Raster`: grey files give one uint8 band, colour files three
/// (R, G, B), each exactly as libjpeg-turbo (Pillow) decodes them.
pub fn decode(bytes: &[u8]) -> Result<Raster> {
    if !is_jpeg(bytes) {
        return Err(RasterError::new(ErrorKind::NotRaster, "not a JPEG file"));
    }
    let mut pos = 2;
    let mut qt = [[0u16; 64]; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut frame: Option<Frame> = None;
    let mut coefs: Vec<Vec<i16>> = Vec::new();
    let mut restart_interval = 0usize;
    let mut saw_jfif = false;
    let mut adobe_transform: Option<u8> = None;
    let mut scans = 0usize;

    loop {
        // Find the next marker (skipping fill bytes).
        while pos < bytes.len() && bytes[pos] != 0xFF {
            pos += 1;
        }
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            if scans > 0 {
                break; // A missing EOI after complete scans is tolerated, as libjpeg does.
            }
            return Err(corrupt("the file ends before any image data"));
        };
        pos += 1;
        match marker {
            0xD8 | 0x01 | 0xD0..=0xD7 => continue,
            0xD9 => break,
            _ => {}
        }
        let len = match bytes.get(pos..pos + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]) as usize,
            None => return Err(corrupt("the file ends inside a marker")),
        };
        if len < 2 || pos + len > bytes.len() {
            return Err(corrupt(format!(
                "marker 0xFF{marker:02X} runs past the end of the file"
            )));
        }
        let seg = &bytes[pos + 2..pos + len];
        pos += len;
        match marker {
            0xE0 if seg.starts_with(b"JFIF\0") => saw_jfif = true,
            0xEE if seg.starts_with(b"Adobe") && seg.len() >= 12 => adobe_transform = Some(seg[11]),
            0xDB => read_dqt(seg, &mut qt)?,
            0xC4 => read_dht(seg, &mut dc_tables, &mut ac_tables)?,
            0xDD => {
                if seg.len() < 2 {
                    return Err(corrupt("short DRI marker"));
                }
                restart_interval = u16::from_be_bytes([seg[0], seg[1]]) as usize;
            }
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return Err(corrupt("more than one frame header"));
                }
                let f = read_sof(seg, marker == 0xC2)?;
                // A sequential scan spends at least 2 bits on every block (DC and end of
                // block): a header claiming more blocks than the rest of the file can hold is
                // truncated, and is refused before its planes are allocated. (Progressive
                // files can cover many blocks per byte with end-of-band runs; they are bounded
                // by MAX_DECODED_BYTES only.)
                let blocks: usize = f
                    .components
                    .iter()
                    .map(|c| c.real_blocks_w * c.real_blocks_h)
                    .sum();
                if !f.progressive && blocks / 4 > bytes.len() - pos + 64 {
                    return Err(corrupt(format!(
                        "the file is truncated ({} bytes left cannot hold the {blocks} blocks of a {}x{} image)",
                        bytes.len() - pos,
                        f.width,
                        f.height
                    )));
                }
                coefs = f
                    .components
                    .iter()
                    .map(|c| vec![0i16; c.blocks_w * c.blocks_h * 64])
                    .collect();
                frame = Some(f);
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                let kind = if marker >= 0xC9 {
                    "arithmetic-coded"
                } else {
                    "lossless or hierarchical"
                };
                return Err(unsupported(format!(
                    "{kind} JPEG (SOF marker 0xFF{marker:02X}) is not supported"
                )));
            }
            0xDA => {
                let Some(f) = frame.as_ref() else {
                    return Err(corrupt("scan before the frame header"));
                };
                let scan = read_sos(seg, f)?;
                let end = decode_scan(
                    bytes,
                    pos,
                    f,
                    &scan,
                    &dc_tables,
                    &ac_tables,
                    restart_interval,
                    &mut coefs,
                )?;
                pos = end;
                scans += 1;
            }
            _ => {} // APPn, COM, DNL, ...: nothing the pixels depend on.
        }
    }

    let Some(f) = frame else {
        return Err(corrupt("no frame header (SOF)"));
    };
    if scans == 0 {
        return Err(corrupt("no scan"));
    }
    // Dequantisation uses the tables present at the end, as libjpeg does for progressive
    // files (and for sequential files the tables never change after their scan).
    let planes: Vec<Vec<u8>> = f
        .components
        .iter()
        .zip(&coefs)
        .map(|(c, coef)| idct_component(c, coef, &qt[c.tq]))
        .collect();

    let (w, h) = (f.width, f.height);
    let full: Vec<Vec<u8>> = f
        .components
        .iter()
        .zip(planes)
        .map(|(c, plane)| upsample(c, plane, &f))
        .collect::<Result<_>>()?;

    let data = match f.components.len() {
        1 => full.into_iter().next().unwrap_or_default(),
        3 => {
            let rgb = match (saw_jfif, adobe_transform) {
                (true, _) => false,
                (false, Some(t)) => t == 0,
                (false, None) => {
                    let ids: Vec<u8> = f.components.iter().map(|c| c.id).collect();
                    ids == [b'R', b'G', b'B']
                }
            };
            if rgb {
                full.concat()
            } else {
                ycc_to_rgb(&full[0], &full[1], &full[2])
            }
        }
        n => {
            return Err(unsupported(format!(
                "{n}-component JPEG (e.g. CMYK) is not supported"
            )))
        }
    };
    debug_assert_eq!(data.len(), w * h * f.components.len());
    Ok(Raster {
        info: RasterInfo {
            width: w,
            height: h,
            bands: f.components.len(),
            dtype: DType::U8,
        },
        data,
    })
}

#[cfg(test)]
mod tests;
