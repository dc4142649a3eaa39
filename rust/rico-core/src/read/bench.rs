//! `rico bench`: what a machine and its storage deliver from a converted database — records/s
//! and MB/s for sequential and random record reads and for batches — so that a user can
//! compare local SSD, NFS or a parallel filesystem before training.
//!
//! A record read is what every training loader pays: LMDB `get`, the safetensors header
//! checks, and one byte of every 4 KiB page of the value touched, so that the OS really brings
//! the bytes in (a zero-copy view alone would not). Batches are [`crate::read::batch::assemble`].

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::base::error::{Error, Result};
use crate::read::batch::{self, BatchSpec, Resample};
use crate::read::reader::{parse_record, ColdStats, Database};

/// How to run the benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Bands of the batches; `None` = the bands of the first record.
    pub bands: Option<Vec<String>>,
    /// Side of the batches; `None` = the bands' own shape, or the largest side when they differ.
    pub size: Option<usize>,
    /// Records per batch.
    pub batch: usize,
    /// Reader threads; `None` = one per core.
    pub threads: Option<usize>,
    /// Seconds each measurement runs (at least one record or batch is always done).
    pub seconds: f64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            bands: None,
            size: None,
            batch: 32,
            threads: None,
            seconds: 2.0,
        }
    }
}

/// One measurement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurement {
    /// Records read (for batches: records assembled into batches).
    pub records: u64,
    /// Bytes read: record values (for batches: the selected bands' bytes).
    pub bytes: u64,
    /// Wall-clock seconds the measurement ran.
    pub seconds: f64,
    /// Records read over the records available: above 1, later passes came from the page cache.
    pub passes: f64,
}

impl Measurement {
    /// Records per second of wall-clock time.
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// Bytes per second of wall-clock time, in MB (10^6 bytes).
    pub fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// What `rico bench` reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Records in the database.
    pub records: u64,
    /// Size of the database files (`data.mdb` of every shard).
    pub bytes: u64,
    /// Reader threads used.
    pub threads: usize,
    /// Seconds each measurement was asked to run.
    pub seconds: f64,
    /// Keys in LMDB order.
    pub sequential: Measurement,
    /// Keys in a fixed pseudo-random order.
    pub random: Measurement,
    /// `batch` records at a time, keys in the random order, records lacking a band skipped.
    pub batches: Measurement,
    /// The storage's own figure: random reads of one record's size straight from `data.mdb`
    /// (O_DIRECT, bypassing the page cache) at queue depth 32; `None` where the filesystem has
    /// no O_DIRECT. Random record reads on a cold cache should come near it.
    pub device: Option<Measurement>,
    /// Batches through a loader's prefetcher (first, on whatever the page cache holds):
    /// records not resident take the cold path, resident ones are read in place.
    pub loader: Measurement,
    /// Which path the loader's records took, and the queue depth measured.
    pub cold_path: ColdStats,
    /// The batch bands, in channel order.
    pub bands: Vec<String>,
    /// The `(H, W)` of the batches.
    pub shape: (usize, usize),
    /// Records per batch.
    pub batch: usize,
    /// Batches assembled.
    pub batch_count: u64,
    /// A checksum of the bytes touched, so that no read can be optimised away.
    pub checksum: u64,
}

impl Report {
    /// The table `rico bench` prints.
    pub fn text(&self, path: &std::path::Path) -> String {
        let mut s = format!(
            "{}: {} records, {:.1} MB; {} thread{}, {:.1} s per measurement\n",
            path.display(),
            self.records,
            self.bytes as f64 / 1e6,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.seconds
        );
        s.push_str(&format!(
            "  {:<44} {:>12} {:>10} {:>8}\n",
            "", "records/s", "MB/s", "passes"
        ));
        let line = |name: String, m: &Measurement| {
            format!(
                "  {name:<44} {:>12.0} {:>10.1} {:>8.2}\n",
                m.records_per_second(),
                m.mb_per_second(),
                m.passes
            )
        };
        s.push_str(&line("sequential reads".into(), &self.sequential));
        s.push_str(&line("random reads".into(), &self.random));
        let bands = if self.bands.len() > 4 {
            format!("{} bands", self.bands.len())
        } else {
            self.bands.join(",")
        };
        s.push_str(&line(
            format!(
                "batches of {} ({bands} at {}x{} float32)",
                self.batch, self.shape.0, self.shape.1
            ),
            &self.batches,
        ));
        s.push_str(&line(
            format!("loader batches of {} (run first)", self.batch),
            &self.loader,
        ));
        if let Some(device) = &self.device {
            s.push_str(&line(
                "device: random reads of a record's size, QD32".into(),
                device,
            ));
        }
        s.push_str(&format!("  {}\n", cold_path_text(&self.cold_path)));
        s.push_str(
            "  reads: get + header check + a byte of every 4 KiB page; MB/s of record bytes (batches: of the bands read).\n  \
             passes > 1: the rest came from the page cache. For cold-storage figures use a database larger than\n  \
             memory, or drop the cache first (Linux, as root: sync; echo 3 > /proc/sys/vm/drop_caches).\n",
        );
        s
    }

