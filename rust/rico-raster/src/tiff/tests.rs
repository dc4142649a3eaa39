//! Hand-built TIFFs: layout variants, and hostile headers that must fail cleanly.

use super::*;

const SHORT: u16 = 3;
const LONG: u16 = 4;
const LONG8: u16 = 16;
const ASCII: u16 = 2;

/// Builds a one-IFD TIFF: header, then `data` (pixel blocks), then the IFD, then any tag values
/// that do not fit inline. Tag values are integers (ASCII values are given as bytes).
struct Builder {
    big_endian: bool,
    bigtiff: bool,
    tags: Vec<(u16, u16, Vec<u64>)>,
}

impl Builder {
    fn new(big_endian: bool, bigtiff: bool) -> Self {
        Builder {
            big_endian,
            bigtiff,
            tags: Vec::new(),
        }
    }

    /// Offset at which `data` starts in the built file.
    fn data_offset(&self) -> u64 {
        if self.bigtiff {
            16
        } else {
            8
        }
    }

    fn tag(mut self, tag: u16, field_type: u16, values: &[u64]) -> Self {
        self.tags.push((tag, field_type, values.to_vec()));
        self
    }

    /// ImageWidth and ImageLength (both `field_type`) and BitsPerSample.
    fn size(self, field_type: u16, width: u64, height: u64, bits: &[u64]) -> Self {
        self.tag(256, field_type, &[width])
            .tag(257, field_type, &[height])
            .tag(258, SHORT, bits)
    }

    /// StripOffsets and StripByteCounts, both `field_type`.
    fn strips(self, field_type: u16, offsets: &[u64], counts: &[u64]) -> Self {
        self.tag(273, field_type, offsets)
            .tag(279, field_type, counts)
    }

    /// TileWidth and TileLength (`size_type`), TileOffsets and TileByteCounts (`offset_type`).
    fn tiles(
        self,
        size_type: u16,
        (width, height): (u64, u64),
        offset_type: u16,
        offsets: &[u64],
        counts: &[u64],
    ) -> Self {
        self.tag(322, size_type, &[width])
            .tag(323, size_type, &[height])
            .tag(324, offset_type, offsets)
            .tag(325, offset_type, counts)
    }

    fn int(&self, out: &mut Vec<u8>, v: u64, size: usize) {
        let b = v.to_le_bytes();
        let mut b = b[..size].to_vec();
        if self.big_endian {
            b.reverse();
        }
        out.extend_from_slice(&b);
    }

    fn build(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(if self.big_endian { b"MM" } else { b"II" });
        let off_size = if self.bigtiff { 8 } else { 4 };
        self.int(&mut out, if self.bigtiff { 43 } else { 42 }, 2);
        if self.bigtiff {
            self.int(&mut out, 8, 2);
            self.int(&mut out, 0, 2);
        }
        let ifd_at = self.data_offset() + data.len() as u64;
        self.int(&mut out, ifd_at, off_size);
        out.extend_from_slice(data);

        let mut tags = self.tags.clone();
        tags.sort_by_key(|t| t.0);
        let entry_size = if self.bigtiff { 20 } else { 12 };
        let count_size = if self.bigtiff { 8 } else { 2 };
        let mut extra_at = ifd_at + count_size + (tags.len() * entry_size) as u64 + off_size as u64;
        let mut extra = Vec::new();
        self.int(&mut out, tags.len() as u64, count_size as usize);
        for (tag, field_type, values) in &tags {
            let size = match *field_type {
                SHORT => 2,
                LONG => 4,
                LONG8 => 8,
                _ => 1,
            };
            self.int(&mut out, u64::from(*tag), 2);
            self.int(&mut out, u64::from(*field_type), 2);
            self.int(&mut out, values.len() as u64, off_size);
            let mut value = Vec::new();
            for v in values {
                self.int(&mut value, *v, size);
            }
            if value.len() <= off_size {
                value.resize(off_size, 0);
                out.extend_from_slice(&value);
            } else {
                self.int(&mut out, extra_at, off_size);
                extra_at += value.len() as u64;
                extra.extend_from_slice(&value);
            }
        }
        self.int(&mut out, 0, off_size); // no next IFD
        out.extend_from_slice(&extra);
        out
    }
}

/// A width x height image with `bands` u8/u16 samples in one uncompressed strip.
fn simple(
    big_endian: bool,
    bigtiff: bool,
    width: u64,
    height: u64,
    bits: u64,
    data: &[u8],
) -> Vec<u8> {
    let b = Builder::new(big_endian, bigtiff);
    let at = b.data_offset();
    b.size(LONG, width, height, &[bits])
        .strips(LONG, &[at], &[data.len() as u64])
        .tag(278, LONG, &[height])
        .build(data)
}

