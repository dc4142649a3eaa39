//! A small safe layer over the LMDB C library (through `lmdb-master-sys`): just what rico's
//! writer and reader need — one unnamed database, a growing map, bounded write transactions,
//! long-lived read snapshots.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::ptr;

use lmdb_master_sys as ffi;

mod growth;
mod maps;
mod txn;

use growth::{file_map_size, give_back_growth_room, page_size, take_growth_room};
use maps::{mappings, FileId, MapWatch};
pub use txn::{PutMode, ReadTxn, Snapshot, WriteTxn};

/// An LMDB return code with a readable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LmdbError(pub i32);

impl LmdbError {
    /// True for MDB_MAP_FULL: the map is full (the writer grows it and retries).
    pub fn is_map_full(self) -> bool {
        self.0 == ffi::MDB_MAP_FULL
    }
    /// True for MDB_KEYEXIST: the key is already stored (a put with [`PutMode::NoOverwrite`]).
    pub fn is_key_exist(self) -> bool {
        self.0 == ffi::MDB_KEYEXIST
    }
    /// True for MDB_MAP_RESIZED: another process grew the map past this environment's.
    pub fn is_map_resized(self) -> bool {
        self.0 == ffi::MDB_MAP_RESIZED
    }
    /// True when the database is damaged: LMDB found a page of the wrong kind, or `data.mdb`
    /// is shorter than the pages its meta page names.
    pub fn is_damaged(self) -> bool {
        matches!(
            self.0,
            ffi::MDB_CORRUPTED | ffi::MDB_PAGE_NOTFOUND | ffi::MDB_INVALID | TRUNCATED | CHANGED
        )
    }
    /// True when `data.mdb` shrank (or could no longer be read) while this process had it
    /// mapped: a read met a page past its new end.
    pub fn is_changed(self) -> bool {
        self.0 == CHANGED
    }
    /// True when a write failed for lack of space: the disk or a quota is full, a file-size
    /// limit is reached (LMDB reports a short write as EIO).
    pub fn is_disk_full(self) -> bool {
        matches!(
            self.0,
            28 /* ENOSPC */ | 122 /* EDQUOT */ | 27 /* EFBIG */ | 5 /* EIO */
        )
    }
}

/// rico's own code: `data.mdb` is shorter than the last page its meta page names.
pub const TRUNCATED: i32 = -30_000;
/// rico's own code: a page of `data.mdb` could not be read through the map while the
/// environment was open (the file was truncated or replaced under this process).
pub const CHANGED: i32 = -30_001;

impl std::fmt::Display for LmdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == TRUNCATED {
            return write!(
                f,
                "data.mdb is shorter than the last page its meta page names: the file is truncated"
            );
        }
        if self.0 == CHANGED {
            return write!(
                f,
                "data.mdb changed while this process read it: a page could no longer be read (the file was truncated, or replaced in place)"
            );
        }
        // SAFETY: mdb_strerror returns a pointer to a static or thread-local C string.
        let msg = unsafe { CStr::from_ptr(ffi::mdb_strerror(self.0)) };
        write!(f, "{} (LMDB code {})", msg.to_string_lossy(), self.0)
    }
}

impl std::error::Error for LmdbError {}

/// A result whose error is an LMDB return code.
pub type LmdbResult<T> = std::result::Result<T, LmdbError>;

fn check(rc: i32) -> LmdbResult<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(LmdbError(rc))
    }
}

fn val(bytes: &[u8]) -> ffi::MDB_val {
    ffi::MDB_val {
        mv_size: bytes.len(),
        mv_data: bytes.as_ptr() as *mut _,
    }
}

/// # Safety
/// `v` must come from LMDB and the returned slice must not outlive the transaction.
unsafe fn slice<'a>(v: &ffi::MDB_val) -> &'a [u8] {
    if v.mv_size == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(v.mv_data as *const u8, v.mv_size)
    }
}

/// An open LMDB environment (one directory with `data.mdb` and `lock.mdb`).
pub struct Env {
    /// Set once the reader has checked this environment's B-tree pages.
    pub tree_checked: std::sync::atomic::AtomicBool,
    /// Raised when a read met a page of `data.mdb` that no longer exists (see `reader::fault`).
    damage: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// A read-only environment's map (found once opened; empty if it could not be found).
    map: std::sync::Mutex<MapWatch>,
    raw: *mut ffi::MDB_env,
    dbi: ffi::MDB_dbi,
    path: PathBuf,
    read_only: bool,
    /// Address space mapped past the end of the file, held from the process's budget.
    growth_room: u64,
}

