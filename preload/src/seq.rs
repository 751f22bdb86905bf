//! The global event order: every event and every snapshot point gets a key
//! from one counter, `SEQ`.
//!
//! - An allocation takes a number `n` with a locked increment, after the
//!   real malloc returned; its key is `2n + 1`.
//! - A free only reads the counter (no locked instruction: ≈ 13 ns less a
//!   pair), before the real free; its key is `2n`.
//! - A snapshot point takes a number `s` with a locked increment; it holds
//!   the events with keys below `cut(s) = 2s + 1`: allocations numbered
//!   below `s`, frees numbered up to `s`.
//!
//! Why the keys keep every address's events in order: if thread A frees p
//! and thread B then gets p from malloc, A's read of SEQ happens before
//! glibc hands p over, so B's increment reads at least the same number:
//! equal numbers are possible, and then the free's key (2n) is the smaller
//! one. The other way round, an allocation's increment moved SEQ past its
//! number, so a later free of the block reads a higher one.
//!
//! What the writer must add for that read (`barrier`): to complete a
//! snapshot it reads each thread's `busy` flag (ring.rs), set before the
//! thread reads SEQ. A locked increment orders that store before the read;
//! a plain read does not (x86 lets a load pass an earlier store), so the
//! writer could see `busy = 0` while a free numbered below the point is
//! still on its way. `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` makes
//! every running thread of the process execute a full barrier: after it,
//! each thread's `busy = 1` is visible, or its read of SEQ comes after the
//! point's increment and so numbers it above the point. Where membarrier
//! cannot be registered, frees take a locked increment like allocations.

use crate::sys::Line;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering};

/// The counter. Starts at 1 (0 is no event).
static SEQ: Line<AtomicU64> = Line(AtomicU64::new(1));
/// Frees read SEQ instead of incrementing it (membarrier is registered).
static FREES_READ: AtomicBool = AtomicBool::new(false);

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

fn membarrier(cmd: libc::c_int) -> bool {
    // SAFETY: a plain syscall; an unknown command fails with EINVAL.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
}

/// Registers for private expedited membarrier; frees read SEQ if that
/// works. Called at initialisation and in a fork child (the registration is
/// the process's; the kernel keeps it across fork, but asking costs nothing).
pub fn init() {
    FREES_READ.store(
        membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED),
        Ordering::SeqCst,
    );
}

/// The key of an allocation whose real call has returned.
#[inline(always)]
pub fn alloc_key() -> u64 {
    2 * SEQ.fetch_add(1, Ordering::SeqCst) + 1
}

/// The key of a free about to be made. The caller has set its ring's
/// `busy` flag just before.
#[inline(always)]
pub fn free_key() -> u64 {
    if FREES_READ.load(Ordering::Relaxed) {
        // The busy store stays before the read in program order; the
        // writer's `barrier` does the rest (see the module doc).
        compiler_fence(Ordering::SeqCst);
        2 * SEQ.load(Ordering::Relaxed)
    } else {
        2 * SEQ.fetch_add(1, Ordering::SeqCst)
    }
}

/// A new snapshot point's number `s` (its events: keys below `cut(s)`).
pub fn point() -> u64 {
    SEQ.fetch_add(1, Ordering::SeqCst)
}

/// The counter's current value, without taking a number.
pub fn now() -> u64 {
    SEQ.load(Ordering::SeqCst)
}

/// The keys below which events precede point number `s`.
#[inline]
pub fn cut(s: u64) -> u64 {
    2 * s + 1
}

/// To be called by the writer after a point was taken and before it reads
/// the rings' `busy` flags to complete it (see the module doc).
pub fn barrier() {
    if FREES_READ.load(Ordering::SeqCst) && !membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) {
        // Registered, so this cannot fail short of a seccomp filter added
        // since. From now on frees increment; this snapshot may miss a
        // free that was being recorded at its moment.
        FREES_READ.store(false, Ordering::SeqCst);
        crate::sys::log("membarrier failed; frees now take a locked sequence number");
    }
}
