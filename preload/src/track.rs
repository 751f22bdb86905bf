//! Custom allocators (`preload/include/memtrace.h`): `memtrace_track` and
//! `memtrace_untrack` let a program's pool or arena report the objects it
//! hands out, so that they show as blocks of their own domain (tracemalloc's
//! `PyTraceMalloc_Track`) at the stack that called `memtrace_track`, instead
//! of only the big malloc'd block they are carved from.
//!
//! Both go through the ring as events of their own kind (ring.rs: Track,
//! Untrack) and the writer keeps them in one live table per domain
//! (writer/domains.rs), apart from the malloc heap's: an object often starts
//! at the very address of the block it lives in. They take keys as
//! allocations and frees do (seq.rs: a track after the object exists, an
//! untrack before it is given back), so snapshots stay exact across threads
//! for them too.
//!
//! Return values mirror `PyTraceMalloc_Track`: 0 recorded, -2 tracing is
//! off (not initialised yet, disabled, called from inside memtrace itself,
//! or under MEMTRACE_SAMPLE, whose estimates hold for sampled malloc blocks
//! only). Domain 0 is the malloc heap, whose blocks only the hooks record:
//! tracking there is refused with -1 (it would collide with the heap block
//! at the same address and break the live table's exactness).
//!
//! Neither function is on the malloc/free path: the hooks are unchanged.

use crate::hooks::{caller, enter_ready, leave, stack_id};
use crate::ring::{with_ring, Ring, Tracked};
use crate::unwind::Caller;
use crate::{config, seq};
use libc::{c_int, c_uint, c_void, size_t};
use std::sync::atomic::Ordering;

/// Not recorded: tracing is off or cannot take this call.
const OFF: c_int = -2;
/// Domain 0 (the malloc heap's) was asked for.
const BAD_DOMAIN: c_int = -1;

/// Exported: records `size` bytes at `ptr` as a live object of `domain`,
/// allocated at the caller's stack.
///
/// # Safety
/// Reached only by a call: the stub reads the caller's rsp and rbp as the
/// ABI leaves them. `ptr` is never dereferenced.
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn memtrace_track(domain: c_uint, ptr: *const c_void, size: size_t) -> c_int {
    // SAFETY: as the hooks' entry stubs (hooks.rs `entry_stub!`): rcx and r8
    // are free argument registers here (three arguments), the stack is left
    // as the caller made it, so `track_at` runs as if called directly with
    // the caller's frame as its last two arguments.
    std::arch::naked_asm!(
        ".cfi_startproc",
        "mov rcx, rsp",
        "mov r8, rbp",
        "jmp {imp}",
        ".cfi_endproc",
        imp = sym track_at,
    )
}

/// Exported: `ptr` of `domain` is no longer a live object.
#[no_mangle]
pub extern "C" fn memtrace_untrack(domain: c_uint, ptr: *const c_void) -> c_int {
    if domain == 0 {
        return BAD_DOMAIN;
    }
    if !can_record() {
        return OFF;
    }
    with_ring(|r| {
        r.busy.store(1, Ordering::Relaxed); // as hooks.rs publish_free
        let key = seq::free_key();
        r.publish(|buf, n| r.enc_untrack(buf, n, key, domain, ptr as u64));
        r.busy.store(0, Ordering::Release);
    });
    leave();
    0
}

/// True if this call is to be recorded; then the re-entrancy flag is set
/// and the caller must `leave()`.
fn can_record() -> bool {
    crate::ensure_ready() && config::sample_rate() == 0 && enter_ready()
}

/// # Safety
/// `at` and `bp` are the caller's frame as `memtrace_track`'s stub passes it.
unsafe extern "C" fn track_at(
    domain: c_uint,
    ptr: *const c_void,
    size: size_t,
    at: *const usize,
    bp: usize,
) -> c_int {
    if domain == 0 {
        return BAD_DOMAIN;
    }
    if !can_record() {
        return OFF;
    }
    let t = Tracked {
        addr: ptr as u64,
        size: size as u64,
        stack: 0,
        domain,
    };
    with_ring(|r| publish_track(r, caller(at, bp), t));
    leave();
    0
}

/// Captures the stack, then takes the key (after the object exists, as an
/// allocation's after the real malloc) and publishes.
fn publish_track(r: &Ring, at: Caller, t: Tracked) {
    let t = Tracked {
        stack: stack_id(r, at),
        ..t
    };
    r.busy.store(1, Ordering::Relaxed); // as hooks.rs publish_alloc
    let key = seq::alloc_key();
    r.publish(|buf, n| r.enc_track(buf, n, key, &t));
    r.busy.store(0, Ordering::Release);
}
