//! Stack capture and stack ids: `stack_id()` is all the hooks see.
//!
//! By default our own walk (`ehframe`, starting at the hook's caller, with
//! the thread's record of its previous capture and its stack-id cache in
//! `shadow`) answers; what it does not handle exactly goes to libunwind's
//! `unw_backtrace` (≈ 6 ns a frame here), which walks .eh_frame too, so
//! stacks stay complete through code without frame pointers (Debian's glibc
//! and libstdc++). Either way the frames are then interned (`intern`),
//! unless the id cache knew the stack. libunwind.so.8 is dlopen()ed with
//! RTLD_LOCAL from our constructor (see build.rs for why not linked), and the
//! function is declared by hand: the `libunwind-sys` crate builds a
//! different, bundled libunwind from source, then loads Debian's at run
//! time, and its wrappers bind the generic `_Ux86_64_*` address space.
//!
//! Before the constructor has run (allocations during start-up, before any
//! dlopen is safe) and if libunwind.so.8 is missing, libgcc's
//! `_Unwind_Backtrace` is used: complete too, but ≈ 15× slower.
//!
//! `MEMTRACE_UNWIND` picks the unwinder once libunwind is loaded:
//! - `fast` (default): as above;
//! - `libunwind`: `unw_backtrace` only;
//! - `check`: both on every capture (the fast walk with its shadow and id
//!   cache), libunwind's stack kept; mismatches counted and the first three
//!   printed; a summary line at exit.

mod ehframe;
mod memory;
mod rules;
mod shadow;
#[cfg(test)]
mod testing;

pub use ehframe::Caller;
use ehframe::Walk;
use shadow::Shadow;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

const MODE_LIBUNWIND: u8 = 0;
const MODE_FAST: u8 = 1;
const MODE_CHECK: u8 = 2;
/// Chosen by `load_libunwind` from MEMTRACE_UNWIND; libunwind until then.
static MODE: AtomicU8 = AtomicU8::new(MODE_LIBUNWIND);
static CHECKED: AtomicU64 = AtomicU64::new(0);
static MISMATCHES: AtomicU64 = AtomicU64::new(0);
static DECLINED: AtomicU64 = AtomicU64::new(0);
static FROM_ID_CACHE: AtomicU64 = AtomicU64::new(0);

type UnwBacktrace = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;
/// `unw_backtrace` once libunwind.so.8 is loaded, else 0.
static UNW_BACKTRACE: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    // libgcc_s (a dependency of every Rust cdylib anyway).
    fn _Unwind_Backtrace(
        trace: unsafe extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
    /// Linker-provided: the ELF header of libtrace.so itself, i.e. its load
    /// address. Lets us find our own text range without taking the loader's
    /// locks (dladdr/dl_iterate_phdr) from inside the very first malloc.
    static __ehdr_start: libc::Elf64_Ehdr;
}

/// How many of our own frames (hook, capture, libunwind) we allow for on top
/// of the user's frame limit. They are skipped by address, not by count.
pub const SKIP_MAX: usize = 16;
/// Size of the capture buffer the hooks put on their stack.
pub const BUF: usize = crate::config::MAX_FRAMES + SKIP_MAX + 1;
/// The smaller buffer used for frame limits up to `SMALL_LIMIT`.
pub const SMALL_LIMIT: usize = 48;
pub const SMALL_BUF: usize = SMALL_LIMIT + SKIP_MAX + 1;

/// Most of our own frames seen on top of a captured stack (hook, capture).
static SKIP_SEEN: AtomicUsize = AtomicUsize::new(3);
static TEXT_START: AtomicUsize = AtomicUsize::new(0);
static TEXT_END: AtomicUsize = AtomicUsize::new(0);
static SELF_BASE: AtomicUsize = AtomicUsize::new(0);

