//! The writing stage of a conversion: the single writer that puts records into LMDB in
//! arrival order and commits them in bounded transactions.

use std::path::Path;
use std::sync::mpsc::Receiver;

use crate::convert::Record;
use crate::convert::{another_writer, lmdb_error, INITIAL_MAP_SIZE, TXN_MAX_RECORDS};
use crate::error::{Error, Result};
use crate::lmdb::{Env, LmdbError, PutMode};
use crate::progress::Progress;

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
pub(crate) fn write_records(
    env: &Env,
    target: &Path,
    receiver: Receiver<Vec<Result<Record>>>,
    txn_bytes: usize,
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
                    commit(env, target, &mut pending, &mut last_key, &mut written)?;
                    written.error = Some(e);
                    return Ok(written);
                }
            }
        }
    }
    commit(env, target, &mut pending, &mut last_key, &mut written)?;
    Ok(written)
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
                // SAFETY: the writer thread is the only user of this environment while it writes,
                // and it holds no transaction here (the failed one was dropped).
                unsafe { env.set_map_size(info.map_size + step) }
                    .map_err(|e| lmdb_error(target, "cannot grow the database map", e))?;
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