fn kind(result: Result<Raster>) -> ErrorKind {
    match result {
        Ok(r) => panic!("expected an error, decoded {:?}", r.info),
        Err(e) => e.kind,
    }
}

#[test]
fn decodes_uncompressed_strip_in_every_byte_order_and_flavour() {
    for big_endian in [false, true] {
        for bigtiff in [false, true] {
            let pixels: Vec<u8> = (1..=6).collect();
            let r = decode(&simple(big_endian, bigtiff, 3, 2, 8, &pixels)).unwrap();
            assert_eq!(
                r.info,
                RasterInfo {
                    width: 3,
                    height: 2,
                    bands: 1,
                    dtype: DType::U8
                }
            );
            assert_eq!(r.data, pixels);

            // u16 samples 0x0102, 0x0304 in the file's byte order come out little-endian.
            let raw = if big_endian {
                [1, 2, 3, 4]
            } else {
                [2, 1, 4, 3]
            };
            let r = decode(&simple(big_endian, bigtiff, 2, 1, 16, &raw)).unwrap();
            assert_eq!(r.info.dtype, DType::U16);
            assert_eq!(r.data, [2, 1, 4, 3]);
        }
    }
}

#[test]
fn deinterleaves_pixel_interleaved_strips() {
    // 2x2 image, 3 int16 bands, pixel-interleaved, big-endian, two strips of one row.
    let b = Builder::new(true, false);
    let at = b.data_offset();
    let values: Vec<i16> = (0..12).map(|i| i * 100 - 500).collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let file = b
        .size(SHORT, 2, 2, &[16, 16, 16])
        .strips(LONG, &[at, at + 12], &[12, 12])
        .tag(277, SHORT, &[3])
        .tag(278, SHORT, &[1])
        .tag(339, SHORT, &[2, 2, 2])
        .build(&data);
    let r = decode(&file).unwrap();
    assert_eq!(
        r.info,
        RasterInfo {
            width: 2,
            height: 2,
            bands: 3,
            dtype: DType::I16
        }
    );
    for band in 0..3 {
        let got: Vec<i16> = r
            .band(band)
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let want: Vec<i16> = (0..4).map(|p| values[p * 3 + band]).collect();
        assert_eq!(got, want, "band {band}");
    }
}

#[test]
fn band_separate_tiles_with_partial_edges_and_sparse_nodata() {
    // 3x3 image, 2 bands, 2x2 tiles (4 tiles per band), planar separate. Band 1's last tile is
    // sparse (byte count 0) and must read as GDAL_NODATA = 7.
    let b = Builder::new(false, true);
    let at = b.data_offset();
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    let mut counts = Vec::new();
    for band in 0..2u8 {
        for tile in 0..4u8 {
            offsets.push(at + data.len() as u64);
            if band == 1 && tile == 3 {
                counts.push(0);
                continue;
            }
            // Tile values: band*100 + tile*10 + position in tile.
            data.extend((0..4).map(|p| band * 100 + tile * 10 + p));
            counts.push(4);
        }
    }
    let file = b
        .size(SHORT, 3, 3, &[8, 8])
        .tag(277, SHORT, &[2])
        .tag(284, SHORT, &[2])
        .tiles(SHORT, (2, 2), LONG8, &offsets, &counts)
        .tag(42113, ASCII, &b"7\0".map(u64::from))
        .build(&data);
    let r = decode(&file).unwrap();
    assert_eq!(r.band(0), [0, 1, 10, 2, 3, 12, 20, 21, 30]);
    assert_eq!(r.band(1), [100, 101, 110, 102, 103, 112, 120, 121, 7]);
}

#[test]
fn deflate_with_horizontal_predictor() {
    // 4x2 uint16, one strip, deflate + predictor 2.
    let values: [u16; 8] = [10, 20, 15, 65535, 0, 1, 2, 3];
    let mut diffs = Vec::new();
    for row in values.chunks(4) {
        let mut prev = 0u16;
        for &v in row {
            diffs.extend_from_slice(&v.wrapping_sub(prev).to_le_bytes());
            prev = v;
        }
    }
    let z = miniz_oxide::deflate::compress_to_vec_zlib(&diffs, 6);
    let file = deflate_4x2_u16(&z).tag(317, SHORT, &[2]).build(&z);
    let r = decode(&file).unwrap();
    let got: Vec<u16> = r
        .data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(got, values);

    // The same stream cut short is corrupt, with a message naming the strip.
    let cut = &z[..z.len() / 2];
    let cut = deflate_4x2_u16(cut).build(cut);
    let e = decode(&cut).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt);
    assert!(e.message.contains("strip 0"), "{}", e.message);
}

