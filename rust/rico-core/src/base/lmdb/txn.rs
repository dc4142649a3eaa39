//! Transactions on an environment: bounded write transactions, short read transactions, and
//! long-lived shared read snapshots whose values point into the memory map.

use std::ptr;

use lmdb_master_sys as ffi;

use super::{check, slice, val, Env, LmdbError, LmdbResult};

/// A write transaction; aborted on drop unless committed.
pub struct WriteTxn<'env> {
    pub(super) env: &'env Env,
    pub(super) raw: *mut ffi::MDB_txn,
}

/// How a key is inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with KEYEXIST if the key exists.
    NoOverwrite,
    /// The key sorts after every key in the database (fast bulk load).
    Append,
}

impl WriteTxn<'_> {
    /// Stores `value` under `key` (see [`PutMode`] for an existing key).
    pub fn put(&mut self, key: &[u8], value: &[u8], mode: PutMode) -> LmdbResult<()> {
        let mut k = val(key);
        let mut v = val(value);
        let flags = match mode {
            PutMode::NoOverwrite => ffi::MDB_NOOVERWRITE,
            PutMode::Append => ffi::MDB_APPEND,
        };
        // SAFETY: k and v point to live slices for the duration of the call; LMDB copies them.
        unsafe { check(ffi::mdb_put(self.raw, self.env.dbi, &mut k, &mut v, flags)) }
    }

    /// The value of `key` as this transaction sees it (its own writes included).
    pub fn get(&self, key: &[u8]) -> LmdbResult<Option<&[u8]>> {
        get(self.raw, self.env.dbi, key)
    }

    /// Removes `key`'s record; returns whether there was one.
    pub fn delete(&mut self, key: &[u8]) -> LmdbResult<bool> {
        let mut k = val(key);
        // SAFETY: k points to a live slice for the duration of the call.
        match unsafe { ffi::mdb_del(self.raw, self.env.dbi, &mut k, ptr::null_mut()) } {
            0 => Ok(true),
            ffi::MDB_NOTFOUND => Ok(false),
            rc => Err(LmdbError(rc)),
        }
    }

    /// The greatest key in the database, if any.
    pub fn last_key(&self) -> LmdbResult<Option<Vec<u8>>> {
        // SAFETY: cursor confined to this call.
        unsafe {
            let mut cursor = ptr::null_mut();
            check(ffi::mdb_cursor_open(self.raw, self.env.dbi, &mut cursor))?;
            let mut k = val(&[]);
            let mut v = val(&[]);
            let rc = ffi::mdb_cursor_get(cursor, &mut k, &mut v, ffi::MDB_LAST);
            let out = match rc {
                0 => Ok(Some(slice(&k).to_vec())),
                ffi::MDB_NOTFOUND => Ok(None),
                rc => Err(LmdbError(rc)),
            };
            ffi::mdb_cursor_close(cursor);
            out
        }
    }

    /// Commits the transaction: its records are durable once this returns (the meta page
    /// flush is deferred, `MDB_NOMETASYNC`).
    pub fn commit(mut self) -> LmdbResult<()> {
        let raw = std::mem::replace(&mut self.raw, ptr::null_mut());
        // SAFETY: raw is a live transaction, consumed by commit (freed even on failure).
        unsafe { check(ffi::mdb_txn_commit(raw)) }
    }
}

impl Drop for WriteTxn<'_> {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: a live, uncommitted transaction.
            unsafe { ffi::mdb_txn_abort(self.raw) }
        }
    }
}

fn get<'t>(txn: *mut ffi::MDB_txn, dbi: ffi::MDB_dbi, key: &[u8]) -> LmdbResult<Option<&'t [u8]>> {
    let mut k = val(key);
    let mut v = val(&[]);
    // SAFETY: txn is live for 't; LMDB returns a pointer into the map valid for the transaction.
    unsafe {
        match ffi::mdb_get(txn, dbi, &mut k, &mut v) {
            0 => Ok(Some(slice(&v))),
            ffi::MDB_NOTFOUND => Ok(None),
            rc => Err(LmdbError(rc)),
        }
    }
}

/// A read-only snapshot: values it returns point into the memory map and stay valid while it lives.
pub struct ReadTxn<'env> {
    pub(super) env: &'env Env,
    pub(super) raw: *mut ffi::MDB_txn,
}

// SAFETY: with MDB_NOTLS a read transaction may be used from another thread if uses are serialised
// (callers hold it behind &self and LMDB read calls do not mutate shared state of the txn).
unsafe impl Send for ReadTxn<'_> {}
// SAFETY: as for Send: a read-only MDB_NOTLS transaction is only read by LMDB's get and
// cursor calls, which may run from several threads at once.
unsafe impl Sync for ReadTxn<'_> {}

