//! Strip/tile decompression: LZW, deflate, zstd and PackBits into a caller-sized buffer.
//!
//! Every decoder writes into `dst` and stops once it is full, so a stream that would inflate
//! beyond the strip/tile size (a zip bomb, or just trailing rows rico does not need) never makes
//! us allocate or write more than the block needs. A stream that ends before `dst` is full is
//! an error, as it is for libtiff ("Not enough data").

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use std::io::Read;
use zlib_rs::{Inflate, InflateError, InflateFlush, Status};

use crate::{RasterError, Result};

/// The TIFF Compression tag values rico decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Lzw,
    /// Codes 8 (Adobe) and 32946 (the older PKZIP code): both zlib-wrapped deflate.
    Deflate,
    Zstd,
    PackBits,
}

const SUPPORTED: &str = "rico decodes none, LZW, deflate, zstd, packbits";

impl Compression {
    pub fn from_code(code: u64) -> Result<Compression> {
        Ok(match code {
            1 => Compression::None,
            5 => Compression::Lzw,
            8 | 32946 => Compression::Deflate,
            50000 => Compression::Zstd,
            32773 => Compression::PackBits,
            other => {
                let name = match other {
                    2 => "CCITT RLE",
                    3 => "CCITT Group 3 fax",
                    4 => "CCITT Group 4 fax",
                    6 => "old-style JPEG",
                    7 => "JPEG",
                    9 | 10 => "JBIG",
                    32809 => "ThunderScan",
                    32867 | 34661 => "JBIG",
                    32895..=32898 => "IT8",
                    32908 | 32909 => "Pixar",
                    34676 => "SGI LogL",
                    34677 => "SGI LogLuv",
                    34712 | 33003 | 33005 => "JPEG 2000",
                    34887 => "LERC",
                    34925 => "LZMA",
                    50001 => "WebP",
                    50002 | 52546 => "JPEG XL",
                    _ => "unknown",
                };
                return Err(RasterError::unsupported(format!(
                    "unsupported TIFF compression {other} ({name}); {SUPPORTED}"
                )));
            }
        })
    }

    /// libtiff applies the Predictor tag only for these codecs; with none or PackBits it is
    /// ignored, so rico ignores it too.
    pub fn uses_predictor(self) -> bool {
        matches!(
            self,
            Compression::Lzw | Compression::Deflate | Compression::Zstd
        )
    }

    /// Upper bound on how many bytes `compressed` bytes can decode to (plus slack for headers).
    /// A block whose expected size exceeds this is certainly truncated, and is rejected before
    /// any buffer is sized for it, so a tiny hostile file cannot make rico allocate gigabytes.
    pub fn max_expansion(self, compressed: u64) -> u64 {
        let ratio: u64 = match self {
            Compression::None => 1,
            Compression::PackBits => 64, // 2 bytes -> at most 128
            // Deflate's longest match (258 bytes) costs at least 2 bits: ratio < 1032.
            Compression::Deflate => 1032,
            // A 9..12-bit LZW code expands to at most 4096 bytes.
            Compression::Lzw => 4096,
            // A zstd block decodes to at most 128 KiB and takes at least 4 bytes.
            Compression::Zstd => 32768,
        };
        compressed
            .saturating_mul(ratio)
            .saturating_add(if self == Compression::None {
                0
            } else {
                1 << 17
            })
    }
}

/// Decompressor state reused across the strips/tiles of one image (no per-block setup cost).
#[derive(Default)]
pub(super) struct Decoders {
    inflate: Option<Box<Inflate>>,
    lzw: Option<Box<LzwTable>>,
}

impl Decoders {
    /// Decodes `src` until `dst` is full. `Err` carries a short reason for the error message.
    #[cfg(test)]
    pub fn decompress(
        &mut self,
        compression: Compression,
        src: &[u8],
        dst: &mut [u8],
    ) -> std::result::Result<(), String> {
        let need = dst.len();
        self.decompress_with_room(compression, src, dst, need)
            .map(|_| ())
    }

