//! The writer's life around the program's: the last thread, exit, fork.
//!
//! The last thread. When the main thread calls pthread_exit() (or, in a
//! child forked from another thread, that thread returns), glibc ends the
//! process when its thread count (`__nptl_nthreads`) drops to 0. Our writer
//! is counted too, so without help it would keep the process alive for ever
//! as a zombie main thread plus a writer that blocks every signal. The
//! writer therefore watches for being the only thread left; then it returns
//! from its start routine, and glibc runs exit(0) on it: the program's exit
//! handlers, then our `at_exit`, which writes the exit snapshot on this very
//! thread (it must not wait for a writer that is itself).
//!
//! Exit: `at_exit` (registered with atexit by the constructor) asks for the
//! exit snapshot and waits until it is written. Fork: the prepare handler
//! takes the writer's lock so that the child inherits its state
//! consistent; the child starts a writer of its own.

use super::requests::{self, Watch};
use super::{ensure_started, STATE};
use crate::guard::NoTrace;
use crate::{ring, sys};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

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

/// Set once some thread called exit(): no more signal snapshots, and the
/// writer no longer ends the process as the last thread.
static EXIT_STARTED: AtomicBool = AtomicBool::new(false);
/// The exit snapshot is written (or will never be: the writer ran out of
/// memory).
static EXIT_DONE: AtomicBool = AtomicBool::new(false);

/// Set by the fork prepare handler while it waits for `STATE`.
static FORK_WAITING: AtomicBool = AtomicBool::new(false);

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
        let e = crate::guard::errno();
        requests::wake();
        crate::guard::set_errno(e);
    }
}

/// Marks the calling thread as the writer, for its whole life.
pub(super) fn mark_writer_thread() {
    IS_WRITER.with(|w| w.set(true));
}

pub fn on_writer_thread() -> bool {
    IS_WRITER.with(|w| w.get())
}

pub(super) fn exit_started() -> bool {
    EXIT_STARTED.load(Ordering::SeqCst)
}

/// The exit snapshot is written, or never will be: whoever waits for it in
/// `at_exit` may go on.
pub(super) fn exit_done() {
    EXIT_DONE.store(true, Ordering::Release);
}

/// The writer's watch for being the only thread left.
pub(super) struct LastThread {
    /// THREAD_EXITS and the clock at the last /proc scan.
    last_scan: (u64, u64),
}

impl LastThread {
    pub(super) fn new() -> Self {
        LastThread { last_scan: (0, 0) }
    }

    /// True when the writer is the only thread left that glibc counts (or,
    /// without the counter, the only thread in /proc/self/task that is not
    /// a zombie).
    pub(super) fn alone(&mut self) -> bool {
        let p = NTHREADS.load(Ordering::Acquire);
        if p != 0 {
            // SAFETY: glibc's counter, a u32 updated with atomic
            // instructions (checked aligned in find_thread_count); we only
            // read it.
            let n = unsafe { (*(p as *const AtomicU32)).load(Ordering::SeqCst) };
            return n == 1;
        }
        if !LEADER_GONE.load(Ordering::SeqCst) {
            return false;
        }
        // Rate-limited: on a thread exit, else every 100 ms.
        let exits = THREAD_EXITS.load(Ordering::SeqCst);
        let now = sys::now_ns(libc::CLOCK_MONOTONIC);
        if exits == self.last_scan.0 && now.saturating_sub(self.last_scan.1) < 100_000_000 {
            return false;
        }
        self.last_scan = (exits, now);
        // Twice: a thread seen dead in the first scan may have created another.
        only_thread_in_proc() && only_thread_in_proc()
    }
}

/// No other thread in /proc/self/task is alive (state other than Z or X).
fn only_thread_in_proc() -> bool {
    // SAFETY: plain syscall.
    let me = unsafe { libc::syscall(libc::SYS_gettid) } as u64;
    let Ok(rd) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        if tid == me {
            continue;
        }
        let Ok(stat) = std::fs::read(format!("/proc/self/task/{tid}/stat")) else {
            continue;
        };
        let state = stat
            .iter()
            .rposition(|&c| c == b')')
            .and_then(|i| stat.get(i + 2))
            .copied();
        match state {
            Some(b'Z') | Some(b'X') | Some(b'x') => {}
            _ => return false,
        }
    }
    true
}