    /// The report as a JSON object (what `rico bench --json` prints).
    pub fn json(&self, path: &std::path::Path) -> String {
        let m = |m: &Measurement| {
            serde_json::json!({
                "records": m.records,
                "bytes": m.bytes,
                "seconds": m.seconds,
                "records_per_second": m.records_per_second(),
                "mb_per_second": m.mb_per_second(),
                "passes": m.passes,
            })
        };
        serde_json::json!({
            "path": path.to_string_lossy(),
            "records": self.records,
            "bytes": self.bytes,
            "threads": self.threads,
            "seconds": self.seconds,
            "bands": self.bands,
            "size": [self.shape.0, self.shape.1],
            "batch": self.batch,
            "batch_count": self.batch_count,
            "sequential": m(&self.sequential),
            "random": m(&self.random),
            "batches": m(&self.batches),
            "device": self.device.as_ref().map(m),
            "loader": m(&self.loader),
            "cold_path": cold_path_json(&self.cold_path),
            "checksum": self.checksum,
        })
        .to_string()
    }
}

const PAGE: usize = 4096;

/// Reads the record `key` as a loader would: get, header checks, every page touched.
/// Returns (value bytes, checksum).
fn read_record(db: &Database, key: &[u8]) -> Result<(u64, u64)> {
    let value = db
        .get(key)?
        .ok_or_else(|| Error::data(format!("key {:?} vanished", String::from_utf8_lossy(key))))?;
    let tensors = parse_record(key, &value)?;
    let mut sum = tensors.len() as u64;
    for i in (0..value.len()).step_by(PAGE) {
        sum = sum.wrapping_mul(31).wrapping_add(value[i] as u64);
    }
    if let Some(&last) = value.last() {
        sum = sum.wrapping_add(last as u64);
    }
    Ok((value.len() as u64, std::hint::black_box(sum)))
}