    /// Decodes `src` until its first `need` bytes of `dst` are full; deflate may write up to
    /// [`INFLATE_SLACK`] bytes beyond them when `dst` has room, so that zlib's fast loop (which
    /// wants 258 bytes of room) runs to the stream's end: 20-30% faster on small strips. Returns
    /// the bytes written (at least `need`).
    pub fn decompress_with_room(
        &mut self,
        compression: Compression,
        src: &[u8],
        dst: &mut [u8],
        need: usize,
    ) -> std::result::Result<usize, String> {
        let room = if compression == Compression::Deflate {
            dst.len().min(need.saturating_add(INFLATE_SLACK))
        } else {
            need
        };
        let dst = &mut dst[..room];
        let written = match compression {
            Compression::None => {
                let n = src.len().min(dst.len());
                dst[..n].copy_from_slice(&src[..n]);
                n
            }
            Compression::Deflate => self.inflate(src, dst, need)?,
            Compression::Lzw => self.lzw(src, dst)?,
            Compression::Zstd => self.zstd(src, dst)?,
            Compression::PackBits => packbits(src, dst),
        };
        if written < need {
            return Err(format!("decoded {written} of {need} bytes"));
        }
        Ok(written)
    }

    /// Inflates into `dst` until the stream ends or `dst` is full; at least `need` bytes must
    /// come out.
    fn inflate(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        need: usize,
    ) -> std::result::Result<usize, String> {
        // TIFF deflate is zlib-wrapped (a window of up to 32 KiB, named in the header).
        let state = self
            .inflate
            .get_or_insert_with(|| Box::new(Inflate::new(true, 15)));
        state.reset(true);
        // All input is at hand and dst is the whole output: one call, as zlib's uncompress.
        let result = state.decompress(src, dst, InflateFlush::Finish);
        let written = usize::try_from(state.total_out()).unwrap_or(usize::MAX);
        match result {
            Ok(Status::StreamEnd) => Ok(written),
            // Output full before the stream's end: the rows rico does not need.
            Ok(_) if written >= need => Ok(written),
            Ok(_) => Err(format!(
                "deflate stream ends after {written} of {need} bytes"
            )),
            // zlib/libdeflate (libtiff) reject a bad checksum even when the output is complete.
            Err(InflateError::DataError)
                if state.error_message() == Some("incorrect data check") =>
            {
                Err("deflate checksum mismatch".into())
            }
            // Like libtiff, accept a stream that breaks off only after the block is complete.
            Err(_) if written >= need => Ok(written),
            Err(e) => Err(format!(
                "deflate error ({}) after {written} bytes",
                state.error_message().unwrap_or(e.as_str())
            )),
        }
    }

    fn lzw(&mut self, src: &[u8], dst: &mut [u8]) -> std::result::Result<usize, String> {
        let table = self
            .lzw
            .get_or_insert_with(|| Box::new([(0, 0); LZW_TABLE_SIZE]));
        // libtiff still reads pre-6.0 "old-style" LZW (LSB-first, no early code-size change),
        // recognised by a first code of 256 written LSB-first.
        if src.len() >= 2 && src[0] == 0 && src[1] & 1 != 0 {
            lzw_decode(LsbReader::new(src), table, dst, 0)
        } else {
            lzw_decode(MsbReader::new(src), table, dst, 1)
        }
    }

    fn zstd(&mut self, src: &[u8], dst: &mut [u8]) -> std::result::Result<usize, String> {
        let mut input = src;
        let mut written = 0;
        // A block may hold several concatenated frames (libzstd's streaming API decodes them all).
        while written < dst.len() && !input.is_empty() {
            if let Some(window) = zstd_window(input) {
                if window > MAX_ZSTD_WINDOW {
                    return Err(format!(
                        "zstd frame window of {window} bytes exceeds libzstd's limit of {MAX_ZSTD_WINDOW}"
                    ));
                }
            }
            // A fresh decoder per frame: ruzstd's `reset` of a used decoder reserves the whole
            // window up front and refuses windows over 100 MiB that libzstd accepts (level 22).
            let mut decoder = FrameDecoder::new();
            match decoder.init(&mut input) {
                Ok(()) => {}
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skip = usize::try_from(length).unwrap_or(usize::MAX);
                    input = input.get(skip..).unwrap_or_default();
                    continue;
                }
                Err(e) => return Err(format!("zstd error ({e}) after {written} bytes")),
            }
            // Decoded bytes within the window are only released at the frame's end, so decoding
            // continues until then or until `dst` is full; the window limit above bounds memory.
            loop {
                let remaining = dst.len() - written;
                let finished = decoder
                    .decode_blocks(&mut input, BlockDecodingStrategy::UptoBytes(remaining))
                    .map_err(|e| format!("zstd error ({e}) after {written} bytes"))?;
                // After the frame's end, `read` drains everything, so a few calls empty it.
                loop {
                    let n = decoder
                        .read(&mut dst[written..])
                        .map_err(|e| format!("zstd error ({e})"))?;
                    written += n;
                    if n == 0 || written == dst.len() {
                        break;
                    }
                }
                if written == dst.len() {
                    return Ok(written);
                }
                if finished {
                    break;
                }
            }
        }
        Ok(written)
    }
}

