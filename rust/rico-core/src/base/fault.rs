//! A file that shrinks under its mappings: a read of a page past the new end of `data.mdb`
//! raises SIGBUS, which kills the process. rico turns it into an error instead, as the JVM
//! does for its mapped buffers.
//!
//! Every read-only mapping of a database file that rico makes (LMDB's map of `data.mdb`, each
//! record's private copy-on-write mapping) is registered here with the damage flag of its
//! environment. A SIGBUS handler looks the faulting address up: inside a registered mapping, it
//! maps a page of zeros over the faulting page (the read goes on and sees zeros), raises the
//! flag and returns; the reader checks the flag after every read of the map, so the next access
//! to that database is a `DataError` that names it. Any other SIGBUS goes to the handler that
//! was there before (or to the default action, which ends the process as before).
//!
//! The handler only reads atomics and calls `mmap` and `sigaction` (both plain system calls);
//! the table of mappings is a fixed array that it scans without a lock. Registering costs a
//! short mutex and a few atomic stores, next to the `mmap` and `munmap` of a record.

use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Mappings registered at once; past this, records are copied instead of mapped.
const SLOTS: usize = 1 << 17;

/// One registered mapping: `start..end`, whether it is writable (a record's private mapping),
/// and the damage flag of its environment. `seq` is a sequence lock: odd while the slot is
/// being written, so that the handler never takes a half-written slot.
struct Slot {
    seq: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    writable: AtomicBool,
    flag: AtomicPtr<AtomicBool>,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            writable: AtomicBool::new(false),
            flag: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    fn write(&self, start: usize, end: usize, writable: bool, flag: *const AtomicBool) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.start.store(start, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        self.writable.store(writable, Ordering::Relaxed);
        self.flag.store(flag.cast_mut(), Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// `(writable, flag)` when `addr` lies in this slot's mapping (and the slot was not being
    /// written meanwhile).
    fn lookup(&self, addr: usize) -> Option<(bool, *const AtomicBool)> {
        let seq = self.seq.load(Ordering::Acquire);
        if !seq.is_multiple_of(2) {
            return None;
        }
        let (start, end) = (
            self.start.load(Ordering::Relaxed),
            self.end.load(Ordering::Relaxed),
        );
        let writable = self.writable.load(Ordering::Relaxed);
        let flag = self.flag.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) != seq || flag.is_null() {
            return None;
        }
        (start <= addr && addr < end).then_some((writable, flag.cast_const()))
    }
}

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// Slots ever used: the handler scans `TABLE[..USED]`.
static USED: AtomicUsize = AtomicUsize::new(0);
/// Slots below `USED` free for reuse.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// Faults turned into zero pages so far, in any mapping: while 0, no flag needs looking at.
static FAULTS: AtomicUsize = AtomicUsize::new(0);
/// The system's page size, read once before the handler is installed.
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The SIGBUS action that was in place before rico's handler (a leaked `sigaction`).
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());
/// Serialises installing the handler.
static INSTALL: Mutex<()> = Mutex::new(());

/// True once any fault in a registered mapping has been turned into a zero page.
#[inline]
pub fn any() -> bool {
    FAULTS.load(Ordering::Acquire) != 0
}

/// A registered mapping: unregistered on drop, which must come before the mapping is unmapped.
pub struct Watch {
    slot: usize,
    /// Keeps the flag alive while the handler may write it.
    _flag: Arc<AtomicBool>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        TABLE[self.slot].write(0, 0, false, std::ptr::null());
        FREE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.slot);
    }
}

/// Registers the mapping `start..start + len` (writable when it is a private, writable one),
/// whose faults raise `flag`. `None` when the table is full. With `install`, also makes sure
/// the handler is the process's SIGBUS handler (installing it again if a library replaced it
/// since: a framework may set its own in worker processes).
pub fn watch(
    start: usize,
    len: usize,
    writable: bool,
    flag: &Arc<AtomicBool>,
    install: bool,
) -> Option<Watch> {
    static FORK_SAFE: std::sync::Once = std::sync::Once::new();
    FORK_SAFE.call_once(|| {
        // Free in a forked child even if a thread of the parent held them (`fork`).
        crate::base::fork::register(crate::base::fork::Rank::FaultInstall, || {
            Box::new(INSTALL.lock().unwrap_or_else(|p| p.into_inner()))
        });
        crate::base::fork::register(crate::base::fork::Rank::FaultSlots, || {
            Box::new(FREE.lock().unwrap_or_else(|p| p.into_inner()))
        });
    });
    if install || PREVIOUS.load(Ordering::Acquire).is_null() {
        ensure_installed();
    }
    let slot = {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        match free.pop() {
            Some(slot) => slot,
            None => {
                let used = USED.load(Ordering::Relaxed);
                if used == SLOTS {
                    return None;
                }
                USED.store(used + 1, Ordering::Release);
                used
            }
        }
    };
    TABLE[slot].write(
        start,
        start.saturating_add(len),
        writable,
        Arc::as_ptr(flag),
    );
    Some(Watch {
        slot,
        _flag: flag.clone(),
    })
}