/// The tags of a 4x2 uint16 image in one deflate strip, `strip`, placed first in the file.
fn deflate_4x2_u16(strip: &[u8]) -> Builder {
    let b = Builder::new(false, false);
    let at = b.data_offset();
    b.size(SHORT, 4, 2, &[16])
        .tag(259, SHORT, &[8])
        .strips(LONG, &[at], &[strip.len() as u64])
}

#[test]
fn rejects_huge_dimensions_before_allocating() {
    let too_large = [
        // 1M x 1M x 8 bytes: within MAX_DIMENSION per side, far over MAX_DECODED_BYTES.
        Builder::new(false, false)
            .size(LONG, 1 << 20, 1 << 20, &[64])
            .tag(339, SHORT, &[3])
            .strips(LONG, &[8], &[1])
            .build(&[0]),
        // Over MAX_DIMENSION.
        simple(false, false, u64::from(u32::MAX), 1, 8, &[0]),
        // A tile far larger than the 1x1 image, with 60000 interleaved bands.
        Builder::new(false, false)
            .size(LONG, 1, 1, &[8])
            .tag(277, SHORT, &[60000])
            .tiles(LONG, (1 << 20, 16), LONG, &[8], &[1])
            .build(&[0]),
    ];
    for (case, file) in too_large.iter().enumerate() {
        assert_eq!(kind(decode(file)), ErrorKind::TooLarge, "case {case}");
    }
}

#[test]
fn rejects_blocks_past_eof_and_missing_or_short_tables() {
    // Strip offset past the end of the file.
    let file = Builder::new(false, false)
        .size(SHORT, 2, 2, &[8])
        .strips(LONG, &[1_000_000], &[4])
        .build(&[0; 4]);
    let e = decode(&file).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt);
    assert!(e.message.contains("past the end"), "{}", e.message);
    let corrupt = [
        // Byte count running past the end, with offset + count overflowing u64.
        Builder::new(false, true)
            .size(SHORT, 2, 2, &[8])
            .strips(LONG8, &[u64::MAX - 1], &[u64::MAX])
            .build(&[0; 4]),
        // Uncompressed strip shorter than the image needs.
        simple(false, false, 4, 4, 8, &[0; 15]),
        // Two strips needed, one offset given.
        Builder::new(false, false)
            .size(SHORT, 2, 2, &[8])
            .tag(278, SHORT, &[1])
            .strips(LONG, &[8], &[2])
            .build(&[0; 4]),
        // No ImageWidth.
        Builder::new(false, false)
            .tag(257, SHORT, &[2])
            .tag(273, LONG, &[8])
            .build(&[0; 4]),
        // Zero width.
        simple(false, false, 0, 2, 8, &[0; 4]),
    ];
    for (case, file) in corrupt.iter().enumerate() {
        assert_eq!(kind(decode(file)), ErrorKind::Corrupt, "case {case}");
    }
    // Compressed tile that cannot possibly expand to its size: rejected before allocating.
    let file = Builder::new(false, false)
        .size(LONG, 60000, 60000, &[8])
        .tag(259, SHORT, &[32773])
        .strips(LONG, &[8], &[4])
        .build(&[0; 4]);
    // The size rule (Limits) refuses it first; raised, the per-block check still does.
    assert_eq!(kind(decode(&file)), ErrorKind::TooLarge);
    let raised = Limits {
        max_decoded_bytes: Some(MAX_DECODED_BYTES),
    };
    assert_eq!(kind(decode_with(&file, &raised)), ErrorKind::Corrupt);
}

