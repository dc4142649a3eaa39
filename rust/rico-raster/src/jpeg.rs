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

/// A Huffman table: canonical codes, decoded with a 9-bit lookup and the JPEG standard's
/// maxcode/valptr method for longer codes.
#[derive(Clone)]
struct Huffman {
    /// For each 9-bit prefix: (code length, symbol), length 0 when the code is longer.
    lookup: Vec<(u8, u8)>,
    /// Largest code of each length (index 1..=16), -1 when none; `maxcode[17]` is a sentinel.
    maxcode: [i32; 18],
    /// `symbols index of the first code of length l` minus that code.
    valoffset: [i32; 17],
    symbols: Vec<u8>,
}

const LOOKUP_BITS: u32 = 9;

impl Huffman {
    fn new(counts: &[u8; 16], symbols: Vec<u8>) -> Result<Huffman> {
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 17];
        let mut lookup = vec![(0u8, 0u8); 1 << LOOKUP_BITS];
        let mut code: i32 = 0;
        let mut k: i32 = 0;
        for len in 1..=16usize {
            let n = counts[len - 1] as i32;
            // The codes of this length must fit in `len` bits.
            if code + n > (1 << len) {
                return Err(corrupt(
                    "a Huffman table has more codes than its code lengths allow",
                ));
            }
            if n > 0 {
                valoffset[len] = k - code;
                for i in 0..n {
                    let c = code + i;
                    if len as u32 <= LOOKUP_BITS {
                        let shift = LOOKUP_BITS - len as u32;
                        let first = (c as usize) << shift;
                        for entry in &mut lookup[first..first + (1 << shift)] {
                            *entry = (len as u8, symbols[(k + i) as usize]);
                        }
                    }
                }
                code += n;
                k += n;
                maxcode[len] = code - 1;
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        Ok(Huffman {
            lookup,
            maxcode,
            valoffset,
            symbols,
        })
    }
}

/// Bits of one scan's entropy-coded data: byte stuffing removed, stops at markers.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    bits: u64,
    /// Real bits in `bits` (from the top).
    count: u32,
    /// A marker was reached; no more data bytes.
    at_marker: bool,
    /// More bits were consumed than the data held.
    overrun: bool,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            bits: 0,
            count: 0,
            at_marker: false,
            overrun: false,
        }
    }

    fn fill(&mut self) {
        while self.count <= 56 && !self.at_marker {
            let Some(&byte) = self.data.get(self.pos) else {
                self.at_marker = true;
                break;
            };
            if byte == 0xFF {
                let next = self.data.get(self.pos + 1).copied();
                match next {
                    Some(0x00) => self.pos += 2,
                    // Fill bytes before a marker.
                    Some(0xFF) => {
                        self.pos += 1;
                        continue;
                    }
                    _ => {
                        self.at_marker = true;
                        break;
                    }
                }
            } else {
                self.pos += 1;
            }
            self.bits |= (byte as u64) << (56 - self.count);
            self.count += 8;
        }
    }

    #[inline]
    fn peek(&mut self, n: u32) -> u32 {
        if self.count < n {
            self.fill();
        }
        (self.bits >> (64 - n)) as u32
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        if n > self.count {
            self.overrun = true;
            self.count = 0;
            self.bits = 0;
        } else {
            self.bits <<= n;
            self.count -= n;
        }
    }

    #[inline]
    fn bits(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek(n);
        self.consume(n);
        v as i32
    }

    #[inline]
    fn bit(&mut self) -> bool {
        self.bits(1) != 0
    }

    /// A value of `s` bits, sign-extended as in JPEG's EXTEND.
    #[inline]
    fn signed(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.bits(s);
        if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    #[inline]
    fn decode(&mut self, table: &Huffman) -> Result<u8> {
        let prefix = self.peek(16);
        let (len, symbol) = table.lookup[(prefix >> (16 - LOOKUP_BITS)) as usize];
        if len > 0 {
            self.consume(len as u32);
            return Ok(symbol);
        }
        for len in LOOKUP_BITS as usize + 1..=16 {
            let code = (prefix >> (16 - len)) as i32;
            if code <= table.maxcode[len] {
                self.consume(len as u32);
                let index = (code + table.valoffset[len]) as usize;
                return table
                    .symbols
                    .get(index)
                    .copied()
                    .ok_or_else(|| corrupt("bad Huffman code"));
            }
        }
        Err(corrupt("bad Huffman code in the entropy-coded data"))
    }

    /// Skips to just after the next RSTn marker (expected at a restart interval's end).
    fn restart(&mut self) -> Result<()> {
        self.bits = 0;
        self.count = 0;
        self.at_marker = false;
        while self.pos + 1 < self.data.len() {
            if self.data[self.pos] == 0xFF {
                let m = self.data[self.pos + 1];
                if (0xD0..=0xD7).contains(&m) {
                    self.pos += 2;
                    return Ok(());
                }
                if m != 0x00 && m != 0xFF {
                    return Err(corrupt("a restart marker is missing"));
                }
            }
            self.pos += 1;
        }
        Err(corrupt("the data ends where a restart marker should be"))
    }
}

