//! Inputs found by fuzzing (`rust/fuzz/`, see its README), minimised and committed under
//! `tests/fuzz/`. Each must come back as an error of the right kind, without panicking and
//! without allocating the gigabytes its header claims.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rico_raster::{decode, decode_with, ErrorKind, Limits};

/// The system allocator, recording the largest single allocation made by the current thread
/// (tests run on parallel threads, so the record is per thread).
struct Recording;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// Decodes `bytes`, which must fail; returns the error kind. Panics if decoding succeeds or
/// allocates more than 1 MiB at once (every input here is a few hundred bytes).
fn kind(bytes: &[u8]) -> ErrorKind {
    LARGEST.with(|l| l.set(0));
    let result = decode(bytes);
    let largest = LARGEST.with(Cell::get);
    assert!(
        largest <= 1 << 20,
        "a {}-byte input made rico allocate {largest} bytes at once",
        bytes.len()
    );
    match result {
        Ok(r) => panic!("decoded a {:?} raster from a hostile input", r.info),
        Err(e) => e.kind,
    }
}

/// Found by tiff_decode (the sniffing path): a 138-byte PNG whose header claims 134217741 x 11
/// RGB, 4.43 GB decoded, over rico's 4 GiB limit. It was accepted (`png::Limits` bounds only the
/// png crate's own buffers) and the whole output buffer was allocated before the missing image
/// data was noticed. The IHDR CRC is recomputed here: fuzz builds of the png crate skip CRCs.
#[test]
fn png_over_the_size_limit_is_too_large() {
    assert_eq!(
        kind(include_bytes!("fuzz/png_over_limit.png")),
        ErrorKind::TooLarge
    );
}

/// The same input within the limit: 20000 x 20000 RGB (1.2 GB) from 12 bytes of IDAT, which
/// cannot inflate to that even at deflate's maximum ratio. Refused before the buffer is
/// allocated, as TIFF strips/tiles are.
#[test]
fn png_too_small_for_its_header_is_corrupt() {
    assert_eq!(
        kind(include_bytes!("fuzz/png_truncated_huge.png")),
        ErrorKind::Corrupt
    );
}

/// 148 bytes claiming a 32768 x 32768 uint8 image in one never-written (sparse) tile. Sparse
/// blocks need no data, so no codec ratio bounds them: rico allocated and filled 1 GiB (2 GB
/// peak RSS). The size rule (`Limits`: max(64 MiB, 4096 x file size)) refuses it up front.
#[test]
fn tiny_sparse_file_claiming_a_gigabyte_is_too_large() {
    let bytes = include_bytes!("fuzz/sparse_claim_32768.tif");
    assert_eq!(bytes.len(), 148);
    assert_eq!(kind(bytes), ErrorKind::TooLarge);
    let e = decode(bytes).unwrap_err();
    assert!(
        e.message.contains("Limits::max_decoded_bytes") && e.message.contains("148-byte"),
        "{}",
        e.message
    );
    // Raised for a real sparse raster, it reads as zeros: the zeroed buffer is not written, so
    // its pages are never touched.
    let limits = Limits {
        max_decoded_bytes: Some(1 << 30),
    };
    let raster = decode_with(bytes, &limits).unwrap();
    assert_eq!((raster.info.width, raster.info.height), (32768, 32768));
    assert_eq!(raster.data.len(), 1 << 30);
    assert!(raster.data.iter().step_by(1 << 20).all(|&b| b == 0));
    // Raised, but not enough.
    let limits = Limits {
        max_decoded_bytes: Some((1 << 30) - 1),
    };
    assert_eq!(
        decode_with(bytes, &limits).unwrap_err().kind,
        ErrorKind::TooLarge
    );
}
