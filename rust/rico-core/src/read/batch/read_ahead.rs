//! Reading ahead of a loader on cold storage: a thread that asks the kernel to start reading
//! the records a loader will need next (`MADV_WILLNEED`, [`Database::will_need_key`]), keeping
//! a window of bytes in flight ahead of the loader's position.
//!
//! A loader assembles one batch at a time with a few threads; on a cold page cache each of
//! them waits on one record's read, so the disk sees a queue of a few reads, a fraction of what
//! it serves at queue depth 32. Hints cost no thread per read: the kernel reads every hinted
//! record in the background, and the window (bytes, not batches) keeps the queue full whether
//! a batch holds 16 records or 1,024, and whether a record is 30 KB or 13 MB. The key lookups
//! that find each record run on this thread, not on the loader's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::read::reader::{Database, Stager};

/// What a read-ahead thread does with each key.
trait Hint: Send + 'static {
    /// Starts reading `key`'s record; the bytes asked for (`None`: nothing, an unknown key).
    fn hint(&mut self, key: &[u8]) -> Option<usize>;
    /// The thread ends: `drained` when [`ReadAhead::finish`] asked for every key left (their
    /// reads are then kept for the loader that comes next).
    fn end(&mut self, _drained: bool) {}
}

/// A plain function of the key.
struct Hinted<F>(F);

impl<F: FnMut(&[u8]) -> Option<usize> + Send + 'static> Hint for Hinted<F> {
    fn hint(&mut self, key: &[u8]) -> Option<usize> {
        (self.0)(key)
    }
}

impl Hint for Stager {
    fn hint(&mut self, key: &[u8]) -> Option<usize> {
        self.stage(key)
    }

    fn end(&mut self, drained: bool) {
        if !drained {
            self.forget_all();
        }
    }
}

/// Bytes of records hinted ahead of the loader's position by default: 32 random reads of a
/// 160 KB BigEarthNet S2 record with room to spare, a little page cache for the time it takes.
pub const DEFAULT_WINDOW_BYTES: usize = 32 << 20;
/// Records hinted ahead by default whatever their size (small records on a fast disk).
pub const DEFAULT_WINDOW_RECORDS: usize = 64;

/// How far ahead of the loader's position records are hinted: until both `bytes` of records
/// and `records` records are ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Bytes of records to keep hinted ahead.
    pub bytes: usize,
    /// Records to keep hinted ahead.
    pub records: usize,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            bytes: DEFAULT_WINDOW_BYTES,
            records: DEFAULT_WINDOW_RECORDS,
        }
    }
}

struct State {
    /// Keys before this index were read (or are being read) by the loader.
    position: usize,
    stop: bool,
    /// Hint every key left, whatever the window.
    drain: bool,
    /// Hint at least every key before this, whatever the window (the batch being assembled).
    need: usize,
    /// The next key to hint (every key before it was hinted or passed).
    next: usize,
    /// The thread has ended.
    ended: bool,
}

struct Shared {
    state: Mutex<State>,
    moved: Condvar,
    /// Signalled when `next` moves or the thread ends.
    issued: Condvar,
    hinted: AtomicUsize,
}

/// A read-ahead thread over one sequence of keys (an epoch's batches, one after the other,
/// then the next epoch's first batch). It stops when dropped.
///
/// ```
/// use rico_core::read::batch::read_ahead::{ReadAhead, Window};
/// let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let keys: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i]).collect();
/// let window = Window { bytes: 0, records: 3 };
/// let ahead = ReadAhead::start_with(keys, window, move |k| {
///     log.lock().unwrap().push(k[0]);
///     Some(100)
/// })
/// .unwrap();
/// ahead.advance(2); // the loader took keys 0 and 1: keys up to 4 get their hints
/// ahead.finish(2); // it reads no more: every key from 2 on gets its hint, in order
/// let seen = seen.lock().unwrap();
/// assert_eq!(seen.last(), Some(&9));
/// assert!(seen.windows(2).all(|w| w[0] < w[1]));
/// ```
pub struct ReadAhead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Hints the records of `keys` in `db`, in order, `window` ahead of the position given to
    /// [`ReadAhead::advance`].
    ///
    /// Records already in the page cache are left alone (the loader reads them in place);
    /// the others are read whole by the cold path ([`Stager`]), queue depth measured, into
    /// buffers the loader's batches take.
    pub fn start(db: Arc<Database>, keys: Vec<Vec<u8>>, window: Window) -> std::io::Result<Self> {
        Self::spawn(keys, window, Stager::new(db, window.bytes))
    }

    /// [`ReadAhead::start`] with another way to hint a key; `hint` returns the bytes it asked
    /// for (`None`: nothing, an unknown key).
    pub fn start_with<F>(keys: Vec<Vec<u8>>, window: Window, hint: F) -> std::io::Result<Self>
    where
        F: FnMut(&[u8]) -> Option<usize> + Send + 'static,
    {
        Self::spawn(keys, window, Hinted(hint))
    }

    fn spawn<H: Hint>(keys: Vec<Vec<u8>>, window: Window, mut hint: H) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                position: 0,
                stop: false,
                drain: false,
                need: 0,
                next: 0,
                ended: false,
            }),
            moved: Condvar::new(),
            issued: Condvar::new(),
            hinted: AtomicUsize::new(0),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rico-read-ahead".into())
            .spawn(move || {
                let drained = run(&for_thread, &keys, window, &mut hint);
                hint.end(drained);
                let mut state = for_thread.state.lock().unwrap_or_else(|p| p.into_inner());
                state.ended = true;
                for_thread.issued.notify_all();
            })?;
        Ok(ReadAhead {
            shared,
            thread: Some(thread),
        })
    }

    /// The loader has taken (or is reading) every key before `position`.
    pub fn advance(&self, position: usize) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if position > state.position {
            state.position = position;
            self.shared.moved.notify_one();
        }
    }

    /// The loader is about to read every key before `end`: hints them all (whatever the
    /// window) and returns once each has been asked for, so that the loader finds every
    /// record its read-ahead will read in flight, never reading one itself meanwhile.
    pub fn need(&self, end: usize) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if end > state.need {
            state.need = end;
            self.shared.moved.notify_one();
        }
        while state.next < end && !state.ended && !state.stop {
            state = self
                .shared
                .issued
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The loader has taken every key before `position` and reads no more: hints every key
    /// after it (the next epoch's first records, say) and returns once they are all asked for.
    pub fn finish(mut self, position: usize) {
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.position = state.position.max(position);
            state.drain = true;
            self.shared.moved.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// How many keys have been hinted so far (keys the loader passed before their turn are
    /// not hinted, and not counted).
    pub fn hinted(&self) -> usize {
        self.shared.hinted.load(Ordering::Acquire)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.stop = true;
            self.shared.moved.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            // At most one key lookup and hint to finish.
            let _ = thread.join();
        }
    }
}