/// Extra output room given to inflate beyond a block's size (zlib's fast loop needs 258 bytes
/// of room, plus margin).
pub(super) const INFLATE_SLACK: usize = 512;

/// libzstd's default decoder window limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27), which libtiff
/// keeps: frames needing more are rejected by GDAL, and by rico (it also bounds memory).
const MAX_ZSTD_WINDOW: u64 = 1 << 27;

/// The window size a zstd frame header declares (RFC 8878, 3.1.1.1), `None` if `frame` does not
/// start with a complete regular frame header (ruzstd then reports the problem).
fn zstd_window(frame: &[u8]) -> Option<u64> {
    if frame.get(..4)? != [0x28, 0xB5, 0x2F, 0xFD] {
        return None;
    }
    let descriptor = *frame.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let window_descriptor = *frame.get(5)?;
        let base = 1u64 << (10 + u32::from(window_descriptor >> 3));
        return Some(base + base / 8 * u64::from(window_descriptor & 7));
    }
    // Single segment: the window is the frame content size.
    let dictionary_id_bytes = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let content_size_bytes = [1, 2, 4, 8][usize::from(descriptor >> 6)];
    let start = 5 + dictionary_id_bytes;
    let field = frame.get(start..start + content_size_bytes)?;
    let mut le = [0u8; 8];
    le[..content_size_bytes].copy_from_slice(field);
    let size = u64::from_le_bytes(le);
    Some(if content_size_bytes == 2 {
        size + 256
    } else {
        size
    })
}

const LZW_CLEAR: u16 = 256;
const LZW_END: u16 = 257;
const LZW_FIRST: usize = 258;
/// 12-bit codes: 4096 table entries.
const LZW_TABLE_SIZE: usize = 4096;
/// (start, length) in the output of each code's string.
type LzwTable = [(u32, u32); LZW_TABLE_SIZE];

/// Reads LZW codes of a given width from the input; `None` once the input is exhausted.
trait CodeReader {
    fn read(&mut self, width: u32) -> Option<u16>;
}

/// LZW codes read from `src`, most significant bit first (`MSB`) or least.
struct Codes<'a, const MSB: bool> {
    src: &'a [u8],
    pos: usize,
    acc: u64,
    bits: u32,
}

impl<'a, const MSB: bool> Codes<'a, MSB> {
    fn new(src: &'a [u8]) -> Self {
        Codes {
            src,
            pos: 0,
            acc: 0,
            bits: 0,
        }
    }
}

/// MSB-first codes (TIFF 6.0 LZW).
type MsbReader<'a> = Codes<'a, true>;

/// LSB-first codes (old-style libtiff LZW).
type LsbReader<'a> = Codes<'a, false>;

impl CodeReader for MsbReader<'_> {
    #[inline(always)]
    fn read(&mut self, width: u32) -> Option<u16> {
        if self.bits < width {
            // Refill several bytes at once; `acc` keeps its valid bits in the low end.
            if let Some(chunk) = self.src.get(self.pos..self.pos + 4) {
                let word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                self.acc = (self.acc << 32) | u64::from(word);
                self.bits += 32;
                self.pos += 4;
            } else {
                while self.bits < width {
                    let &byte = self.src.get(self.pos)?;
                    self.acc = (self.acc << 8) | u64::from(byte);
                    self.bits += 8;
                    self.pos += 1;
                }
            }
        }
        self.bits -= width;
        Some(((self.acc >> self.bits) & ((1 << width) - 1)) as u16)
    }
}

impl CodeReader for LsbReader<'_> {
    #[inline(always)]
    fn read(&mut self, width: u32) -> Option<u16> {
        while self.bits < width {
            let &byte = self.src.get(self.pos)?;
            self.acc |= u64::from(byte) << self.bits;
            self.bits += 8;
            self.pos += 1;
        }
        let code = (self.acc & ((1 << width) - 1)) as u16;
        self.acc >>= width;
        self.bits -= width;
        Some(code)
    }
}

