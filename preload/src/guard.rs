//! What a thread saves and restores around our code, kept in its hot TLS
//! block (tls.rs): the re-entrancy flag (`NoTrace`) and errno, whose
//! address is asked of glibc once per thread and then cached.

use crate::tls::hot;

/// Sets the re-entrancy flag for a scope and restores the previous value.
pub struct NoTrace {
    prev: bool,
}

impl NoTrace {
    #[inline]
    pub fn new() -> Self {
        NoTrace {
            prev: hot().in_hook.replace(true),
        }
    }
}

impl Drop for NoTrace {
    #[inline]
    fn drop(&mut self) {
        hot().in_hook.set(self.prev);
    }
}

/// This thread's errno.
#[inline]
pub fn errno() -> i32 {
    // SAFETY: errno_at() is this thread's errno slot.
    unsafe { *errno_at() }
}

/// This thread's errno slot: asked of glibc once per thread (a call into
/// libc), then kept in the hot block; the address never changes.
#[inline(always)]
fn errno_at() -> *mut i32 {
    let block = hot();
    let p = block.errno_at.get();
    if !p.is_null() {
        return p;
    }
    // SAFETY: __errno_location always returns this thread's errno slot.
    let p = unsafe { libc::__errno_location() };
    block.errno_at.set(p);
    p
}

/// Sets this thread's errno.
#[inline]
pub fn set_errno(e: i32) {
    // SAFETY: as above.
    unsafe { *errno_at() = e }
}