// SAFETY: an MDB_env is thread-safe; transactions are confined by our API (MDB_NOTLS for readers).
unsafe impl Send for Env {}
// SAFETY: as for Send: LMDB's environment calls are thread-safe, and every method of `Env`
// that takes `&self` is one of them (transactions are started per caller).
unsafe impl Sync for Env {}

/// Environment statistics.
#[derive(Debug, Clone, Copy)]
pub struct EnvInfo {
    /// Bytes of address space the environment maps.
    pub map_size: u64,
    /// Bytes up to the end of the last page in use (the meta page's last page number).
    pub used_bytes: u64,
    /// Records in the main database, at a fresh read snapshot.
    pub entries: u64,
    /// LMDB's page size in bytes.
    pub page_size: u32,
}

impl Env {
    /// Opens (creating if needed) a writable environment in directory `path`.
    pub fn open_writable(path: &Path, initial_map_size: u64) -> LmdbResult<Env> {
        Self::open(path, false, initial_map_size)
    }

    /// Opens an existing environment read-only. Readers hold no lock against the writer.
    ///
    /// The map covers what the file holds now, plus room to grow where address space is not
    /// limited (see `GROWTH_ROOM`): a reservation per environment would run out under
    /// `ulimit -v`, or with thousands of shards. A writer in another process that grows the
    /// file past the map makes later snapshots fail with MDB_MAP_RESIZED: see [`Env::remap`].
    pub fn open_read_only(path: &Path) -> LmdbResult<Env> {
        let file = file_map_size(&path.join(crate::base::layout::DATA_FILE));
        let room = take_growth_room();
        let opened = match Self::open(path, true, file + room) {
            // No room for the room: the file alone.
            Err(e) if room > 0 && e.0 == libc::ENOMEM => {
                give_back_growth_room(room);
                return Self::open(path, true, file);
            }
            other => other,
        };
        match opened {
            Ok(mut env) => {
                env.growth_room = room;
                Ok(env)
            }
            Err(e) => {
                give_back_growth_room(room);
                Err(e)
            }
        }
    }