/// Installs the handler unless it is already the process's SIGBUS handler.
fn ensure_installed() {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: a zeroed sigaction is a valid value.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: with a null new action, sigaction only reads the current one into `current`.
    if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current) } != 0 {
        return;
    }
    if current.sa_sigaction == handler_address() {
        return;
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE.store(page as usize, Ordering::Relaxed);
    }
    // SAFETY: a zeroed sigaction is a valid value; its mask is emptied by sigemptyset.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler_address();
    // ONSTACK: runs on the thread's alternate stack where there is one (Rust's main thread
    // has one, for its stack-overflow report, which may be reached through this handler).
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // The previous action is published before the handler can run; a replaced one is leaked
    // (a few bytes, once per replacement) since a handler may still be reading it.
    PREVIOUS.store(Box::into_raw(Box::new(current)), Ordering::Release);
    // SAFETY: a zeroed sigaction is a valid value.
    let mut replaced: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both structs are valid; the handler is an `extern "C"` function of the
    // SA_SIGINFO signature that lives as long as the process.
    if unsafe { libc::sigaction(libc::SIGBUS, &action, &mut replaced) } == 0
        && replaced.sa_sigaction != current.sa_sigaction
    {
        // Replaced meanwhile by someone else: chain to what was really there.
        PREVIOUS.store(Box::into_raw(Box::new(replaced)), Ordering::Release);
    }
}

fn handler_address() -> libc::sighandler_t {
    on_sigbus as *const () as libc::sighandler_t
}

/// The SIGBUS handler.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // si_code > 0: a fault the kernel raised (a page past the end of the file, an I/O error or
    // a memory error on the page), not a signal sent by a process.
    if code > 0 {
        let used = USED.load(Ordering::Acquire);
        if let Some((writable, flag)) = TABLE[..used].iter().find_map(|s| s.lookup(addr)) {
            let page = PAGE.load(Ordering::Relaxed);
            let prot = if writable {
                libc::PROT_READ | libc::PROT_WRITE
            } else {
                libc::PROT_READ
            };
            // SAFETY: the page lies in a mapping rico made and still holds (it is unregistered
            // before it is unmapped); a private anonymous page replaces the file's page there,
            // so the faulting read resumes and reads zeros.
            let zero = unsafe {
                libc::mmap(
                    (addr - addr % page) as *mut libc::c_void,
                    page,
                    prot,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if zero != libc::MAP_FAILED {
                // SAFETY: the flag is kept alive by the slot's `Watch` while it is registered.
                unsafe { (*flag).store(true, Ordering::Release) };
                FAULTS.fetch_add(1, Ordering::AcqRel);
                return;
            }
        }
        let previous = PREVIOUS.load(Ordering::Acquire);
        if !previous.is_null() {
            // SAFETY: PREVIOUS points to a sigaction that is never freed.
            let previous = unsafe { &*previous };
            let handler = previous.sa_sigaction;
            if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
                if previous.sa_flags & libc::SA_SIGINFO != 0 {
                    // SAFETY: an SA_SIGINFO handler has this signature.
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        unsafe { std::mem::transmute(handler) };
                    f(sig, info, context);
                } else {
                    // SAFETY: a plain handler has this signature.
                    let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
                    f(sig);
                }
                return;
            }
        }
    }
    // The default action: for a fault, returning runs the faulting instruction again, which
    // then ends the process as SIGBUS does; a signal a process sent (or a handler that ran
    // before this one raised again) is raised again. Sent signals are not passed on, so that a
    // handler which restores its predecessor (this one) and raises cannot loop.
    // SAFETY: sigaction and raise are async-signal-safe; the struct is zeroed, then filled.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        libc::sigaction(sig, &default, std::ptr::null_mut());
        if code <= 0 {
            libc::raise(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file mapping that shrinks under a registered reader reads zeros and raises the flag;
    /// the process lives.
    #[test]
    fn a_page_past_the_end_of_a_registered_mapping_reads_zeros_and_raises_the_flag() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let page = 4096 * 4;
        let path = std::env::temp_dir().join(format!("rico-fault-{}", std::process::id()));
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.write_all(&vec![7u8; 2 * page]).unwrap();
        // SAFETY: a fresh read-only shared mapping of the file, unmapped at the end.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let flag = Arc::new(AtomicBool::new(false));
        let watch = watch(map as usize, 2 * page, false, &flag, true).unwrap();
        file.set_len(page as u64).unwrap();
        // SAFETY: inside the mapping; the second half is past the end of the file now.
        let (before, after) = unsafe {
            (
                std::ptr::read_volatile((map as *const u8).add(10)),
                std::ptr::read_volatile((map as *const u8).add(page + 10)),
            )
        };
        assert_eq!((before, after), (7, 0));
        assert!(flag.load(Ordering::Acquire) && any());
        drop(watch);
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(map, 2 * page) };
        let _ = std::fs::remove_file(path);
    }
}
