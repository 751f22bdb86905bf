//! The exported malloc family. Each hook forwards to glibc's `__libc_*`
//! entry points (exported by glibc for exactly this purpose, so no dlsym and
//! no bootstrap problem) and records what happened.
//!
//! Ordering (what keeps the live table exact across threads): a free takes
//! its key before the real free, an allocation takes its key after the real
//! malloc returned (seq.rs). So for any address, its events in key order
//! alternate alloc, free, alloc, … even when another thread frees the block
//! and glibc hands the address out again at once.
//!
//! errno: the unwinder may clobber it, so it is saved and restored around
//! the capture. Publishing an event leaves it alone (the ring's cold paths,
//! a new thread's first ring, waiting for space, waking the writer, and
//! initialisation save it themselves), so the hot paths do not save it.

use crate::guard::{errno, set_errno};
use crate::ring::{with_ring, Ring};
use crate::unwind::Caller;
use crate::{sample, seq, unwind};
use libc::{c_int, c_void, size_t};
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
pub(crate) fn enter_ready() -> bool {
    let f = &crate::tls::hot().in_hook;
    if f.get() {
        false
    } else {
        f.set(true);
        true
    }
}

#[inline(always)]
pub(crate) fn leave() {
    crate::tls::hot().in_hook.set(false);
}

/// The stack id of the hook entered at `caller`, captured with the ring's
/// scratch (the unwinder's record of the thread's previous capture).
/// errno is preserved.
#[inline(always)]
pub(crate) fn stack_id(r: &Ring, caller: Caller) -> u32 {
    let e = errno();
    let id = unwind::stack_id(caller, r.scratch());
    set_errno(e);
    id
}

/// `busy` is set with a plain (Relaxed) store: the allocation's locked
/// increment orders it before the number is taken; for a free, which only
/// reads the counter, the writer's membarrier does (seq.rs). A writer
/// completing a snapshot point then sees busy = 1, or the 0 stored after the
/// push (and the event itself), or the event is numbered above the point.
#[inline(always)]
fn publish_alloc(r: &Ring, p: *mut c_void, size: usize, id: u32) {
    r.busy.store(1, Ordering::Relaxed);
    let key = seq::alloc_key();
    r.publish(|buf, n| r.enc_alloc(buf, n, key, p as usize, size, id));
    r.busy.store(0, Ordering::Release);
}

#[inline(always)]
fn publish_free(r: &Ring, p: *mut c_void) {
    r.busy.store(1, Ordering::Relaxed); // see publish_alloc
    let key = seq::free_key();
    r.publish(|buf, n| r.enc_free(buf, n, key, p as usize));
    r.busy.store(0, Ordering::Release);
}

/// An allocation through `real`, recorded with `size` if it succeeds (and,
/// under MEMTRACE_SAMPLE, if it is sampled: the others skip the unwinder).
/// The unsampled case stays in the caller, small: no frame for the capture
/// buffer, one thread-local countdown.
///
/// # Safety
/// `caller` is the frame an entry stub passed (the unwinder reads the
/// program's stack from it).
#[inline(always)]
unsafe fn traced_alloc(
    size: usize,
    caller: Caller,
    real: impl FnOnce() -> *mut c_void,
) -> *mut c_void {
    let decided = crate::config::sample_rate() != 0 && crate::is_ready();
    if decided && !sample::take(size) {
        return real();
    }
    // SAFETY: this function's contract, passed on.
    unsafe { traced_alloc_slow(size, caller, decided, real) }
}

/// `sampled`: the sampling decision was already taken (and said yes).
///
/// # Safety
/// As `traced_alloc`.
#[inline(never)]
unsafe fn traced_alloc_slow(
    size: usize,
    caller: Caller,
    sampled: bool,
    real: impl FnOnce() -> *mut c_void,
) -> *mut c_void {
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
    // No ring (out of memory): id 0, an unknown stack; the event itself is
    // then lost below as well.
    let id = with_ring(|r| stack_id(r, caller)).unwrap_or(0);
    let p = real();
    // A sampled block enters the set before its pointer escapes, or is not
    // recorded at all (no memory for the set: its free could not be matched).
    if !p.is_null() && (!sampling || sample::insert(p as usize)) {
        with_ring(|r| publish_alloc(r, p, size, id));
    }
    leave();
    p
}