#[test]
fn rejects_garbage_and_bad_directories() {
    assert!(!is_tiff(b"\x89PNG\r\n\x1a\n"));
    assert!(decode(b"II").is_err());
    assert_eq!(kind(decode(b"XX*\0\0\0\0\0")), ErrorKind::NotRaster);
    assert_eq!(kind(decode(b"II\x2b\0\x04\0\0\0")), ErrorKind::Corrupt); // BigTIFF, bad offset size
    assert_eq!(kind(decode(b"II*\0")), ErrorKind::Corrupt); // no IFD offset
    assert_eq!(kind(decode(b"II*\0\0\0\0\0")), ErrorKind::Corrupt); // IFD offset 0
    assert_eq!(kind(decode(b"II*\0\xff\xff\xff\x7f")), ErrorKind::Corrupt); // IFD past EOF
                                                                            // IFD claiming 60000 entries.
    assert_eq!(kind(decode(b"II*\0\x08\0\0\0\x60\xea")), ErrorKind::Corrupt);
    // IFD claiming 10 entries with only one present.
    let mut file = b"II*\0\x08\0\0\0\x0a\0".to_vec();
    file.extend_from_slice(&[0; 12]);
    assert_eq!(kind(decode(&file)), ErrorKind::Corrupt);
    // BigTIFF IFD with an absurd entry count.
    let mut file = b"II\x2b\0\x08\0\0\0\x10\0\0\0\0\0\0\0".to_vec();
    file.extend_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(kind(decode(&file)), ErrorKind::Corrupt);
    // Tag value pointing outside the file (BitsPerSample array of 3 at offset 2^31).
    let b = Builder::new(false, false);
    let mut bad = b
        .size(SHORT, 1, 1, &[8, 8, 8])
        .tag(277, SHORT, &[3])
        .strips(LONG, &[8], &[3])
        .build(&[0; 3]);
    let pos = bad
        .windows(4)
        .position(|w| w == [0x02, 0x01, 0x03, 0x00])
        .unwrap(); // tag 258, SHORT
    bad[pos + 8..pos + 12].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    assert_eq!(kind(decode(&bad)), ErrorKind::Corrupt);
}

#[test]
fn reports_unsupported_features_by_name() {
    let with = |tag: u16, value: u64, bits: u64| {
        Builder::new(false, false)
            .size(SHORT, 1, 1, &[bits])
            .tag(tag, SHORT, &[value])
            .strips(LONG, &[8], &[8])
            .build(&[0; 8])
    };
    let cases = [
        (with(259, 7, 8), "JPEG"),
        (with(259, 34887, 8), "LERC"),
        (with(259, 1234, 8), "compression 1234"),
        (with(262, 6, 8), "YCbCr"),
        (with(262, 5, 8), "CMYK"),
        (with(339, 6, 64), "complex"),
        (with(339, 3, 24), "24-bit floats"),
        (with(262, 1, 1), "1 bits"),
        (with(262, 1, 12), "12 bits"),
    ];
    for (file, needle) in cases {
        let e = decode(&file).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{needle}: {}", e.message);
        assert!(e.message.contains(needle), "{needle}: {}", e.message);
    }
    let e = decode(&with(259, 7, 8)).unwrap_err();
    assert!(
        e.message
            .contains("rico decodes none, LZW, deflate, zstd, packbits"),
        "{}",
        e.message
    );
    // Different BitsPerSample per band.
    let file = Builder::new(false, false)
        .size(SHORT, 1, 1, &[8, 16])
        .tag(277, SHORT, &[2])
        .strips(LONG, &[8], &[3])
        .build(&[0; 3]);
    assert_eq!(kind(decode(&file)), ErrorKind::Unsupported);
}

#[test]
fn predictor_is_ignored_without_a_predictor_codec() {
    // libtiff applies Predictor only for LZW/deflate/zstd: here the raw bytes come back as-is.
    let file = Builder::new(false, false)
        .size(SHORT, 3, 1, &[8])
        .strips(LONG, &[8], &[3])
        .tag(317, SHORT, &[2])
        .build(&[5, 5, 5]);
    assert_eq!(decode(&file).unwrap().data, [5, 5, 5]);
}

#[test]
fn decode_into_checks_the_buffer_and_reuses_it() {
    let file = simple(false, false, 3, 2, 8, &[1, 2, 3, 4, 5, 6]);
    let image = TiffImage::parse(&file).unwrap();
    assert_eq!(image.decoded_len(), 6);
    let mut small = [0u8; 5];
    assert!(image.decode_into(&mut small).is_err());
    let mut out = [0xAAu8; 6];
    image.decode_into(&mut out).unwrap();
    assert_eq!(out, [1, 2, 3, 4, 5, 6]);
}

