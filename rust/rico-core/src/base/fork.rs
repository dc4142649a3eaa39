//! Process-wide locks that a forked child must find unlocked.
//!
//! A `DataLoader` forks its workers while other threads of the parent may be inside rico: one
//! opening a database, one reading a record. A lock such a thread holds at that instant stays
//! locked forever in the child (which has no copy of that thread), and the child hangs at its
//! first use of it; a thread opening databases while the main thread forked hung 2 forks in 100.
//! As glibc does for malloc, rico takes its process-wide locks just before `fork()` and
//! releases them on both sides just after (`pthread_atfork`), so none is held across a fork.
//! Locks of one object (a database's shards, a loader's ring) are not here: a child opens its
//! own objects and never locks its copies of the parent's.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// A process-wide lock, in the order threads take them: a thread holding one may take a later
/// one, never an earlier one (the environment cache is held while an old map's fault
/// registration is dropped, which takes the slot table). They are taken in this order before a
/// fork.
#[derive(Clone, Copy)]
pub(crate) enum Rank {
    /// The reader's cache of open environments (`reader::open_snapshot`).
    OpenDatabases = 0,
    /// The batch thread pools (`batch::pool`).
    BatchPools = 1,
    /// Installing the SIGBUS handler (`fault`).
    FaultInstall = 2,
    /// The free slots of the fault table (`fault`).
    FaultSlots = 3,
    /// A lock of this module's tests.
    #[cfg(test)]
    Test = 4,
}

const RANKS: usize = 5;

/// Locks one lock and returns its guard, boxed so that every lock's guard fits.
pub(crate) type Take = fn() -> Box<dyn Any>;

/// The `Take` of each rank (0: none registered yet).
static TAKE: [AtomicUsize; RANKS] = [const { AtomicUsize::new(0) }; RANKS];

thread_local! {
    /// The guards taken by `prepare`, in the thread that forks, until `release`.
    static HELD: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Has the lock of `rank` taken before every fork of this process and released after it.
pub(crate) fn register(rank: Rank, take: Take) {
    TAKE[rank as usize].store(take as usize, Ordering::Release);
    static HOOKS: Once = Once::new();
    HOOKS.call_once(|| {
        // SAFETY: the three handlers are `extern "C" fn()` that live as long as the process,
        // never unwind (they only lock and unlock mutexes, poisoned ones included).
        unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
    });
}

extern "C" fn prepare() {
    let mut guards = Vec::with_capacity(RANKS);
    for take in &TAKE {
        let f = take.load(Ordering::Acquire);
        if f != 0 {
            // SAFETY: only `register` stores here, and it stores a `Take`.
            let take: Take = unsafe { std::mem::transmute::<usize, Take>(f) };
            guards.push(take());
        }
    }
    HELD.with(|held| *held.borrow_mut() = guards);
}

extern "C" fn release() {
    let guards = HELD.with(|held| std::mem::take(&mut *held.borrow_mut()));
    // Later ranks first, the reverse of the order they were taken in.
    for guard in guards.into_iter().rev() {
        drop(guard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static LOCK: Mutex<u32> = Mutex::new(0);

    #[test]
    fn a_lock_held_by_another_thread_is_free_in_a_forked_child() {
        register(Rank::Test, || {
            Box::new(LOCK.lock().unwrap_or_else(|p| p.into_inner()))
        });
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (locked, wait) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _guard = LOCK.lock().unwrap();
            locked.send(()).unwrap();
            // Holds the lock until the main thread has started forking, then lets it go.
            let _ = held.recv_timeout(std::time::Duration::from_millis(200));
        });
        wait.recv().unwrap();
        // SAFETY: the child only locks a mutex and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = LOCK.try_lock().is_ok();
            // SAFETY: exits the child at once.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        drop(release);
        holder.join().unwrap();
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "status {status}"
        );
    }
}
