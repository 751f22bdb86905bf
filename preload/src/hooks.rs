//! The exported malloc family. Each hook forwards to glibc's `__libc_*`
//! entry points (exported by glibc for exactly this purpose, so no dlsym and
//! no bootstrap problem) and records what happened.
//!
//! Ordering (what keeps the live table exact across threads): a free takes
//! its sequence number before the real free, an allocation takes its number
//! after the real malloc returned. So for any address, its events in seq
//! order alternate alloc, free, alloc, … even when another thread frees the
//! block and glibc hands the address out again at once.
//!
//! errno: our bookkeeping may clobber it (unwinder, waits), so it is saved
//! and restored around everything that is not the real call.

use crate::ring::{with_ring, Ring};
use crate::sys::{errno, set_errno, IN_HOOK};
use crate::{intern, sample, unwind, SEQ};
use libc::{c_int, c_void, size_t};
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;

extern "C" {
    pub fn __libc_malloc(size: size_t) -> *mut c_void;
    pub fn __libc_free(p: *mut c_void);
    pub fn __libc_calloc(n: size_t, size: size_t) -> *mut c_void;
    pub fn __libc_realloc(p: *mut c_void, size: size_t) -> *mut c_void;
    pub fn __libc_memalign(align: size_t, size: size_t) -> *mut c_void;
    pub fn __libc_valloc(size: size_t) -> *mut c_void;
    pub fn __libc_pvalloc(size: size_t) -> *mut c_void;
}

/// True if this call is to be recorded; then the re-entrancy flag is set and
/// the caller must call `leave()`. False while we initialise, once tracing
/// is disabled, and for calls made from inside our own code (libunwind,
/// dlsym, the writer thread).
#[inline(always)]
fn enter() -> bool {
    crate::ensure_ready() && enter_ready()
}

/// `enter()` for callers that have just checked `ensure_ready()` themselves.
#[inline(always)]
fn enter_ready() -> bool {
    IN_HOOK.with(|f| if f.get() { false } else { f.set(true); true })
}

#[inline(always)]
fn leave() {
    IN_HOOK.with(|f| f.set(false));
}

/// Captures and interns the caller's stack. errno is preserved.
///
/// The capture buffer is on the stack, sized for the frame limit: hooks run
/// on the program's stack, which may be small (16 KiB threads), so the
/// common limits (≤ 48 frames) use a 520-byte buffer and only deeper limits
/// pay for the 2 KiB one. (Not in TLS: glibc carves static TLS out of every
/// thread's stack.)
#[inline(always)]
fn stack_id() -> u32 {
    let e = errno();
    let limit = crate::config::frames();
    let id = if limit <= unwind::SMALL_LIMIT {
        let mut buf = [MaybeUninit::<usize>::uninit(); unwind::SMALL_BUF];
        let (frames, truncated) = unwind::capture(&mut buf, limit);
        intern::intern(frames, truncated)
    } else {
        let mut buf = [MaybeUninit::<usize>::uninit(); unwind::BUF];
        let (frames, truncated) = unwind::capture(&mut buf, limit);
        intern::intern(frames, truncated)
    };
    set_errno(e);
    id
}

/// `busy` is set with a plain (Relaxed) store, not a locked exchange: the
/// SeqCst fetch_add on SEQ that follows is a release, and whoever reads a
/// later SEQ value with an acquire (the snapshot point's own fetch_add, the
/// writer's load of SEQ) synchronizes with it, so a writer checking a point
/// S above our number sees busy = 1 or the 0 stored after the push (and
/// then the event itself). What matters is only that the store is ordered
/// before the fetch_add, which release gives.
#[inline(always)]
fn publish_alloc(r: &Ring, p: *mut c_void, size: usize, id: u32) {
    r.busy.store(1, Ordering::Relaxed);
    let seq = SEQ.fetch_add(1, Ordering::SeqCst);
    r.publish(|buf, n| r.enc_alloc(buf, n, seq, p as usize, size, id));
    r.busy.store(0, Ordering::Release);
}

#[inline(always)]
fn publish_free(r: &Ring, p: *mut c_void) {
    r.busy.store(1, Ordering::Relaxed); // see publish_alloc
    let seq = SEQ.fetch_add(1, Ordering::SeqCst);
    r.publish(|buf, n| r.enc_free(buf, n, seq, p as usize));
    r.busy.store(0, Ordering::Release);
}

/// An allocation through `real`, recorded with `size` if it succeeds (and,
/// under MEMTRACE_SAMPLE, if it is sampled: the others skip the unwinder).
/// The unsampled case stays in the caller, small: no frame for the capture
/// buffer, one thread-local countdown.
#[inline(always)]
unsafe fn traced_alloc(size: usize, real: impl FnOnce() -> *mut c_void) -> *mut c_void {
    let decided = crate::config::sample_rate() != 0 && crate::is_ready();
    if decided && !sample::take(size) {
        return real();
    }
    traced_alloc_slow(size, decided, real)
}