impl<'env> ReadTxn<'env> {
    /// The value of `key`, pointing into the memory map (valid while the transaction lives).
    pub fn get(&self, key: &[u8]) -> LmdbResult<Option<&[u8]>> {
        get(self.raw, self.env.dbi, key)
    }

    /// Every key in order, and the value of each, through `visit` (stop by returning false).
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], &[u8]) -> bool) -> LmdbResult<()> {
        // SAFETY: cursor confined to this call and to this live transaction.
        unsafe {
            let mut cursor = ptr::null_mut();
            check(ffi::mdb_cursor_open(self.raw, self.env.dbi, &mut cursor))?;
            let mut k = val(&[]);
            let mut v = val(&[]);
            let mut op = ffi::MDB_FIRST;
            let result = loop {
                match ffi::mdb_cursor_get(cursor, &mut k, &mut v, op) {
                    0 => {
                        if !visit(slice(&k), slice(&v)) {
                            break Ok(());
                        }
                    }
                    ffi::MDB_NOTFOUND => break Ok(()),
                    rc => break Err(LmdbError(rc)),
                }
                op = ffi::MDB_NEXT;
            };
            ffi::mdb_cursor_close(cursor);
            result
        }
    }

    /// The environment this transaction reads.
    pub fn env(&self) -> &'env Env {
        self.env
    }
}

impl Drop for ReadTxn<'_> {
    fn drop(&mut self) {
        // SAFETY: a live read transaction.
        unsafe { ffi::mdb_txn_abort(self.raw) }
    }
}

/// A read snapshot that owns a handle on its environment, so that it can be shared (`Arc`) by
/// everything that points into the memory map: the map stays valid while any holder lives.
pub struct Snapshot {
    pub(super) env: std::sync::Arc<Env>,
    pub(super) raw: *mut ffi::MDB_txn,
}

// SAFETY: the snapshot is a read-only MDB_NOTLS transaction on the unnamed database; LMDB's read
// path (mdb_get, cursors on it) does not mutate the transaction for the main database, so
// concurrent reads from several threads are sound. It is never reset or renewed while shared.
unsafe impl Send for Snapshot {}
// SAFETY: as for Send: shared access only runs LMDB's read calls on the transaction.
unsafe impl Sync for Snapshot {}

impl Snapshot {
    /// Begins a snapshot of `env` (adopting a map grown by a writer in another process).
    pub fn new(env: std::sync::Arc<Env>) -> LmdbResult<Snapshot> {
        env.intact()?;
        let txn = env.begin_read()?;
        let raw = txn.raw;
        std::mem::forget(txn); // ownership of the transaction moves to the Snapshot
        let snapshot = Snapshot { env, raw };
        snapshot.env.intact()?;
        Ok(snapshot)
    }

    /// The environment this snapshot reads (shared: it stays open while the snapshot lives).
    pub fn env(&self) -> &std::sync::Arc<Env> {
        &self.env
    }

    /// The value of `key`, pointing into the memory map. Fails with [`CHANGED`](super::CHANGED) once a read
    /// of the map met a page that no longer exists (what LMDB read then was zeros).
    #[inline]
    pub fn get(&self, key: &[u8]) -> LmdbResult<Option<&[u8]>> {
        let value = get(self.raw, self.env.dbi, key);
        self.env.intact()?;
        value
    }

    /// Every key in order, and its value, through `visit` (stop by returning false). Stops
    /// with [`CHANGED`](super::CHANGED) before visiting anything read from a page that no longer exists.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], &[u8]) -> bool) -> LmdbResult<()> {
        let txn = ReadTxn {
            env: &self.env,
            raw: self.raw,
        };
        let result = txn.for_each(|k, v| !self.env.is_damaged() && visit(k, v));
        std::mem::forget(txn); // still owned by the Snapshot
        self.env.intact()?;
        result
    }

    /// The greatest key, if any.
    pub fn last_key(&self) -> LmdbResult<Option<Vec<u8>>> {
        let txn = WriteTxn {
            env: &self.env,
            raw: self.raw,
        };
        let result = txn.last_key();
        std::mem::forget(txn); // still owned by the Snapshot (last_key only reads)
        self.env.intact()?;
        result
    }

    /// Number of records.
    pub fn len(&self) -> LmdbResult<u64> {
        // SAFETY: plain out-parameter.
        unsafe {
            let mut stat: ffi::MDB_stat = std::mem::zeroed();
            check(ffi::mdb_stat(self.raw, self.env.dbi, &mut stat))?;
            Ok(stat.ms_entries as u64)
        }
    }

    /// True when the snapshot holds no record.
    pub fn is_empty(&self) -> LmdbResult<bool> {
        Ok(self.len()? == 0)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // SAFETY: the transaction is live and owned by self; env outlives this call (Arc field).
        unsafe { ffi::mdb_txn_abort(self.raw) }
    }
}
