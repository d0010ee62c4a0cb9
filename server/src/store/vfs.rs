//! The SQLite store's VFS: `unix-excl`, with the write-ahead log's writes
//! gathered until SQLite syncs the log.
//!
//! SQLite writes a frame of the log as two `pwrite`s, its 24-byte header
//! and its page, so a commit of 60 pages costs 120 system calls before its
//! fsync. Under load that was most of the writer thread's time. This VFS
//! passes everything to `unix-excl` (see `store::sqlite`, "Locking"),
//! except that writes to a log file that continue the previous one are
//! kept in a buffer and written with one `pwrite` per 124 KiB when SQLite
//! next does
//! anything else with the file: sync it, read it, truncate it, ask its size,
//! close it, or write elsewhere in it.
//!
//! Durability does not change. SQLite syncs the log before a commit counts
//! (`synchronous=FULL`) and before it makes the commit visible to other
//! connections (the WAL index is written after the sync), and the sync
//! writes the buffer first. What the buffer holds is never yet committed:
//! a crash that loses it loses what a crash before those `pwrite`s would
//! have, a transaction nobody was told about. A failed write surfaces at
//! the sync, which fails the commit as before.
//!
//! Only log files whose device allows overwriting a sector in place
//! without harming its neighbours (`SQLITE_IOCAP_POWERSAFE_OVERWRITE`,
//! which `unix` reports) gather writes: without it SQLite pads a commit to
//! a sector boundary and writes part of its last frame after the sync,
//! which the buffer would hold past the commit.
//!
//! Registration copies `unix-excl`'s VFS record, including its
//! `pAppData`, and replaces `xOpen` and the size of a file; every other
//! call of the VFS goes to `unix-excl`'s own functions.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the store's files with.
pub(super) const NAME: &str = "mxjob-unix-excl";
const NAME_C: &CStr = c"mxjob-unix-excl";
const UNDER: &CStr = c"unix-excl";

/// Gathered bytes past which they are written without waiting.
const LIMIT: usize = 8 * 1024 * 1024;

/// The most `unix`'s `xWrite` is given at once: it writes at most 128 KiB
/// less one byte per `pwrite` and fails a longer write part-way.
const WRITE_MAX: usize = 124 * 1024;

/// `unix-excl`'s VFS, set once by [`register`].
static UNDER_VFS: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// Registers the VFS once; later calls return the first call's outcome.
pub(super) fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find initializes SQLite and returns a
            // record SQLite keeps for the life of the process.
            let under = unsafe { ffi::sqlite3_vfs_find(UNDER.as_ptr()) };
            if under.is_null() {
                return Err("SQLite has no unix-excl VFS".to_string());
            }
            UNDER_VFS.store(under, Ordering::Release);
            // SAFETY: `under` is a valid record; the copy is leaked, as
            // SQLite keeps registered VFS records until the process ends.
            let rc = unsafe {
                let mut vfs: ffi::sqlite3_vfs = ptr::read(under);
                vfs.szOsFile = UNDER_OFFSET as c_int + (*under).szOsFile;
                vfs.pNext = ptr::null_mut();
                vfs.zName = NAME_C.as_ptr();
                vfs.xOpen = Some(open);
                ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0)
            };
            if rc == ffi::SQLITE_OK {
                Ok(())
            } else {
                Err(format!("registering the SQLite VFS {NAME}: error {rc}"))
            }
        })
        .clone()
}

/// The bytes of consecutive writes not yet written.
#[derive(Debug, Default)]
struct Gathered {
    /// The file offset of `bytes[0]`.
    start: i64,
    bytes: Vec<u8>,
}

impl Gathered {
    /// Whether a write at `offset` can join the gathered bytes.
    fn continues(&self, offset: i64) -> bool {
        self.bytes.is_empty() || offset == self.start + self.bytes.len() as i64
    }

