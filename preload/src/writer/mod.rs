//! The writer thread: drains the rings, keeps the live table, writes the
//! snapshot files.
//!
//! Events carry keys (seq.rs): for any address, its events in key order
//! alternate alloc, free. The live table is order-independent: per address
//! it keeps the event with the highest key seen: alloc e makes the entry
//! Live(e), free e makes it Tombstone(e.seq), unless the entry already holds
//! a higher key. After all events below a cut were applied, in any order,
//! the table is exactly the live set there. A free must leave a tombstone
//! even when it removes a live block: an older alloc of the same address may
//! still arrive (alloc 1, free 2, alloc 3, free 4 drained as 1, 4, 3).
//! Tombstones below a completed cut can no longer matter and are purged
//! then; an internal sync point is made when they pile up.
//!
//! A snapshot point (signal, exit, or an internal sync to purge tombstones)
//! is complete when every ring has shown an event with a key at or above
//! its cut, or is empty while its thread is not inside a hook (`busy`, read
//! after `seq::barrier` and before draining). Then exactly the events below
//! the cut are applied and the file is written; later events wait in
//! `deferred`.
//!
//! Peak bytes: each drained batch is applied in seq order, so the running
//! maximum is exact except when an event reaches us in a later batch than
//! events numbered after it (a thread preempted between taking its number
//! and publishing): then the peak may be off by that block for a moment.
//!
//! All of the writer's state lives in `STATE` (not on its stack) under a
//! lock, so that the fork child can take it over consistent.

use crate::ring::{self, Event};
use crate::sys::{self, BuildMix, Locked};
use crate::{config, intern, modules, seq};
use memtrace_format::{Header, Snapshot, SnapshotKind, Stack, TraceGroup};
use std::collections::HashMap;
use std::ffi::CString;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[derive(Clone, Copy)]
struct Entry {
    seq: u64,
    size: u64,
    stack: u32,
    live: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Signal,
    Exit,
    Sync,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    seq: u64,
    time_ns: u64,
    kind: Kind,
}

pub struct State {
    table: HashMap<u64, Entry, BuildMix>,
    traced: u64,
    peak: u64,
    allocs: u64,
    frees: u64,
    tombstones: usize,
    deferred: Vec<Event>,
    pending: Vec<Pending>,
    next_index: u64,
    error_reported: bool,
    /// The writer could not get memory: events were dropped, tracing is
    /// off, no more snapshots (see `out_of_memory`).
    oom: bool,
}

pub static STATE: sys::Line<Locked<Option<State>>> = sys::Line(Locked::new(None));

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

/// The writer sleeps on this word with a futex (no file descriptor: a
/// program that closes all its descriptors must not have us write into a
/// file that reused the number). Bumped and woken by `wake()`.
static WAKE_WORD: AtomicU32 = AtomicU32::new(0);
static SLEEPING: sys::Line<AtomicBool> = sys::Line(AtomicBool::new(false));
/// 0 none, 1 starting, 2 running.
static WRITER: AtomicU32 = AtomicU32::new(0);

/// Bumped by the writer as it makes progress. Waiters (exit, a full ring)
/// give up when it stands still for seconds: the writer thread may not exist
/// in a process made by a raw clone()/fork syscall, which skips our atfork
/// handlers. Without this they would hang.
static HEARTBEAT: sys::Line<AtomicU64> = sys::Line(AtomicU64::new(0));
const STALL_NS: u64 = 5_000_000_000;

#[inline]
fn beat() {
    HEARTBEAT.fetch_add(1, Ordering::Relaxed);
}

/// Tracks whether the writer moves while someone waits for it.
pub struct Watch {
    last: u64,
    since: u64,
}