/// Finds libtrace.so's executable segment(s) from its own program headers.
pub fn init() {
    // SAFETY: __ehdr_start is the mapped ELF header of this object, and its
    // program headers are mapped with it (they lie in the first PT_LOAD).
    unsafe {
        let eh = &__ehdr_start as *const libc::Elf64_Ehdr;
        let phdrs = (eh as *const u8).add((*eh).e_phoff as usize) as *const libc::Elf64_Phdr;
        let mut min_vaddr = u64::MAX;
        for i in 0..(*eh).e_phnum as usize {
            let ph = &*phdrs.add(i);
            if ph.p_type == libc::PT_LOAD {
                min_vaddr = min_vaddr.min(ph.p_vaddr & !0xfff);
            }
        }
        if min_vaddr == u64::MAX {
            min_vaddr = 0;
        }
        let base = (eh as usize).wrapping_sub(min_vaddr as usize);
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        for i in 0..(*eh).e_phnum as usize {
            let ph = &*phdrs.add(i);
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                lo = lo.min(base + ph.p_vaddr as usize);
                hi = hi.max(base + (ph.p_vaddr + ph.p_memsz) as usize);
            }
        }
        if lo < hi {
            TEXT_START.store(lo, Ordering::Relaxed);
            TEXT_END.store(hi, Ordering::Relaxed);
        }
        SELF_BASE.store(base, Ordering::Relaxed);
    }
}

/// Loads libunwind.so.8 privately. Called from our constructor, where
/// dlopen is safe (not from inside the first malloc).
pub fn load_libunwind() {
    let _g = crate::sys::NoTrace::new();
    // SAFETY: dlopen/dlsym with valid C strings; the handle is never closed.
    unsafe {
        let h = libc::dlopen(
            c"libunwind.so.8".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        );
        if h.is_null() {
            crate::sys::log("cannot load libunwind.so.8 (apt-get install libunwind8); using the slower libgcc unwinder");
            return;
        }
        let f = libc::dlsym(h, c"unw_backtrace".as_ptr());
        if f.is_null() {
            crate::sys::log(
                "libunwind.so.8 has no unw_backtrace; using the slower libgcc unwinder",
            );
            return;
        }
        UNW_BACKTRACE.store(f as usize, Ordering::Release);
    }
    // Read in the constructor, before the program's own code can setenv.
    let mode = crate::config::env(c"MEMTRACE_UNWIND").unwrap_or(b"fast");
    let mode = match mode {
        b"" | b"fast" => MODE_FAST,
        b"check" => MODE_CHECK,
        b"libunwind" => MODE_LIBUNWIND,
        other => {
            crate::sys::log(&format!(
                "MEMTRACE_UNWIND={}: expected fast, libunwind or check; using fast",
                String::from_utf8_lossy(other)
            ));
            MODE_FAST
        }
    };
    if mode != MODE_LIBUNWIND && rules::init() {
        if mode == MODE_CHECK {
            // SAFETY: registering a plain extern "C" fn.
            unsafe { libc::atexit(check_summary) };
        }
        MODE.store(mode, Ordering::Release);
    }
}

/// Forgets the fast unwinder's cached rules. To be called after a dlclose
/// (another object may then be mapped at the same addresses).
pub fn modules_changed() {
    rules::invalidate();
}

extern "C" fn check_summary() {
    crate::sys::log(&format!(
        "unwind check: {} captures, {} mismatches, {} declined by the fast unwinder, {} answered by its stack-id cache",
        CHECKED.load(Ordering::Relaxed),
        MISMATCHES.load(Ordering::Relaxed),
        DECLINED.load(Ordering::Relaxed),
        FROM_ID_CACHE.load(Ordering::Relaxed)
    ));
}

struct GccState {
    buf: *mut usize,
    n: usize,
    cap: usize,
}

/// `_Unwind_Backtrace`'s callback: records one frame's pc.
///
/// # Safety
/// `arg` must be the `GccState` `slow_backtrace` passed; `ctx` libgcc's.
unsafe extern "C" fn gcc_frame(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the &mut GccState passed by slow_backtrace, not
    // otherwise used while the unwinder runs.
    let st = unsafe { &mut *(arg as *mut GccState) };
    if st.n >= st.cap {
        return 5; // _URC_END_OF_STACK: stop
    }
    // SAFETY: n < cap, and buf has room for cap entries; ctx is libgcc's.
    unsafe { *st.buf.add(st.n) = _Unwind_GetIP(ctx) };
    st.n += 1;
    0 // _URC_NO_REASON: go on
}