/// LZW as libtiff decodes it, straight into `dst`; returns the bytes written.
///
/// Every LZW string is an earlier string plus one byte, and that byte always follows the earlier
/// string in the output. So the table stores each code as a (start, length) range of `dst`, and
/// decoding a code is a copy from earlier output: no per-byte chain walking. A literal code's
/// entry points at the byte's first occurrence in `dst` once it has one, so literals and
/// strings take the same branch-free copy: on poorly compressible imagery (Major-TOM bands
/// average under 2 bytes a code) the literal-or-string branch was the loop's main cost.
///
/// `early_change` is 1 for TIFF 6.0 LZW (the code width grows one code early) and 0 for old-style.
#[inline(never)] // kept apart from the other codecs: fewer registers spilled in its loop
fn lzw_decode(
    mut reader: impl CodeReader,
    table: &mut LzwTable,
    dst: &mut [u8],
    early_change: usize,
) -> std::result::Result<usize, String> {
    if u32::try_from(dst.len()).is_err() {
        return Err("LZW block over 4 GiB".into()); // table offsets are u32 (half the cache)
    }
    // Length 0 marks an entry with no string in `dst`: a literal not seen yet, clear, end.
    table[..LZW_FIRST].fill((0, 0));
    let mut width = 9;
    let mut next = LZW_FIRST;
    let mut grow_at = (1 << width) - early_change;
    // The previous code's string in `dst`; length 0 right after a clear code (no previous).
    let (mut prev_start, mut prev_len) = (0usize, 0usize);
    let mut out = 0;
    while out < dst.len() {
        let Some(code) = reader.read(width) else {
            break;
        }; // no end code: libtiff stops here too
        let code = usize::from(code);
        let (from, len) = if code < next {
            let (start, length) = table[code % LZW_TABLE_SIZE];
            (start as usize, length as usize)
        } else {
            (0, 0)
        };
        let room = dst.len() - out;
        let len = if len != 0 && len <= 16 && room >= 16 {
            // A string (or literal) already in the output; short ones dominate: copy a fixed 16
            // bytes (those past the string are overwritten by the codes that follow).
            let mut chunk = [0u8; 16];
            chunk.copy_from_slice(&dst[from..from + 16]);
            dst[out..out + 16].copy_from_slice(&chunk);
            len
        } else if len != 0 {
            let n = len.min(room);
            dst.copy_within(from..from + n, out);
            len
        } else if code < usize::from(LZW_CLEAR) {
            // A literal's first occurrence: later ones copy from here.
            dst[out] = code as u8;
            table[code] = (out as u32, 1);
            1
        } else if code == usize::from(LZW_CLEAR) {
            next = LZW_FIRST;
            width = 9;
            grow_at = (1 << width) - early_change;
            prev_len = 0;
            continue;
        } else if code == usize::from(LZW_END) {
            break;
        } else if code == next && prev_len != 0 {
            // KwKwK: the previous string plus its own first byte. Copy all but the last byte
            // (`prev_start + prev_len == out`), then that first byte.
            let len = prev_len + 1;
            let body = prev_len.min(room);
            dst.copy_within(prev_start..prev_start + body, out);
            if len <= room {
                dst[out + prev_len] = dst[prev_start];
            }
            len
        } else {
            return Err(format!(
                "corrupt LZW code {code} (table has {next}) after {out} bytes"
            ));
        };
        if prev_len != 0 && next < LZW_TABLE_SIZE {
            // New entry: the previous string plus the first byte of this one, which sits right
            // after it in `dst` (offsets fit in u32, checked above; lengths are <= 4097).
            table[next] = (prev_start as u32, (prev_len + 1) as u32);
            next += 1;
            if next >= grow_at && width < 12 {
                width += 1;
                grow_at = (1 << width) - early_change;
            }
        }
        (prev_start, prev_len) = (out, len);
        out += len;
    }
    Ok(out.min(dst.len()))
}

