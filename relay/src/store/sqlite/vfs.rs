//! What our SQLite VFS layers (`shared_map`, `wal_buffer`) share: each is SQLite's default VFS
//! under its own name, with its own `xOpen`, and its files are a header of ours followed by
//! the default VFS's file.

use std::ffi::{c_char, c_int};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// A layer's `xOpen`.
pub type Open =
    unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *const c_char, *mut ffi::sqlite3_file, c_int, *mut c_int) -> c_int;

/// Bytes before the default VFS's file in a layer whose file header is `header` bytes:
/// 16-aligned.
pub const fn header_bytes(header: usize) -> usize {
    header.div_ceil(16) * 16
}

/// Registers the layer `name` once (`done` remembers the outcome): the default VFS with `open`
/// and files of `header` more bytes, whose `pAppData` is the default VFS. An error says why the
/// layer cannot be used.
pub fn register(
    done: &'static OnceLock<Result<(), String>>,
    name: &str,
    header: usize,
    open: Open,
) -> Result<(), String> {
    done.get_or_init(|| {
        // SAFETY: SQLite's VFS registry calls; the VFS struct is leaked, so it outlives every
        // connection, and copies the default VFS except for its name, file size and xOpen.
        unsafe {
            let default = ffi::sqlite3_vfs_find(std::ptr::null());
            if default.is_null() {
                return Err("SQLite has no default VFS".into());
            }
            let c_name = std::ffi::CString::new(name).expect("no NUL in the VFS name");
            let mut vfs: ffi::sqlite3_vfs = std::ptr::read(default);
            vfs.szOsFile = (header as c_int) + (*default).szOsFile;
            vfs.pNext = std::ptr::null_mut();
            vfs.zName = c_name.into_raw();
            vfs.pAppData = default.cast();
            vfs.xOpen = Some(open);
            match ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0) {
                ffi::SQLITE_OK => Ok(()),
                rc => Err(format!("cannot register the SQLite VFS {name}: code {rc}")),
            }
        }
    })
    .clone()
}

/// The default VFS under a layer registered by [`register`], and its `xOpen`.
///
/// # Safety
/// `vfs` is a layer registered by [`register`].
pub unsafe fn default_of(vfs: *mut ffi::sqlite3_vfs) -> (*mut ffi::sqlite3_vfs, Open) {
    // SAFETY: per the contract, pAppData is the default VFS, which opens files.
    unsafe {
        let default = (*vfs).pAppData as *mut ffi::sqlite3_vfs;
        (default, (*default).xOpen.expect("the default VFS opens files"))
    }
}