/// Records the free of `p` (not NULL), before the real free.
#[inline(always)]
fn record_free(p: *mut c_void) {
    if enter() {
        with_ring(|r| publish_free(r, p));
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

/// Exports `$name` as a three-instruction stub that hands `$imp` the
/// caller's frame as two extra arguments after its own (`$at`, `$bp`: the
/// registers they go in): the stack pointer at entry, which is the address
/// of the return address into the program, and the program's rbp. The
/// unwinder starts from there (the ABI's state at a call), so it never
/// walks our own frames. `jmp`, not `call`: `$imp` returns straight to the
/// program. The CFI directives give the stub its FDE (CFA = rsp + 8).
macro_rules! entry_stub {
    ($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty => $imp:ident, $at:literal, $bp:literal) => {
        #[doc = concat!("Exported in place of glibc's `", stringify!($name), "`: records the call (see the module doc).")]
        ///
        /// # Safety
        /// The C function's contract, as glibc documents it (pointer
        /// arguments valid as it requires). Reached only by a call: the
        /// stub reads the caller's rsp and rbp as the ABI leaves them.
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: the stub touches only the two argument registers that
            // $imp takes after the stub's own arguments (free in the SysV
            // ABI, as the stub has fewer than six) and leaves the stack as
            // the caller made it, so $imp runs as if called directly.
            std::arch::naked_asm!(
                ".cfi_startproc",
                concat!("mov ", $at, ", rsp"),
                concat!("mov ", $bp, ", rbp"),
                "jmp {imp}",
                ".cfi_endproc",
                imp = sym $imp,
            )
        }
    };
}

/// The caller's frame as an entry stub passes it.
#[inline(always)]
pub(crate) fn caller(at: *const usize, bp: usize) -> Caller {
    Caller {
        at: at as usize,
        bp,
    }
}

entry_stub!(malloc(size: size_t) -> *mut c_void => malloc_at, "rsi", "rdx");
entry_stub!(calloc(n: size_t, size: size_t) -> *mut c_void => calloc_at, "rdx", "rcx");
entry_stub!(realloc(p: *mut c_void, size: size_t) -> *mut c_void => realloc_at, "rdx", "rcx");
entry_stub!(reallocarray(p: *mut c_void, n: size_t, size: size_t) -> *mut c_void => reallocarray_at, "rcx", "r8");
entry_stub!(posix_memalign(memptr: *mut *mut c_void, align: size_t, size: size_t) -> c_int => posix_memalign_at, "rcx", "r8");
entry_stub!(aligned_alloc(align: size_t, size: size_t) -> *mut c_void => memalign_at, "rdx", "rcx");
entry_stub!(memalign(align: size_t, size: size_t) -> *mut c_void => memalign_at, "rdx", "rcx");
entry_stub!(valloc(size: size_t) -> *mut c_void => valloc_at, "rsi", "rdx");
entry_stub!(pvalloc(size: size_t) -> *mut c_void => pvalloc_at, "rsi", "rdx");

unsafe extern "C" fn malloc_at(size: size_t, at: *const usize, bp: usize) -> *mut c_void {
    // SAFETY: the caller keeps the C contract of the function this hook
    // stands for; `at` and `bp` are its frame as the entry stub passed it.
    unsafe { traced_alloc(size, caller(at, bp), || __libc_malloc(size)) }
}

/// Exported in place of glibc's `free`: records the free (before the real
/// one, see the module doc).
///
/// # Safety
/// free(3)'s contract: `p` is NULL or a live block of the malloc family.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    if free_is_traced(p) {
        record_free(p);
    }
    // SAFETY: this function's contract.
    unsafe { __libc_free(p) };
}

unsafe extern "C" fn calloc_at(
    n: size_t,
    size: size_t,
    at: *const usize,
    bp: usize,
) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: as in malloc_at.
        Some(total) => unsafe { traced_alloc(total, caller(at, bp), || __libc_calloc(n, size)) },
        // glibc sets ENOMEM and returns NULL; nothing to record.
        // SAFETY: glibc's function, with the program's arguments.
        None => unsafe { __libc_calloc(n, size) },
    }
}

