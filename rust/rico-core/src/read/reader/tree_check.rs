//! A structural check of an LMDB file's B-tree before LMDB walks it.
//!
//! LMDB trusts its pages: a page header or node overwritten on disk sends its tree search
//! through wild pointers, or into an assertion that aborts the process. rico checks every
//! branch and leaf page of the main tree once per open environment (the pages `keys()` walks
//! anyway): each page names itself, has the kind its depth calls for, sane bounds, and nodes
//! that lie inside it and point to pages inside the file. A failure is reported as a damaged
//! database instead of a crash.
//!
//! Layout (LMDB 0.9 and mdb.master, 64-bit): page header = pgno u64, pad u16, flags u16,
//! lower u16, upper u16; node = lo u16, hi u16, flags u16, ksize u16, key, data.

const PAGE_HEADER: usize = 16;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;
const F_DUPDATA: u16 = 0x04;
const MDB_MAGIC: u32 = 0xBEEF_C0DE;
const P_INVALID: u64 = u64::MAX;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

struct Meta {
    txnid: u64,
    root: u64,
    depth: u16,
    pages: u64,
}

fn meta(map: &[u8], psize: usize, i: usize) -> Option<Meta> {
    let m = map.get(i * psize + PAGE_HEADER..i * psize + PAGE_HEADER + 136)?;
    if u32_at(m, 0) != MDB_MAGIC {
        return None;
    }
    // mm_dbs[1] (the main tree) starts at 72: depth at +6, branch/leaf pages at +8/+16, root at +40.
    Some(Meta {
        txnid: u64_at(m, 128),
        root: u64_at(m, 112),
        depth: u16_at(m, 78),
        pages: u64_at(m, 80).saturating_add(u64_at(m, 88)),
    })
}

/// A page to check: its number, its depth, and the keys it may hold: from the first bound
/// (inclusive) to the second (exclusive), `None` where the range is open.
type Visit<'a> = (u64, usize, Option<&'a [u8]>, Option<&'a [u8]>);

