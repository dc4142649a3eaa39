//! The writing stage of a conversion: the single writer that puts records into LMDB in
//! arrival order and commits them in bounded transactions.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::Receiver;

use crate::base::error::{Error, Result};
use crate::base::lmdb::{Env, LmdbError, PutMode};
use crate::base::progress::Progress;
use crate::write::decode::Record;
use crate::write::target::another_writer;

/// Map size of a new database; it doubles (up to +64 GiB a step) whenever a transaction needs more.
pub const INITIAL_MAP_SIZE: u64 = 64 << 20;
/// A write transaction commits after this many records, or after a quarter of the buffer
/// ([`ConvertOptions::buffer_bytes`](crate::write::convert::ConvertOptions::buffer_bytes)) in bytes
/// of values, whichever comes first: a kill loses at most one such batch.
pub const TXN_MAX_RECORDS: usize = 512;

/// The error of LMDB error `e` while the writer does `what` in the database at `target`: it
/// says when the disk is full, the database damaged, descriptors used up, or another process
/// writing into it.
pub(crate) fn lmdb_error(target: &Path, what: &str, e: LmdbError) -> Error {
    if e.0 == libc::EMFILE || e.0 == libc::ENFILE {
        crate::base::error::out_of_descriptors("opening the database").at(target)
    } else if e.is_damaged() {
        crate::read::reader::damaged(target, e)
    } else if e.is_disk_full() {
        Error::output(format!("{what}: {e}: the disk is full (or a quota or file-size limit was reached)"))
            .at(target)
            .hint("free space (or move --target-dir), then run the same command again with --resume; the records committed so far are kept and valid")
    } else if e.is_map_resized() {
        another_writer(target)
    } else {
        Error::output(format!("{what}: {e}")).at(target)
    }
}

/// What the writer committed.
#[derive(Default)]
pub(crate) struct Written {
    pub records: u64,
    pub files: u64,
    pub source_bytes: u64,
    pub record_bytes: u64,
    /// A decoding error that stopped the run after the records before it were committed.
    pub error: Option<Error>,
}

/// The single writer: puts records in arrival order (= sorted source order), commits in bounded
/// transactions (at most [`TXN_MAX_RECORDS`] records or `txn_bytes` bytes of values), grows the
/// map when it fills.
///
/// An error that carries keys to discard ([`Error::discard`]) removes, after the records before
/// it are committed, the records of those keys that were not in the database when the run
/// started (`present`, as [`key_hash128`]s): a resumed run keeps what an earlier run wrote.
pub(crate) fn write_records(
    env: &Env,
    target: &Path,
    receiver: Receiver<Vec<Result<Record>>>,
    txn_bytes: usize,
    present: &HashSet<u128>,
    bar: &Progress,
) -> Result<Written> {
    let mut written = Written::default();
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut last_key = {
        let txn = env
            .begin_write()
            .map_err(|e| lmdb_error(target, "cannot start a transaction", e))?;
        txn.last_key()
            .map_err(|e| lmdb_error(target, "cannot read the database", e))?
    };
    for batch in receiver {
        for result in batch {
            match result {
                Ok(record) => {
                    pending_bytes += record.value.len();
                    pending.push(record);
                    if pending.len() >= TXN_MAX_RECORDS || pending_bytes >= txn_bytes {
                        commit(env, target, &mut pending, &mut last_key, &mut written)?;
                        pending_bytes = 0;
                    }
                    bar.done(1);
                }
                Err(e) => {
                    if let Some(discard) = &e.discard {
                        let discard: HashSet<&str> = discard.iter().map(String::as_str).collect();
                        pending.retain(|r| !discard.contains(r.key.as_str()));
                    }
                    commit(env, target, &mut pending, &mut last_key, &mut written)?;
                    if let Some(discard) = &e.discard {
                        written.records -= remove(env, target, discard, present)?;
                    }
                    written.error = Some(e);
                    return Ok(written);
                }
            }
        }
    }
    commit(env, target, &mut pending, &mut last_key, &mut written)?;
    Ok(written)
}

/// Removes the records of `keys` that are not in `present`, in one transaction; returns how
/// many there were.
fn remove(env: &Env, target: &Path, keys: &[String], present: &HashSet<u128>) -> Result<u64> {
    let mut txn = env
        .begin_write()
        .map_err(|e| lmdb_error(target, "cannot start a transaction", e))?;
    let mut removed = 0;
    for key in keys {
        if present.contains(&key_hash128(key.as_bytes())) {
            continue;
        }
        if txn
            .delete(key.as_bytes())
            .map_err(|e| lmdb_error(target, "cannot remove a record", e))?
        {
            removed += 1;
        }
    }
    txn.commit()
        .map_err(|e| lmdb_error(target, "cannot commit a transaction", e))?;
    Ok(removed)
}