/// PackBits (Macintosh RLE), as libtiff decodes it; returns the bytes written.
fn packbits(src: &[u8], dst: &mut [u8]) -> usize {
    let mut i = 0;
    let mut o = 0;
    while o < dst.len() && i < src.len() {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            // Literal run of n+1 bytes.
            let len = (n as usize + 1).min(dst.len() - o);
            let Some(run) = src.get(i..i + len) else {
                break;
            };
            dst[o..o + len].copy_from_slice(run);
            i += n as usize + 1;
            o += len;
        } else if n != -128 {
            // Repeat the next byte 1-n times (-128 is a no-op).
            let Some(&byte) = src.get(i) else { break };
            i += 1;
            let len = (1 - isize::from(n)) as usize;
            let len = len.min(dst.len() - o);
            dst[o..o + len].fill(byte);
            o += len;
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_decodes_literals_runs_and_noops() {
        // Example from the TIFF 6.0 specification.
        let src = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7,
            0xAA,
        ];
        let expected = [
            0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22,
            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        let mut dst = [0u8; 24];
        assert_eq!(packbits(&src, &mut dst), 24);
        assert_eq!(dst, expected);
        // No-op code, then a literal run; a run cut short by the input stops (as in libtiff).
        let mut dst = [0u8; 4];
        assert_eq!(packbits(&[0x80, 0x00, 7, 0x01, 9], &mut dst), 1);
        assert_eq!(dst[0], 7);
    }

    #[test]
    fn decoders_reject_short_or_garbage_streams() {
        let mut d = Decoders::default();
        let mut dst = [0u8; 64];
        for c in [
            Compression::Lzw,
            Compression::Deflate,
            Compression::Zstd,
            Compression::PackBits,
            Compression::None,
        ] {
            assert!(
                d.decompress(c, &[], &mut dst).is_err(),
                "{c:?} on empty input"
            );
            assert!(
                d.decompress(c, &[0xFF; 16], &mut dst).is_err(),
                "{c:?} on garbage"
            );
        }
    }

    #[test]
    fn lzw_never_panics_on_damaged_streams_and_agrees_with_weezl_on_valid_ones() {
        // Valid streams of several kinds, then the same streams with bits flipped or cut:
        // damaged ones may fail or decode to anything, but never panic or write past `dst`.
        let mut state = 0x9E3779B97F4A7C15u64;
        let mut next = || crate::tiff::tests::xorshift(&mut state);
        let mut d = Decoders::default();
        for round in 0..300 {
            let len = (next() % 20_000) as usize + 1;
            let alphabet = [2u64, 16, 256][round % 3];
            let input: Vec<u8> = (0..len).map(|_| (next() % alphabet) as u8).collect();
            let lzw = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                .encode(&input)
                .unwrap();
            let mut dst = vec![0u8; input.len()];
            d.decompress(Compression::Lzw, &lzw, &mut dst).unwrap();
            assert!(dst == input, "round {round}");
            let mut damaged = lzw.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % damaged.len();
                damaged[at] ^= 1 << (next() % 8);
            }
            damaged.truncate(damaged.len() - (next() as usize) % (damaged.len() / 2 + 1));
            for size in [len, len / 2 + 1, len + 100] {
                let mut out = vec![0u8; size];
                let _ = d.decompress(Compression::Lzw, &damaged, &mut out);
            }
        }
    }

    #[test]
    fn deflate_and_lzw_round_trip_and_cap_output() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut d = Decoders::default();

        let z = miniz_oxide::deflate::compress_to_vec_zlib(&data, 6);
        let mut dst = vec![0u8; data.len()];
        d.decompress(Compression::Deflate, &z, &mut dst).unwrap();
        assert_eq!(dst, data);
        // Asking for fewer bytes than the stream holds stops early (the cap).
        let mut small = vec![0u8; 100];
        d.decompress(Compression::Deflate, &z, &mut small).unwrap();
        assert_eq!(small, data[..100]);

        // LZW: patterned, random (fills the 4096-entry table, forcing clears and 12-bit codes),
        // constant (long KwKwK chains) and mixed data, in both LZW flavours.
        let mut state = 0x2545F4914F6CDD1Du64;
        let random: Vec<u8> = (0..50_000)
            .map(|_| (crate::tiff::tests::xorshift(&mut state) >> 24) as u8)
            .collect();
        let constant = vec![42u8; 70_000];
        let mixed: Vec<u8> = random
            .iter()
            .zip(constant.iter())
            .enumerate()
            .map(|(i, (r, c))| if i % 1000 < 500 { *r } else { *c })
            .collect();
        for input in [&data, &random, &constant, &mixed] {
            for old_style in [false, true] {
                let mut enc = if old_style {
                    weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8)
                } else {
                    weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                };
                let lzw = enc.encode(input).unwrap();
                let mut dst = vec![0u8; input.len()];
                d.decompress(Compression::Lzw, &lzw, &mut dst).unwrap();
                assert!(
                    dst == *input,
                    "old_style={old_style}, {} bytes",
                    input.len()
                );
                // Stopping early is fine, asking for more than the stream holds is not.
                let mut part = vec![0u8; input.len() / 3];
                d.decompress(Compression::Lzw, &lzw, &mut part).unwrap();
                assert!(part == input[..input.len() / 3]);
                let mut too_big = vec![0u8; input.len() + 1];
                assert!(d.decompress(Compression::Lzw, &lzw, &mut too_big).is_err());
                // Truncated streams never panic.
                for cut in [1, 2, 3, lzw.len() / 2, lzw.len() - 1] {
                    let _ = d.decompress(Compression::Lzw, &lzw[..cut], &mut dst);
                }
            }
        }
    }
}
