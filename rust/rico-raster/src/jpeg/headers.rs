//! Marker segments: quantisation tables (DQT), Huffman tables (DHT), the frame header (SOF)
//! and scan headers (SOS), read into the frame and scan geometry the decoder works from.

use super::huffman::Huffman;
use super::{corrupt, unsupported, MAX_DECODED_BYTES, NATURAL_ORDER};
use crate::{ErrorKind, RasterError, Result};

#[derive(Clone, Debug)]
pub(super) struct Component {
    pub(super) id: u8,
    pub(super) h: usize,
    pub(super) v: usize,
    pub(super) tq: usize,
    /// Blocks per row / rows of blocks allocated (whole MCUs).
    pub(super) blocks_w: usize,
    pub(super) blocks_h: usize,
    /// Blocks actually covering the component (for non-interleaved scans).
    pub(super) real_blocks_w: usize,
    pub(super) real_blocks_h: usize,
    /// Samples per row / rows of the component's real area (libjpeg's downsampled_width/height).
    pub(super) width: usize,
    pub(super) height: usize,
}

pub(super) struct Frame {
    pub(super) progressive: bool,
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) components: Vec<Component>,
    pub(super) max_h: usize,
    pub(super) max_v: usize,
    pub(super) mcus_x: usize,
    pub(super) mcus_y: usize,
}

pub(super) fn read_dqt(mut seg: &[u8], qt: &mut [[u16; 64]; 4]) -> Result<()> {
    while !seg.is_empty() {
        let pq = seg[0] >> 4;
        let tq = (seg[0] & 15) as usize;
        if tq > 3 {
            return Err(corrupt("quantisation table id over 3"));
        }
        let size = if pq == 0 { 64 } else { 128 };
        if seg.len() < 1 + size {
            return Err(corrupt("short quantisation table"));
        }
        for k in 0..64 {
            let v = if pq == 0 {
                seg[1 + k] as u16
            } else {
                u16::from_be_bytes([seg[1 + 2 * k], seg[2 + 2 * k]])
            };
            qt[tq][NATURAL_ORDER[k]] = v;
        }
        seg = &seg[1 + size..];
    }
    Ok(())
}

