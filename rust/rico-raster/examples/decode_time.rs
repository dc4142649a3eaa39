//! Median time to decode one raster file with rico-raster, for profiling the decoders:
//! `cargo run --release -p rico-raster --example decode_time -- FILE [REPEAT]`.
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: decode_time FILE [REPEAT]");
    let repeat: usize = args
        .next()
        .map_or(51, |r| r.parse().expect("REPEAT is a number"));
    let bytes = std::fs::read(&path).expect("readable file");
    let mut times: Vec<f64> = (0..repeat)
        .map(|_| {
            let start = Instant::now();
            let raster = rico_raster::decode(&bytes).expect("decodable file");
            std::hint::black_box(raster);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{path}: median {:.3} ms, best {:.3} ms over {repeat}",
        times[repeat / 2],
        times[0]
    );
}
