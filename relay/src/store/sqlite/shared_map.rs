//! One memory map of the database file, shared by every REQ read connection of the process.
//!
//! Without a map, a read connection copies each page it needs from the OS page cache with a
//! `pread` into its own page cache: with a million events, a DePHY query touches a leaf page
//! per returned event, and a fifth of the relay's CPU under query load went to those reads.
//! SQLite's own memory map (`PRAGMA mmap_size`) is per connection, and each map's resident
//! pages count in the process's RSS again (9 connections on a 100 MiB database showed as
//! ~900 MiB). This VFS (a thin layer over SQLite's default one) gives SQLite's memory-map page
//! path (`xFetch`) pointers into a single read-only map per database file instead, so reads
//! are neither copied nor counted more than once.
//!
//! The map reserves [`RESERVE`] bytes of address space once and is never moved: a shared map
//! of a file follows the file as it grows. A page is handed out only if it lies within the
//! file's size as last seen (checked again with `fstat` when a page lies beyond it); SQLite
//! asks only for pages of its read snapshot that are not in the WAL, which exist in the file,
//! and a checkpoint shrinks the file only when no reader's snapshot still needs the pages cut
//! off. Anything the map cannot serve (no map could be made, a page past [`RESERVE`]) falls
//! back to SQLite's `pread` path. Every other file operation is the default VFS's.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use libsqlite3_sys as ffi;

/// Name the read connections open the database with.
pub const VFS_NAME: &str = "dephy-shared-map";

/// Address space reserved per database file (not memory: only pages read are mapped).
/// Pages past it are read with `pread`.
const RESERVE: u64 = 1 << 40;

/// A read-only shared map of one database file.
struct SharedMap {
    base: *const u8,
    /// The file, kept open for `fstat` (and so the map's inode stays the file's).
    file: std::fs::File,
    /// The file's size as last seen; pages below it are served from the map.
    known_size: AtomicU64,
}

// SAFETY: the map is read-only and never moved or unmapped while a `SharedMap` exists; the
// pointer is only offset and handed to SQLite.
unsafe impl Send for SharedMap {}
unsafe impl Sync for SharedMap {}

impl SharedMap {
    fn open(path: &std::path::Path) -> std::io::Result<(Self, (u64, u64))> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        // SAFETY: a fresh read-only shared mapping of a file we hold open; the kernel picks
        // the address. MAP_NORESERVE: address space only.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RESERVE as usize,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // Queries read scattered pages: no read-ahead around each one on a cold disk.
        // SAFETY: advice on the range just mapped.
        unsafe { libc::madvise(base, RESERVE as usize, libc::MADV_RANDOM) };
        let map = Self { base: base as *const u8, file, known_size: AtomicU64::new(meta.len()) };
        Ok((map, (meta.dev(), meta.ino())))
    }

    /// The address of `len` bytes at `offset`, if the file holds them.
    fn get(&self, offset: u64, len: u64) -> Option<*const u8> {
        let end = offset.checked_add(len)?;
        if end > RESERVE {
            return None;
        }
        if end > self.known_size.load(Ordering::Relaxed) {
            let size = self.file.metadata().ok()?.len();
            self.known_size.fetch_max(size, Ordering::Relaxed);
            if end > size {
                return None;
            }
        }
        // SAFETY: end <= RESERVE, within the mapping.
        Some(unsafe { self.base.add(offset as usize) })
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, no longer referenced (the last file handle
        // using it is closed).
        unsafe { libc::munmap(self.base as *mut c_void, RESERVE as usize) };
    }
}

/// The live maps by file: (device, inode) to a map some handle still holds.
type Maps = HashMap<(u64, u64), Weak<SharedMap>>;

/// The map of the file at `path`, shared with every handle already open on the same file.
fn shared_map(path: &std::path::Path) -> std::io::Result<Arc<SharedMap>> {
    static MAPS: Mutex<Option<Maps>> = Mutex::new(None);
    let meta = std::fs::metadata(path)?;
    let key = (meta.dev(), meta.ino());
    let mut maps = MAPS.lock().expect("shared maps lock");
    let maps = maps.get_or_insert_with(HashMap::new);
    if let Some(map) = maps.get(&key).and_then(Weak::upgrade) {
        return Ok(map);
    }
    let (map, key) = SharedMap::open(path)?;
    let map = Arc::new(map);
    maps.retain(|_, m| m.strong_count() > 0);
    maps.insert(key, Arc::downgrade(&map));
    Ok(map)
}

/// A file of this VFS: the default VFS's file right after a small header.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// `Arc::into_raw` of the shared map, or null (every page is read with `pread`).
    map: *const SharedMap,
    inner: *mut ffi::sqlite3_file,
}