/// A fixed pseudo-random permutation of `0..n` (splitmix64 + Fisher-Yates): the same order on
/// every run, so two machines read the same records.
fn shuffled(n: usize) -> Vec<usize> {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Reads records in `order` (cycling) for `seconds`, `threads` at a time.
fn read_for(
    db: &Database,
    keys: &[Vec<u8>],
    order: &[usize],
    seconds: f64,
    pool: Option<&rayon::ThreadPool>,
) -> Result<(Measurement, u64)> {
    let chunk = pool.map_or(16, |p| 64 * p.current_num_threads());
    let start = Instant::now();
    let (mut records, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
    let mut position = 0usize;
    while records == 0 || start.elapsed().as_secs_f64() < seconds {
        let take: Vec<usize> = (0..chunk)
            .map(|i| order[(position + i) % order.len()])
            .collect();
        position = (position + chunk) % order.len();
        // As the loader does: the chunk's records are asked from storage at once, so that a
        // cold read keeps many in flight instead of faulting 4 KiB pages one by one.
        let wanted: Vec<Vec<u8>> = take.iter().map(|&i| keys[i].clone()).collect();
        db.will_need(&wanted);
        let (b, c) = match pool {
            None => take.iter().try_fold((0u64, 0u64), |(b, c), &i| {
                read_record(db, &keys[i]).map(|(nb, nc)| (b + nb, c.wrapping_add(nc)))
            })?,
            Some(pool) => pool.install(|| {
                take.par_iter()
                    .map(|&i| read_record(db, &keys[i]))
                    .try_reduce(
                        || (0, 0),
                        |(b1, c1), (b2, c2)| Ok((b1 + b2, c1.wrapping_add(c2))),
                    )
            })?,
        };
        records += take.len() as u64;
        bytes += b;
        checksum = checksum.wrapping_add(c);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((
        Measurement {
            records,
            bytes,
            seconds,
            passes: records as f64 / keys.len() as f64,
        },
        checksum,
    ))
}

/// Bytes of `bands` in the record `key`, or `None` when it lacks one of them.
fn band_bytes(db: &Database, key: &[u8], bands: &[String]) -> Result<Option<u64>> {
    let Some((_, tensors)) = db.record(key)? else {
        return Ok(None);
    };
    let mut total = 0u64;
    for band in bands {
        match tensors.iter().find(|t| &t.name == band) {
            Some(t) => total += (t.end - t.start) as u64,
            None => return Ok(None),
        }
    }
    Ok(Some(total))
}

/// The batch bands, the size to resample to (if any) and the `(H, W)` of the batches: as
/// asked, or from the first record (in key order) that has the bands.
type Layout = (Vec<String>, Option<usize>, (usize, usize));

fn batch_layout(db: &Database, keys: &[Vec<u8>], options: &BenchOptions) -> Result<Layout> {
    let first_with =
        |bands: Option<&[String]>| -> Result<Option<Vec<crate::read::reader::TensorRef>>> {
            for key in keys {
                let Some((_, tensors)) = db.record(key)? else {
                    continue;
                };
                match bands {
                    None => return Ok(Some(tensors)),
                    Some(bands) if bands.iter().all(|b| tensors.iter().any(|t| &t.name == b)) => {
                        return Ok(Some(tensors))
                    }
                    Some(_) => {}
                }
            }
            Ok(None)
        };
    let tensors = first_with(options.bands.as_deref())?.ok_or_else(|| match &options.bands {
        Some(bands) => Error::usage(format!(
            "no record of the database has all the bands {}",
            bands.join(", ")
        ))
        .at(db.path())
        .hint("`rico info PATH` lists the bands and their shapes"),
        None => Error::usage("the database is empty").at(db.path()),
    })?;
    let bands: Vec<String> = match &options.bands {
        Some(b) => b.clone(),
        None => tensors.iter().map(|t| t.name.clone()).collect(),
    };
    if let Some(size) = options.size {
        return Ok((bands, Some(size), (size, size)));
    }
    let mut shapes = Vec::new();
    for band in &bands {
        let t = tensors
            .iter()
            .find(|t| &t.name == band)
            .ok_or_else(|| Error::usage(format!("no band {band}")))?;
        match t.shape.as_slice() {
            [h, w] => shapes.push((*h, *w)),
            other => {
                return Err(Error::usage(format!(
                "band {band} has shape {other:?}; batches need 2-D bands; pick others with --bands"
            )))
            }
        }
    }
    if shapes.iter().all(|s| *s == shapes[0]) {
        Ok((bands, None, shapes[0]))
    } else {
        let side = shapes.iter().map(|(h, w)| (*h).max(*w)).max().unwrap_or(1);
        Ok((bands, Some(side), (side, side)))
    }
}

/// Assembles batches of records in the random `order` (cycling) for `seconds`.
#[allow(clippy::too_many_arguments)]
fn batches_for(
    db: &Database,
    keys: &[Vec<u8>],
    order: &[usize],
    spec: &BatchSpec,
    shape: (usize, usize),
    batch: usize,
    seconds: f64,
    threads: Option<usize>,
) -> Result<(Measurement, u64, u64)> {
    // Per key: None = not looked at yet, Some(0) = lacks a band, Some(n) = n bytes of the bands.
    let mut eligible: Vec<Option<u64>> = vec![None; keys.len()];
    let per_record = spec.bands.len() * shape.0 * shape.1;
    let mut out = vec![0f32; batch * per_record];
    let start = Instant::now();
    let (mut records, mut bytes, mut batches, mut checksum) = (0u64, 0u64, 0u64, 0u64);
    let mut position = 0usize;
    let mut scanned_without_hit = 0usize;
    while batches == 0 || start.elapsed().as_secs_f64() < seconds {
        let mut group: Vec<Vec<u8>> = Vec::with_capacity(batch);
        while group.len() < batch {
            let i = order[position];
            position = (position + 1) % order.len();
            let n = match eligible[i] {
                Some(n) => n,
                None => {
                    let n = band_bytes(db, &keys[i], &spec.bands)?.unwrap_or(0);
                    eligible[i] = Some(n);
                    n
                }
            };
            if n > 0 {
                group.push(keys[i].clone());
                bytes += n;
                scanned_without_hit = 0;
            } else {
                scanned_without_hit += 1;
                if scanned_without_hit > keys.len() {
                    return Err(Error::usage(format!(
                        "no record has all the bands {}",
                        spec.bands.join(", ")
                    )));
                }
            }
        }
        let out = &mut out[..group.len() * per_record];
        batch::assemble(db, &group, spec, shape, out, threads)?;
        checksum = checksum.wrapping_add(out[out.len() / 2].to_bits() as u64);
        records += group.len() as u64;
        batches += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let available = eligible
        .iter()
        .filter(|e| e.is_some_and(|n| n > 0))
        .count()
        .max(1);
    Ok((
        Measurement {
            records,
            bytes,
            seconds,
            passes: records as f64 / available as f64,
        },
        batches,
        checksum,
    ))
}

/// Which path a loader's records took and why, in words.
pub fn cold_path_text(c: &ColdStats) -> String {
    let io = if c.buffered {
        "pread through the page cache (no O_DIRECT here)"
    } else {
        "pread, O_DIRECT"
    };
    let depth = if c.depth > 0 {
        format!(
            "queue depth {} (measured: {} reads/s)",
            c.depth, c.reads_per_second
        )
    } else {
        "queue depth not measured yet".into()
    };
    format!(
        "cold path: {} records were not in the page cache: read whole ({io}, {depth}); {} were \
         resident: read in place (zero-copy); {} left to the map (failed or short read)",
        c.staged, c.resident, c.fallback
    )
}

fn cold_path_json(c: &ColdStats) -> serde_json::Value {
    serde_json::json!({
        "staged": c.staged,
        "resident": c.resident,
        "fallback": c.fallback,
        "depth": c.depth,
        "reads_per_second": c.reads_per_second,
        "buffered": c.buffered,
        "text": cold_path_text(c),
    })
}

/// Batches of `batch` records in the random `order` through a loader's prefetcher (read-ahead
/// and cold path), for `seconds` at most: records lacking a band are left out.
fn loader_for(
    db: &Arc<Database>,
    keys: &[Vec<u8>],
    order: &[usize],
    spec: &BatchSpec,
    batch: usize,
    seconds: f64,
    threads: usize,
) -> Result<Measurement> {
    use crate::read::batch::fill::BatchDtype;
    use crate::read::batch::prefetch::{Plan, Prefetcher};
    // At most 64 batches; each record's header is read to check its bands.
    let mut batches: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut group = Vec::with_capacity(batch);
    let mut bytes = 0u64;
    for &i in order {
        if batches.len() >= 64 {
            break;
        }
        if let Some(n) = band_bytes(db, &keys[i], &spec.bands)?.filter(|n| *n > 0) {
            group.push(keys[i].clone());
            bytes += n;
            if group.len() == batch {
                batches.push(std::mem::take(&mut group));
            }
        }
    }
    if !group.is_empty() {
        batches.push(group); // fewer records than a batch: one short batch
    }
    let plan = Plan {
        batches,
        spec: spec.clone(),
        extra: Vec::new(),
        dtype: BatchDtype::F32,
        threads: Some(threads),
        prefetch: 2,
        keep: 0,
        then: Vec::new(),
    };
    let total: usize = plan.batches.iter().map(Vec::len).sum();
    let start = Instant::now();
    let loader = Prefetcher::start(db.clone(), None, plan)
        .map_err(|e| Error::output(format!("loader: {e}")))?;
    let mut records = 0u64;
    while let Some(b) = loader
        .next()
        .map_err(|e| Error::output(format!("loader: {e}")))?
    {
        records += b.dims[0] as u64;
        if start.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    loader.close();
    let seconds = start.elapsed().as_secs_f64();
    let per_record = bytes / total.max(1) as u64;
    Ok(Measurement {
        records,
        bytes: records * per_record,
        seconds,
        passes: 1.0,
    })
}

/// Runs the measurements on `db`.
pub fn run(db: &Arc<Database>, options: &BenchOptions) -> Result<Report> {
    if options.batch == 0 {
        return Err(Error::usage("--batch must be at least 1"));
    }
    if !(options.seconds.is_finite() && options.seconds >= 0.0) {
        return Err(Error::usage("--seconds must be a non-negative number"));
    }
    let keys = db.keys()?;
    if keys.is_empty() {
        return Err(Error::usage("the database is empty: nothing to measure").at(db.path()));
    }
    let threads = crate::thread_count(options.threads)?;
    let pool = if threads > 1 {
        Some(batch::pool(Some(threads))?)
    } else {
        None
    };
    let (bands, size, shape) = batch_layout(db, &keys, options)?;
    let spec = BatchSpec {
        bands: bands.clone(),
        size,
        resample: Resample::NearestAny,
        mean: None,
        std: None,
    };
    spec.validate()?;

    let sequential_order: Vec<usize> = (0..keys.len()).collect();
    let random_order = shuffled(keys.len());
    // First, while the page cache holds what it held before the bench.
    let loader = loader_for(
        db,
        &keys,
        &random_order,
        &spec,
        options.batch,
        options.seconds,
        threads,
    )?;
    let cold_path = db.cold_stats();
    let (sequential, c1) = read_for(
        db,
        &keys,
        &sequential_order,
        options.seconds,
        pool.as_deref(),
    )?;
    let (random, c2) = read_for(db, &keys, &random_order, options.seconds, pool.as_deref())?;
    let (batches, batch_count, c3) = batches_for(
        db,
        &keys,
        &random_order,
        &spec,
        shape,
        options.batch,
        options.seconds,
        Some(threads),
    )?;
    let bytes = db
        .shards()
        .0
        .iter()
        .map(|s| {
            std::fs::metadata(s.path.join(crate::base::layout::DATA_FILE)).map_or(0, |m| m.len())
        })
        .sum();
    let record_bytes = random.bytes / random.records.max(1);
    let device = device_reads(
        &db.shards().0[0].path.join(crate::base::layout::DATA_FILE),
        record_bytes as usize,
        options.seconds,
    );
    Ok(Report {
        records: keys.len() as u64,
        bytes,
        threads,
        seconds: options.seconds,
        sequential,
        random,
        batches,
        bands,
        shape,
        batch: options.batch,
        batch_count,
        checksum: c1.wrapping_add(c2).wrapping_add(c3),
        device,
        loader,
        cold_path,
    })
}

/// Queue depth of the device reference: what a loader keeping many records in flight sees.
const QUEUE_DEPTH: usize = 32;

/// The device reference: `QUEUE_DEPTH` threads each reading `record_bytes` (rounded up to
/// 4 KiB) at random 4 KiB-aligned offsets of `file` with O_DIRECT, for `seconds` (what
/// `fio --rw=randread --direct=1 --iodepth=32 --bs=RECORD` measures). `None` where O_DIRECT
/// is refused (tmpfs, some network filesystems) or the file is smaller than one read.
fn device_reads(file: &std::path::Path, record_bytes: usize, seconds: f64) -> Option<Measurement> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let len = record_bytes.max(1).next_multiple_of(PAGE);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(file)
        .ok()?;
    let size = f.metadata().ok()?.len() as usize;
    if size < 2 * len {
        return None;
    }
    let slots = (size - len) / PAGE;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let start = std::time::Instant::now();
    let reads: Vec<Option<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..QUEUE_DEPTH)
            .map(|t| {
                let f = &f;
                scope.spawn(move || {
                    let layout = std::alloc::Layout::from_size_align(len, PAGE).ok()?;
                    // SAFETY: a non-zero layout; freed below.
                    let ptr = unsafe { std::alloc::alloc(layout) };
                    if ptr.is_null() {
                        return None;
                    }
                    // SAFETY: `len` bytes just allocated, written by pread before being read.
                    let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
                    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64) << 17;
                    let mut n = 0u64;
                    let mut ok = true;
                    while std::time::Instant::now() < deadline {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let offset = ((state >> 16) as usize % slots) * PAGE;
                        if f.read_exact_at(buf, offset as u64).is_err() {
                            ok = false;
                            break;
                        }
                        n += 1;
                    }
                    // SAFETY: allocated above with this layout.
                    unsafe { std::alloc::dealloc(ptr, layout) };
                    ok.then_some(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let records: u64 = reads
        .into_iter()
        .collect::<Option<Vec<u64>>>()?
        .iter()
        .sum();
    Some(Measurement {
        records,
        bytes: records * len as u64,
        seconds,
        passes: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffled_is_a_fixed_permutation() {
        let a = shuffled(1000);
        assert_eq!(a, shuffled(1000));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, sorted);
        assert!(shuffled(0).is_empty());
        assert_eq!(shuffled(1), vec![0]);
    }

    #[test]
    fn measurement_rates() {
        let m = Measurement {
            records: 10,
            bytes: 2_000_000,
            seconds: 2.0,
            passes: 1.0,
        };
        assert_eq!(m.records_per_second(), 5.0);
        assert_eq!(m.mb_per_second(), 1.0);
    }

    #[test]
    fn json_strings_are_escaped() {
        let report = Report {
            bands: vec!["B\"1".into()],
            ..Default::default()
        };
        let text = report.json(std::path::Path::new("a\"b\\c\n"));
        assert!(text.contains(r#""path":"a\"b\\c\n""#), "{text}");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["path"], "a\"b\\c\n");
        assert_eq!(parsed["bands"][0], "B\"1");
    }
}
