//! Fuzzes the TIFF decoder: `TiffImage::parse`, then `decode_into` when the image is small, and
//! the format-sniffing `rico_raster::decode`. Any panic (index out of bounds, overflow, slice
//! length mismatch, ...) is a bug: hostile input must come back as an `Err`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rico_raster::tiff::{self, TiffImage};

/// Decode only images up to this many bytes: `parse` accepts up to `tiff::MAX_DECODED_BYTES`
/// (4 GiB), a documented limit, but filling gigabytes per input would stall the fuzzer and
/// exhaust its RSS limit without finding anything.
const MAX_FUZZ_DECODE: usize = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let small = match TiffImage::parse(data) {
        Ok(image) => {
            let info = image.info();
            let len = image.decoded_len();
            // parse's promises: the limits hold and decoded_len matches the shape.
            assert!(len as u64 <= tiff::MAX_DECODED_BYTES);
            assert!(info.width as u64 <= tiff::MAX_DIMENSION && info.height as u64 <= tiff::MAX_DIMENSION);
            assert!(info.bands as u64 <= tiff::MAX_BANDS);
            assert_eq!(len, info.band_bytes() * info.bands);
            if len <= MAX_FUZZ_DECODE {
                let mut out = vec![0u8; len];
                let _ = image.decode_into(&mut out);
                // A buffer of the wrong size is an error, never a panic.
                assert!(image.decode_into(&mut out[..len - 1]).is_err());
                true
            } else {
                false
            }
        }
        Err(_) => true,
    };
    // Not a TIFF, a TIFF that fails to parse, or a small one: the sniffing entry point too
    // (JPEG and PNG go through here). Big TIFFs are skipped: decode would allocate them whole.
    if small || !tiff::is_tiff(data) {
        if let Ok(raster) = rico_raster::decode(data) {
            assert_eq!(raster.data.len(), raster.info.band_bytes() * raster.info.bands);
        }
    }
});
