//! The snapshot signal. The handler only marks the moment (a sequence
//! number and the clock, both async-signal-safe) in a lock-free queue and
//! wakes the writer. When the program has a handler of its own for the
//! signal, only memtrace's own requests (`sigqueue` with `REQUEST_VALUE`)
//! make snapshots, and every other delivery goes to the program's handler
//! alone (see `handler`).
//!
//! `signal` and `sigaction` are hooked for our signal only: when the program
//! installs its own handler we keep ours in place and remember theirs, so the
//! program's handler still gets its deliveries and snapshots keep working.
//! A program's SIG_IGN or SIG_DFL means: every delivery makes a snapshot
//! (never die of SIGUSR2 while traced).

use crate::sys::Locked;
use libc::{c_int, c_void, sighandler_t, siginfo_t};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

extern "C" {
    /// glibc's real sigaction under its exported internal name (our own
    /// `sigaction` export would otherwise call itself).
    fn __sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
    /// The same function as glibc's `signal` (BSD semantics).
    fn bsd_signal(sig: c_int, h: sighandler_t) -> sighandler_t;
}

static SIGNO: AtomicI32 = AtomicI32::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The program's handler and flags, read by our handler.
static PROG_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PROG_FLAGS: AtomicI32 = AtomicI32::new(0);
/// The program's full action (for returning it as `oldact`).
static PROG: Locked<Option<libc::sigaction>> = Locked::new(None);

pub fn install() {
    let sig = crate::config::signal();
    if sig == 0 {
        return;
    }
    // SAFETY: zeroed sigaction is a valid "empty" value; we fill the fields.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        let mut g = PROG.lock();
        if __sigaction(sig, &sa, &mut old) != 0 {
            crate::sys::log(&format!(
                "cannot install the handler for signal {sig}; no snapshots on signal"
            ));
            return;
        }
        PROG_FLAGS.store(old.sa_flags, Ordering::Relaxed);
        PROG_HANDLER.store(old.sa_sigaction, Ordering::Release);
        *g = Some(old);
        SIGNO.store(sig, Ordering::Relaxed);
        INSTALLED.store(true, Ordering::Release);
    }
}

/// Fork prepare: the child inherits the program's action consistent.
pub fn fork_prepare() {
    PROG.lock.lock();
}

pub fn fork_parent() {
    PROG.lock.unlock();
}

/// Fork child: the lock taken in `fork_prepare` is ours to reset.
pub fn fork_child() {
    PROG.lock.reset();
}

/// The `sival_ptr` that marks a snapshot request sent by memtrace itself
/// (`memtrace snapshot PID` sends it with `sigqueue`).
const REQUEST_VALUE: usize = memtrace_format::signals::SNAPSHOT_REQUEST_VALUE as usize;

/// Does this delivery carry memtrace's own request value?
///
/// # Safety
/// `info` is the siginfo the kernel passed to an SA_SIGINFO handler.
unsafe fn is_memtrace_request(info: *const siginfo_t) -> bool {
    // SAFETY: the kernel passes a valid siginfo; si_value is meaningful for
    // SI_QUEUE, the only code we accept.
    unsafe {
        !info.is_null()
            && (*info).si_code == libc::SI_QUEUE
            && (*info).si_value().sival_ptr as usize == REQUEST_VALUE
    }
}

/// Who a delivery of the snapshot signal is for. Programs that have a
/// handler of their own for it (PostgreSQL uses SIGUSR2 between its
/// processes) must keep getting every delivery that is not memtrace's, and
/// none of memtrace's (its checkpointer shuts down on SIGUSR2): only a
/// request carrying memtrace's value makes a snapshot then. A program
/// without a handler (default or ignored) gets a snapshot from any
/// delivery, so `kill -USR2 PID` works, and is never killed by it.
extern "C" fn handler(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    let h = PROG_HANDLER.load(Ordering::Acquire);
    let flags = PROG_FLAGS.load(Ordering::Relaxed);
    let program_handles_it = !(h == libc::SIG_DFL || h == libc::SIG_IGN || h == libc::SIG_ERR);
    // SAFETY: `info` comes from the kernel (SA_SIGINFO).
    let from_memtrace = unsafe { is_memtrace_request(info) };
    if from_memtrace || !program_handles_it {
        let e = crate::guard::errno();
        crate::writer::snapshot_requested_from_signal();
        crate::guard::set_errno(e);
        return;
    }
    if flags & libc::SA_RESETHAND != 0 {
        PROG_HANDLER.store(libc::SIG_DFL, Ordering::Release);
    }
    // SAFETY: the program installed `h` for this signal with these flags;
    // we call it the way the kernel would have.
    unsafe {
        if flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) = std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(c_int) = std::mem::transmute(h);
            f(sig);
        }
    }
}

fn ours(sig: c_int) -> bool {
    INSTALLED.load(Ordering::Acquire) && sig == SIGNO.load(Ordering::Relaxed) && crate::is_ready()
}

/// Exported in place of glibc's `sigaction`: for our signal it keeps our
/// handler installed and records (or returns) the program's action instead.
///
/// # Safety
/// sigaction(2)'s contract: `act` and `old` are each NULL or valid for
/// reading (`act`) and writing (`old`) a `struct sigaction`.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: our contract, passed on.
    unsafe { sigaction_for(sig, act, old) }
}

/// `sigaction`'s work, called by `signal` too: not through the export,
/// which in a library loaded by `memtrace attach` (RTLD_LOCAL) would bind
/// to glibc's.
///
/// # Safety
/// As `sigaction`.
unsafe fn sigaction_for(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    if !ours(sig) {
        // SAFETY: the caller's arguments, as glibc's sigaction takes them.
        return unsafe { __sigaction(sig, act, old) };
    }
    let mut g = PROG.lock();
    if !old.is_null() {
        let prev = match *g {
            Some(a) => a,
            // SAFETY: all-zero is a valid sigaction (SIG_DFL, no flags).
            None => unsafe { std::mem::zeroed() },
        };
        // SAFETY: `old` is non-NULL, hence valid for writing (our contract).
        unsafe { *old = prev };
    }
    if !act.is_null() {
        // SAFETY: `act` is non-NULL, hence valid for reading (our contract).
        let a = unsafe { *act };
        *g = Some(a);
        PROG_FLAGS.store(a.sa_flags, Ordering::Relaxed);
        PROG_HANDLER.store(a.sa_sigaction, Ordering::Release);
    }
    0
}

/// Exported in place of glibc's `signal`: for our signal it goes through our
/// `sigaction` (BSD semantics, as glibc's).
///
/// # Safety
/// signal(2)'s contract: `h` is SIG_DFL, SIG_IGN or a function fit to be a
/// handler of `sig`.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, h: sighandler_t) -> sighandler_t {
    if !ours(sig) {
        // SAFETY: the caller's arguments, as glibc's signal takes them.
        return unsafe { bsd_signal(sig, h) };
    }
    if h == libc::SIG_ERR {
        crate::guard::set_errno(libc::EINVAL);
        return libc::SIG_ERR;
    }
    // What glibc's signal() would install: BSD semantics.
    // SAFETY: zeroed sigactions are valid values (SIG_DFL, empty mask), filled
    // in place; both pointers given to sigaction are to these locals.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = h;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaddset(&mut sa.sa_mask, sig);
        let mut old: libc::sigaction = std::mem::zeroed();
        sigaction_for(sig, &sa, &mut old);
        old.sa_sigaction
    }
}
