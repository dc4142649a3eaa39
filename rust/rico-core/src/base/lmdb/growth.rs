//! How much address space a read-only environment maps: the file's size, and room to grow
//! taken from a process-wide budget.

use std::path::Path;

pub(super) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64
}

/// What `data.mdb` holds now, rounded up to a page: the least a read-only environment maps
/// (LMDB raises it to the pages its meta page names if the file is shorter).
pub(super) fn file_map_size(data: &Path) -> u64 {
    let len = std::fs::metadata(data).map_or(0, |m| m.len());
    len.next_multiple_of(page_size())
}

/// Room to grow that a read-only environment maps past the end of the file, so that a writer
/// in another process growing the file does not force a remap (impossible while views point
/// into the map) before a second handle can see the new records.
const GROWTH_ROOM: u64 = 64 << 30;
/// The most growth room all environments of this process hold together: a quarter of the
/// 128 TiB of user address space, so that thousands of shards still open (the ones past 512
/// map their files only).
const GROWTH_BUDGET: u64 = 32 << 40;
static GROWTH_HELD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Growth room for one more environment, taken from the budget: none where address space is
/// limited (`ulimit -v`, common on clusters: every byte reserved is a byte the process cannot
/// allocate), and none once the budget is spent.
pub(super) fn take_growth_room() -> u64 {
    use std::sync::atomic::Ordering;
    // SAFETY: getrlimit fills a plain struct.
    let unlimited = unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_AS, &mut limit) == 0 && limit.rlim_cur == libc::RLIM_INFINITY
    };
    if !unlimited {
        return 0;
    }
    let mut room = 0;
    let _ = GROWTH_HELD.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
        room = GROWTH_ROOM.min(GROWTH_BUDGET.saturating_sub(held));
        Some(held + room)
    });
    room
}

pub(super) fn give_back_growth_room(room: u64) {
    GROWTH_HELD.fetch_sub(room, std::sync::atomic::Ordering::AcqRel);
}
