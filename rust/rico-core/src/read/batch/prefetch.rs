//! A loader's background assembly: a thread that fills the batches of an epoch, in order, into
//! the slots of a [`BatchRing`], `prefetch` ahead of the consumer, while a [`ReadAhead`] thread
//! keeps the records still to come read ahead from storage.
//!
//! A yielded batch stays valid while `keep` more are yielded; its slot is then filled again.
//! The slots of the last batches of an epoch stay out of use into the next epoch's first
//! batches (the ring remembers them), and one thread at a time fills a ring.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use crate::base::buffer::AlignedBuffer;
use crate::base::error::{Error, Result};
use crate::read::reader::Database;

use super::fill::{batch_len, fill_buffer, BatchDtype};
use super::read_ahead::{ReadAhead, Window};
use super::ring::{lock, BatchRing};
use super::{batch_shape, BatchSpec};

/// More channels of the same samples from other records: one key per sample of each batch,
/// in the same batches (of the same sizes) as the first part's.
#[derive(Clone, Debug)]
pub struct Part {
    /// The keys of each batch.
    pub batches: Vec<Vec<Vec<u8>>>,
    /// The bands (and their normalisation) this part adds to each sample, after the channels
    /// of the parts before it. Its `size` and `resample` are the first part's.
    pub spec: BatchSpec,
}

/// Checks that a part's batches have the sizes of the first part's `batches` (a usage error
/// otherwise).
pub fn check_part(batches: &[Vec<Vec<u8>>], part: &[Vec<Vec<u8>>]) -> Result<()> {
    let same =
        part.len() == batches.len() && part.iter().zip(batches).all(|(a, b)| a.len() == b.len());
    if same {
        Ok(())
    } else {
        Err(Error::usage(
            "extra= parts need batches of the same sizes as the first part's",
        ))
    }
}

/// What a [`Prefetcher`] assembles.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The keys of each batch, in the order they are yielded.
    pub batches: Vec<Vec<Vec<u8>>>,
    /// The first part's bands, size, resampling and normalisation.
    pub spec: BatchSpec,
    /// More parts, whose channels follow the first part's in each sample.
    pub extra: Vec<Part>,
    /// The batches' element type.
    pub dtype: BatchDtype,
    /// Threads assembling each batch (see [`super::pool`]).
    pub threads: Option<usize>,
    /// Batches assembled ahead of the consumer: sizes the ring made when none is given.
    pub prefetch: usize,
    /// Batches that stay valid after a newer one is yielded.
    pub keep: usize,
    /// Keys read ahead once the last batch's are: the next epoch's first batch.
    pub then: Vec<Vec<u8>>,
}

/// Why a [`Prefetcher`] did not start or did not yield a batch.
#[derive(Debug)]
pub enum PrefetchError {
    /// The engine's error: bad arguments, or a batch that failed (a missing key, a bad record,
    /// bands of different shapes). The iteration ends after it.
    Engine(Error),
    /// A thread could not be started.
    Spawn {
        /// Which thread: `"read-ahead"` or `"loader"`.
        thread: &'static str,
        /// The system's reason.
        error: std::io::Error,
    },
    /// The prefetcher was started in another process (this one is a fork of it), where its
    /// thread still runs: waiting here would never end.
    Forked,
    /// [`Prefetcher::close`] was called.
    Closed,
    /// The loader thread ended before delivering every batch.
    Stopped {
        /// Batches not delivered.
        remaining: usize,
    },
}

impl std::fmt::Display for PrefetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrefetchError::Engine(e) => write!(f, "{e}"),
            PrefetchError::Spawn { thread, error } => {
                write!(f, "cannot start the {thread} thread: {error}")
            }
            PrefetchError::Forked => f.write_str(
                "this loader iteration was started before a fork; start a new one in this process (iterate the Loader again)",
            ),
            PrefetchError::Closed => f.write_str("this loader iteration was closed"),
            PrefetchError::Stopped { remaining } => write!(
                f,
                "the loader thread stopped with {remaining} batches still to deliver"
            ),
        }
    }
}

impl std::error::Error for PrefetchError {}

impl From<Error> for PrefetchError {
    fn from(e: Error) -> Self {
        PrefetchError::Engine(e)
    }
}

