//! What reaches the writer thread from other threads and from signal
//! handlers, with atomics and one futex only (async-signal-safe): the fixed
//! queue of snapshot moments (`SLOTS`), the word the writer sleeps on
//! (`wake`, `nudge`), and its heartbeat, by which waiters notice a writer
//! that does not move (`Watch`).

use crate::seq;
use crate::sys;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Why the writer completes a point.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Signal,
    Exit,
    /// The writer's own point: events below it are applied in key order
    /// once it is complete (mod.rs, "Exact order").
    Cut,
}

/// A snapshot point waiting to be completed.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    /// The point's number (seq.rs); its events have keys below `seq::cut(seq)`.
    pub seq: u64,
    /// CLOCK_REALTIME when it was taken.
    pub time_ns: u64,
    pub kind: Kind,
    /// `seq::barrier` was called since the point was taken (a point of the
    /// writer's own may take several steps to complete; one barrier does).
    pub fenced: bool,
    /// CLOCK_MONOTONIC when the writer took or collected it.
    pub since_ns: u64,
}

// ---- the signal handler's side: a fixed queue of snapshot moments.

const SLOT_EMPTY: u32 = 0;
const SLOT_WRITING: u32 = 1;
const SLOT_READY: u32 = 2;
const NSLOTS: usize = 64;

struct Slot {
    state: AtomicU32,
    seq: AtomicU64,
    time_ns: AtomicU64,
    exit: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: Slot = Slot {
    state: AtomicU32::new(SLOT_EMPTY),
    seq: AtomicU64::new(0),
    time_ns: AtomicU64::new(0),
    exit: AtomicBool::new(false),
};
static SLOTS: [Slot; NSLOTS] = [EMPTY_SLOT; NSLOTS];

/// Marks a snapshot moment. Async-signal-safe. The slot is claimed *before*
/// the number is taken: a writer that read SEQ = W and then finds no claimed
/// slot knows that no snapshot point below W can appear any more, so it may
/// apply every event below W (see `State::step`). False if every slot is
/// taken.
pub fn mark(exit: bool) -> bool {
    for s in SLOTS.iter() {
        if s.state
            .compare_exchange(
                SLOT_EMPTY,
                SLOT_WRITING,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            let seq = seq::point();
            s.time_ns
                .store(sys::now_ns(libc::CLOCK_REALTIME), Ordering::Relaxed);
            s.seq.store(seq, Ordering::Relaxed);
            s.exit.store(exit, Ordering::Relaxed);
            s.state.store(SLOT_READY, Ordering::Release);
            wake();
            return true;
        }
    }
    // All slots taken: this signal coalesces with the pending ones.
    false
}

/// Moves the marked moments into `pending`, sorted by number.
pub fn collect(pending: &mut Vec<Pending>) {
    for s in SLOTS.iter() {
        let mut st = s.state.load(Ordering::SeqCst);
        let mut spins = 0;
        // A handler between claiming and filling its slot: it finishes in
        // nanoseconds unless preempted, or interrupted by another handler
        // that never returns (exit() in a signal handler): give up on it
        // after a second rather than hang.
        let start = sys::now_ns(libc::CLOCK_MONOTONIC);
        while st == SLOT_WRITING && sys::now_ns(libc::CLOCK_MONOTONIC) - start < 1_000_000_000 {
            sys::backoff(&mut spins);
            st = s.state.load(Ordering::SeqCst);
        }
        if st == SLOT_READY {
            let seq = s.seq.load(Ordering::Relaxed);
            let time_ns = s.time_ns.load(Ordering::Relaxed);
            let kind = if s.exit.load(Ordering::Relaxed) {
                Kind::Exit
            } else {
                Kind::Signal
            };
            s.state.store(SLOT_EMPTY, Ordering::Release);
            pending.push(Pending {
                seq,
                time_ns,
                kind,
                fenced: false,
                since_ns: sys::now_ns(libc::CLOCK_MONOTONIC),
            });
        }
    }
    pending.sort_by_key(|p| p.seq);
}

fn any_marked() -> bool {
    SLOTS
        .iter()
        .any(|s| s.state.load(Ordering::SeqCst) != SLOT_EMPTY)
}

// ---- waking the writer.

/// The writer sleeps on this word with a futex (no file descriptor: a
/// program that closes all its descriptors must not have us write into a
/// file that reused the number). Bumped and woken by `wake()`.
static WAKE_WORD: AtomicU32 = AtomicU32::new(0);
static SLEEPING: sys::Line<AtomicBool> = sys::Line(AtomicBool::new(false));

/// Async-signal-safe (one atomic add, one futex syscall).
pub fn wake() {
    WAKE_WORD.fetch_add(1, Ordering::SeqCst);
    // SAFETY: FUTEX_WAKE on a static word; no memory is written by the kernel.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            WAKE_WORD.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
}

/// Called by producers whose ring is getting full: wakes the writer if it
/// sleeps. Leaves errno alone.
pub fn nudge() {
    if SLEEPING.load(Ordering::Relaxed) && SLEEPING.swap(false, Ordering::Relaxed) {
        let e = crate::guard::errno();
        wake();
        crate::guard::set_errno(e);
    }
}

/// The writer sleeps up to 10 ms unless woken (snapshot, exit, a ring half
/// full).
pub fn wait_for_work() {
    let v = WAKE_WORD.load(Ordering::SeqCst);
    SLEEPING.store(true, Ordering::SeqCst);
    if !any_marked() {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        // SAFETY: FUTEX_WAIT on a static word with a relative timeout; it
        // returns at once if the word changed since we read `v`.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                WAKE_WORD.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                v,
                &ts as *const libc::timespec,
            )
        };
    }
    SLEEPING.store(false, Ordering::SeqCst);
}

/// Fork child: the parent's marks are not the child's; nobody sleeps yet.
pub fn fork_child() {
    for s in SLOTS.iter() {
        s.state.store(SLOT_EMPTY, Ordering::Relaxed);
    }
    SLEEPING.store(false, Ordering::Relaxed);
}

// ---- the heartbeat.

/// Bumped by the writer as it makes progress. Waiters (exit, a full ring)
/// give up when it stands still for seconds: the writer thread may not exist
/// in a process made by a raw clone()/fork syscall, which skips our atfork
/// handlers. Without this they would hang.
static HEARTBEAT: sys::Line<AtomicU64> = sys::Line(AtomicU64::new(0));
const STALL_NS: u64 = 5_000_000_000;

#[inline]
pub fn beat() {
    HEARTBEAT.fetch_add(1, Ordering::Relaxed);
}

/// Tracks whether the writer moves while someone waits for it.
pub struct Watch {
    last: u64,
    since: u64,
}

impl Watch {
    pub fn new() -> Self {
        Watch {
            last: HEARTBEAT.load(Ordering::Relaxed),
            since: sys::now_ns(libc::CLOCK_MONOTONIC),
        }
    }

    /// True if the writer has not moved for `STALL_NS`.
    pub fn stalled(&mut self) -> bool {
        let h = HEARTBEAT.load(Ordering::Relaxed);
        let now = sys::now_ns(libc::CLOCK_MONOTONIC);
        if h != self.last {
            self.last = h;
            self.since = now;
            return false;
        }
        now - self.since > STALL_NS
    }
}
