//! Write-combining for the writer's WAL file: consecutive writes go to the file as one `pwrite`.
//!
//! SQLite writes every WAL frame with two `pwrite` calls, its 24-byte header and then its page, and
//! a group commit of a large batch writes thousands of frames. Under ingest those calls were the
//! largest cost after signature checks: ~4 `pwrite` per event, ~18% of the relay's CPU, most of it
//! per call, not per byte (the inode lock and time stamps, the page-cache lookups of each partly
//! written page, and zeroing the rest of a new page at the file's end). This VFS (a thin layer over
//! SQLite's default one, used by the writer connection only) gathers writes to a WAL file that
//! continue where the previous one ended into one buffer of at most [`BUFFER_BYTES`], and hands the
//! whole run to the default VFS's file in one write (15 frames in one `pwrite` instead of 30).
//!
//! Nothing is read or made durable from a stale file: the buffer goes to the file before every
//! `xSync`, `xRead` of a range it covers, `xTruncate`, `xFileSize`, `xFileControl` and
//! `xClose`, and before any write that does not continue it (so writes reach the file in the
//! order SQLite made them). Other connections (the REQ readers, the checkpointer) read frames
//! only once the wal-index header counts them, which the writer updates after the commit's
//! `xSync` (`synchronous = FULL`, which the writer always uses: under NORMAL there would be no
//! `xSync` between the last frame and the header update, and this VFS must not be used). A
//! failed write surfaces at that `xSync`, which fails the commit: the batch is not
//! acknowledged, and its frames are never counted. Files other than WAL files are the default
//! VFS's own.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// Name the writer connection opens the database with.
pub const VFS_NAME: &str = "dephy-wal-buffer";

/// Most bytes gathered before they are written (15 frames of 8 KiB pages); a single write of
/// at least this much goes straight to the file. SQLite's unix VFS writes at most 128 KiB - 1
/// bytes per call (it masks the count with `0x1ffff`, and reports a longer write as a full
/// disk), so a run is handed over in pieces of at most this size.
pub const BUFFER_BYTES: usize = 124 << 10;

/// A WAL file of this VFS: the default VFS's file right after a small header.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// File offset of the first byte of `pending`.
    start: i64,
    /// Bytes written by SQLite and not yet by the default VFS; allocated on the first write.
    pending: Vec<u8>,
}

/// Bytes before the default VFS's file.
const HEADER: usize = super::vfs::header_bytes(std::mem::size_of::<File>());

/// Registers the VFS (once); an error says why the writer cannot use it.
pub fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    super::vfs::register(&REGISTERED, VFS_NAME, HEADER, open)
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY (whole function): SQLite passes a file of `szOsFile` bytes, and our VFS's
    // pAppData is the default VFS. The fields are written in place before the methods are set,
    // so `close` never sees them uninitialized.
    unsafe {
        let (default, default_open) = super::vfs::default_of(vfs);
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // The database and temporary files: the default VFS's own, in the whole allocation.
            return default_open(default, name, file, flags, out_flags);
        }
        let shim = file as *mut File;
        let inner = (file as *mut u8).add(HEADER) as *mut ffi::sqlite3_file;
        (*shim).base.pMethods = std::ptr::null();
        let rc = default_open(default, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        std::ptr::addr_of_mut!((*shim).inner).write(inner);
        std::ptr::addr_of_mut!((*shim).start).write(0);
        std::ptr::addr_of_mut!((*shim).pending).write(Vec::new());
        (*shim).base.pMethods = &METHODS;
        ffi::SQLITE_OK
    }
}

/// Our file, and the default VFS's methods of the file inside it.
unsafe fn parts(file: *mut ffi::sqlite3_file) -> (&'static mut File, &'static ffi::sqlite3_io_methods) {
    // SAFETY: `file` is one of ours (its methods are METHODS), opened successfully; SQLite
    // calls a file's methods from one thread at a time.
    unsafe {
        let shim = &mut *(file as *mut File);
        let methods = &*(*shim.inner).pMethods;
        (shim, methods)
    }
}

