//! The thread's hot state: what every hook reads, in one block of
//! initial-exec TLS.
//!
//! Rust's `thread_local!` in a shared object uses the general-dynamic model:
//! every access calls `__tls_get_addr`, and a traced allocation made about
//! six of them (≈ 10 % of its cost). This block is reached instead as the
//! thread pointer plus a constant the loader put in the GOT: two loads.
//! Valid because libtrace.so is loaded at start (LD_PRELOAD), so its TLS is
//! in the static block; the linker marks the object STATIC_TLS (and a
//! dlopen of it would still find glibc's surplus static TLS, 1.6 KiB).
//!
//! Rust cannot declare initial-exec TLS itself (`#[thread_local]` is
//! unstable), hence the one `.tbss` symbol below, sized for `Hot`. Every
//! field starts zeroed, which is each field's "not yet" value.

use crate::ring::Ring;
use std::cell::Cell;

/// Per-thread state, all zero on a new thread.
#[repr(C)]
pub struct Hot {
    /// Set while this thread is inside one of our hooks, the unwinder, our
    /// initialisation, or for good on the writer thread: the hooks then pass
    /// straight through to glibc without recording.
    pub in_hook: Cell<bool>,
    /// Our thread-exit destructor already ran for this thread (ring.rs).
    pub exiting: Cell<bool>,
    /// This thread's event ring (ring.rs); null until its first event.
    pub ring: Cell<*mut Ring>,
    /// The top of this thread's stack (unwind/ehframe.rs); 0 = not known.
    pub stack_hi: Cell<usize>,
    /// Bytes left until the next sample point (sample.rs).
    pub sample_left: Cell<i64>,
    /// This thread's errno slot (sys.rs); null until first asked.
    pub errno_at: Cell<*mut i32>,
}

const HOT_BYTES: usize = std::mem::size_of::<Hot>();
const _: () = assert!(std::mem::align_of::<Hot>() <= 8);

std::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl memtrace_hot",
    ".hidden memtrace_hot",
    ".type memtrace_hot, @object",
    ".size memtrace_hot, {size}",
    "memtrace_hot:",
    ".zero {size}",
    ".popsection",
    size = const HOT_BYTES,
);

/// This thread's `Hot`.
#[inline(always)]
pub fn hot() -> &'static Hot {
    let p: *const Hot;
    // SAFETY: computes this thread's address of `memtrace_hot`: its offset
    // from the thread pointer (GOT entry filled by the loader) plus the
    // thread pointer, which x86-64 glibc keeps at %fs:0. Reads only, no
    // stack. The block is 8-aligned, zero-initialised (a valid `Hot`: false,
    // null, 0) and lives as long as the thread; `Hot` is made of Cells and
    // only this thread ever reaches its own block, so the shared reference
    // never aliases a mutable one. ('static is the thread's lifetime: the
    // reference is never handed to another thread, `Hot` is not Sync.)
    unsafe {
        std::arch::asm!(
            "mov {p}, qword ptr [rip + memtrace_hot@GOTTPOFF]",
            "add {p}, qword ptr fs:[0]",
            p = out(reg) p,
            options(pure, readonly, nostack),
        );
        &*p
    }
}