/// A key as a 128-bit hash (two SipHashes with fixed keys): 16 bytes a record, for the set of
/// keys a resumed run leaves out.
pub(crate) fn key_hash128(key: &[u8]) -> u128 {
    use std::hash::{Hash, Hasher};
    let mut a = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    (0xA5u8, key).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Commits `pending` in one transaction, growing the map and retrying if it is full.
fn commit(
    env: &Env,
    target: &Path,
    pending: &mut Vec<Record>,
    last_key: &mut Option<Vec<u8>>,
    written: &mut Written,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    loop {
        match try_commit(env, pending, last_key.as_deref()) {
            Ok(()) => {
                env.release_mapped_pages();
                break;
            }
            Err(TxnError::Lmdb(e)) if e.is_map_full() => {
                let info = env
                    .info()
                    .map_err(|e| lmdb_error(target, "cannot read the database size", e))?;
                let step = info.map_size.clamp(INITIAL_MAP_SIZE, 64 << 30);
                // Under `ulimit -v` a doubled map may not fit: grow by what does.
                let step = room_to_map(step, INITIAL_MAP_SIZE)
                    .ok_or_else(|| no_address_space(target, info.map_size))?;
                // SAFETY: the writer thread is the only user of this environment while it writes,
                // and it holds no transaction here (the failed one was dropped).
                unsafe { env.set_map_size(info.map_size + step) }.map_err(|e| {
                    if e.0 == libc::ENOMEM && address_space_limit().is_some() {
                        no_address_space(target, info.map_size)
                    } else {
                        lmdb_error(target, "cannot grow the database map", e)
                    }
                })?;
            }
            Err(TxnError::Lmdb(e)) if e.is_map_resized() => return Err(another_writer(target)),
            Err(TxnError::Lmdb(e)) => return Err(lmdb_error(target, "cannot write records", e)),
            Err(TxnError::Duplicate(key)) => {
                // Planning refuses duplicate sources and --resume skips committed keys, so this
                // means something else wrote into the database during the run.
                return Err(Error::output(format!(
                    "record {key:?} appeared in the database while this run was writing it"
                ))
                .at(target)
                .hint("another conversion is writing into the same --target-dir; run one at a time, then finish with --resume"));
            }
        }
    }
    for record in pending.drain(..) {
        written.records += 1;
        written.files += record.files;
        written.source_bytes += record.source_bytes;
        written.record_bytes += record.value.len() as u64;
        // The greatest key in the database, not the last one put: source order is not key order
        // across sources (maps after S2 patches), and appending needs the true maximum.
        if last_key
            .as_deref()
            .is_none_or(|l| record.key.as_bytes() > l)
        {
            *last_key = Some(record.key.into_bytes());
        }
    }
    Ok(())
}

/// This process's address space limit (`ulimit -v`) in bytes, if it has one.
fn address_space_limit() -> Option<u64> {
    // SAFETY: getrlimit fills a plain struct.
    let limit = unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        (libc::getrlimit(libc::RLIMIT_AS, &mut limit) == 0).then_some(limit.rlim_cur)
    }?;
    (limit != libc::RLIM_INFINITY).then_some(limit)
}

/// How much more address space the map may take: `step` where address space is not limited;
/// under `ulimit -v`, the largest of `step`, `step / 2`, ... down to `least` that a reservation
/// proves free (LMDB unmaps the old map before mapping the grown one, so the growth alone must
/// fit), or `None`. A failed grow would leave LMDB without a map, so it is never tried blind.
fn room_to_map(step: u64, least: u64) -> Option<u64> {
    if address_space_limit().is_none() {
        return Some(step);
    }
    let mut step = step;
    while step >= least {
        // SAFETY: a new anonymous reservation, no access, unmapped at once.
        let probe = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                step as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if probe != libc::MAP_FAILED {
            // SAFETY: the reservation just made.
            unsafe { libc::munmap(probe, step as usize) };
            return Some(step);
        }
        step /= 2;
    }
    None
}

/// The error of a map that cannot grow within the address space limit.
fn no_address_space(target: &Path, map_size: u64) -> Error {
    let limit = address_space_limit().map_or(String::new(), |l| {
        format!(" (`ulimit -v` is {} KiB)", l / 1024)
    });
    Error::output(format!(
        "cannot grow the database map past {} MB: the address space limit{limit} leaves no room",
        map_size >> 20
    ))
    .at(target)
    .hint("lower --io-depth (io_depth=, e.g. 4) and --threads, which hold reads and decoded records in flight, or raise `ulimit -v`; then finish with --resume")
}

enum TxnError {
    Lmdb(LmdbError),
    Duplicate(String),
}

fn try_commit(
    env: &Env,
    pending: &[Record],
    last_key: Option<&[u8]>,
) -> std::result::Result<(), TxnError> {
    let mut txn = env.begin_write().map_err(TxnError::Lmdb)?;
    let mut last = last_key;
    for record in pending {
        let key = record.key.as_bytes();
        // Appending is LMDB's fast bulk load; it needs keys in increasing order, which sorted
        // source paths usually give. Otherwise an ordinary insert that refuses to overwrite.
        let mode = if last.is_none_or(|l| key > l) {
            PutMode::Append
        } else {
            PutMode::NoOverwrite
        };
        txn.put(key, &record.value, mode).map_err(|e| {
            if e.is_key_exist() {
                TxnError::Duplicate(record.key.clone())
            } else {
                TxnError::Lmdb(e)
            }
        })?;
        if last.is_none_or(|l| key > l) {
            last = Some(key);
        }
    }
    txn.commit().map_err(TxnError::Lmdb)
}