/// `sampled`: the sampling decision was already taken (and said yes).
#[inline(never)]
unsafe fn traced_alloc_slow(size: usize, sampled: bool, real: impl FnOnce() -> *mut c_void) -> *mut c_void {
    if !crate::ensure_ready() {
        return real();
    }
    let sampling = crate::config::sample_rate() != 0;
    if sampling && !sampled && !sample::take(size) {
        return real();
    }
    if !enter_ready() {
        return real();
    }
    let id = stack_id();
    let p = real();
    // A sampled block enters the set before its pointer escapes, or is not
    // recorded at all (no memory for the set: its free could not be matched).
    if !p.is_null() && (!sampling || sample::insert(p as usize)) {
        let e = errno();
        with_ring(|r| publish_alloc(r, p, size, id));
        set_errno(e);
    }
    leave();
    p
}

/// Records the free of `p` (not NULL), before the real free.
#[inline(always)]
fn record_free(p: *mut c_void) {
    if enter() {
        let e = errno();
        with_ring(|r| publish_free(r, p));
        set_errno(e);
        leave();
    }
}

/// Under sampling, only frees of sampled blocks are recorded: true if `p`
/// is one (it leaves the set now, before the real free, so that its address
/// can be handed out and sampled again at once). Always true unsampled.
#[inline(always)]
fn free_is_traced(p: *mut c_void) -> bool {
    crate::config::sample_rate() == 0 || sample::remove(p as usize)
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    traced_alloc(size, || __libc_malloc(size))
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    if free_is_traced(p) {
        record_free(p);
    }
    __libc_free(p);
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => traced_alloc(total, || __libc_calloc(n, size)),
        // glibc sets ENOMEM and returns NULL; nothing to record.
        None => __libc_calloc(n, size),
    }
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: size_t) -> *mut c_void {
    if p.is_null() {
        return traced_alloc(size, || __libc_realloc(p, size));
    }
    if size == 0 {
        // glibc 2.36 (REALLOC_ZERO_BYTES_FREES) frees p and returns NULL.
        if free_is_traced(p) {
            record_free(p);
        }
        return __libc_realloc(p, 0);
    }
    if !crate::ensure_ready() {
        return __libc_realloc(p, size);
    }
    // Sampling: a free of the old block if it was sampled, and an allocation
    // of the new one if this realloc is sampled; both unsampled = untouched.
    let sampling = crate::config::sample_rate() != 0;
    let (old_traced, new_traced) = if sampling { (sample::remove(p as usize), sample::take(size)) } else { (true, true) };
    if !old_traced && !new_traced {
        return __libc_realloc(p, size);
    }
    if !enter_ready() {
        let q = __libc_realloc(p, size);
        if q.is_null() && old_traced && sampling {
            sample::insert(p as usize); // p stays live (and sampled)
        }
        return q;
    }
    let id = if new_traced { stack_id() } else { 0 };
    // The free's number is taken before the real realloc (which may free the
    // old block and let another thread get its address), the allocation's
    // after it returned. A failed realloc leaves p live: record nothing.
    let q = with_ring(|r| {
        r.busy.store(1, Ordering::SeqCst);
        let s_free = if old_traced { SEQ.fetch_add(1, Ordering::SeqCst) } else { 0 };
        let q = __libc_realloc(p, size);
        if !q.is_null() {
            let e = errno();
            let mut buf = [0u8; 64];
            let mut n = 0;
            if old_traced {
                r.enc_free(&mut buf, &mut n, s_free, p as usize);
            }
            if new_traced && (!sampling || sample::insert(q as usize)) {
                let s_alloc = SEQ.fetch_add(1, Ordering::SeqCst);
                r.enc_alloc(&mut buf, &mut n, s_alloc, q as usize, size, id);
            }
            if n > 0 {
                r.push(&buf[..n]);
            }
            set_errno(e);
        } else if old_traced && sampling {
            sample::insert(p as usize);
        }
        r.busy.store(0, Ordering::Release);
        q
    });
    leave();
    match q {
        Some(q) => q,
        None => __libc_realloc(p, size),
    }
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: size_t, size: size_t) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => realloc(p, total),
        None => {
            set_errno(libc::ENOMEM);
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, align: size_t, size: size_t) -> c_int {
    const W: usize = std::mem::size_of::<usize>();
    if !align.is_multiple_of(W) || !(align / W).is_power_of_two() {
        return libc::EINVAL;
    }
    let p = traced_alloc(size, || __libc_memalign(align, size));
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a valid out pointer (as glibc requires).
    *memptr = p;
    0
}

/// glibc 2.36's aligned_alloc is an alias of memalign (no extra checks).
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
    traced_alloc(size, || __libc_memalign(align, size))
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
    traced_alloc(size, || __libc_memalign(align, size))
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn valloc(size: size_t) -> *mut c_void {
    traced_alloc(size, || __libc_valloc(size))
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn pvalloc(size: size_t) -> *mut c_void {
    traced_alloc(size, || __libc_pvalloc(size))
}
