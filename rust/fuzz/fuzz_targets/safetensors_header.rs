//! Fuzzes the safetensors header validation behind rico's zero-copy numpy views:
//! `rico_core::read::reader::parse_record`. Every tensor it returns must lie inside the value and hold
//! exactly product(shape) elements of its dtype, or a view built on it would read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tensors) = rico_core::read::reader::parse_record(b"key", data) else { return };
    for t in &tensors {
        assert!(t.start <= t.end, "{t:?}: start > end");
        assert!(t.end <= data.len(), "{t:?}: end past the value ({} bytes)", data.len());
        let elements = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let elements = elements.unwrap_or_else(|| panic!("{t:?}: shape product overflows"));
        let bits = elements.checked_mul(t.dtype.bitsize()).expect("bit count overflows");
        // In bits, so sub-byte dtypes (F4, F6) are checked too; for every dtype numpy can view
        // this is end - start == product(shape) * itemsize.
        assert_eq!((t.end - t.start) * 8, bits, "{t:?}: byte range does not match dtype x shape");
        if t.dtype.bitsize() % 8 == 0 {
            assert_eq!(t.end - t.start, elements * (t.dtype.bitsize() / 8), "{t:?}");
        }
    }
    // Tensors do not overlap (sorted by start, each ends before the next begins).
    let mut ranges: Vec<(usize, usize)> = tensors.iter().map(|t| (t.start, t.end)).collect();
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping tensors {:?} and {:?}", w[0], w[1]);
    }
});