/// A batch filled into a ring slot: `dims` = (records, channels, H, W) elements of `dtype`, C
/// order, at the start of `buffer`. Valid until `keep` more batches are yielded: the slot is
/// filled again after that, so a view of it must not outlive that point unless the caller
/// accepts its contents changing.
pub struct Batch {
    /// The slot's memory (kept alive by this handle even after the ring replaces it).
    pub buffer: Arc<AlignedBuffer>,
    /// (records, channels, H, W).
    pub dims: [usize; 4],
    /// Element type.
    pub dtype: BatchDtype,
}

/// A batch filled into a ring slot, as the producer sends it.
struct Filled {
    slot: usize,
    buffer: Arc<AlignedBuffer>,
    dims: [usize; 4],
}

type Produced = Result<Filled>;

/// The consumer's side of a prefetcher.
struct Consumer {
    /// `None` once closed.
    receiver: Option<Receiver<Produced>>,
    free: Option<SyncSender<usize>>,
    /// Batches not yet delivered: the channel closing before this reaches 0 is a failure.
    remaining: usize,
}

/// Assembles a [`Plan`]'s batches in a background thread into the slots of a [`BatchRing`];
/// [`Prefetcher::next`] yields them in order. Dropping it (or [`Prefetcher::close`]) stops the
/// thread after the batch it is assembling.
pub struct Prefetcher {
    consumer: Mutex<Consumer>,
    ring: Arc<BatchRing>,
    keep: usize,
    dtype: BatchDtype,
    pid: u32,
}

impl Prefetcher {
    /// Checks the plan and starts the threads. `ring` is the memory to fill (at least
    /// `keep + 2` slots); `None` makes one of `keep + 1 + max(prefetch, 1)` slots.
    pub fn start(
        db: Arc<Database>,
        ring: Option<Arc<BatchRing>>,
        plan: Plan,
    ) -> std::result::Result<Prefetcher, PrefetchError> {
        let Plan {
            batches,
            spec,
            extra,
            dtype,
            threads,
            prefetch,
            keep,
            then,
        } = plan;
        spec.validate()?;
        for part in &extra {
            check_part(&batches, &part.batches)?;
            part.spec.validate()?;
        }
        // Every key the thread will read, in the order it reads them, then the keys the next
        // epoch starts with (`then`): the read-ahead keeps the disk busy across the boundary.
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut starts: Vec<usize> = Vec::with_capacity(batches.len() + 1);
        for (i, keys) in batches.iter().enumerate() {
            starts.push(order.len());
            order.extend(keys.iter().cloned());
            for part in &extra {
                order.extend(part.batches[i].iter().cloned());
            }
        }
        starts.push(order.len());
        order.extend(then);
        let read_ahead =
            ReadAhead::start(db.clone(), order, Window::default()).map_err(|error| {
                PrefetchError::Spawn {
                    thread: "read-ahead",
                    error,
                }
            })?;
        let ring = match ring {
            Some(r) => r,
            None => Arc::new(BatchRing::new(
                keep.saturating_add(1).saturating_add(prefetch.max(1)),
            )?),
        };
        let slots = ring.len();
        if slots < keep.saturating_add(2) {
            return Err(Error::usage(format!(
                "a ring of {slots} slots cannot keep {keep} batches valid and fill another; give it at least {} slots",
                keep.saturating_add(2)
            ))
            .into());
        }
        let (sender, receiver) = sync_channel::<Produced>(slots);
        let (free, free_slots) = sync_channel::<usize>(slots);
        {
            // The previous iteration's last batches are still promised: their slots stay out
            // until this iteration has yielded enough batches.
            let mut held = ring.held();
            while held.len() > keep + 1 {
                held.pop_front();
            }
            for i in (0..slots).filter(|i| !held.contains(i)) {
                free.send(i).expect("the channel holds every slot");
            }
        }
        let total = batches.len();
        let producer = Producer {
            db,
            ring: ring.clone(),
            batches,
            spec,
            extra,
            dtype,
            threads,
        };
        std::thread::Builder::new()
            .name("rico-loader".into())
            .spawn(move || producer.run(&starts, read_ahead, &free_slots, &sender))
            .map_err(|error| PrefetchError::Spawn {
                thread: "loader",
                error,
            })?;
        Ok(Prefetcher {
            consumer: Mutex::new(Consumer {
                receiver: Some(receiver),
                free: Some(free),
                remaining: total,
            }),
            ring,
            keep,
            dtype,
            pid: std::process::id(),
        })
    }

