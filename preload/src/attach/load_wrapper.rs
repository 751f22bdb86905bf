//! After an attach, the program's `dlopen` and `dlmopen` calls come here
//! (got.rs redirects them): the real function, then the new modules'
//! entries are redirected too, so their allocations are seen from then on.
//!
//! Limits: what a library allocates in its own constructors, which run
//! inside dlopen, is not seen (its later frees change nothing); and the
//! loader takes the caller of dlopen to be libtrace.so, so a bare library
//! name is searched along the executable's RPATH/RUNPATH and the system
//! paths, not along the calling library's own RUNPATH.

use libc::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

static REAL_DLOPEN: AtomicUsize = AtomicUsize::new(0);
static REAL_DLMOPEN: AtomicUsize = AtomicUsize::new(0);

/// The program's dlopen and dlmopen (got.rs: `prepare`).
pub fn remember_real(dlopen: usize, dlmopen: usize) {
    REAL_DLOPEN.store(dlopen, Ordering::Release);
    REAL_DLMOPEN.store(dlmopen, Ordering::Release);
}

/// After a successful load: the new modules' entries, errno untouched.
fn loaded(h: *mut c_void) -> *mut c_void {
    if !h.is_null() {
        let e = crate::guard::errno();
        super::got::redirect_all();
        crate::guard::set_errno(e);
    }
    h
}

/// In place of the program's `dlopen` (never exported: reached only
/// through the GOT entries got.rs rewrote).
///
/// # Safety
/// dlopen(3)'s contract.
pub unsafe extern "C" fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void {
    let f = REAL_DLOPEN.load(Ordering::Acquire);
    if f == 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: `f` is the program's dlopen (set before any entry leads here).
    let real: unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void =
        unsafe { std::mem::transmute(f) };
    // SAFETY: the caller's arguments, as dlopen takes them.
    loaded(unsafe { real(file, mode) })
}

/// In place of the program's `dlmopen`.
///
/// # Safety
/// dlmopen(3)'s contract.
pub unsafe extern "C" fn dlmopen(
    lmid: libc::Lmid_t,
    file: *const c_char,
    mode: c_int,
) -> *mut c_void {
    let f = REAL_DLMOPEN.load(Ordering::Acquire);
    if f == 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: `f` is the program's dlmopen.
    let real: unsafe extern "C" fn(libc::Lmid_t, *const c_char, c_int) -> *mut c_void =
        unsafe { std::mem::transmute(f) };
    // SAFETY: the caller's arguments, as dlmopen takes them.
    loaded(unsafe { real(lmid, file, mode) })
}