/// Checks the main tree of the LMDB file mapped as `map` (every page up to the last one the
/// meta page names; `psize` bytes each). Returns what is wrong.
pub fn check(map: &[u8], psize: usize) -> Result<(), String> {
    if psize < 512 || map.len() < 2 * psize {
        return Err("the file is too short for its meta pages".into());
    }
    let pages = (map.len() / psize) as u64;
    let meta = match (meta(map, psize, 0), meta(map, psize, 1)) {
        (Some(a), Some(b)) => {
            if a.txnid >= b.txnid {
                a
            } else {
                b
            }
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err("no valid meta page".into()),
    };
    if meta.root == P_INVALID {
        return Ok(()); // empty database
    }
    let depth = meta.depth as usize;
    if depth == 0 {
        return Err("the main tree has a root but depth 0".into());
    }
    let mut visited: u64 = 0;
    let mut stack: Vec<Visit<'_>> = vec![(meta.root, 1usize, None, None)];
    while let Some((pgno, level, low, high)) = stack.pop() {
        visited += 1;
        if visited > meta.pages.saturating_add(1) {
            return Err("the tree has more pages than its meta page counts (a cycle?)".into());
        }
        if pgno < 2 || pgno >= pages {
            return Err(format!("a node points to page {pgno}, outside the file"));
        }
        let at = pgno as usize * psize;
        let page = &map[at..at + psize];
        let bad = |what: &str| Err(format!("page {pgno}: {what}"));
        if u64_at(page, 0) != pgno {
            return bad("its header names another page");
        }
        // On disk a page carries exactly its kind (the in-memory flags are cleared on write).
        let kind = u16_at(page, 10);
        let want = if level < depth { P_BRANCH } else { P_LEAF };
        if kind != want {
            return bad(&format!("page kind {kind:#x}, expected {want:#x}"));
        }
        let (lower, upper) = (u16_at(page, 12) as usize, u16_at(page, 14) as usize);
        if lower < PAGE_HEADER || lower > upper || upper > psize || !lower.is_multiple_of(2) {
            return bad("free-space bounds out of the page");
        }
        let n = (lower - PAGE_HEADER) / 2;
        if kind == P_BRANCH && n < 2 {
            return bad("a branch page with fewer than 2 keys");
        }
        // The key before this node's (the lower bound for the first): keys rise strictly
        // through the page and stay within the range its parent gives it, or a search for a
        // key that `keys()` lists would go down the wrong branch and not find it.
        let mut previous = low;
        let mut child: Option<(u64, Option<&[u8]>)> = None;
        for i in 0..n {
            let off = u16_at(page, PAGE_HEADER + 2 * i) as usize;
            if off < upper || off + 8 > psize || !off.is_multiple_of(2) {
                return bad("a node lies outside the page");
            }
            let lo = u16_at(page, off) as u64;
            let hi = u16_at(page, off + 2) as u64;
            let flags = u16_at(page, off + 4);
            let key_end = off + 8 + u16_at(page, off + 6) as usize;
            if key_end > psize {
                return bad("a key runs past the page");
            }
            let key = &page[off + 8..key_end];
            // A branch page's first key is never compared (its child holds everything below
            // the second key).
            let compared = kind == P_LEAF || i > 0;
            if compared {
                if kind == P_LEAF && (key.is_empty() || key.len() > 511) {
                    return bad(&format!("a key of {} bytes (keys are 1 to 511)", key.len()));
                }
                let first = i == usize::from(kind == P_BRANCH);
                let in_order = match previous {
                    None => true,
                    // The first key may equal the page's lower bound (its parent's key is
                    // usually this very key); after it, keys are unique.
                    Some(p) if first => p <= key,
                    Some(p) => p < key,
                };
                if !in_order || high.is_some_and(|h| key >= h) {
                    return bad("its keys are out of order: a search would not find some of the keys the database lists");
                }
                previous = Some(key);
            }
            if kind == P_BRANCH {
                // The previous child's range ends at this key.
                if let Some((page, from)) = child.take() {
                    stack.push((page, level + 1, from, Some(key)));
                }
                let from = if i == 0 { low } else { Some(key) };
                child = Some((lo | hi << 16 | (flags as u64) << 32, from));
                continue;
            }
            if flags & (F_SUBDATA | F_DUPDATA) != 0 {
                return bad("a node flagged as a sub-database (rico never writes one)");
            }
            let size = lo | hi << 16;
            if flags & F_BIGDATA != 0 {
                if key_end + 8 > psize {
                    return bad("a node runs past the page");
                }
                let first = u64_at(page, key_end);
                let count = (PAGE_HEADER as u64 + size).div_ceil(psize as u64);
                if first < 2 || first.saturating_add(count) > pages {
                    return bad("a value's overflow pages lie outside the file");
                }
            } else if key_end + size as usize > psize {
                return bad("a value runs past the page");
            }
        }
        if let Some((page, from)) = child {
            stack.push((page, level + 1, from, high));
        }
    }
    Ok(())
}

/// Checks the header of the overflow page that holds `value` (a value LMDB returned from a map
/// starting at `map`), when the value is one: the page must name itself and span the value.
pub fn check_overflow(map: usize, psize: usize, value: &[u8]) -> Result<(), String> {
    let start = value.as_ptr() as usize;
    let Some(offset) = start.checked_sub(map + PAGE_HEADER) else {
        return Ok(());
    };
    if !offset.is_multiple_of(psize) {
        // Inside a leaf page (checked with it): a leaf node's data never starts right after
        // the page header, an overflow value always does.
        return Ok(());
    }
    let pgno = (offset / psize) as u64;
    // SAFETY: the page header precedes the value inside LMDB's map (the offset is within it).
    let header = unsafe { std::slice::from_raw_parts((start - PAGE_HEADER) as *const u8, 16) };
    let count = (PAGE_HEADER + value.len()).div_ceil(psize) as u32;
    if u64_at(header, 0) != pgno || u16_at(header, 10) != P_OVERFLOW || u32_at(header, 12) < count {
        return Err(format!(
            "the overflow page {pgno} of a value has a damaged header"
        ));
    }
    Ok(())
}