/// Bytes before the default VFS's file.
const HEADER: usize = super::vfs::header_bytes(std::mem::size_of::<File>());

/// Registers the VFS (once); an error says why the read connections cannot use it.
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
    // pAppData is the default VFS.
    unsafe {
        let (default, default_open) = super::vfs::default_of(vfs);
        if flags & ffi::SQLITE_OPEN_MAIN_DB == 0 || name.is_null() {
            // The WAL and temporary files: the default VFS's own, in the whole allocation.
            return default_open(default, name, file, flags, out_flags);
        }
        let shim = file as *mut File;
        let inner = (file as *mut u8).add(HEADER) as *mut ffi::sqlite3_file;
        (*shim).base.pMethods = std::ptr::null();
        let rc = default_open(default, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let path = std::path::Path::new(std::ffi::OsStr::from_encoded_bytes_unchecked(CStr::from_ptr(name).to_bytes()));
        (*shim).map = match shared_map(path) {
            Ok(map) => Arc::into_raw(map),
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "no shared memory map of the database; reads use pread");
                std::ptr::null()
            }
        };
        (*shim).inner = inner;
        (*shim).base.pMethods = &METHODS;
        ffi::SQLITE_OK
    }
}

/// The default VFS's file inside ours.
unsafe fn inner(file: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: `file` is one of ours (its methods are METHODS), opened successfully.
    unsafe {
        let inner = (*(file as *mut File)).inner;
        (inner, &*(*inner).pMethods)
    }
}

/// Forwards a method to the default VFS's file.
macro_rules! forward {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: see `inner`; the default VFS's unix files implement every method.
            unsafe {
                let (inner, methods) = inner(file);
                match methods.$field {
                    Some(f) => f(inner $(, $arg)*),
                    None => ffi::SQLITE_IOERR,
                }
            }
        }
    };
}

forward!(read, xRead, (buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64));
forward!(write, xWrite, (buf: *const c_void, amount: c_int, offset: ffi::sqlite3_int64));
forward!(truncate, xTruncate, (size: ffi::sqlite3_int64));
forward!(sync, xSync, (flags: c_int));
forward!(file_size, xFileSize, (size: *mut ffi::sqlite3_int64));
forward!(lock, xLock, (level: c_int));
forward!(unlock, xUnlock, (level: c_int));
forward!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int));
forward!(sector_size, xSectorSize, ());
forward!(device_characteristics, xDeviceCharacteristics, ());
forward!(shm_map, xShmMap, (region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void));
forward!(shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int));
forward!(shm_unmap, xShmUnmap, (delete: c_int));

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: see `inner`.
    unsafe {
        let (inner, methods) = inner(file);
        if let Some(f) = methods.xShmBarrier {
            f(inner)
        }
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see `inner`; the map pointer came from `Arc::into_raw` and is released once.
    unsafe {
        let (inner, methods) = inner(file);
        let rc = methods.xClose.map_or(ffi::SQLITE_OK, |f| f(inner));
        let shim = file as *mut File;
        if !(*shim).map.is_null() {
            drop(Arc::from_raw((*shim).map));
            (*shim).map = std::ptr::null();
        }
        rc
    }
}

unsafe extern "C" fn file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    if op == ffi::SQLITE_FCNTL_MMAP_SIZE {
        // The shared map stands in for the default VFS's per-connection map, which is
        // never made. SAFETY: for this op, `arg` points to an i64 (the limit in, the
        // previous one out).
        unsafe { *(arg as *mut ffi::sqlite3_int64) = RESERVE as ffi::sqlite3_int64 };
        return ffi::SQLITE_OK;
    }
    // SAFETY: see `inner`.
    unsafe {
        let (inner, methods) = inner(file);
        match methods.xFileControl {
            Some(f) => f(inner, op, arg),
            None => ffi::SQLITE_NOTFOUND,
        }
    }
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: `out` is SQLite's; the map pointer is live while the file is open.
    unsafe {
        *out = std::ptr::null_mut();
        let map = (*(file as *mut File)).map;
        if map.is_null() || offset < 0 || amount <= 0 {
            return ffi::SQLITE_OK;
        }
        if let Some(page) = (*map).get(offset as u64, amount as u64) {
            *out = page as *mut c_void;
        }
    }
    ffi::SQLITE_OK
}

/// Nothing to release: the map lives as long as the file handle (SQLite's "unmap everything"
/// request, a null page, only means it will ask again).
unsafe extern "C" fn unfetch(_file: *mut ffi::sqlite3_file, _offset: ffi::sqlite3_int64, _page: *mut c_void) -> c_int {
    ffi::SQLITE_OK
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