/// Deterministic xorshift, so the mutation test needs no dependency and is reproducible.
pub(super) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_and_mutated_files_never_panic() {
    // A tiled, deflate + predictor, pixel-interleaved BigTIFF and a striped classic TIFF.
    let mut tile = Vec::new();
    for i in 0..(4 * 4 * 2) {
        tile.extend_from_slice(&(i as u16 * 3).to_le_bytes());
    }
    let z = miniz_oxide::deflate::compress_to_vec_zlib(&tile, 6);
    let b = Builder::new(false, true);
    let at = b.data_offset();
    let tiled = b
        .size(SHORT, 3, 3, &[16, 16])
        .tag(259, SHORT, &[8])
        .tag(277, SHORT, &[2])
        .tag(317, SHORT, &[2])
        .tiles(SHORT, (4, 4), LONG8, &[at], &[z.len() as u64])
        .build(&z);
    decode(&tiled).unwrap();
    let striped = simple(true, false, 5, 3, 16, &[7; 30]);
    decode(&striped).unwrap();

    for file in [&tiled, &striped] {
        for len in 0..file.len() {
            let _ = decode(&file[..len]);
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let mut mutated = file.clone();
            for _ in 0..1 + xorshift(&mut state) % 4 {
                let pos = (xorshift(&mut state) % mutated.len() as u64) as usize;
                mutated[pos] = xorshift(&mut state) as u8;
            }
            let _ = decode(&mutated);
        }
    }
}

#[test]
fn decodes_64_bit_integers_in_either_byte_order() {
    let values: [u64; 3] = [1, u64::MAX - 5, 0x0123_4567_89AB_CDEF];
    for big_endian in [false, true] {
        for (format, dtype) in [(1, DType::U64), (2, DType::I64)] {
            let mut raw = Vec::new();
            for v in values {
                raw.extend_from_slice(&if big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                });
            }
            let b = Builder::new(big_endian, false);
            let at = b.data_offset();
            let file = b
                .size(LONG, 3, 1, &[64])
                .tag(339, SHORT, &[format])
                .strips(LONG, &[at], &[24])
                .build(&raw);
            let r = decode(&file).unwrap();
            assert_eq!(r.info.dtype, dtype);
            let expected: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert_eq!(r.data, expected, "big_endian={big_endian}");
        }
    }
}

#[test]
fn widens_half_floats_to_float32() {
    let halves: [u16; 4] = [0x3c00, 0xc000, 0x0001, 0x7e01];
    let raw: Vec<u8> = halves.iter().flat_map(|h| h.to_be_bytes()).collect();
    let b = Builder::new(true, false);
    let at = b.data_offset();
    let file = b
        .size(LONG, 2, 2, &[16])
        .tag(339, SHORT, &[3])
        .strips(LONG, &[at], &[8])
        .build(&raw);
    let r = decode(&file).unwrap();
    assert_eq!(r.info.dtype, DType::F32);
    assert_eq!(r.data.len(), 16);
    let got: Vec<u32> = r
        .data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(got, [0x3f80_0000, 0xc000_0000, 0x3380_0000, 0x7fc0_2000]);
}

#[test]
fn parallel_decode_matches_serial_decode() {
    // 64 LZW tiles of 128x128 uint16 with a horizontal predictor and a sparse tile: 2 MiB,
    // over PARALLEL_MIN_BYTES. Decoded on a 4-thread pool and on the calling thread alone.
    let (width, height, tile) = (1000usize, 1030usize, 128usize);
    let across = width.div_ceil(tile);
    let down = height.div_ceil(tile);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::new();
    let (mut offsets, mut counts) = (Vec::new(), Vec::new());
    let base = Builder::new(false, false).data_offset();
    for t in 0..across * down {
        if t == 5 {
            offsets.push(0);
            counts.push(0);
            continue;
        }
        let mut raw = Vec::with_capacity(tile * tile * 2);
        for _ in 0..tile * tile {
            let v = (xorshift(&mut state) % 64) as u16;
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let lzw = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .encode(&raw)
            .unwrap();
        offsets.push(base + data.len() as u64);
        counts.push(lzw.len() as u64);
        data.extend_from_slice(&lzw);
    }
    let file = Builder::new(false, false)
        .size(LONG, width as u64, height as u64, &[16])
        .tag(259, SHORT, &[5])
        .tiles(LONG, (tile as u64, tile as u64), LONG, &offsets, &counts)
        .tag(42113, ASCII, b"7\0".map(u64::from).as_slice())
        .build(&data);
    let image = TiffImage::parse(&file).unwrap();
    assert!(image.decoded_len() >= PARALLEL_MIN_BYTES);
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    let parallel = pool(4).install(|| decode(&file)).unwrap();
    let serial = pool(1).install(|| decode(&file)).unwrap();
    assert!(parallel.data == serial.data);
    // The sparse tile (the 6th) holds the nodata value 7.
    let at = (5 * tile) * 2;
    assert_eq!(serial.data[at..at + 2], [7, 0]);
}