/// Every other thread is gone (and nobody called exit): the writer becomes
/// an ordinary thread, whose return from its start routine makes glibc's
/// last-thread logic call exit(0) on it.
pub(super) fn become_last_thread() {
    // Signals are no longer blocked: with no other thread left, blocking
    // them would make the process deaf to SIGTERM/SIGINT (only SIGKILL
    // could end it). While program threads exist we block everything, so
    // that a program that blocks a signal in all its threads and sigwait()s
    // for it never sees it delivered (and its default action run) on our
    // thread.
    // SAFETY: an empty set is a valid mask; sigemptyset fills the zeroed
    // set in place.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
    crate::verbose("every program thread has ended; the writer ends the process (exit 0)");
    // The program's exit handlers running here are traced again.
    crate::tls::hot().in_hook.set(false);
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
        let _g = NoTrace::new();
        let mut watch = Watch::new();
        while !EXIT_DONE.load(Ordering::Acquire) && crate::is_ready() && !watch.stalled() {
            sys::sleep_ns(200_000);
        }
        return;
    }
    let _g = NoTrace::new();
    if on_writer_thread() {
        exit_snapshot_inline();
        return;
    }
    // exit() called from a signal handler that interrupted one of our hooks
    // on this thread: that hook will never finish publishing; do not make
    // the writer wait for it.
    release_own_ring();
    ensure_started();
    if !crate::is_ready() {
        return;
    }
    crate::leaks::note_exiting_thread();
    let mut spins = 0;
    while !requests::mark(true) {
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

/// This thread's ring, if it has one, no longer holds back a snapshot: the
/// thread is inside exit() and will not finish publishing whatever it was
/// publishing.
fn release_own_ring() {
    let r = ring::current();
    if !r.is_null() {
        // SAFETY: rings are never unmapped.
        unsafe { (*r).busy.store(0, Ordering::SeqCst) };
    }
}

/// exit() running on the writer thread itself (it ended as the last thread
/// and glibc called exit(0) on it): nobody else will write the exit
/// snapshot, so do the writer's work here.
fn exit_snapshot_inline() {
    // Our own ring, if the program's exit handlers allocated on this thread.
    release_own_ring();
    let mut spins = 0;
    while !requests::mark(true) {
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
pub(super) fn drain_inline() {
    if let Some(st) = STATE.lock().as_mut() {
        st.drain_all();
    }
}

/// Fork prepare: takes the writer's lock, so that the child inherits its
/// state between two steps.
pub fn fork_prepare() {
    FORK_WAITING.store(true, Ordering::Relaxed);
    STATE.lock.lock();
    FORK_WAITING.store(false, Ordering::Relaxed);
}

/// The writer loop's courtesy to `fork_prepare`: the spin lock is not fair,
/// so the writer steps aside until the forking thread got it.
pub(super) fn let_fork_take_the_lock() {
    let mut spins = 0;
    while FORK_WAITING.load(Ordering::Relaxed) {
        sys::backoff(&mut spins);
    }
}

pub fn fork_parent() {
    STATE.lock.unlock();
}

/// Fork child (single-threaded): the lock taken in `fork_prepare` is
/// ours to reset; new writer, own numbering.
pub fn fork_child() {
    STATE.lock.reset();
    requests::fork_child();
    EXIT_DONE.store(false, Ordering::Relaxed);
    // The forking thread is this child's thread-group leader; it has not
    // exited (whatever the parent's main thread did).
    LEADER_GONE.store(false, Ordering::SeqCst);
    if let Some(st) = STATE.lock().as_mut() {
        st.fork_child();
    }
    super::restart_in_fork_child();
}