impl Watch {
    pub fn new() -> Self {
        Watch { last: HEARTBEAT.load(Ordering::Relaxed), since: sys::now_ns(libc::CLOCK_MONOTONIC) }
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

/// Set by the fork prepare handler while it waits for `STATE`.
pub static FORK_WAITING: AtomicBool = AtomicBool::new(false);

static EXIT_STARTED: AtomicBool = AtomicBool::new(false);
static EXIT_DONE: AtomicBool = AtomicBool::new(false);

// ---- the last thread. When the main thread calls pthread_exit() (or, in a
// child forked from another thread, that thread returns), glibc ends the
// process when its thread count (`__nptl_nthreads`) drops to 0. Our writer
// is counted too, so without help it would keep the process alive for ever
// as a zombie main thread plus a writer that blocks every signal. The
// writer therefore watches for being the only thread left; then it returns
// from its start routine, and glibc runs exit(0) on it: the program's exit
// handlers, then our `at_exit`, which writes the exit snapshot on this very
// thread (it must not wait for a writer that is itself).

/// glibc's own thread counter (`__nptl_nthreads`, GLIBC_PRIVATE), found with
/// dlsym at start; 0 if missing. Exactly glibc's criterion for "last thread".
static NTHREADS: AtomicUsize = AtomicUsize::new(0);
/// The thread-group leader ran its thread-exit destructor (pthread_exit of
/// the main thread, or the forking thread of a child finishing). Without
/// `NTHREADS` the writer then scans /proc/self/task.
static LEADER_GONE: AtomicBool = AtomicBool::new(false);
/// Bumped by every thread-exit destructor while the leader is gone: a
/// reason to scan /proc again.
static THREAD_EXITS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// True on the writer thread (for its whole life, also while it runs the
    /// program's exit handlers as the last thread).
    static IS_WRITER: Cell<bool> = const { Cell::new(false) };
}

/// Looks up glibc's thread counter. Constructor path (dlsym may calloc:
/// the caller holds the re-entrancy guard).
pub fn find_thread_count() {
    // SAFETY: dlsym with a valid C string; the result is only read as a u32.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__nptl_nthreads".as_ptr()) };
    if !p.is_null() && (p as usize).is_multiple_of(std::mem::align_of::<u32>()) {
        NTHREADS.store(p as usize, Ordering::Release);
    }
}

/// Called from the ring's thread-exit destructor (every thread that had a
/// ring; the leader always has one).
pub fn thread_exiting() {
    // SAFETY: plain syscalls.
    let leader = unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t == libc::getpid() };
    if leader {
        LEADER_GONE.store(true, Ordering::SeqCst);
    }
    if LEADER_GONE.load(Ordering::Relaxed) {
        THREAD_EXITS.fetch_add(1, Ordering::SeqCst);
        let e = sys::errno();
        wake();
        sys::set_errno(e);
    }
}

pub fn on_writer_thread() -> bool {
    IS_WRITER.with(|w| w.get())
}

/// True when the writer is the only thread left that glibc counts (or, without
/// the counter, the only thread in /proc/self/task that is not a zombie).
fn alone(last_scan: &mut (u64, u64)) -> bool {
    let p = NTHREADS.load(Ordering::Acquire);
    if p != 0 {
        // SAFETY: glibc's counter, a u32 updated with atomic instructions;
        // we only read it.
        let n = unsafe { (*(p as *const AtomicU32)).load(Ordering::SeqCst) };
        return n == 1;
    }
    if !LEADER_GONE.load(Ordering::SeqCst) {
        return false;
    }
    // Rate-limited: on a thread exit, else every 100 ms.
    let exits = THREAD_EXITS.load(Ordering::SeqCst);
    let now = sys::now_ns(libc::CLOCK_MONOTONIC);
    if exits == last_scan.0 && now.saturating_sub(last_scan.1) < 100_000_000 {
        return false;
    }
    *last_scan = (exits, now);
    // Twice: a thread seen dead in the first scan may have created another.
    only_thread_in_proc() && only_thread_in_proc()
}

/// No other thread in /proc/self/task is alive (state other than Z or X).
fn only_thread_in_proc() -> bool {
    // SAFETY: plain syscall.
    let me = unsafe { libc::syscall(libc::SYS_gettid) } as u64;
    let Ok(rd) = std::fs::read_dir("/proc/self/task") else { return false };
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else { continue };
        if tid == me {
            continue;
        }
        let Ok(stat) = std::fs::read(format!("/proc/self/task/{tid}/stat")) else { continue };
        let state = stat.iter().rposition(|&c| c == b')').and_then(|i| stat.get(i + 2)).copied();
        match state {
            Some(b'Z') | Some(b'X') | Some(b'x') => {}
            _ => return false,
        }
    }
    true
}