    /// The next batch, waiting for it to be assembled; `Ok(None)` once every batch has been
    /// yielded. After an error the iteration is over: the next call says the thread stopped.
    /// Yielding a batch releases the slot of the one yielded `keep + 1` batches before.
    #[allow(clippy::should_implement_trait)] // blocks, and fails in ways an Iterator cannot say
    pub fn next(&self) -> std::result::Result<Option<Batch>, PrefetchError> {
        if std::process::id() != self.pid {
            // The producing thread stayed in the parent: waiting here would never end.
            return Err(PrefetchError::Forked);
        }
        let received = {
            let consumer = lock(&self.consumer);
            consumer.receiver.as_ref().map(|r| r.recv())
        };
        let mut consumer = lock(&self.consumer);
        let Some(received) = received else {
            return Err(PrefetchError::Closed);
        };
        let Ok(produced) = received else {
            if consumer.remaining > 0 {
                return Err(PrefetchError::Stopped {
                    remaining: consumer.remaining,
                });
            }
            return Ok(None); // all batches delivered
        };
        consumer.remaining = consumer.remaining.saturating_sub(1);
        let filled = produced?;
        let mut held = self.ring.held();
        held.push_back(filled.slot);
        // The batch yielded `keep + 1` batches ago is no longer promised: its slot is refilled.
        while held.len() > self.keep + 1 {
            let slot = held.pop_front().expect("held is not empty");
            if let Some(free) = &consumer.free {
                // The producer may have finished (last batches): nothing to refill then.
                let _ = free.try_send(slot);
            }
        }
        Ok(Some(Batch {
            buffer: filled.buffer,
            dims: filled.dims,
            dtype: self.dtype,
        }))
    }

    /// Stops the background thread (after the batch it is assembling) and ends the iteration:
    /// [`Prefetcher::next`] fails with [`PrefetchError::Closed`] from then on.
    pub fn close(&self) {
        let mut consumer = lock(&self.consumer);
        consumer.free = None;
        consumer.receiver = None;
    }
}

/// What the loader thread owns.
struct Producer {
    db: Arc<Database>,
    ring: Arc<BatchRing>,
    batches: Vec<Vec<Vec<u8>>>,
    spec: BatchSpec,
    extra: Vec<Part>,
    dtype: BatchDtype,
    threads: Option<usize>,
}