#[derive(Clone, Debug)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks per row / rows of blocks allocated (whole MCUs).
    blocks_w: usize,
    blocks_h: usize,
    /// Blocks actually covering the component (for non-interleaved scans).
    real_blocks_w: usize,
    real_blocks_h: usize,
    /// Samples per row / rows of the component's real area (libjpeg's downsampled_width/height).
    width: usize,
    height: usize,
}

struct Frame {
    progressive: bool,
    width: usize,
    height: usize,
    components: Vec<Component>,
    max_h: usize,
    max_v: usize,
    mcus_x: usize,
    mcus_y: usize,
}

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

fn read_dqt(mut seg: &[u8], qt: &mut [[u16; 64]; 4]) -> Result<()> {
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

fn read_dht(
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

fn read_sof(seg: &[u8], progressive: bool) -> Result<Frame> {
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

struct Scan {
    /// (index into the frame's components, DC table, AC table)
    components: Vec<(usize, usize, usize)>,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
}

fn read_sos(seg: &[u8], f: &Frame) -> Result<Scan> {
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

/// Decodes one scan's entropy-coded data starting at `pos`; returns where it ends.
#[allow(clippy::too_many_arguments)]
fn decode_scan(
    bytes: &[u8],
    pos: usize,
    f: &Frame,
    scan: &Scan,
    dc_tables: &[Option<Huffman>; 4],
    ac_tables: &[Option<Huffman>; 4],
    restart_interval: usize,
    coefs: &mut [Vec<i16>],
) -> Result<usize> {
    let mut reader = BitReader::new(bytes, pos);
    let missing = |kind: &str, id: usize| {
        corrupt(format!(
            "scan uses {kind} Huffman table {id}, which is not defined"
        ))
    };
    // Which tables this scan needs.
    let need_dc = scan.ss == 0 && scan.ah == 0;
    let need_ac = scan.se > 0;
    let mut dc: Vec<Option<&Huffman>> = Vec::new();
    let mut ac: Vec<Option<&Huffman>> = Vec::new();
    for &(_, td, ta) in &scan.components {
        dc.push(if need_dc {
            Some(dc_tables[td].as_ref().ok_or_else(|| missing("DC", td))?)
        } else {
            None
        });
        ac.push(if need_ac {
            Some(ac_tables[ta].as_ref().ok_or_else(|| missing("AC", ta))?)
        } else {
            None
        });
    }
    // libjpeg refuses interleaved MCUs of more than 10 blocks (the standard's limit).
    if scan.components.len() > 1
        && scan
            .components
            .iter()
            .map(|&(ci, _, _)| f.components[ci].h * f.components[ci].v)
            .sum::<usize>()
            > 10
    {
        return Err(corrupt(
            "sampling factors too large for an interleaved scan (more than 10 blocks per MCU)",
        ));
    }
    let mut pred = vec![0i32; scan.components.len()];
    let mut eobrun = 0u32;

    // MCU geometry: interleaved scans walk MCUs; a single-component scan walks that
    // component's real blocks one at a time.
    let single = scan.components.len() == 1;
    let (mcus_x, mcus_y) = if single {
        let c = &f.components[scan.components[0].0];
        (c.real_blocks_w, c.real_blocks_h)
    } else {
        (f.mcus_x, f.mcus_y)
    };
    let total = mcus_x * mcus_y;
    let mut block = [0i16; 64];
    for mcu in 0..total {
        if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
            reader.restart()?;
            pred.iter_mut().for_each(|p| *p = 0);
            eobrun = 0;
        }
        let (mx, my) = (mcu % mcus_x, mcu / mcus_x);
        for (si, &(ci, _, _)) in scan.components.iter().enumerate() {
            let c = &f.components[ci];
            let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
            for by in 0..bv {
                for bx in 0..bh {
                    let (x, y) = (mx * bh + bx, my * bv + by);
                    let offset = (y * c.blocks_w + x) * 64;
                    let dst = &mut coefs[ci][offset..offset + 64];
                    if !f.progressive {
                        let (Some(dc), Some(ac)) = (dc[si], ac[si]) else {
                            return Err(missing("DC or AC", 0));
                        };
                        block.fill(0);
                        decode_baseline(&mut reader, dc, ac, &mut pred[si], &mut block)?;
                        dst.copy_from_slice(&block);
                    } else if scan.ss == 0 {
                        if scan.ah == 0 {
                            let Some(table) = dc[si] else {
                                return Err(missing("DC", 0));
                            };
                            let s = reader.decode(table)? as u32;
                            pred[si] = pred[si].wrapping_add(reader.signed(s));
                            dst[0] = (pred[si] << scan.al) as i16;
                        } else if reader.bit() {
                            dst[0] |= (1i32 << scan.al) as i16;
                        }
                    } else {
                        let Some(table) = ac[si] else {
                            return Err(missing("AC", 0));
                        };
                        if scan.ah == 0 {
                            ac_first(&mut reader, table, scan, &mut eobrun, dst)?;
                        } else {
                            ac_refine(&mut reader, table, scan, &mut eobrun, dst)?;
                        }
                    }
                }
            }
        }
        if reader.overrun {
            return Err(corrupt(
                "the entropy-coded data ends early (truncated or damaged file)",
            ));
        }
    }
    // Continue after the scan's data: the next marker.
    let mut end = reader.pos;
    while end + 1 < bytes.len()
        && !(bytes[end] == 0xFF
            && bytes[end + 1] != 0x00
            && !(0xD0..=0xD7).contains(&bytes[end + 1]))
    {
        end += 1;
    }
    Ok(end)
}

#[inline]
fn decode_baseline(
    r: &mut BitReader<'_>,
    dc: &Huffman,
    ac: &Huffman,
    pred: &mut i32,
    block: &mut [i16; 64],
) -> Result<()> {
    let s = r.decode(dc)? as u32;
    *pred = pred.wrapping_add(r.signed(s));
    block[0] = *pred as i16;
    let mut k = 1usize;
    while k < 64 {
        let rs = r.decode(ac)?;
        let (run, size) = ((rs >> 4) as usize, (rs & 15) as u32);
        if size != 0 {
            k += run;
            block[NATURAL_ORDER[k]] = r.signed(size) as i16;
            k += 1;
        } else if run == 15 {
            k += 16;
        } else {
            break;
        }
    }
    Ok(())
}

fn ac_first(
    r: &mut BitReader<'_>,
    table: &Huffman,
    scan: &Scan,
    eobrun: &mut u32,
    block: &mut [i16],
) -> Result<()> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let mut k = scan.ss;
    while k <= scan.se {
        let rs = r.decode(table)?;
        let (run, size) = ((rs >> 4) as u32, (rs & 15) as u32);
        if size != 0 {
            k += run as usize;
            let v = r.signed(size);
            block[NATURAL_ORDER[k]] = (v << scan.al) as i16;
        } else if run == 15 {
            k += 15;
        } else {
            *eobrun = 1 << run;
            if run != 0 {
                *eobrun += r.bits(run) as u32;
            }
            *eobrun -= 1;
            break;
        }
        k += 1;
    }
    Ok(())
}

fn ac_refine(
    r: &mut BitReader<'_>,
    table: &Huffman,
    scan: &Scan,
    eobrun: &mut u32,
    block: &mut [i16],
) -> Result<()> {
    let p1: i32 = 1 << scan.al;
    let m1: i32 = -1 << scan.al;
    let mut k = scan.ss;
    let refine = |r: &mut BitReader<'_>, coef: &mut i16| {
        if r.bit() && (*coef as i32 & p1) == 0 {
            *coef = (*coef as i32 + if *coef >= 0 { p1 } else { m1 }) as i16;
        }
    };
    if *eobrun == 0 {
        while k <= scan.se {
            let rs = r.decode(table)?;
            let (mut run, size) = ((rs >> 4) as i32, (rs & 15) as u32);
            let mut value = 0i32;
            if size != 0 {
                // size must be 1; libjpeg warns and goes on, and so do we.
                value = if r.bit() { p1 } else { m1 };
            } else if run != 15 {
                *eobrun = 1 << run;
                if run != 0 {
                    *eobrun += r.bits(run as u32) as u32;
                }
                break;
            }
            // Skip `run` zero coefficients, refining the non-zero ones passed on the way.
            loop {
                let coef = &mut block[NATURAL_ORDER[k]];
                if *coef != 0 {
                    refine(r, coef);
                } else {
                    if run == 0 {
                        break;
                    }
                    run -= 1;
                }
                k += 1;
                if k > scan.se {
                    break;
                }
            }
            if value != 0 {
                block[NATURAL_ORDER[k]] = value as i16;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        while k <= scan.se {
            let coef = &mut block[NATURAL_ORDER[k]];
            if *coef != 0 {
                refine(r, coef);
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}

// ---- libjpeg's accurate integer IDCT (jidctint.c, jpeg_idct_islow) ----

const CONST_BITS: i64 = 13;
const PASS1_BITS: i64 = 2;
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

#[inline(always)]
fn descale(x: i64, n: i64) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's post-IDCT range limit: the sample (before the +128 level shift) masked to 10 bits
/// and clamped, wrapping exactly as libjpeg's table does for wild values.
fn range_limit_table() -> &'static [u8; 1024] {
    static TABLE: std::sync::OnceLock<[u8; 1024]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u8; 1024];
        for (i, v) in t.iter_mut().enumerate() {
            *v = match i {
                0..=127 => (i + 128) as u8,
                128..=511 => 255,
                512..=895 => 0,
                _ => (i - 896) as u8,
            };
        }
        t
    })
}

/// The even/odd butterfly shared by both passes; returns the 8 outputs before descaling.
#[inline(always)]
fn idct_1d(s: [i64; 8]) -> [i64; 8] {
    let (z2, z3) = (s[2], s[6]);
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (s[0] + s[4]) << CONST_BITS;
    let tmp1 = (s[0] - s[4]) << CONST_BITS;
    let tmp10 = tmp0 + tmp3;
    let tmp13 = tmp0 - tmp3;
    let tmp11 = tmp1 + tmp2;
    let tmp12 = tmp1 - tmp2;

    let (mut t0, mut t1, mut t2, mut t3) = (s[7], s[5], s[3], s[1]);
    let z1 = t0 + t3;
    let z2 = t1 + t2;
    let z3 = t0 + t2;
    let z4 = t1 + t3;
    let z5 = (z3 + z4) * FIX_1_175875602;
    t0 *= FIX_0_298631336;
    t1 *= FIX_2_053119869;
    t2 *= FIX_3_072711026;
    t3 *= FIX_1_501321110;
    let z1 = z1 * -FIX_0_899976223;
    let z2 = z2 * -FIX_2_562915447;
    let z3 = z3 * -FIX_1_961570560 + z5;
    let z4 = z4 * -FIX_0_390180644 + z5;
    t0 += z1 + z3;
    t1 += z2 + z4;
    t2 += z2 + z3;
    t3 += z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// Dequantises and inverse-transforms one block into 8x8 samples at `out` (row stride `stride`).
fn idct_block(coef: &[i16], qt: &[u16; 64], out: &mut [u8], stride: usize) {
    let limit = range_limit_table();
    // libjpeg computes in JLONG (64 bits), keeps the workspace in int and the quantisation
    // table in short; the same widths here give the same numbers even for wild coefficients.
    let mut ws = [0i32; 64];
    for col in 0..8 {
        let q = |row: usize| coef[row * 8 + col] as i64 * qt[row * 8 + col] as i16 as i64;
        if (1..8).all(|row| coef[row * 8 + col] == 0) {
            let dc = (q(0) << PASS1_BITS) as i32;
            for row in 0..8 {
                ws[row * 8 + col] = dc;
            }
            continue;
        }
        let out = idct_1d([q(0), q(1), q(2), q(3), q(4), q(5), q(6), q(7)]);
        for row in 0..8 {
            ws[row * 8 + col] = descale(out[row], CONST_BITS - PASS1_BITS) as i32;
        }
    }
    for row in 0..8 {
        let w = &ws[row * 8..row * 8 + 8];
        let dst = &mut out[row * stride..row * stride + 8];
        if w[1..].iter().all(|&v| v == 0) {
            let v = limit[(descale(w[0] as i64, PASS1_BITS + 3) & 1023) as usize];
            dst.fill(v);
            continue;
        }
        let o = idct_1d(std::array::from_fn(|i| w[i] as i64));
        for i in 0..8 {
            dst[i] = limit[(descale(o[i], CONST_BITS + PASS1_BITS + 3) & 1023) as usize];
        }
    }
}

/// The component's samples: `blocks_w*8` per row, `blocks_h*8` rows (padding included).
fn idct_component(c: &Component, coef: &[i16], qt: &[u16; 64]) -> Vec<u8> {
    let stride = c.blocks_w * 8;
    let mut plane = vec![0u8; stride * c.blocks_h * 8];
    // Only blocks that hold real samples are needed; padding blocks stay 0 and are never read.
    for by in 0..c.real_blocks_h {
        for bx in 0..c.real_blocks_w {
            let block = &coef[(by * c.blocks_w + bx) * 64..][..64];
            idct_block(block, qt, &mut plane[by * 8 * stride + bx * 8..], stride);
        }
    }
    plane
}

// ---- libjpeg-turbo's upsampling (jdsample.c, do_fancy_upsampling = TRUE) ----

/// The component at full size (`f.width` x `f.height`), from its plane of `blocks_w*8` columns.
fn upsample(c: &Component, plane: Vec<u8>, f: &Frame) -> Result<Vec<u8>> {
    let stride = c.blocks_w * 8;
    let (w, h) = (f.width, f.height);
    let (cw, ch) = (c.width, c.height);
    let row = |y: usize| &plane[y * stride..y * stride + cw];
    let mut out = vec![0u8; w * h];
    let (hin, vin, hout, vout) = (c.h, c.v, f.max_h, f.max_v);
    if hin == hout && vin == vout {
        for y in 0..h {
            out[y * w..(y + 1) * w].copy_from_slice(&row(y)[..w]);
        }
    } else if hin * 2 == hout && vin == vout {
        let mut line = vec![0u8; cw * 2];
        for y in 0..h {
            if cw > 2 {
                h2v1_fancy(row(y), &mut line);
            } else {
                row(y)
                    .iter()
                    .enumerate()
                    .for_each(|(i, &v)| line[2 * i..2 * i + 2].fill(v));
            }
            out[y * w..(y + 1) * w].copy_from_slice(&line[..w]);
        }
    } else if hin == hout && vin * 2 == vout {
        // h1v2: each output row mixes its input row (3/4) with the nearer neighbour (1/4).
        for y in 0..h {
            let (iy, below) = (y / 2, y % 2 == 1);
            let near = row(iy);
            let other = row(if below {
                (iy + 1).min(ch - 1)
            } else {
                iy.saturating_sub(1)
            });
            let bias = if below { 2 } else { 1 };
            for x in 0..w {
                out[y * w + x] = ((near[x] as u32 * 3 + other[x] as u32 + bias) >> 2) as u8;
            }
        }
    } else if hin * 2 == hout && vin * 2 == vout {
        let mut line = vec![0u8; cw * 2];
        for y in 0..h {
            let (iy, below) = (y / 2, y % 2 == 1);
            let other = if below {
                (iy + 1).min(ch - 1)
            } else {
                iy.saturating_sub(1)
            };
            if cw > 2 {
                h2v2_fancy(row(iy), row(other), &mut line);
            } else {
                row(iy)
                    .iter()
                    .enumerate()
                    .for_each(|(i, &v)| line[2 * i..2 * i + 2].fill(v));
            }
            out[y * w..(y + 1) * w].copy_from_slice(&line[..w]);
        }
    } else if hout % hin == 0 && vout % vin == 0 {
        // Generic integral factors: box replication (int_upsample).
        let (fx, fy) = (hout / hin, vout / vin);
        for y in 0..h {
            let src = row(y / fy);
            for x in 0..w {
                out[y * w + x] = src[x / fx];
            }
        }
    } else {
        return Err(unsupported(format!(
            "sampling factors {}x{} of a component against {}x{} are not supported",
            c.h, c.v, hout, vout
        )));
    }
    Ok(out)
}

/// h2v1_fancy_upsample: 3/4 of the nearer sample plus 1/4 of the further one.
fn h2v1_fancy(input: &[u8], out: &mut [u8]) {
    let n = input.len();
    let v = |i: usize| input[i] as u32;
    out[0] = input[0];
    out[1] = ((v(0) * 3 + v(1) + 2) >> 2) as u8;
    for i in 1..n - 1 {
        let c = v(i) * 3;
        out[2 * i] = ((c + v(i - 1) + 1) >> 2) as u8;
        out[2 * i + 1] = ((c + v(i + 1) + 2) >> 2) as u8;
    }
    out[2 * n - 2] = ((v(n - 1) * 3 + v(n - 2) + 1) >> 2) as u8;
    out[2 * n - 1] = input[n - 1];
}

/// h2v2_fancy_upsample for one output row: `near` is the input row, `far` the vertical
/// neighbour on the output row's side.
fn h2v2_fancy(near: &[u8], far: &[u8], out: &mut [u8]) {
    let n = near.len();
    let sum = |i: usize| near[i] as i32 * 3 + far[i] as i32;
    let mut this = sum(0);
    let mut next = sum(1);
    out[0] = ((this * 4 + 8) >> 4) as u8;
    out[1] = ((this * 3 + next + 7) >> 4) as u8;
    let mut last = this;
    this = next;
    for i in 1..n - 1 {
        next = sum(i + 1);
        out[2 * i] = ((this * 3 + last + 8) >> 4) as u8;
        out[2 * i + 1] = ((this * 3 + next + 7) >> 4) as u8;
        last = this;
        this = next;
    }
    out[2 * n - 2] = ((this * 3 + last + 8) >> 4) as u8;
    out[2 * n - 1] = ((this * 4 + 7) >> 4) as u8;
}

// ---- jdcolor.c: YCbCr -> RGB with libjpeg's fixed-point tables ----

const SCALEBITS: i32 = 16;
const ONE_HALF: i32 = 1 << (SCALEBITS - 1);

const fn fix(x: f64) -> i32 {
    (x * (1 << SCALEBITS) as f64 + 0.5) as i32
}

struct YccTables {
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    cr_g: [i32; 256],
    cb_g: [i32; 256],
}

fn ycc_tables() -> &'static YccTables {
    static TABLES: std::sync::OnceLock<YccTables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = YccTables {
            cr_r: [0; 256],
            cb_b: [0; 256],
            cr_g: [0; 256],
            cb_g: [0; 256],
        };
        for i in 0..256 {
            let x = i as i32 - 128;
            t.cr_r[i] = (fix(1.40200) * x + ONE_HALF) >> SCALEBITS;
            t.cb_b[i] = (fix(1.77200) * x + ONE_HALF) >> SCALEBITS;
            t.cr_g[i] = -fix(0.71414) * x;
            t.cb_g[i] = -fix(0.34414) * x + ONE_HALF;
        }
        t
    })
}

