//! Fuzzes what a small TIFF can make rico allocate: every image `TiffImage::parse` accepts under
//! the default `Limits` is decoded in full, sparse blocks included (`tiff_decode` only decodes
//! images up to 64 MiB, so it never saw a 148-byte file claiming 1 GiB of sparse tiles). The
//! promise checked: decoded bytes stay within `Limits::decoded_bytes_allowed(file size)`, i.e.
//! max(64 MiB, 4096 x file size), and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rico_raster::tiff::TiffImage;
use rico_raster::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let allowed = limits.decoded_bytes_allowed(data.len());
    if let Ok(image) = TiffImage::parse_with(data, &limits) {
        assert!(
            image.decoded_len() as u64 <= allowed,
            "a {}-byte file was accepted decoding to {} bytes (allowed {allowed})",
            data.len(),
            image.decoded_len()
        );
    }
    // The entry point rico uses, allocation included: bounded by the same rule.
    if let Ok(raster) = rico_raster::decode(data) {
        assert!(raster.data.len() as u64 <= allowed);
        assert_eq!(raster.data.len(), raster.info.band_bytes() * raster.info.bands);
    }
});