    fn push(&mut self, offset: i64, data: &[u8]) {
        if self.bytes.is_empty() {
            self.start = offset;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Empties the buffer, letting go of a large allocation.
    fn clear(&mut self) {
        self.bytes.clear();
        if self.bytes.capacity() > LIMIT {
            self.bytes.shrink_to(LIMIT);
        }
    }
}

/// A file as SQLite allocates it for this VFS: this header, then
/// `unix-excl`'s file at [`UNDER_OFFSET`].
#[repr(C)]
struct File {
    /// SQLite's part: the methods below.
    base: ffi::sqlite3_file,
    /// A log file's gathered writes; null for other files.
    gathered: *mut Gathered,
}

/// Where `unix-excl`'s file starts, aligned as SQLite aligns allocations.
const UNDER_OFFSET: usize = std::mem::size_of::<File>().next_multiple_of(8);

/// `unix-excl`'s file inside `file`.
unsafe fn under(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    file.cast::<u8>().add(UNDER_OFFSET).cast()
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let vfs = UNDER_VFS.load(Ordering::Acquire);
    let ours = file.cast::<File>();
    ptr::write(
        ours,
        File {
            base: ffi::sqlite3_file {
                pMethods: ptr::null(),
            },
            gathered: ptr::null_mut(),
        },
    );
    let Some(under_open) = (*vfs).xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    let inner = under(file);
    let rc = under_open(vfs, name, inner, flags, out_flags);
    if (*inner).pMethods.is_null() {
        return if rc == ffi::SQLITE_OK {
            ffi::SQLITE_CANTOPEN
        } else {
            rc
        };
    }
    if rc != ffi::SQLITE_OK {
        if let Some(close) = (*(*inner).pMethods).xClose {
            close(inner);
        }
        return rc;
    }
    if flags & ffi::SQLITE_OPEN_WAL != 0 {
        let characteristics = (*(*inner).pMethods)
            .xDeviceCharacteristics
            .map_or(0, |f| f(inner));
        if characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0 {
            (*ours).gathered = Box::into_raw(Box::default());
        }
    }
    (*ours).base.pMethods = &METHODS;
    rc
}

/// Writes what `file` gathered, if anything.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    let gathered = (*file.cast::<File>()).gathered;
    if gathered.is_null() || (*gathered).bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let inner = under(file);
    let Some(write) = (*(*inner).pMethods).xWrite else {
        (*gathered).clear();
        return ffi::SQLITE_IOERR_WRITE;
    };
    let mut offset = (*gathered).start;
    let mut rc = ffi::SQLITE_OK;
    for chunk in (*gathered).bytes.chunks(WRITE_MAX) {
        rc = write(inner, chunk.as_ptr().cast(), chunk.len() as c_int, offset);
        if rc != ffi::SQLITE_OK {
            break;
        }
        offset += chunk.len() as i64;
    }
    (*gathered).clear();
    rc
}

/// Calls `unix-excl`'s method `$method` on the file inside `$file`, or
/// answers `$missing` when it has none.
macro_rules! pass {
    ($file:expr, $method:ident, $missing:expr $(, $arg:expr)*) => {{
        let inner = under($file);
        match (*(*inner).pMethods).$method {
            Some(method) => method(inner $(, $arg)*),
            None => $missing,
        }
    }};
}

/// Writes what was gathered, then calls `$method`.
macro_rules! flush_then {
    ($file:expr, $method:ident, $missing:expr $(, $arg:expr)*) => {{
        let rc = flush($file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        pass!($file, $method, $missing $(, $arg)*)
    }};
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let ours = file.cast::<File>();
    if !(*ours).gathered.is_null() {
        drop(Box::from_raw((*ours).gathered));
        (*ours).gathered = ptr::null_mut();
    }
    let closed = pass!(file, xClose, ffi::SQLITE_OK);
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    flush_then!(file, xRead, ffi::SQLITE_IOERR_READ, data, amount, offset)
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let gathered = (*file.cast::<File>()).gathered;
    if gathered.is_null() || amount <= 0 || data.is_null() {
        return pass!(file, xWrite, ffi::SQLITE_IOERR_WRITE, data, amount, offset);
    }
    if !(*gathered).continues(offset) {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    (*gathered).push(
        offset,
        std::slice::from_raw_parts(data.cast::<u8>(), amount as usize),
    );
    if (*gathered).bytes.len() >= LIMIT {
        return flush(file);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    flush_then!(file, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flush_then!(file, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}

unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    flush_then!(file, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    pass!(file, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    pass!(file, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level)
}

unsafe extern "C" fn check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    reserved: *mut c_int,
) -> c_int {
    pass!(
        file,
        xCheckReservedLock,
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
        reserved
    )
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    flush_then!(file, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    pass!(file, xSectorSize, 4096)
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    pass!(file, xDeviceCharacteristics, 0)
}

/// Whether `unix-excl`'s methods for `file` have version `version`'s.
unsafe fn has_version(file: *mut ffi::sqlite3_file, version: c_int) -> bool {
    (*(*under(file)).pMethods).iVersion >= version
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    if !has_version(file, 2) {
        return ffi::SQLITE_IOERR_SHMMAP;
    }
    pass!(
        file,
        xShmMap,
        ffi::SQLITE_IOERR_SHMMAP,
        region,
        size,
        extend,
        out
    )
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    if !has_version(file, 2) {
        return ffi::SQLITE_IOERR_SHMLOCK;
    }
    pass!(file, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    if has_version(file, 2) {
        pass!(file, xShmBarrier, ());
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    if !has_version(file, 2) {
        return ffi::SQLITE_OK;
    }
    pass!(file, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    if !has_version(file, 3) {
        *out = ptr::null_mut();
        return ffi::SQLITE_OK;
    }
    flush_then!(file, xFetch, ffi::SQLITE_IOERR_MMAP, offset, amount, out)
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    if !has_version(file, 3) {
        return ffi::SQLITE_OK;
    }
    pass!(file, xUnfetch, ffi::SQLITE_OK, offset, page)
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    /// A connection on this VFS to `dir/test.db`, in WAL mode with
    /// `synchronous=FULL` and a page cache of `cache_pages`.
    fn connect(dir: &std::path::Path, cache_pages: i64) -> Connection {
        register().expect("the VFS registers");
        let conn = Connection::open_with_flags_and_vfs(
            dir.join("test.db"),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            NAME,
        )
        .expect("open");
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .expect("WAL");
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("FULL");
        conn.pragma_update(None, "cache_size", cache_pages)
            .expect("cache_size");
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
            .expect("table");
        conn
    }

    /// Write system calls of this process so far.
    fn write_calls() -> u64 {
        let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
        io.lines()
            .find_map(|l| l.strip_prefix("syscw: "))
            .and_then(|n| n.trim().parse().ok())
            .expect("syscw")
    }

    #[test]
    fn a_commit_writes_its_log_frames_in_a_few_calls_not_two_per_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = connect(dir.path(), 2000);
        let before = write_calls();
        let tx = conn.transaction().expect("begin");
        for i in 0..300 {
            tx.execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(3500))", [i])
                .expect("insert");
        }
        tx.commit().expect("commit");
        let calls = write_calls() - before;
        // 300 rows of 3,500 bytes are 300 pages or more: 600 calls or more
        // when each frame's header and page are written apart.
        assert!(calls < 60, "{calls} write calls for one commit");
        drop(conn);
        let conn = connect(dir.path(), 2000);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 300);
    }

    #[test]
    fn a_transaction_reads_back_the_pages_it_spilled_to_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A cache of 10 pages makes SQLite write pages of the open
        // transaction to the log, and read them back, before the commit.
        let mut conn = connect(dir.path(), 10);
        let tx = conn.transaction().expect("begin");
        for i in 0..500_i64 {
            tx.execute(
                "INSERT INTO t (id, v) VALUES (?1, randomblob(1000 + ?1))",
                [i],
            )
            .expect("insert");
        }
        let (rows, bytes): (i64, i64) = tx
            .query_row("SELECT count(*), sum(length(v)) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("sum");
        assert_eq!((rows, bytes), (500, (0..500).map(|i| 1000 + i).sum()));
        tx.commit().expect("commit");
        let other = connect(dir.path(), 10);
        let again: i64 = other
            .query_row("SELECT sum(length(v)) FROM t", [], |r| r.get(0))
            .expect("sum");
        assert_eq!(again, bytes);
        drop((conn, other));
        let reopened = connect(dir.path(), 10);
        let check: String = reopened
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok");
    }

    #[test]
    fn consecutive_writes_gather_and_a_jump_does_not_join() {
        let mut gathered = Gathered::default();
        assert!(gathered.continues(4096));
        gathered.push(4096, &[1; 24]);
        assert!(gathered.continues(4120));
        gathered.push(4120, &[2; 4096]);
        assert_eq!((gathered.start, gathered.bytes.len()), (4096, 4120));
        assert!(!gathered.continues(4096), "a rewrite of a gathered frame");
        assert!(!gathered.continues(9000), "a write past a gap");
        gathered.clear();
        assert!(gathered.continues(0));
    }
}