unsafe extern "C" fn realloc_at(
    p: *mut c_void,
    size: size_t,
    at: *const usize,
    bp: usize,
) -> *mut c_void {
    if p.is_null() {
        // SAFETY: realloc(NULL, size) is malloc(size); `at`, `bp` as in malloc_at.
        return unsafe { traced_alloc(size, caller(at, bp), || __libc_realloc(p, size)) };
    }
    if size == 0 {
        // glibc 2.36 (REALLOC_ZERO_BYTES_FREES) frees p and returns NULL.
        if free_is_traced(p) {
            record_free(p);
        }
        // SAFETY: `p` is the program's live block (realloc's contract).
        return unsafe { __libc_realloc(p, 0) };
    }
    if !crate::ensure_ready() {
        // SAFETY: as above.
        return unsafe { __libc_realloc(p, size) };
    }
    // Sampling: a free of the old block if it was sampled, and an allocation
    // of the new one if this realloc is sampled; both unsampled = untouched.
    let sampling = crate::config::sample_rate() != 0;
    let (old_traced, new_traced) = if sampling {
        (sample::remove(p as usize), sample::take(size))
    } else {
        (true, true)
    };
    if !old_traced && !new_traced {
        // SAFETY: as above.
        return unsafe { __libc_realloc(p, size) };
    }
    if !enter_ready() {
        // SAFETY: as above.
        let q = unsafe { __libc_realloc(p, size) };
        if q.is_null() && old_traced && sampling {
            sample::insert(p as usize); // p stays live (and sampled)
        }
        return q;
    }
    let id = if new_traced {
        with_ring(|r| stack_id(r, caller(at, bp))).unwrap_or(0)
    } else {
        0
    };
    // The free's number is taken before the real realloc (which may free the
    // old block and let another thread get its address), the allocation's
    // after it returned. A failed realloc leaves p live: record nothing.
    let q = with_ring(|r| {
        r.busy.store(1, Ordering::SeqCst);
        let s_free = if old_traced { seq::free_key() } else { 0 };
        // SAFETY: as above.
        let q = unsafe { __libc_realloc(p, size) };
        if !q.is_null() {
            let e = errno();
            let mut buf = [0u8; 64];
            let mut n = 0;
            if old_traced {
                r.enc_free(&mut buf, &mut n, s_free, p as usize);
            }
            if new_traced && (!sampling || sample::insert(q as usize)) {
                let s_alloc = seq::alloc_key();
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
        // SAFETY: as above.
        None => unsafe { __libc_realloc(p, size) },
    }
}

unsafe extern "C" fn reallocarray_at(
    p: *mut c_void,
    n: size_t,
    size: size_t,
    at: *const usize,
    bp: usize,
) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: realloc's contract is reallocarray's; `at`, `bp` passed on.
        Some(total) => unsafe { realloc_at(p, total, at, bp) },
        None => {
            set_errno(libc::ENOMEM);
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn posix_memalign_at(
    memptr: *mut *mut c_void,
    align: size_t,
    size: size_t,
    at: *const usize,
    bp: usize,
) -> c_int {
    const W: usize = std::mem::size_of::<usize>();
    if !align.is_multiple_of(W) || !(align / W).is_power_of_two() {
        return libc::EINVAL;
    }
    // SAFETY: as in malloc_at.
    let p = unsafe { traced_alloc(size, caller(at, bp), || __libc_memalign(align, size)) };
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a valid out pointer (as glibc requires).
    unsafe { *memptr = p };
    0
}

/// aligned_alloc and memalign: glibc 2.36's aligned_alloc is an alias of
/// memalign (no extra checks).
unsafe extern "C" fn memalign_at(
    align: size_t,
    size: size_t,
    at: *const usize,
    bp: usize,
) -> *mut c_void {
    // SAFETY: the caller keeps the C contract of the function this hook
    // stands for; `at` and `bp` are its frame as the entry stub passed it.
    unsafe { traced_alloc(size, caller(at, bp), || __libc_memalign(align, size)) }
}

unsafe extern "C" fn valloc_at(size: size_t, at: *const usize, bp: usize) -> *mut c_void {
    // SAFETY: the caller keeps the C contract of the function this hook
    // stands for; `at` and `bp` are its frame as the entry stub passed it.
    unsafe { traced_alloc(size, caller(at, bp), || __libc_valloc(size)) }
}

unsafe extern "C" fn pvalloc_at(size: size_t, at: *const usize, bp: usize) -> *mut c_void {
    // SAFETY: the caller keeps the C contract of the function this hook
    // stands for; `at` and `bp` are its frame as the entry stub passed it.
    unsafe { traced_alloc(size, caller(at, bp), || __libc_pvalloc(size)) }
}