/// Band-sequential R, G, B planes from full-size Y, Cb, Cr planes.
fn ycc_to_rgb(y: &[u8], cb: &[u8], cr: &[u8]) -> Vec<u8> {
    let t = ycc_tables();
    let n = y.len();
    let mut out = vec![0u8; 3 * n];
    let (r, rest) = out.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    for i in 0..n {
        let (yy, cbi, cri) = (y[i] as i32, cb[i] as usize, cr[i] as usize);
        r[i] = clamp(yy + t.cr_r[cri]);
        g[i] = clamp(yy + ((t.cb_g[cbi] + t.cr_g[cri]) >> SCALEBITS));
        b[i] = clamp(yy + t.cb_b[cbi]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idct_of_a_dc_only_block_is_flat() {
        let mut coef = [0i16; 64];
        coef[0] = 8; // 8 * q 2 = 16 -> +2 after the level shift
        let qt = [2u16; 64];
        let mut out = [0u8; 64];
        idct_block(&coef, &qt, &mut out, 8);
        assert!(out.iter().all(|&v| v == 130), "{out:?}");
    }

    #[test]
    fn fancy_upsampling_matches_libjpeg_formulas() {
        let mut out = [0u8; 6];
        h2v1_fancy(&[10, 20, 40], &mut out);
        assert_eq!(out, [10, 13, 17, 25, 35, 40]);
        let mut out = [0u8; 6];
        h2v2_fancy(&[10, 20, 40], &[10, 20, 40], &mut out);
        assert_eq!(out, [10, 12, 18, 25, 35, 40]);
    }

    #[test]
    fn ycc_tables_are_libjpegs() {
        let t = ycc_tables();
        assert_eq!((t.cr_r[255], t.cb_b[0], t.cr_r[0]), (178, -227, -179));
        assert_eq!(ycc_to_rgb(&[128], &[128], &[128]), vec![128, 128, 128]);
    }

    /// 24x16 RGB, written by Pillow (quality=40, subsampling=2, restart_marker_blocks=2).
    const BASELINE_RESTART: &[&str] = &[
        "ffd8ffe000104a46494600010100000100010000ffdb004300140e0f120f0d14121012171514181e32211e1c1c1e3d2c",
        "2e243249404c4b47404645505a736250556d5645466488656d777b8182814e608d978c7d96737e817cffdb0043011517",
        "171e1a1e3b21213b7c5346537c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c",
        "7c7c7c7c7c7c7c7c7c7c7c7c7c7cffc00011080010001803012200021101031101ffc4001f0000010501010101010100",
        "000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d010203000411051221",
        "31410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a",
        "434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596979899",
        "9aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1",
        "f2f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000000102030405060708090a0bffc400b51100",
        "020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c109233352f015",
        "6272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a63646566676869",
        "6a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4",
        "c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffdd00040002ffda000c0301000211",
        "0311003f00e763b4f6ab71d9fb5694369ed57a1b3f6ae784b9cca862ec654765ed45740b6c178c64d14e52a317693d4f",
        "629e2df29fffd9",
    ];

    /// Pillow's decode of BASELINE_RESTART: sum of all samples, and the first pixel.
    const BASELINE_RESTART_SUM: u64 = 116983;
    const BASELINE_RESTART_FIRST: [u8; 3] = [0, 6, 0];

    /// 24x16 RGB, written by Pillow (quality=40, progressive=True, subsampling=1).
    const PROGRESSIVE: &[&str] = &[
        "ffd8ffe000104a46494600010100000100010000ffdb004300140e0f120f0d14121012171514181e32211e1c1c1e3d2c",
        "2e243249404c4b47404645505a736250556d5645466488656d777b8182814e608d978c7d96737e817cffdb0043011517",
        "171e1a1e3b21213b7c5346537c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c",
        "7c7c7c7c7c7c7c7c7c7c7c7c7c7cffc20011080010001803012100021101031101ffc400170001010101000000000000",
        "00000000000003000205ffc4001801000203000000000000000000000000000204000105ffda000c0301000210031000",
        "0001e7281351ddb8e4356e7fffc40017100003010000000000000000000000000000010212ffda000801010001050252",
        "28140a45064fffc40017110101010100000000000000000000000002000121ffda0008010301013f010ac70515cbffc4",
        "001b11000202030100000000000000000000000002011103122131ffda0008010201013f01f4d44e8d9a166a8fffc400",
        "14100100000000000000000000000000000020ffda0008010100063f025fffc400171000030100000000000000000000",
        "00000000011120ffda0008010100013f21ca1ca0ffda000c0301000200030000001050c0ffc400181100020300000000",
        "0000000000000000000010112131ffda0008010301013f103a93268fffc4001711000301000000000000000000000000",
        "0000011121ffda0008010201013f10a3430604a87fffc4001810010101010100000000000000000000000061011121ff",
        "da0008010100013f108a08a2831f1ceebfffd9",
    ];

    /// Pillow's decode of PROGRESSIVE: sum of all samples, and the first pixel.
    const PROGRESSIVE_SUM: u64 = 116613;
    const PROGRESSIVE_FIRST: [u8; 3] = [9, 0, 4];

    fn unhex(lines: &[&str]) -> Vec<u8> {
        let hex: String = lines.concat();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn pillow_files_decode_to_pillows_pixels() {
        for (file, sum, first) in [
            (
                BASELINE_RESTART,
                BASELINE_RESTART_SUM,
                BASELINE_RESTART_FIRST,
            ),
            (PROGRESSIVE, PROGRESSIVE_SUM, PROGRESSIVE_FIRST),
        ] {
            let r = decode(&unhex(file)).unwrap();
            assert_eq!((r.info.width, r.info.height, r.info.bands), (24, 16, 3));
            assert_eq!(r.data.iter().map(|&v| v as u64).sum::<u64>(), sum);
            assert_eq!([r.data[0], r.data[24 * 16], r.data[2 * 24 * 16]], first);
        }
    }

    /// Truncated and mutated files come back as errors or as images, never as panics or hangs.
    #[test]
    fn mutated_files_never_panic() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for file in [BASELINE_RESTART, PROGRESSIVE] {
            let original = unhex(file);
            for _ in 0..3000 {
                let mut bytes = original.clone();
                match next() % 3 {
                    0 => bytes.truncate((next() as usize) % bytes.len()),
                    _ => {
                        for _ in 0..1 + next() % 4 {
                            let i = (next() as usize) % bytes.len();
                            bytes[i] = next() as u8;
                        }
                    }
                }
                let _ = decode(&bytes);
            }
        }
    }

    #[test]
    fn not_jpeg_and_truncated_are_errors() {
        assert!(!is_jpeg(b"\x89PNG"));
        assert_eq!(
            decode(b"\xFF\xD8\xFF").unwrap_err().kind,
            ErrorKind::Corrupt
        );
        assert_eq!(
            decode(b"\xFF\xD8\xFF\xC0\x00\x0B\x0C\x00\x01\x00\x01\x01\x01\x11\x00")
                .unwrap_err()
                .kind,
            ErrorKind::Unsupported
        );
    }
}