/// libunwind, or libgcc before the constructor.
///
/// # Safety
/// `buf` must have room for `cap` entries.
unsafe fn slow_backtrace(buf: *mut usize, cap: usize) -> usize {
    let f = UNW_BACKTRACE.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: a non-zero UNW_BACKTRACE is dlsym's address of
        // unw_backtrace, whose C signature UnwBacktrace is; buf has room for
        // cap entries (the caller's).
        return unsafe {
            let f: UnwBacktrace = std::mem::transmute(f);
            f(buf.cast(), cap as c_int).max(0) as usize
        };
    }
    let mut st = GccState { buf, n: 0, cap };
    // SAFETY: gcc_frame writes at most cap entries to buf (the caller's).
    unsafe { _Unwind_Backtrace(gcc_frame, &mut st as *mut GccState as *mut c_void) };
    st.n
}

/// The id of the stack of the hook whose entry state is `caller`:
/// captured (at most the configured frame limit) and interned, or known from
/// the thread's shadow. `scratch`: the thread's ring scratch, or null.
/// errno may be clobbered.
#[inline(never)]
pub fn stack_id(caller: Caller, scratch: *mut u8) -> u32 {
    let limit = crate::config::frames();
    // The capture buffer is on the stack, sized for the frame limit: hooks
    // run on the program's stack, which may be small (16 KiB threads), so
    // the common limits (≤ 48 frames) use a 520-byte buffer and only deeper
    // limits pay for the 2 KiB one. (Not in TLS: glibc carves static TLS
    // out of every thread's stack.)
    let sh = scratch as *mut Shadow;
    if limit <= SMALL_LIMIT {
        stack_id_in(
            &mut [MaybeUninit::<usize>::uninit(); SMALL_BUF],
            limit,
            caller,
            sh,
        )
    } else {
        stack_id_in(
            &mut [MaybeUninit::<usize>::uninit(); BUF],
            limit,
            caller,
            sh,
        )
    }
}

#[inline(always)]
fn stack_id_in<const N: usize>(
    buf: &mut [MaybeUninit<usize>; N],
    limit: usize,
    caller: Caller,
    sh: *mut Shadow,
) -> u32 {
    let limit = limit.clamp(1, N - SKIP_MAX - 1);
    let ptr: *mut usize = buf.as_mut_ptr().cast();
    match MODE.load(Ordering::Relaxed) {
        MODE_FAST => {
            // SAFETY: buf has room for limit + 1 <= N entries; the walk
            // initialises the first n it reports; `sh` is this thread's own
            // scratch (or null) and `caller` our hook's entry state.
            match unsafe { ehframe::backtrace(ptr, limit + 1, caller, sh) } {
                Some(Walk::Id(id)) => return id,
                Some(Walk::Frames { n, keyed, whole }) => {
                    // SAFETY: the walk initialised buf[..n].
                    let frames = unsafe { std::slice::from_raw_parts(ptr, n) };
                    let id = intern_cut(frames, limit);
                    // SAFETY: keyed or whole only come with a
                    // non-null shadow.
                    unsafe { remember(sh, keyed, whole, id) };
                    return id;
                }
                None => {}
            }
        }
        MODE_CHECK => return check_stack_id(buf, limit, caller, sh),
        _ => {}
    }
    let (frames, truncated) = capture(buf, limit);
    crate::intern::intern(frames, truncated)
}

/// Tells the thread's shadow the id of the stack a walk returned.
///
/// # Safety
/// `sh` must be this thread's shadow if `keyed` or `whole` is set.
#[inline(always)]
unsafe fn remember(sh: *mut Shadow, keyed: bool, whole: bool, id: u32) {
    if keyed {
        // SAFETY: the caller's: `sh` is this thread's shadow.
        unsafe { (*sh).remember(id) };
    }
    if whole {
        // SAFETY: as above.
        unsafe { (*sh).remember_whole(id) };
    }
}

/// Interns the first `limit` of `frames`, truncated if there were more.
#[inline(always)]
fn intern_cut(frames: &[usize], limit: usize) -> u32 {
    if frames.len() > limit {
        crate::intern::intern(&frames[..limit], true)
    } else {
        crate::intern::intern(frames, false)
    }
}