    fn open(path: &Path, read_only: bool, map_size: u64) -> LmdbResult<Env> {
        let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| LmdbError(22))?;
        let mut raw = ptr::null_mut();
        // SAFETY: plain FFI calls following LMDB's documented order; on failure the handle is closed.
        unsafe {
            check(ffi::mdb_env_create(&mut raw))?;
            let mut env = Env {
                tree_checked: Default::default(),
                damage: Default::default(),
                map: Default::default(),
                raw,
                dbi: 0,
                path: path.to_path_buf(),
                read_only,
                growth_room: 0,
            };
            // From here on `env`'s Drop closes the handle on any early return.
            if map_size > 0 {
                check(ffi::mdb_env_set_mapsize(raw, map_size as _))?;
            }
            check(ffi::mdb_env_set_maxreaders(raw, 1024))?;
            // NOTLS: a read snapshot may be kept by an object used from any thread (Python views).
            // NORDAHEAD: random record reads do not drag in neighbours.
            let mut flags = ffi::MDB_NOTLS;
            if read_only {
                flags |= ffi::MDB_RDONLY | ffi::MDB_NORDAHEAD;
            } else {
                // Data pages are flushed on each commit; only the meta page flush is deferred, so a
                // crash can lose at most the last transaction and never the database's integrity.
                flags |= ffi::MDB_NOMETASYNC;
            }
            let mut rc = ffi::mdb_env_open(raw, cpath.as_ptr(), flags, 0o644);
            if read_only && (rc == 13 /* EACCES */ || rc == 30/* EROFS */) {
                // lock.mdb cannot be written (read-only media, or a shared dataset owned by
                // another user): read without the reader table, as `lmdb.open(lock=False)` does.
                // Such a database is not expected to be written while it is read.
                ffi::mdb_env_close(raw);
                env.raw = ptr::null_mut(); // closed: Drop must not close it again
                check(ffi::mdb_env_create(&mut raw))?;
                env.raw = raw;
                rc = ffi::mdb_env_open(raw, cpath.as_ptr(), flags | ffi::MDB_NOLOCK, 0o644);
            }
            if rc != 0 {
                return Err(LmdbError(rc));
            }
            // A truncated data.mdb maps fine, then kills the process with SIGBUS on the first
            // page past its end: refuse it before any page is read.
            env.check_file_size()?;
            // Open the unnamed database once, in a short transaction.
            let mut txn = ptr::null_mut();
            let txn_flags = if read_only { ffi::MDB_RDONLY } else { 0 };
            check(ffi::mdb_txn_begin(
                raw,
                ptr::null_mut(),
                txn_flags,
                &mut txn,
            ))?;
            let rc = ffi::mdb_dbi_open(txn, ptr::null(), 0, &mut env.dbi);
            if rc != 0 {
                ffi::mdb_txn_abort(txn);
                return Err(LmdbError(rc));
            }
            check(ffi::mdb_txn_commit(txn))?;
            Ok(env)
        }
    }

    /// The environment's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails with [`TRUNCATED`] when `data.mdb` holds fewer bytes than the pages the current
    /// meta page names (the meta pages themselves are read by `mdb_env_open`, from the start),
    /// and with [`CHANGED`] when a read already met a page that no longer exists.
    pub fn check_file_size(&self) -> LmdbResult<()> {
        self.intact()?;
        // SAFETY: out-parameters are plain structs; the env is open.
        let (last_pgno, page_size) = unsafe {
            let mut stat: ffi::MDB_stat = std::mem::zeroed();
            check(ffi::mdb_env_stat(self.raw, &mut stat))?;
            (self.info_raw()?.me_last_pgno as u64, stat.ms_psize as u64)
        };
        self.intact()?;
        let needed = (last_pgno + 1).saturating_mul(page_size);
        let len = self.file_len()?;
        if len < needed {
            return Err(LmdbError(TRUNCATED));
        }
        Ok(())
    }

    fn info_raw(&self) -> LmdbResult<ffi::MDB_envinfo> {
        // SAFETY: a plain out-parameter; the env is open.
        unsafe {
            let mut info: ffi::MDB_envinfo = std::mem::zeroed();
            check(ffi::mdb_env_info(self.raw, &mut info))?;
            Ok(info)
        }
    }

    /// Size of `data.mdb` in bytes, through LMDB's own descriptor.
    fn file_len(&self) -> LmdbResult<u64> {
        let fd = self.data_fd()?;
        // SAFETY: fstat on an open descriptor into a zeroed struct.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                return Err(LmdbError(
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(5),
                ));
            }
            Ok(st.st_size as u64)
        }
    }

    /// LMDB's descriptor of `data.mdb` (valid while the environment is open).
    pub fn data_fd(&self) -> LmdbResult<i32> {
        let mut fd: ffi::mdb_filehandle_t = -1;
        // SAFETY: valid env handle, plain out-parameter.
        check(unsafe { ffi::mdb_env_get_fd(self.raw, &mut fd) })?;
        Ok(fd)
    }

    /// Start address of LMDB's memory map of `data.mdb`, given `probe`, an address inside a
    /// leaf page of the map (a key LMDB returned): a value at address `p` lies at file offset
    /// `p - map_addr`. LMDB does not expose its map's address (`me_mapaddr` is the fixed-map
    /// hint, usually null). A read-only environment's map, once found, is registered with the
    /// SIGBUS handler (`reader::fault`): a page of it that vanishes (the file truncated under
    /// this process) then reads zeros and marks the environment damaged instead of killing
    /// the process.
    pub fn map_addr(&self, probe: *const u8) -> Option<usize> {
        let probe = probe as usize;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.start <= probe && probe < map.start + map.len {
            return Some(map.start);
        }
        let len = (self.info_raw().ok()?.me_mapsize as u64).next_multiple_of(page_size()) as usize;
        let start = self
            .map_from_page(probe, len)
            .or_else(|| self.map_from_proc(probe))?;
        *map = MapWatch::default(); // the old registration goes first
        let watch = self
            .read_only
            .then(|| crate::base::fault::watch(start, len, false, &self.damage, true))
            .flatten();
        *map = MapWatch {
            start,
            len,
            _watch: watch,
        };
        Some(start)
    }

    /// The map's start from the header of the page `probe` lies in: every LMDB page begins
    /// with its own page number, so the map starts that many pages earlier. Checked: the map
    /// starts on a system page that is mapped and holds LMDB's meta page.
    fn map_from_page(&self, probe: usize, len: usize) -> Option<usize> {
        let os_page = page_size() as usize;
        // SAFETY: a plain out-parameter; the env is open.
        let psize = unsafe {
            let mut stat: ffi::MDB_stat = std::mem::zeroed();
            check(ffi::mdb_env_stat(self.raw, &mut stat)).ok()?;
            stat.ms_psize as usize
        };
        // The map is aligned to the system's pages; LMDB's pages are then aligned too when
        // they are no larger.
        if psize == 0 || !psize.is_power_of_two() || !os_page.is_multiple_of(psize) {
            return None;
        }
        let page = probe & !(psize - 1);
        // SAFETY: `probe` lies in a page of the map that LMDB has just read (the page is
        // mapped and readable); its first 8 bytes are the page number.
        let pgno = unsafe { (page as *const u64).read_unaligned() } as usize;
        let start = page.checked_sub(pgno.checked_mul(psize)?)?;
        if !start.is_multiple_of(os_page) || probe >= start.checked_add(len)? {
            return None;
        }
        let mut resident = 0u8;
        // SAFETY: mincore only reports whether the page at `start` is mapped (ENOMEM if not)
        // into one byte.
        if unsafe { libc::mincore(start as *mut libc::c_void, os_page, &mut resident) } != 0 {
            return None;
        }
        // SAFETY: the page at `start` is mapped (above); the meta page's magic follows the
        // 16-byte page header.
        let magic = unsafe { ((start + 16) as *const u32).read_unaligned() };
        (magic == 0xBEEF_C0DE).then_some(start)
    }

    /// The map's start from the kernel's list of this process's mappings (the mapping of
    /// `data.mdb` that holds `probe`).
    fn map_from_proc(&self, probe: usize) -> Option<usize> {
        let file = self.data_id()?;
        mappings(|m| {
            (file.names(m) && m.shared && m.start <= probe && probe < m.end)
                .then(|| m.start.checked_sub(m.offset))
                .flatten()
        })
    }

    /// How `/proc/self/maps` names `data.mdb`: its device and inode, through LMDB's own
    /// descriptor, and its path (on overlay filesystems the kernel lists the inode of the file
    /// underneath, but the path the file was opened by).
    fn data_id(&self) -> Option<FileId> {
        let fd = self.data_fd().ok()?;
        // SAFETY: fstat on an open descriptor into a zeroed struct.
        let st = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                return None;
            }
            st
        };
        let path = std::fs::canonicalize(self.path.join(crate::base::layout::DATA_FILE)).ok();
        Some(FileId {
            dev: (libc::major(st.st_dev), libc::minor(st.st_dev)),
            ino: st.st_ino,
            path: path.map(|p| p.into_os_string().into_vec()),
        })
    }

    /// True when a read of this environment's map met a page that no longer exists.
    #[inline]
    pub fn is_damaged(&self) -> bool {
        crate::base::fault::any() && self.damage.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The flag that [`Env::is_damaged`] reads, for other mappings of `data.mdb`.
    pub fn damage_flag(&self) -> &std::sync::Arc<std::sync::atomic::AtomicBool> {
        &self.damage
    }

    /// Fails with [`CHANGED`] once this environment is damaged.
    #[inline]
    fn intact(&self) -> LmdbResult<()> {
        if self.is_damaged() {
            Err(LmdbError(CHANGED))
        } else {
            Ok(())
        }
    }

    /// True for an environment opened with [`Env::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Map size, bytes used and number of records.
    pub fn info(&self) -> LmdbResult<EnvInfo> {
        // SAFETY: out-parameters are plain structs.
        unsafe {
            let mut info: ffi::MDB_envinfo = std::mem::zeroed();
            check(ffi::mdb_env_info(self.raw, &mut info))?;
            let mut stat: ffi::MDB_stat = std::mem::zeroed();
            check(ffi::mdb_env_stat(self.raw, &mut stat))?;
            // Entries of the main database need a transaction to be current.
            let txn = self.begin_read()?;
            let mut db_stat: ffi::MDB_stat = std::mem::zeroed();
            check(ffi::mdb_stat(txn.raw, self.dbi, &mut db_stat))?;
            Ok(EnvInfo {
                map_size: info.me_mapsize as u64,
                used_bytes: (info.me_last_pgno as u64 + 1) * stat.ms_psize as u64,
                entries: db_stat.ms_entries as u64,
                page_size: stat.ms_psize,
            })
        }
    }

    /// Grows the map.
    ///
    /// # Safety
    /// No transaction of this process may be active on this environment, and nothing may
    /// point into its memory map: LMDB unmaps and maps it again.
    pub unsafe fn set_map_size(&self, bytes: u64) -> LmdbResult<()> {
        check(ffi::mdb_env_set_mapsize(self.raw, bytes as _))
    }

    /// Maps a read-only environment again, over what `data.mdb` holds now and the same room to
    /// grow (a writer in another process grew it past this environment's map).
    ///
    /// # Safety
    /// As for [`Env::set_map_size`].
    pub unsafe fn remap(&self) -> LmdbResult<()> {
        {
            // Unregistered before LMDB unmaps it.
            *self.map.lock().unwrap_or_else(|p| p.into_inner()) = MapWatch::default();
        }
        let size =
            file_map_size(&self.path.join(crate::base::layout::DATA_FILE)) + self.growth_room;
        check(ffi::mdb_env_set_mapsize(self.raw, size as _))
        // The map is found (and registered) again by the next `map_addr`.
    }

    /// Drops this process's page-table entries for the memory map, keeping the pages in the
    /// page cache. LMDB's tree searches fault pages in, and the kernel maps their neighbours
    /// too (fault-around); a writer whose keys arrive out of order would otherwise see its
    /// resident size grow with the database. Called between transactions; nothing is lost: the
    /// next access faults the page back in from the page cache.
    pub fn release_mapped_pages(&self) {
        // LMDB does not expose the map's address; the kernel's list of this process's mappings
        // has it (it moves when the map grows, so it is looked up each time). Paths are
        // compared as bytes: a target whose path is not UTF-8 is found too.
        let Some(file) = self.data_id() else {
            return;
        };
        let mut ranges = Vec::new();
        mappings(|m| {
            if file.names(m) && m.shared {
                ranges.push((m.start, m.end));
            }
            None::<()>
        });
        for (start, end) in ranges {
            // SAFETY: a shared file mapping of data.mdb: MADV_DONTNEED only drops page-table
            // entries; contents stay in the page cache and the file, and the next access faults
            // them back in (the writer does not use MDB_WRITEMAP, so the map holds only
            // committed pages).
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }

    /// Flushes everything to disk.
    pub fn sync(&self) -> LmdbResult<()> {
        // SAFETY: valid env handle.
        unsafe { check(ffi::mdb_env_sync(self.raw, 1)) }
    }

    /// Starts a write transaction.
    pub fn begin_write(&self) -> LmdbResult<WriteTxn<'_>> {
        let mut raw = ptr::null_mut();
        // SAFETY: valid env handle; the transaction is finished by commit/abort/drop.
        unsafe { check(ffi::mdb_txn_begin(self.raw, ptr::null_mut(), 0, &mut raw))? };
        Ok(WriteTxn { env: self, raw })
    }

    /// Starts a read-only snapshot. If another process grew the map beyond this environment's
    /// mapping, this fails with MDB_MAP_RESIZED: the caller decides whether the map may be
    /// remapped (see [`Env::set_map_size`]) or a fresh environment is needed.
    pub fn begin_read(&self) -> LmdbResult<ReadTxn<'_>> {
        let mut raw = ptr::null_mut();
        // SAFETY: valid env handle.
        check(unsafe { ffi::mdb_txn_begin(self.raw, ptr::null_mut(), ffi::MDB_RDONLY, &mut raw) })?;
        Ok(ReadTxn { env: self, raw })
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Unregistered before LMDB unmaps it.
        *self.map.get_mut().unwrap_or_else(|p| p.into_inner()) = MapWatch::default();
        give_back_growth_room(self.growth_room);
        if !self.raw.is_null() {
            // SAFETY: all transactions borrow the Env, so none is alive here.
            unsafe { ffi::mdb_env_close(self.raw) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::maps::Mapping;
    use super::*;

    /// Resident bytes of the mapping of this process that holds `addr` (from smaps).
    fn resident(addr: usize) -> Option<u64> {
        let smaps = std::fs::read("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.split(|&b| b == b'\n') {
            if let Some(m) = Mapping::parse(line) {
                inside = m.start <= addr && addr < m.end;
            } else if inside && line.starts_with(b"Rss:") {
                let kb = std::str::from_utf8(&line[4..]).ok()?;
                return kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok();
            }
        }
        None
    }

    #[test]
    fn the_writer_releases_its_map_under_a_path_that_is_not_utf8() {
        let dir = std::env::temp_dir().join(std::ffi::OsStr::from_bytes(
            format!("rico-lmdb-{}-", std::process::id())
                .as_bytes()
                .iter()
                .copied()
                .chain([0xff, 0xfe])
                .collect::<Vec<u8>>()
                .as_slice(),
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let env = Env::open_writable(&dir, 64 << 20).unwrap();
        let value = vec![7u8; 4 << 20];
        let mut txn = env.begin_write().unwrap();
        txn.put(b"k", &value, PutMode::Append).unwrap();
        txn.commit().unwrap();
        let read = env.begin_read().unwrap();
        let v = read.get(b"k").unwrap().unwrap();
        assert_eq!(v.iter().map(|&b| b as u64).sum::<u64>(), 7 * (4 << 20));
        let addr = v.as_ptr() as usize;
        drop(read);
        assert!(
            resident(addr).unwrap() >= 1024,
            "the value was read through the map"
        );
        env.release_mapped_pages();
        assert!(
            resident(addr).unwrap() < 1024,
            "the map's pages were released"
        );
        drop(env);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