/// Writes the gathered bytes to the file; the buffer is empty afterwards, also on an error.
fn flush(shim: &mut File, methods: &ffi::sqlite3_io_methods) -> c_int {
    if shim.pending.is_empty() {
        return ffi::SQLITE_OK;
    }
    let write = methods.xWrite.expect("the default VFS writes files");
    // SAFETY: the default VFS's file, open while ours is; `pending` holds `len` bytes.
    let rc = unsafe { write(shim.inner, shim.pending.as_ptr().cast(), shim.pending.len() as c_int, shim.start) };
    shim.pending.clear();
    rc
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: see `parts`; SQLite's `buf` holds `amount` bytes.
    unsafe {
        let (shim, methods) = parts(file);
        let len = amount.max(0) as usize;
        let bytes = std::slice::from_raw_parts(buf as *const u8, len);
        let continues = !shim.pending.is_empty() && offset == shim.start + shim.pending.len() as i64;
        if continues && shim.pending.len() + len <= BUFFER_BYTES {
            shim.pending.extend_from_slice(bytes);
            return ffi::SQLITE_OK;
        }
        let rc = flush(shim, methods);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if len >= BUFFER_BYTES {
            let write = methods.xWrite.expect("the default VFS writes files");
            return write(shim.inner, buf, amount, offset);
        }
        if shim.pending.capacity() == 0 {
            shim.pending.reserve_exact(BUFFER_BYTES);
        }
        shim.start = offset;
        shim.pending.extend_from_slice(bytes);
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: see `parts`.
    unsafe {
        let (shim, methods) = parts(file);
        let end = shim.start + shim.pending.len() as i64;
        if !shim.pending.is_empty() && offset < end && offset + amount as i64 > shim.start {
            let rc = flush(shim, methods);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        match methods.xRead {
            Some(f) => f(shim.inner, buf, amount, offset),
            None => ffi::SQLITE_IOERR_READ,
        }
    }
}

/// Forwards a method to the default VFS's file after writing out the gathered bytes;
/// `$missing` if the default VFS's file lacks it.
macro_rules! flush_then_forward {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: see `parts`; the default VFS's unix files implement every method.
            unsafe {
                let (shim, methods) = parts(file);
                let rc = flush(shim, methods);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                match methods.$field {
                    Some(f) => f(shim.inner $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

flush_then_forward!(truncate, xTruncate, (size: ffi::sqlite3_int64), ffi::SQLITE_IOERR);
flush_then_forward!(sync, xSync, (flags: c_int), ffi::SQLITE_IOERR);
flush_then_forward!(file_size, xFileSize, (size: *mut ffi::sqlite3_int64), ffi::SQLITE_IOERR);
flush_then_forward!(file_control, xFileControl, (op: c_int, arg: *mut c_void), ffi::SQLITE_NOTFOUND);

/// Forwards a method that neither reads nor writes the file's bytes.
macro_rules! forward {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: see `parts`.
            unsafe {
                let (shim, methods) = parts(file);
                match methods.$field {
                    Some(f) => f(shim.inner $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

forward!(lock, xLock, (level: c_int), ffi::SQLITE_IOERR);
forward!(unlock, xUnlock, (level: c_int), ffi::SQLITE_IOERR);
forward!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int), ffi::SQLITE_IOERR);
forward!(sector_size, xSectorSize, (), 4096);
forward!(device_characteristics, xDeviceCharacteristics, (), 0);

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see `parts`; `pending` was written in `open` and is dropped once, here.
    unsafe {
        let (shim, methods) = parts(file);
        let flushed = flush(shim, methods);
        let closed = methods.xClose.map_or(ffi::SQLITE_OK, |f| f(shim.inner));
        std::ptr::drop_in_place(std::ptr::addr_of_mut!(shim.pending));
        if flushed != ffi::SQLITE_OK { flushed } else { closed }
    }
}

/// Version 1: a WAL file is neither shared memory nor memory-mapped (those are the database
/// file's).
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
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
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};
    use std::path::{Path, PathBuf};

    /// Write system calls made by this thread so far (`/proc/thread-self/io`).
    fn writes_by_this_thread() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines().find_map(|l| l.strip_prefix("syscw: ")).unwrap().trim().parse().unwrap()
    }

    /// A connection as the writer opens one: this VFS (or the default one), WAL, FULL sync,
    /// no automatic checkpoint, `cache_pages` pages of cache.
    fn writer(path: &Path, combined: bool, cache_pages: u32) -> Connection {
        register().unwrap();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = match combined {
            true => Connection::open_with_flags_and_vfs(path, flags, VFS_NAME).unwrap(),
            false => Connection::open_with_flags(path, flags).unwrap(),
        };
        conn.execute_batch(&format!(
            "PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = {cache_pages}; \
             CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);"
        ))
        .unwrap();
        conn
    }

    /// Inserts rows `from..to`, each a 3000-byte blob derived from its key, in one transaction.
    fn insert(conn: &Connection, from: i64, to: i64) {
        conn.execute_batch("BEGIN").unwrap();
        for k in from..to {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (k, blob(k))).unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }

    fn blob(k: i64) -> Vec<u8> {
        (0..3000).map(|i| (k as u8).wrapping_mul(31).wrapping_add(i as u8)).collect()
    }

    /// Copies the database and its WAL (not the wal-index) as a crash would leave them: what
    /// a new process recovers from the files alone.
    fn crash_copy(dir: &Path, path: &Path) -> PathBuf {
        let copy = dir.join("copy.db");
        std::fs::copy(path, &copy).unwrap();
        std::fs::copy(path.with_extension("db-wal"), copy.with_extension("db-wal")).unwrap();
        copy
    }

    /// Rows of `t` in the database at `path` that hold their expected blob, read by a plain
    /// connection; panics if SQLite finds the file damaged.
    fn intact_rows(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
        let mut stmt = conn.prepare("SELECT k, v FROM t ORDER BY k").unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))).unwrap();
        let mut n = 0;
        for row in rows {
            let (k, v) = row.unwrap();
            assert_eq!(v, blob(k), "row {k} holds another row's bytes");
            n += 1;
        }
        n
    }

    /// The point of the VFS: a commit of many frames makes a few large writes, where the
    /// default VFS makes two per frame.
    #[test]
    fn a_commit_writes_its_frames_in_few_calls() {
        let dir = tempfile::tempdir().unwrap();
        let frames_and_writes = |combined: bool| {
            let path = dir.path().join(format!("w{combined}.db"));
            let conn = writer(&path, combined, 2000);
            let wal = path.with_extension("db-wal");
            let frames_before = std::fs::metadata(&wal).map_or(0, |m| m.len()) / (8192 + 24);
            let before = writes_by_this_thread();
            insert(&conn, 0, 600);
            let writes = writes_by_this_thread() - before;
            let frames = std::fs::metadata(&wal).unwrap().len() / (8192 + 24) - frames_before;
            (frames, writes)
        };
        let (frames, writes) = frames_and_writes(false);
        assert!(frames >= 200 && writes >= 2 * frames, "default VFS: {writes} writes for {frames} frames");
        let (frames, writes) = frames_and_writes(true);
        assert!(frames >= 200, "{frames} frames");
        assert!(writes * 10 <= frames, "{writes} writes for {frames} frames: not combined");
    }

    /// What a commit acknowledges is in the files when COMMIT returns (a crash right after
    /// loses nothing), and other connections read it at once.
    #[test]
    fn committed_rows_are_in_the_files_and_visible_when_commit_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let conn = writer(&path, true, 2000);
        let other = Connection::open(&path).unwrap();
        for round in 0..5 {
            insert(&conn, round * 100, round * 100 + 100);
            let seen: i64 = other.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(seen, round * 100 + 100);
        }
        let copy = crash_copy(dir.path(), &path);
        assert_eq!(intact_rows(&copy), 500);
        drop(conn);
        assert_eq!(intact_rows(&path), 500);
    }

    /// A transaction larger than the page cache writes frames before its commit and rewrites
    /// some of them (out of order); one rolled back leaves frames no commit counts. Neither
    /// loses or mixes up a committed row.
    #[test]
    fn spilled_rewritten_and_rolled_back_frames_keep_committed_rows_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let conn = writer(&path, true, 10);
        insert(&conn, 0, 300);
        // Spills, then rolls back.
        conn.execute_batch("BEGIN").unwrap();
        for k in 300..600 {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (k, blob(k))).unwrap();
        }
        conn.execute("UPDATE t SET v = zeroblob(3000) WHERE k < 50", []).unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
        // Spills, and updates rows on pages it already wrote to the WAL.
        conn.execute_batch("BEGIN").unwrap();
        for k in 600..900 {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (k, blob(k))).unwrap();
        }
        for k in (600..900).step_by(7) {
            conn.execute("UPDATE t SET v = ?2 WHERE k = ?1", (k, blob(k))).unwrap();
        }
        conn.execute("DELETE FROM t WHERE k >= 850", []).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        let copy = crash_copy(dir.path(), &path);
        assert_eq!(intact_rows(&copy), 300 + 250);
        // A checkpoint (another connection) and a rewind of the WAL, then more commits.
        let other = Connection::open(&path).unwrap();
        other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        insert(&conn, 900, 1000);
        std::fs::remove_file(&copy).unwrap();
        let copy = crash_copy(dir.path(), &path);
        assert_eq!(intact_rows(&copy), 650);
        drop(conn);
        assert_eq!(intact_rows(&path), 650);
    }
}
