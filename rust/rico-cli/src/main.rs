//! The standalone `rico` binary.
#![warn(clippy::undocumented_unsafe_blocks)]

fn main() {
    bound_arenas();
    std::process::exit(rico_cli::run(std::env::args_os()));
}

/// glibc gives every thread that allocates its own arena (up to 8 per core), and each arena
/// keeps what its threads freed: the decoders allocate records that the writer frees, chunk
/// after chunk, so the arenas fill with free, fragmented memory, and peak RSS grew with the
/// dataset. On hard-linked real-size BigEarthNet trees (`benches/scale.py --record-size real`,
/// 2 cores) with the default 64 MB buffer: glibc's defaults took 112 MB at 5,000 patches and
/// 146 MB at 50,000; two arenas took 98 MB and 108 MB, and ran no slower (3.7 s against
/// 5.7 s at 5,000, 90 s against 115 s at 50,000, one noisy run each). The earlier tuning that
/// kept 256 MB of freed memory (`M_TRIM_THRESHOLD`) for fewer page faults is gone: it held
/// 283-348 MB. jemalloc and mimalloc (Debian's builds, preloaded, default settings) held more
/// for the same binary: 276 and 253 MB at 5,000 patches, 298 and 290 MB at 50,000, against
/// 105 and 97 MB for two glibc arenas in that run; so no allocator crate. The Python package
/// leaves its host process's allocator alone.
fn bound_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc malloc's tunables; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