/// Hints keys until the last or a stop; true when every key was hinted on a drain.
fn run<H: Hint>(shared: &Shared, keys: &[Vec<u8>], window: Window, hint: &mut H) -> bool {
    // Hinted keys at or after the position: (index, bytes).
    let mut ahead: VecDeque<(usize, usize)> = VecDeque::new();
    let mut ahead_bytes = 0usize;
    let mut next = 0usize;
    loop {
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if state.stop {
                    return false;
                }
                let position = state.position;
                while let Some(&(i, bytes)) = ahead.front() {
                    if i >= position {
                        break;
                    }
                    ahead.pop_front();
                    ahead_bytes -= bytes;
                }
                // Keys the loader already passed need no hint.
                next = next.max(position);
                if next != state.next {
                    state.next = next;
                    shared.issued.notify_all();
                }
                if next >= keys.len() {
                    return state.drain;
                }
                let room = state.drain
                    || next < state.need
                    || next < position + window.records
                    || ahead_bytes < window.bytes;
                if room {
                    break;
                }
                state = shared.moved.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        }
        let bytes = hint.hint(&keys[next]).unwrap_or(0);
        ahead.push_back((next, bytes));
        ahead_bytes += bytes;
        next += 1;
        shared.hinted.fetch_add(1, Ordering::AcqRel);
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.next = state.next.max(next);
        shared.issued.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn keys(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i]).collect()
    }

    /// Waits until `ahead` has hinted `n` keys, then a little longer, and returns the count:
    /// the thread must stop at `n`, not merely reach it.
    fn settled(ahead: &ReadAhead, n: usize) -> usize {
        let start = Instant::now();
        while ahead.hinted() < n && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        ahead.hinted()
    }

    /// The first byte of every key hinted, in order.
    type Seen = Arc<Mutex<Vec<u8>>>;

    fn recorder(size: usize) -> (Seen, impl FnMut(&[u8]) -> Option<usize>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        (seen, move |k: &[u8]| {
            log.lock().unwrap().push(k[0]);
            Some(size)
        })
    }

    #[test]
    fn keeps_a_window_of_records_ahead_of_the_position() {
        let (seen, hint) = recorder(10);
        let window = Window {
            bytes: 0,
            records: 4,
        };
        let ahead = ReadAhead::start_with(keys(20), window, hint).unwrap();
        assert_eq!(settled(&ahead, 4), 4);
        ahead.advance(3);
        assert_eq!(settled(&ahead, 7), 7);
        assert_eq!(*seen.lock().unwrap(), (0..7).collect::<Vec<u8>>());
    }

    #[test]
    fn keeps_a_window_of_bytes_ahead() {
        let (_, hint) = recorder(10);
        let window = Window {
            bytes: 35,
            records: 1,
        };
        let ahead = ReadAhead::start_with(keys(20), window, hint).unwrap();
        // 0, 10, 20, 30 bytes ahead before each hint: four hints, then 40 >= 35.
        assert_eq!(settled(&ahead, 4), 4);
        ahead.advance(2);
        assert_eq!(settled(&ahead, 6), 6);
    }

    #[test]
    fn skips_keys_the_loader_passed_and_ends_with_the_keys() {
        let (seen, hint) = recorder(1);
        let window = Window {
            bytes: 0,
            records: 2,
        };
        let ahead = ReadAhead::start_with(keys(10), window, hint).unwrap();
        assert_eq!(settled(&ahead, 2), 2);
        ahead.advance(6);
        assert_eq!(settled(&ahead, 4), 4);
        ahead.advance(100);
        assert_eq!(settled(&ahead, 4), 4);
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 6, 7]);
    }

    #[test]
    fn finish_hints_every_key_after_the_position() {
        let (seen, hint) = recorder(1);
        let window = Window {
            bytes: 0,
            records: 1,
        };
        let ahead = ReadAhead::start_with(keys(8), window, hint).unwrap();
        assert_eq!(settled(&ahead, 1), 1);
        ahead.finish(5);
        assert_eq!(*seen.lock().unwrap(), vec![0, 5, 6, 7]);
    }

    #[test]
    fn stops_when_dropped_while_waiting() {
        let (_, hint) = recorder(1);
        let window = Window {
            bytes: 0,
            records: 1,
        };
        let ahead = ReadAhead::start_with(keys(100), window, hint).unwrap();
        assert_eq!(settled(&ahead, 1), 1);
        let start = Instant::now();
        drop(ahead);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