/// Marks a snapshot moment. Async-signal-safe. The slot is claimed *before*
/// the number is taken: a writer that read SEQ = W and then finds no claimed
/// slot knows that no snapshot point below W can appear any more, so it may
/// apply every event below W (see `State::step`).
fn mark(exit: bool) -> bool {
    for s in SLOTS.iter() {
        if s.state.compare_exchange(SLOT_EMPTY, SLOT_WRITING, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
            let seq = seq::point();
            s.time_ns.store(sys::now_ns(libc::CLOCK_REALTIME), Ordering::Relaxed);
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

/// The signal handler's part.
pub fn snapshot_requested_from_signal() {
    if !crate::is_ready() || EXIT_STARTED.load(Ordering::Relaxed) {
        return;
    }
    mark(false);
}

/// Async-signal-safe (one atomic add, one futex syscall).
fn wake() {
    WAKE_WORD.fetch_add(1, Ordering::SeqCst);
    // SAFETY: FUTEX_WAKE on a static word; no memory is written by the kernel.
    unsafe { libc::syscall(libc::SYS_futex, WAKE_WORD.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
}

/// Called by producers whose ring is getting full: wakes the writer if it sleeps.
pub fn nudge() {
    if SLEEPING.load(Ordering::Relaxed) && SLEEPING.swap(false, Ordering::Relaxed) {
        let e = sys::errno();
        wake();
        sys::set_errno(e);
    }
}

fn new_state() -> State {
    State {
        table: HashMap::default(),
        traced: 0,
        peak: 0,
        allocs: 0,
        frees: 0,
        tombstones: 0,
        deferred: Vec::new(),
        pending: Vec::new(),
        next_index: 1,
        error_reported: false,
        oom: false,
    }
}

pub fn init() -> bool {
    *STATE.lock() = Some(new_state());
    true
}

/// Starts the writer thread if it is not running.
pub fn ensure_started() {
    if WRITER.load(Ordering::Acquire) != 0 {
        return;
    }
    if WRITER.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return;
    }
    let _g = sys::NoTrace::new();
    // SAFETY: standard pthread calls with valid pointers. All signals are
    // blocked in the new thread (inherited mask) so that the program's
    // signal handlers never run on our thread.
    let ok = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 1 << 20);
        let mut tid: libc::pthread_t = 0;
        let r = libc::pthread_create(&mut tid, &attr, writer_main, std::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r == 0
    };
    if ok {
        WRITER.store(2, Ordering::Release);
        // Wait (at most a second) for the writer's first allocation: it
        // must get its glibc arena before the program can go on to set a
        // tight RLIMIT_AS (see writer_main).
        let start = sys::now_ns(libc::CLOCK_MONOTONIC);
        let mut spins = 0;
        while !WRITER_ARENA.load(Ordering::Acquire) && sys::now_ns(libc::CLOCK_MONOTONIC) - start < 1_000_000_000 {
            sys::backoff(&mut spins);
        }
    } else {
        sys::log("cannot start the writer thread; tracing disabled");
        crate::disable();
    }
}

/// Set by the writer thread once it has allocated (its glibc arena exists).
static WRITER_ARENA: AtomicBool = AtomicBool::new(false);

extern "C" fn writer_main(_: *mut libc::c_void) -> *mut libc::c_void {
    crate::tls::hot().in_hook.set(true);
    IS_WRITER.with(|w| w.set(true));
    // Allocate now: a thread's first malloc makes glibc map it an arena
    // (a 64 MiB reservation), which fails if the program has meanwhile
    // set a tight RLIMIT_AS. The queues' first blocks come with it.
    if let Some(st) = STATE.lock().as_mut() {
        let _ = st.deferred.try_reserve(4096);
        let _ = st.pending.try_reserve(16);
    }
    WRITER_ARENA.store(true, Ordering::Release);
    // SAFETY: naming our own thread; the name fits in 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"memtrace".as_ptr() as libc::c_ulong, 0, 0, 0) };
    let mut last_scan = (0u64, 0u64);
    loop {
        if alone(&mut last_scan) && !EXIT_STARTED.load(Ordering::SeqCst) {
            // Every other thread is gone: become an ordinary thread and
            // end, so that glibc's last-thread logic calls exit(0) here.
            // Signals are no longer blocked: with no other thread left,
            // blocking them would make the process deaf to SIGTERM/SIGINT
            // (only SIGKILL could end it). While program threads exist we
            // block everything, so that a program that blocks a signal in
            // all its threads and sigwait()s for it never sees it
            // delivered (and its default action run) on our thread.
            // The program's exit handlers running here are traced again.
            // SAFETY: an empty set is a valid mask.
            unsafe {
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            }
            sys::verbose("every program thread has ended; the writer ends the process (exit 0)");
            crate::tls::hot().in_hook.set(false);
            return std::ptr::null_mut();
        }
        beat();
        wait_for_work();
        // A forking thread waits for our lock in its prepare handler; the
        // spin lock is not fair, so step aside until it got it.
        let mut spins = 0;
        while FORK_WAITING.load(Ordering::Relaxed) {
            sys::backoff(&mut spins);
        }
        let mut g = STATE.lock();
        if let Some(st) = g.as_mut() {
            st.step();
        }
    }
}

/// Sleeps up to 10 ms unless woken (snapshot, exit, a ring half full).
fn wait_for_work() {
    let v = WAKE_WORD.load(Ordering::SeqCst);
    SLEEPING.store(true, Ordering::SeqCst);
    let work = SLOTS.iter().any(|s| s.state.load(Ordering::SeqCst) != SLOT_EMPTY);
    if !work {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 10_000_000 };
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

/// Called from the exit handler (atexit): asks for the exit snapshot at this
/// moment and waits until it is written.
pub extern "C" fn at_exit() {
    if !crate::is_ready() {
        return;
    }
    if EXIT_STARTED.swap(true, Ordering::SeqCst) {
        // exit() on two threads at once (glibc 2.36 does not serialise
        // them): the second must not end the process before the first
        // thread's snapshot is written.
        let _g = sys::NoTrace::new();
        let mut watch = Watch::new();
        while !EXIT_DONE.load(Ordering::Acquire) && crate::is_ready() && !watch.stalled() {
            sys::sleep_ns(200_000);
        }
        return;
    }
    let _g = sys::NoTrace::new();
    if on_writer_thread() {
        exit_snapshot_inline();
        return;
    }
    // exit() called from a signal handler that interrupted one of our hooks
    // on this thread: that hook will never finish publishing; do not make
    // the writer wait for it.
    let r = ring::current();
    if !r.is_null() {
        // SAFETY: rings are never unmapped.
        unsafe { (*r).busy.store(0, Ordering::SeqCst) };
    }
    ensure_started();
    if !crate::is_ready() {
        return;
    }
    let mut spins = 0;
    while !mark(true) {
        sys::backoff(&mut spins);
    }
    let mut watch = Watch::new();
    while !EXIT_DONE.load(Ordering::Acquire) {
        sys::sleep_ns(200_000);
        if watch.stalled() {
            sys::log("the writer thread does not respond (process made without fork()?); no exit snapshot");
            break;
        }
    }
    crate::disable();
}

/// exit() running on the writer thread itself (it ended as the last thread
/// and glibc called exit(0) on it): nobody else will write the exit
/// snapshot, so do the writer's work here.
fn exit_snapshot_inline() {
    // Our own ring, if the program's exit handlers allocated on this thread.
    let r = ring::current();
    if !r.is_null() {
        // SAFETY: rings are never unmapped.
        unsafe { (*r).busy.store(0, Ordering::SeqCst) };
    }
    let mut spins = 0;
    while !mark(true) {
        // All slots taken by snapshot signals: run a step to free them.
        if let Some(st) = STATE.lock().as_mut() {
            st.step();
        }
        sys::backoff(&mut spins);
    }
    for _ in 0..1000 {
        if let Some(st) = STATE.lock().as_mut() {
            st.step();
        }
        if EXIT_DONE.load(Ordering::Acquire) {
            break;
        }
    }
    crate::disable();
}

/// A hook on the writer thread (only once it ended as the last thread and
/// runs the program's exit handlers) found its ring full: nobody else will
/// drain it. Moves the published events into the writer's memory.
pub fn drain_inline() {
    if let Some(st) = STATE.lock().as_mut() {
        st.drain_all();
    }
}

/// Fork child (single-threaded, locks reset): new writer, own numbering.
pub fn fork_child() {
    for s in SLOTS.iter() {
        s.state.store(SLOT_EMPTY, Ordering::Relaxed);
    }
    SLEEPING.store(false, Ordering::Relaxed);
    EXIT_DONE.store(false, Ordering::Relaxed);
    // The forking thread is this child's thread-group leader; it has not
    // exited (whatever the parent's main thread did).
    LEADER_GONE.store(false, Ordering::SeqCst);
    if let Some(st) = STATE.lock().as_mut() {
        st.pending.clear();
        st.next_index = 1;
        st.error_reported = false;
    }
    WRITER.store(0, Ordering::Release);
    ensure_started();
}

/// Queues a drained event; if there is no memory for it, drops it and sets
/// `oom` (the allocation failure would otherwise abort the program).
#[inline]
fn defer(d: &mut Vec<Event>, e: Event, oom: &mut bool) {
    if d.len() == d.capacity() && d.try_reserve(d.capacity().max(4096)).is_err() {
        *oom = true;
        return;
    }
    d.push(e);
}

impl State {
    fn step(&mut self) {
        if self.oom {
            return;
        }
        self.drain_all();
        // Everything drained so far precedes point W (seq.rs: an allocation
        // numbered below it, a free numbered up to it). Snapshot points
        // below W have claimed their slot already (claim before number), so
        // after collecting the slots, events before W are safe to apply
        // even if no snapshot is pending; events drained later wait for the
        // next step (a snapshot point may be taken between them).
        let w = seq::now();
        self.collect_pending();
        if self.tombstones > 65_536.max(self.table.len() / 2) && self.pending.is_empty() {
            // A point of its own (frees only read the counter: completing a
            // point needs one that moved it), taken after W; a signal point
            // between the two has claimed its slot: collect it too.
            let s = seq::point();
            self.collect_pending();
            self.pending.push(Pending { seq: s, time_ns: 0, kind: Kind::Sync });
            self.pending.sort_by_key(|p| p.seq);
        }
        while !self.pending.is_empty() {
            let p = self.pending.remove(0);
            let cut = seq::cut(p.seq);
            self.complete(cut);
            self.apply_below(cut);
            match p.kind {
                Kind::Signal => {
                    let n = self.next_index;
                    self.next_index += 1;
                    self.write_snapshot(SnapshotKind::Signal, n, p);
                }
                Kind::Exit => {
                    self.write_snapshot(SnapshotKind::Exit, 0, p);
                    EXIT_DONE.store(true, Ordering::Release);
                }
                Kind::Sync => {}
            }
            self.purge_tombstones(cut);
        }
        self.apply_below(seq::cut(w));
        self.recycle();
        if self.oom {
            self.out_of_memory();
        }
    }

    /// The writer ran out of memory (a program under a tight RLIMIT_AS, or
    /// truly out of memory): its state can no longer be exact. Tracing
    /// stops (the hooks pass through; a hook waiting for ring space gives
    /// up) rather than abort the program, and an exit handler waiting for
    /// the exit snapshot is released.
    #[cold]
    fn out_of_memory(&mut self) {
        sys::log("out of memory in the writer thread: events were lost; tracing stopped, no more snapshots");
        crate::disable();
        self.deferred = Vec::new();
        self.table = HashMap::default();
        self.pending.clear();
        EXIT_DONE.store(true, Ordering::Release);
    }

    fn drain_all(&mut self) {
        let (d, oom) = (&mut self.deferred, &mut self.oom);
        // SAFETY: we are the writer and hold the state lock.
        ring::for_each(|r| unsafe { r.drain(|e| defer(d, e, oom)) });
    }

    fn recycle(&mut self) {
        // SAFETY: as above.
        ring::for_each(|r| unsafe { r.try_recycle() });
    }

    fn collect_pending(&mut self) {
        for s in SLOTS.iter() {
            let mut st = s.state.load(Ordering::SeqCst);
            let mut spins = 0;
            // A handler between claiming and filling its slot: it finishes
            // in nanoseconds unless preempted, or interrupted by another
            // handler that never returns (exit() in a signal handler): give
            // up on it after a second rather than hang.
            let start = sys::now_ns(libc::CLOCK_MONOTONIC);
            while st == SLOT_WRITING && sys::now_ns(libc::CLOCK_MONOTONIC) - start < 1_000_000_000 {
                sys::backoff(&mut spins);
                st = s.state.load(Ordering::SeqCst);
            }
            if st == SLOT_READY {
                let seq = s.seq.load(Ordering::Relaxed);
                let time_ns = s.time_ns.load(Ordering::Relaxed);
                let kind = if s.exit.load(Ordering::Relaxed) { Kind::Exit } else { Kind::Signal };
                s.state.store(SLOT_EMPTY, Ordering::Release);
                self.pending.push(Pending { seq, time_ns, kind });
            }
        }
        self.pending.sort_by_key(|p| p.seq);
    }

    /// Drains until every event with a key below `s` is in `deferred`.
    fn complete(&mut self, s: u64) {
        seq::barrier();
        let start = sys::now_ns(libc::CLOCK_MONOTONIC);
        let mut spins = 0u32;
        loop {
            let mut done = true;
            let (d, oom) = (&mut self.deferred, &mut self.oom);
            ring::for_each(|r| {
                // SAFETY: c_max_seq is the writer's own field; we hold the lock.
                let seen = unsafe { &*r.c_max_seq.get() };
                if *seen >= s {
                    return;
                }
                let busy = r.busy.load(Ordering::SeqCst);
                // SAFETY: we are the writer.
                unsafe { r.drain(|e| defer(d, e, oom)) };
                let seen = unsafe { *r.c_max_seq.get() };
                if seen < s && busy != 0 {
                    done = false;
                }
            });
            if done {
                return;
            }
            beat();
            sys::backoff(&mut spins);
            if sys::now_ns(libc::CLOCK_MONOTONIC) - start > 5_000_000_000 {
                sys::log("a thread stayed inside an allocation call for 5 s; snapshot may miss its event");
                return;
            }
        }
    }

    /// Applies, in key order, the deferred events with keys below `s`.
    fn apply_below(&mut self, s: u64) {
        if self.deferred.is_empty() {
            return;
        }
        // Stable sort: `deferred` is a few runs already in seq order (one per
        // ring drained), which the stable sort merges in about linear time.
        self.deferred.sort_by_key(|e| e.seq);
        let k = self.deferred.partition_point(|e| e.seq < s);
        if self.table.try_reserve(k).is_err() {
            self.oom = true;
            return;
        }
        for i in 0..k {
            if i % 65_536 == 0 {
                beat();
            }
            let e = self.deferred[i];
            self.apply(e);
        }
        self.deferred.drain(..k);
    }

    /// The table keeps, per address, the entry of the highest-numbered event
    /// seen: a free leaves a tombstone, which must stay to override an older
    /// alloc of the address that may still arrive (alloc 1, free 2, alloc 3,
    /// free 4 drained as 1, 4, 3). So events may be applied in any order.
    fn apply(&mut self, e: Event) {
        use std::collections::hash_map::Entry as E;
        let new = if e.alloc {
            self.allocs += 1;
            Entry { seq: e.seq, size: e.size, stack: e.stack, live: true }
        } else {
            self.frees += 1;
            Entry { seq: e.seq, size: 0, stack: 0, live: false }
        };
        match self.table.entry(e.addr) {
            E::Occupied(mut o) => {
                let cur = *o.get();
                if cur.seq > e.seq {
                    return; // a later event of this address was applied already
                }
                o.insert(new);
                self.account(cur, false);
            }
            E::Vacant(v) => {
                v.insert(new);
            }
        }
        self.account(new, true);
    }

    /// Adds (or removes) an entry's share of the totals: a live block's
    /// bytes, or one tombstone.
    fn account(&mut self, en: Entry, add: bool) {
        match (en.live, add) {
            (true, true) => {
                self.traced += en.size;
                self.peak = self.peak.max(self.traced);
            }
            (true, false) => self.traced -= en.size,
            (false, true) => self.tombstones += 1,
            (false, false) => self.tombstones -= 1,
        }
    }

    /// After every event below `s` was applied, tombstones below `s` have
    /// done their job (no alloc they could cancel can still arrive).
    fn purge_tombstones(&mut self, s: u64) {
        if self.tombstones == 0 {
            return;
        }
        let mut removed = 0;
        self.table.retain(|_, e| {
            let keep = e.live || e.seq >= s;
            if !keep {
                removed += 1;
            }
            keep
        });
        self.tombstones -= removed;
    }

    fn write_snapshot(&mut self, kind: SnapshotKind, index: u64, p: Pending) {
        let mut groups: HashMap<(u32, u64), u64, BuildMix> = HashMap::default();
        for e in self.table.values() {
            if e.live {
                *groups.entry((e.stack, e.size)).or_insert(0) += 1;
            }
        }
        let mut traces: Vec<TraceGroup> =
            groups.into_iter().map(|((stack, size), count)| TraceGroup { stack: stack as u64, size, count }).collect();
        traces.sort_unstable_by_key(|t| (t.stack, t.size));
        let mut ids: Vec<u32> = traces.iter().map(|t| t.stack as u32).collect();
        ids.dedup();
        let stacks: Vec<Stack> = ids
            .iter()
            .map(|&id| match intern::get(id) {
                Some((frames, truncated)) => Stack { id: id as u64, frames: frames.to_vec(), truncated },
                None => Stack { id: id as u64, frames: Vec::new(), truncated: true },
            })
            .collect();
        let pid = std::process::id();
        let cmdline: Vec<Vec<u8>> = std::fs::read("/proc/self/cmdline")
            .map(|b| {
                let b = b.strip_suffix(b"\0").unwrap_or(&b).to_vec();
                b.split(|&c| c == 0).map(|a| a.to_vec()).collect()
            })
            .unwrap_or_default();
        let time_ns = if p.time_ns != 0 { p.time_ns } else { sys::now_ns(libc::CLOCK_REALTIME) };
        let snap = Snapshot {
            header: Header {
                kind,
                index,
                pid,
                time_ns,
                seq: p.seq,
                frame_limit: config::frames() as u32,
                traced_bytes: self.traced,
                peak_bytes: self.peak,
                alloc_count: self.allocs,
                free_count: self.frees,
                sample_rate: config::sample_rate(),
                cmdline,
                exe: modules::exe(),
                malloc_owner: modules::malloc_owner(),
            },
            modules: modules::for_snapshot(&stacks),
            stacks,
            traces,
        };
        beat();
        let bytes = memtrace_format::encode(&snap);
        beat();
        let mut path = config::expand(&config::out_prefix(), pid);
        match kind {
            SnapshotKind::Signal => path.extend_from_slice(format!(".{index}.snap").as_bytes()),
            SnapshotKind::Exit => path.extend_from_slice(b".exit.snap"),
        }
        match write_file(&path, &bytes, pid) {
            Ok(()) => sys::verbose(&format!(
                "wrote {} ({} live blocks, {} bytes)",
                String::from_utf8_lossy(&path),
                self.table.len() - self.tombstones,
                self.traced
            )),
            Err(why) => {
                if !self.error_reported {
                    self.error_reported = true;
                    sys::log(&format!("cannot write {}: {why}", String::from_utf8_lossy(&path)));
                }
            }
        }
    }
}

fn os_err() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Writes under a temporary name created with O_EXCL|O_NOFOLLOW (never
/// clobbers, never follows a symlink, mode 0640), then renames to the final
/// name only if that does not exist.
fn write_file(path: &[u8], bytes: &[u8], pid: u32) -> Result<(), String> {
    let mut tmp = path.to_vec();
    tmp.extend_from_slice(format!(".tmp.{pid}").as_bytes());
    let cpath = CString::new(path.to_vec()).map_err(|_| "file name contains a NUL byte".to_string())?;
    let ctmp = CString::new(tmp).map_err(|_| "file name contains a NUL byte".to_string())?;
    // SAFETY: plain syscalls on valid NUL-terminated paths and buffers.
    unsafe {
        let fd = libc::open(
            ctmp.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o640 as libc::c_uint,
        );
        if fd < 0 {
            return Err(os_err());
        }
        let mut off = 0;
        while off < bytes.len() {
            let n = libc::write(fd, bytes[off..].as_ptr().cast(), bytes.len() - off);
            if n < 0 {
                if sys::errno() == libc::EINTR {
                    continue;
                }
                let e = os_err();
                libc::close(fd);
                libc::unlink(ctmp.as_ptr());
                return Err(e);
            }
            off += n as usize;
        }
        if libc::close(fd) != 0 {
            let e = os_err();
            libc::unlink(ctmp.as_ptr());
            return Err(e);
        }
        let r = libc::renameat2(libc::AT_FDCWD, ctmp.as_ptr(), libc::AT_FDCWD, cpath.as_ptr(), libc::RENAME_NOREPLACE);
        if r == 0 {
            return Ok(());
        }
        let e = sys::errno();
        if e == libc::EINVAL || e == libc::ENOSYS {
            // File system without RENAME_NOREPLACE: link() fails if the name exists.
            let r = libc::link(ctmp.as_ptr(), cpath.as_ptr());
            let err = os_err();
            libc::unlink(ctmp.as_ptr());
            return if r == 0 { Ok(()) } else { Err(err) };
        }
        let err = os_err();
        libc::unlink(ctmp.as_ptr());
        Err(err)
    }
}