/// MEMTRACE_UNWIND=check: libunwind's stack is the one interned; the fast
/// walk (shadow and id cache included) runs too, and a difference is
/// counted and the first three reported.
#[cold]
#[inline(never)]
fn check_stack_id<const N: usize>(
    buf: &mut [MaybeUninit<usize>; N],
    limit: usize,
    caller: Caller,
    sh: *mut Shadow,
) -> u32 {
    let (frames, truncated) = capture(buf, limit);
    let slow = frames.to_vec();
    let id = crate::intern::intern(&slow, truncated);
    let mut other = [0usize; BUF];
    CHECKED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: as in stack_id_in, with `other` (BUF > limit + 1 entries).
    let fast: Vec<usize> =
        match unsafe { ehframe::backtrace(other.as_mut_ptr(), limit + 1, caller, sh) } {
            None => {
                DECLINED.fetch_add(1, Ordering::Relaxed);
                return id;
            }
            Some(Walk::Id(fid)) => {
                let f: Vec<usize> = match crate::intern::get(fid) {
                    Some((f, t)) if t == truncated => f.iter().map(|&x| x as usize).collect(),
                    _ => vec![0], // a different truncation, or no such id: a mismatch
                };
                if f == slow {
                    FROM_ID_CACHE.fetch_add(1, Ordering::Relaxed);
                }
                f
            }
            Some(Walk::Frames { n, keyed, whole }) => {
                let got = &other[..n.min(limit)];
                if got == &slow[..] && (n > limit) == truncated {
                    // SAFETY: as in stack_id_in.
                    unsafe { remember(sh, keyed, whole, id) };
                }
                let mut v = got.to_vec();
                if (n > limit) != truncated {
                    v.push(0); // a difference in truncation shows as one
                }
                v
            }
        };
    if fast != slow && MISMATCHES.fetch_add(1, Ordering::Relaxed) < 3 {
        let hex = |f: &[usize]| {
            f.iter()
                .map(|x| format!("{x:#x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        crate::sys::log(&format!(
            "unwind mismatch: libunwind [{}] fast [{}]",
            hex(&slow),
            hex(&fast)
        ));
    }
    id
}

/// Load address of libtrace.so (its dlpi_addr).
pub fn self_base() -> usize {
    SELF_BASE.load(Ordering::Relaxed)
}

#[inline]
fn ours(pc: usize) -> bool {
    pc >= TEXT_START.load(Ordering::Relaxed) && pc < TEXT_END.load(Ordering::Relaxed)
}

/// Captures the stack with libunwind (libgcc before the constructor) into
/// `buf` (N ≥ limit + SKIP_MAX + 1), return addresses most recent first,
/// without our own frames. Returns the frames (at most `limit`) and whether
/// the real stack was deeper than `limit`.
#[inline(never)]
fn capture<const N: usize>(buf: &mut [MaybeUninit<usize>; N], limit: usize) -> (&[usize], bool) {
    let limit = limit.clamp(1, N - SKIP_MAX - 1);
    // Unwind only as deep as needed: our own frames (learned, ≈ 2-4) +
    // the limit + 1 to tell whether the stack was cut. Every frame costs.
    let mut skip_room = SKIP_SEEN.load(Ordering::Relaxed);
    loop {
        let want = limit + skip_room + 1;
        // SAFETY: buf has room for `want` <= N pointers; the unwinder
        // initialises the first `n` of them, and we only read those. The
        // buffer is left uninitialised on purpose: zeroing it per malloc
        // would cost more than the rest of the hook's bookkeeping.
        let frames: &[usize] = unsafe {
            let n = slow_backtrace(buf.as_mut_ptr().cast(), want).min(want);
            std::slice::from_raw_parts(buf.as_ptr().cast::<usize>(), n)
        };
        let n = frames.len();
        let mut skip = 0;
        while skip < n && ours(frames[skip]) {
            skip += 1;
        }
        if skip > skip_room && n == want && skip_room < SKIP_MAX {
            // More of our frames than expected and the buffer was full:
            // we may have cut user frames. Learn, and unwind once more.
            skip_room = skip.min(SKIP_MAX);
            SKIP_SEEN.fetch_max(skip_room, Ordering::Relaxed);
            continue;
        }
        let frames = &frames[skip..n];
        return if frames.len() > limit {
            (&frames[..limit], true)
        } else {
            (frames, false)
        };
    }
}
