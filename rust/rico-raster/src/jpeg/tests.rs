//! Unit tests of the JPEG decoder's parts, and Pillow-written files decoded to Pillow's pixels.

use super::color::{ycc_tables, ycc_to_rgb};
use super::idct::idct_block;
use super::upsample::{h2v1_fancy, h2v2_fancy};
use super::{decode, is_jpeg};
use crate::ErrorKind;

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
const BASELINE_RESTART: &[u8] = include_bytes!("../../tests/jpeg/baseline_restart.jpg");

/// Pillow's decode of BASELINE_RESTART: sum of all samples, and the first pixel.
const BASELINE_RESTART_SUM: u64 = 116983;
const BASELINE_RESTART_FIRST: [u8; 3] = [0, 6, 0];

/// 24x16 RGB, written by Pillow (quality=40, progressive=True, subsampling=1).
const PROGRESSIVE: &[u8] = include_bytes!("../../tests/jpeg/progressive.jpg");

/// Pillow's decode of PROGRESSIVE: sum of all samples, and the first pixel.
const PROGRESSIVE_SUM: u64 = 116613;
const PROGRESSIVE_FIRST: [u8; 3] = [9, 0, 4];

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
        let r = decode(file).unwrap();
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
        let original = file.to_vec();
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