pub(super) fn read_dht(
    mut seg: &[u8],
    dc: &mut [Option<Huffman>; 4],
    ac: &mut [Option<Huffman>; 4],
) -> Result<()> {
    while !seg.is_empty() {
        if seg.len() < 17 {
            return Err(corrupt("short Huffman table"));
        }
        let class = seg[0] >> 4;
        let id = (seg[0] & 15) as usize;
        if class > 1 || id > 3 {
            return Err(corrupt("bad Huffman table class or id"));
        }
        let mut counts = [0u8; 16];
        counts.copy_from_slice(&seg[1..17]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || seg.len() < 17 + total {
            return Err(corrupt("short Huffman table"));
        }
        let symbols = seg[17..17 + total].to_vec();
        // A DC symbol is a bit count; libjpeg refuses tables with counts over 15.
        if class == 0 && symbols.iter().any(|&s| s > 15) {
            return Err(corrupt("a DC Huffman table has a symbol over 15"));
        }
        let table = Huffman::new(&counts, symbols)?;
        if class == 0 {
            dc[id] = Some(table);
        } else {
            ac[id] = Some(table);
        }
        seg = &seg[17 + total..];
    }
    Ok(())
}

pub(super) fn read_sof(seg: &[u8], progressive: bool) -> Result<Frame> {
    if seg.len() < 6 {
        return Err(corrupt("short frame header"));
    }
    if seg[0] != 8 {
        return Err(unsupported(format!(
            "{}-bit JPEG is not supported (only 8-bit)",
            seg[0]
        )));
    }
    let height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
    let width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
    let n = seg[5] as usize;
    if height == 0 || width == 0 {
        return Err(unsupported(
            "JPEG with a zero or DNL-defined size is not supported",
        ));
    }
    if n == 0 || seg.len() < 6 + 3 * n {
        return Err(corrupt("bad component count in the frame header"));
    }
    if n != 1 && n != 3 {
        return Err(unsupported(format!(
            "{n}-component JPEG (e.g. CMYK) is not supported"
        )));
    }
    let mut components = Vec::with_capacity(n);
    for i in 0..n {
        let c = &seg[6 + 3 * i..9 + 3 * i];
        let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
            return Err(corrupt(
                "bad sampling factor or quantisation table in the frame header",
            ));
        }
        components.push(Component {
            id: c[0],
            h,
            v,
            tq: c[2] as usize,
            blocks_w: 0,
            blocks_h: 0,
            real_blocks_w: 0,
            real_blocks_h: 0,
            width: 0,
            height: 0,
        });
    }
    let max_h = components.iter().map(|c| c.h).max().unwrap_or(1);
    let max_v = components.iter().map(|c| c.v).max().unwrap_or(1);
    let mcus_x = width.div_ceil(8 * max_h);
    let mcus_y = height.div_ceil(8 * max_v);
    for c in &mut components {
        c.width = (width * c.h).div_ceil(max_h);
        c.height = (height * c.v).div_ceil(max_v);
        c.real_blocks_w = c.width.div_ceil(8);
        c.real_blocks_h = c.height.div_ceil(8);
        c.blocks_w = mcus_x * c.h;
        c.blocks_h = mcus_y * c.v;
    }
    let coef_bytes: u64 = components
        .iter()
        .map(|c| (c.blocks_w * c.blocks_h * 128) as u64)
        .sum();
    let out_bytes = (width * height * n) as u64;
    if coef_bytes + out_bytes > MAX_DECODED_BYTES {
        return Err(RasterError::new(
            ErrorKind::TooLarge,
            format!("JPEG of {width}x{height} needs more than rico's limit of {MAX_DECODED_BYTES} bytes to decode"),
        ));
    }
    Ok(Frame {
        progressive,
        width,
        height,
        components,
        max_h,
        max_v,
        mcus_x,
        mcus_y,
    })
}

pub(super) struct Scan {
    /// (index into the frame's components, DC table, AC table)
    pub(super) components: Vec<(usize, usize, usize)>,
    pub(super) ss: usize,
    pub(super) se: usize,
    pub(super) ah: u32,
    pub(super) al: u32,
}

pub(super) fn read_sos(seg: &[u8], f: &Frame) -> Result<Scan> {
    let n = *seg.first().ok_or_else(|| corrupt("empty scan header"))? as usize;
    if n == 0 || n > 4 || seg.len() < 1 + 2 * n + 3 {
        return Err(corrupt("bad scan header"));
    }
    let mut components = Vec::with_capacity(n);
    for i in 0..n {
        let id = seg[1 + 2 * i];
        let tables = seg[2 + 2 * i];
        let index = f
            .components
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| {
                corrupt(format!(
                    "scan names component {id}, which the frame does not have"
                ))
            })?;
        components.push((
            index,
            (tables >> 4) as usize & 3,
            (tables & 15) as usize & 3,
        ));
    }
    let p = 1 + 2 * n;
    let (ss, se, ah, al) = (
        seg[p] as usize,
        seg[p + 1] as usize,
        (seg[p + 2] >> 4) as u32,
        (seg[p + 2] & 15) as u32,
    );
    // Sequential files' spectral selection is ignored, as libjpeg does.
    if f.progressive
        && (se > 63 || ss > se || (ss == 0 && se != 0) || (ss > 0 && n != 1) || al > 13)
    {
        return Err(corrupt("bad progressive scan parameters"));
    }
    Ok(Scan {
        components,
        ss: if f.progressive { ss } else { 0 },
        se: if f.progressive { se } else { 63 },
        ah,
        al,
    })
}