impl Producer {
    /// The loader thread: fills each batch into a free slot and sends it, until the last batch,
    /// an error, or the consumer going away. `starts[i]` is batch `i`'s first key in the
    /// read-ahead's order.
    fn run(
        self,
        starts: &[usize],
        read_ahead: ReadAhead,
        free_slots: &Receiver<usize>,
        sender: &SyncSender<Produced>,
    ) {
        let _producing = self.ring.producing();
        // The whole epoch's keys are known: the read-ahead thread keeps a window of records
        // in flight from storage ahead of the batch being assembled (many reads on cold
        // storage; nothing to do on a warm page cache).
        let mut sent = 0;
        for (i, &start) in starts.iter().enumerate().take(self.batches.len()) {
            // The consumer went away (loop broken, loader closed or dropped): stop.
            let Ok(slot) = free_slots.recv() else { break };
            read_ahead.advance(start);
            // Every record of this batch is in flight (or resident) before it is assembled.
            read_ahead.need(starts[i + 1]);
            // A panic becomes an error for the consumer instead of a silently short epoch.
            let produced =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.batch(i, slot)))
                    .unwrap_or_else(|_| {
                        Err(Error::output(
                            "the loader thread panicked while assembling a batch",
                        ))
                    });
            let failed = produced.is_err();
            if sender.send(produced).is_err() || failed {
                break;
            }
            sent += 1;
        }
        if sent == self.batches.len() {
            read_ahead.finish(starts[sent]);
        }
    }

    /// Batch `i` assembled into ring slot `slot`.
    fn batch(&self, i: usize, slot: usize) -> Produced {
        let (db, spec, keys) = (&*self.db, &self.spec, &self.batches[i]);
        let mut parts: Vec<(&[Vec<u8>], &BatchSpec)> = vec![(keys, spec)];
        parts.extend(
            self.extra
                .iter()
                .map(|p| (p.batches[i].as_slice(), &p.spec)),
        );
        let (h, w) = batch_shape(db, keys, spec)?;
        for (part_keys, part_spec) in &parts[1..] {
            let shape = batch_shape(db, part_keys, part_spec)?;
            if shape != (h, w) {
                let first =
                    |k: &[Vec<u8>]| k.first().map(|k| String::from_utf8_lossy(k).into_owned());
                return Err(Error::usage(format!(
                    "record {:?} (band {}) is {h}x{w} but record {:?} (band {}) is {}x{}: \
                     one batch needs one size",
                    first(keys),
                    spec.bands[0],
                    first(part_keys),
                    part_spec.bands[0],
                    shape.0,
                    shape.1
                ))
                .hint("pass size= to resample every band to one size"));
            }
        }
        let channels = parts.iter().map(|(_, s)| s.bands.len()).sum();
        let dims = [keys.len(), channels, h, w];
        let item = self.dtype.item_bytes();
        let buffer = self.ring.slot(slot, batch_len(dims, item)? * item)?;
        fill_buffer(db, &parts, dims, self.dtype, self.threads, &buffer)?;
        Ok(Filled { slot, buffer, dims })
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::base::lmdb::{Env, PutMode};
    use crate::base::record::{encode, Band};
    use crate::read::batch::Resample;

    /// A database of `k0`..`k9` (bands `a` = i and `b` = 100 + i, 2x2 u8) and `w0`..`w9`
    /// (band `c` = 200 + i, 4x4), in a directory of its own.
    fn database(name: &str) -> Arc<Database> {
        let dir: PathBuf =
            std::env::temp_dir().join(format!("rico-prefetch-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let env = Env::open_writable(&dir, 16 << 20).unwrap();
        let mut txn = env.begin_write().unwrap();
        let band = |name: &str, side: usize, v: u8| Band {
            name: name.into(),
            dtype: rico_raster::DType::U8,
            shape: [side, side],
            bytes: Cow::Owned(vec![v; side * side]),
        };
        for i in 0..10u8 {
            let key = format!("k{i}");
            let value = encode(&key, &[band("a", 2, i), band("b", 2, 100 + i)]).unwrap();
            txn.put(key.as_bytes(), &value, PutMode::Append).unwrap();
        }
        for i in 0..10u8 {
            let key = format!("w{i}");
            let value = encode(&key, &[band("c", 4, 200 + i)]).unwrap();
            txn.put(key.as_bytes(), &value, PutMode::Append).unwrap();
        }
        txn.commit().unwrap();
        drop(env);
        Arc::new(Database::open(&dir).unwrap())
    }

    fn spec(bands: &[&str], size: Option<usize>) -> BatchSpec {
        BatchSpec {
            bands: bands.iter().map(|b| b.to_string()).collect(),
            size,
            resample: Resample::Nearest,
            mean: None,
            std: None,
        }
    }

    /// Batches of the keys `prefix` + each number.
    fn batches(prefix: &str, numbers: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
        numbers
            .iter()
            .map(|b| {
                b.iter()
                    .map(|i| format!("{prefix}{i}").into_bytes())
                    .collect()
            })
            .collect()
    }

    fn plan(batches: Vec<Vec<Vec<u8>>>, keep: usize) -> Plan {
        Plan {
            batches,
            spec: spec(&["a"], None),
            extra: Vec::new(),
            dtype: BatchDtype::F32,
            threads: Some(1),
            prefetch: 2,
            keep,
            then: Vec::new(),
        }
    }

    /// A batch's elements. Only for a batch still valid (fewer than `keep` newer ones yielded).
    fn values(b: &Batch) -> Vec<f64> {
        let n = batch_len(b.dims, b.dtype.item_bytes()).unwrap();
        assert!(n * b.dtype.item_bytes() <= b.buffer.len());
        // SAFETY: the producer wrote the batch's n elements in full before sending it, and does
        // not write the slot again while the batch is valid (the callers' promise).
        unsafe {
            match b.dtype {
                BatchDtype::F32 => std::slice::from_raw_parts(b.buffer.as_ptr() as *const f32, n)
                    .iter()
                    .map(|&v| v as f64)
                    .collect(),
                BatchDtype::F64 => {
                    std::slice::from_raw_parts(b.buffer.as_ptr() as *const f64, n).to_vec()
                }
            }
        }
    }

    fn next(p: &Prefetcher) -> Batch {
        p.next().expect("a batch").expect("not the end")
    }

    fn engine_error(e: PrefetchError) -> Error {
        match e {
            PrefetchError::Engine(e) => e,
            other => panic!("expected an engine error, got {other}"),
        }
    }

    /// Every batch of `plan` over `db`, as bytes.
    fn all_bytes(db: &Arc<Database>, plan: Plan) -> Vec<Vec<u8>> {
        let p = Prefetcher::start(db.clone(), None, plan).unwrap();
        let mut out = Vec::new();
        while let Some(b) = p.next().unwrap() {
            let n = batch_len(b.dims, b.dtype.item_bytes()).unwrap() * b.dtype.item_bytes();
            // SAFETY: the batch's n bytes were written before it was sent; keep 0 and the copy
            // is made before the next call.
            out.push(unsafe { std::slice::from_raw_parts(b.buffer.as_ptr(), n) }.to_vec());
        }
        out
    }

    #[test]
    fn the_cold_path_reads_what_the_map_holds() {
        // Records of one to several overflow pages, each band with values of its own.
        let dir: PathBuf =
            std::env::temp_dir().join(format!("rico-prefetch-{}-cold", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let env = Env::open_writable(&dir, 64 << 20).unwrap();
        let mut txn = env.begin_write().unwrap();
        let mut keys = Vec::new();
        for i in 0..24usize {
            let side = [64, 30, 90, 3][i % 4];
            let band = |name: &str, salt: usize| Band {
                name: name.into(),
                dtype: rico_raster::DType::U16,
                shape: [side, side],
                bytes: Cow::Owned(
                    (0..side * side * 2)
                        .map(|j| ((j * 31 + i * 7 + salt) % 251) as u8)
                        .collect(),
                ),
            };
            let key = format!("r{i:02}");
            let value = encode(&key, &[band("a", 1), band("b", 2)]).unwrap();
            txn.put(key.as_bytes(), &value, PutMode::Append).unwrap();
            keys.push(key.into_bytes());
        }
        txn.commit().unwrap();
        drop(env);
        let db = Arc::new(Database::open(&dir).unwrap());
        let order: Vec<Vec<Vec<u8>>> = [7usize, 3, 19, 0, 23, 12, 5, 5, 8, 1, 22, 14, 9]
            .chunks(5)
            .map(|c| c.iter().map(|&i| keys[i].clone()).collect())
            .collect();
        let plan = || Plan {
            batches: order.clone(),
            spec: BatchSpec {
                size: Some(45),
                resample: Resample::NearestAny,
                ..spec(&["b", "a"], None)
            },
            extra: Vec::new(),
            dtype: BatchDtype::F32,
            threads: Some(2),
            prefetch: 2,
            keep: 0,
            then: vec![keys[4].clone()],
        };
        crate::read::reader::force_cold_path(Some(true));
        let cold = all_bytes(&db, plan());
        let stats = db.cold_stats();
        crate::read::reader::force_cold_path(Some(false));
        let warm = all_bytes(&db, plan());
        crate::read::reader::force_cold_path(None);
        assert!(stats.staged >= 12, "{stats:?}");
        assert_eq!(stats.fallback, 0);
        assert_eq!(cold.len(), 3);
        assert!(cold == warm, "cold batches differ from warm ones");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn batches_come_in_order_with_every_part_in_place() {
        let db = database("order");
        let numbers: &[&[u8]] = &[&[0, 1], &[7, 3], &[4], &[5, 6, 2]];
        let mut plan = plan(batches("k", numbers), 1);
        plan.spec = spec(&["b", "a"], None);
        // The same samples' band `a` again, as a second part: channels [b, a, a].
        plan.extra.push(Part {
            batches: batches("k", numbers),
            spec: spec(&["a"], None),
        });
        plan.dtype = BatchDtype::F64;
        let p = Prefetcher::start(db, None, plan).unwrap();
        for want in numbers {
            let b = next(&p);
            assert_eq!(b.dims, [want.len(), 3, 2, 2]);
            assert_eq!(b.dtype, BatchDtype::F64);
            let expected: Vec<f64> = want
                .iter()
                .flat_map(|&i| {
                    let i = i as f64;
                    [[100.0 + i; 4], [i; 4], [i; 4]].concat()
                })
                .collect();
            assert_eq!(values(&b), expected);
        }
        assert!(p.next().unwrap().is_none());
        assert!(p.next().unwrap().is_none(), "the end stays the end");
    }

    #[test]
    fn a_yielded_batch_stays_valid_while_keep_more_are_yielded() {
        let db = database("keep");
        let ring = Arc::new(BatchRing::new(3).unwrap());
        let numbers: &[&[u8]] = &[&[0], &[1], &[2], &[3], &[4], &[5]];
        let p = Prefetcher::start(db, Some(ring.clone()), plan(batches("k", numbers), 1)).unwrap();
        let b0 = next(&p);
        let b1 = next(&p);
        // The producer has every chance to run ahead: it may fill the one free slot, no more.
        std::thread::sleep(Duration::from_millis(100));
        assert!(ring.is_producing(), "waiting for a slot, not finished");
        assert_eq!(values(&b0), vec![0.0; 4]);
        assert_eq!(values(&b1), vec![1.0; 4]);
        let b2 = next(&p);
        let ptr = |b: &Batch| b.buffer.as_ptr();
        assert!(ptr(&b0) != ptr(&b1) && ptr(&b1) != ptr(&b2) && ptr(&b0) != ptr(&b2));
        // Yielding b2 released b0's slot (keep = 1): batch 3 is assembled there.
        let b3 = next(&p);
        assert_eq!(ptr(&b3), ptr(&b0));
        assert_eq!(values(&b3), vec![3.0; 4]);
        assert_eq!(ptr(&next(&p)), ptr(&b1));
        assert_eq!(ptr(&next(&p)), ptr(&b2));
        assert!(p.next().unwrap().is_none());
    }

    #[test]
    fn the_last_batches_of_an_epoch_stay_valid_into_the_next() {
        let db = database("epochs");
        let ring = Arc::new(BatchRing::new(3).unwrap());
        let numbers: &[&[u8]] = &[&[0], &[1], &[2]];
        let first = Prefetcher::start(
            db.clone(),
            Some(ring.clone()),
            plan(batches("k", numbers), 1),
        )
        .unwrap();
        let a: Vec<Batch> = (0..3).map(|_| next(&first)).collect();
        assert!(first.next().unwrap().is_none());
        let numbers: &[&[u8]] = &[&[5], &[6], &[7]];
        let second = Prefetcher::start(db, Some(ring), plan(batches("k", numbers), 1)).unwrap();
        // a[1] and a[2] are still promised (the last batch yielded and `keep` = 1 before it):
        // however far the new epoch's thread runs ahead, it fills a[0]'s slot only.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(values(&a[1]), vec![1.0; 4]);
        assert_eq!(values(&a[2]), vec![2.0; 4]);
        let b0 = next(&second);
        assert_eq!(b0.buffer.as_ptr(), a[0].buffer.as_ptr());
        assert_eq!(values(&b0), vec![5.0; 4]);
        // Yielding b0 released a[1] (a[2] stays valid while one more is yielded): b1 goes there.
        assert_eq!(values(&a[2]), vec![2.0; 4]);
        let b1 = next(&second);
        assert_eq!(b1.buffer.as_ptr(), a[1].buffer.as_ptr());
        assert_eq!(values(&b1), vec![6.0; 4]);
    }

    #[test]
    fn a_ring_too_small_for_keep_is_refused() {
        let db = database("small");
        let ring = Arc::new(BatchRing::new(3).unwrap());
        let err = Prefetcher::start(db.clone(), Some(ring), plan(batches("k", &[&[0]]), 2))
            .err()
            .map(engine_error)
            .expect("refused");
        assert_eq!(err.kind, crate::ErrorKind::Usage);
        assert!(err.message.contains("at least 4 slots"), "{}", err.message);
        // Without a ring, one of the right size is made.
        let p = Prefetcher::start(db, None, plan(batches("k", &[&[0], &[1], &[2]]), 2)).unwrap();
        for i in 0..3 {
            assert_eq!(values(&next(&p)), vec![i as f64; 4]);
        }
    }

    #[test]
    fn a_failing_batch_ends_the_iteration_with_its_error() {
        let db = database("fail");
        let mut plan = plan(batches("k", &[&[0], &[1], &[2], &[3]]), 1);
        plan.batches[1] = vec![b"nowhere".to_vec()];
        let p = Prefetcher::start(db, None, plan).unwrap();
        assert_eq!(values(&next(&p)), vec![0.0; 4]);
        let err = engine_error(p.next().err().expect("the missing key fails"));
        assert_eq!(err.kind, crate::ErrorKind::Usage);
        assert!(err.message.contains("nowhere"), "{}", err.message);
        // Nothing after the failure: the thread stopped with two batches undelivered.
        match p.next() {
            Err(PrefetchError::Stopped { remaining }) => assert_eq!(remaining, 2),
            other => panic!(
                "expected Stopped, got {:?}",
                other.map(|b| b.map(|b| b.dims))
            ),
        }
    }

    #[test]
    fn parts_of_different_shapes_are_refused() {
        let db = database("shapes");
        let mut two = plan(batches("k", &[&[0, 1]]), 1);
        two.extra.push(Part {
            batches: batches("w", &[&[0, 1]]),
            spec: spec(&["c"], None),
        });
        let p = Prefetcher::start(db.clone(), None, two.clone()).unwrap();
        let err = engine_error(p.next().err().expect("2x2 beside 4x4 fails"));
        assert_eq!(err.kind, crate::ErrorKind::Usage);
        assert!(
            err.message
                .contains("is 2x2 but record Some(\"w0\") (band c) is 4x4"),
            "{}",
            err.message
        );
        // One size for every band: accepted.
        two.spec.size = Some(4);
        two.extra[0].spec.size = Some(4);
        let p = Prefetcher::start(db.clone(), None, two.clone()).unwrap();
        let b = next(&p);
        assert_eq!(b.dims, [2, 2, 4, 4]);
        let v = values(&b);
        assert_eq!((v[0], v[16], v[32], v[48]), (0.0, 200.0, 1.0, 201.0));
        // Parts with batches of other sizes are refused before any thread starts.
        two.extra[0].batches = batches("w", &[&[0]]);
        let err = engine_error(Prefetcher::start(db, None, two).err().expect("refused"));
        assert!(err.message.contains("same sizes"), "{}", err.message);
    }

    #[test]
    fn dropping_mid_epoch_stops_the_thread() {
        let db = database("drop");
        let ring = Arc::new(BatchRing::new(3).unwrap());
        let many: Vec<Vec<Vec<u8>>> = (0..1000)
            .map(|i| vec![format!("k{}", i % 10).into_bytes()])
            .collect();
        let p = Prefetcher::start(db.clone(), Some(ring.clone()), plan(many.clone(), 1)).unwrap();
        assert_eq!(values(&next(&p)), vec![0.0; 4]);
        assert!(ring.is_producing());
        drop(p);
        let start = Instant::now();
        while ring.is_producing() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!ring.is_producing(), "the loader thread ended");
        // close() stops it too, and the iteration says so.
        let p = Prefetcher::start(db.clone(), Some(ring.clone()), plan(many, 1)).unwrap();
        assert_eq!(values(&next(&p)), vec![0.0; 4]);
        p.close();
        assert!(matches!(p.next(), Err(PrefetchError::Closed)));
        let start = Instant::now();
        while ring.is_producing() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!ring.is_producing(), "the loader thread ended");
        // The ring serves the next epoch.
        let p = Prefetcher::start(db, Some(ring), plan(batches("k", &[&[4], &[9]]), 1)).unwrap();
        assert_eq!(values(&next(&p)), vec![4.0; 4]);
        assert_eq!(values(&next(&p)), vec![9.0; 4]);
        assert!(p.next().unwrap().is_none());
    }
}
