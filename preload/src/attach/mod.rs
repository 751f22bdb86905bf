//! `memtrace attach PID`: libtrace.so loaded into a process that was started
//! without it. The CLI's injector (analyzer/src/inject/) makes the process
//! `dlopen` us with RTLD_LOCAL and then call `memtrace_attach(settings)`.
//!
//! Loaded so, the constructor must do nothing: nothing calls our hooks yet
//! (our exports are not in the global scope), and tracing must not start
//! before the settings are known. It tells the two cases apart by whether
//! our own `memtrace_attach` is in the global scope: it is when we were
//! preloaded, it is not in a library dlopen()ed with RTLD_LOCAL.
//!
//! `memtrace_attach` then initialises as the constructor would have and
//! redirects the program's calls of the malloc family to our hooks by
//! rewriting the modules' GOT entries (`got.rs`), and those of libraries
//! dlopen()ed later (`load_wrapper.rs`). Blocks allocated before then are
//! unknown to the live table: their frees change nothing there
//! (writer/live.rs), a realloc of one is a new allocation.

mod got;
mod load_wrapper;

use crate::sys::now_ns;
use libc::c_char;
use memtrace_format::tracing_start::{StartedBy, TracingStart};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Set by the constructor of a dlopen()ed copy: waiting for `memtrace_attach`.
static DORMANT: AtomicBool = AtomicBool::new(false);
/// CLOCK_REALTIME when `memtrace_attach` started tracing; 0: not attached.
static BEGAN_NS: AtomicU64 = AtomicU64::new(0);
/// CLOCK_REALTIME of the process's start (0: unknown).
static PROCESS_START_NS: AtomicU64 = AtomicU64::new(0);

/// `memtrace_attach`'s results the CLI reports (negative: not attached).
const NOT_DORMANT: i64 = -1;
const CANNOT_INIT: i64 = -2;

/// True when we were loaded by `dlopen` (RTLD_LOCAL), not by LD_PRELOAD:
/// our `memtrace_attach` is then not in the program's global scope.
pub fn loaded_by_dlopen() -> bool {
    global_symbol(c"memtrace_attach") == 0
}

/// `name` as the program's own lookups find it: in the global scope only.
/// (RTLD_DEFAULT from a library loaded RTLD_LOCAL would search that
/// library's own scope too, and find ours.)
pub fn global_symbol(name: &std::ffi::CStr) -> usize {
    // SAFETY: dlopen(NULL) returns the main program's handle (its search
    // list is the global scope); dlsym with a valid C string. In a
    // constructor run by dlopen the loader's lock is ours already (it is
    // recursive).
    unsafe {
        let main = libc::dlopen(std::ptr::null(), libc::RTLD_LAZY);
        if main.is_null() {
            return 0;
        }
        libc::dlsym(main, name.as_ptr()) as usize
    }
}

/// The constructor of a dlopen()ed copy: every hook passes through until
/// `memtrace_attach`.
pub fn stay_dormant() {
    if crate::stay_disabled() {
        DORMANT.store(true, Ordering::Release);
    }
}

/// Was this process attached to (rather than traced from its start)?
pub fn attached() -> bool {
    BEGAN_NS.load(Ordering::Relaxed) != 0
}

/// What snapshots say about the start of tracing: None when traced from
/// the process's start.
pub fn tracing_start() -> Option<TracingStart> {
    let began_ns = BEGAN_NS.load(Ordering::Relaxed);
    (began_ns != 0).then(|| TracingStart {
        by: StartedBy::Attach,
        began_ns,
        process_start_ns: PROCESS_START_NS.load(Ordering::Relaxed),
    })
}

/// Starts tracing in a process that was running without us: `settings` are
/// `MEMTRACE_NAME=value` lines (the environment the process never had).
/// Returns how many GOT entries now lead to our hooks, or a negative code:
/// -1 not a dormant copy (preloaded, or attached already), -2 cannot
/// initialise.
///
/// # Safety
/// `settings` is a NUL-terminated string. Called once, by `memtrace attach`
/// through ptrace, on a thread that holds no lock of glibc's.
#[no_mangle]
pub unsafe extern "C" fn memtrace_attach(settings: *const c_char) -> i64 {
    if settings.is_null() || !DORMANT.swap(false, Ordering::AcqRel) {
        return NOT_DORMANT;
    }
    // SAFETY: the caller passes a C string.
    let text = unsafe { std::ffi::CStr::from_ptr(settings) }.to_bytes();
    crate::config::use_attach_settings(text);
    let _g = crate::guard::NoTrace::new();
    if !crate::wake_from_dormant() {
        return CANNOT_INIT;
    }
    PROCESS_START_NS.store(process_start_ns(), Ordering::Relaxed);
    BEGAN_NS.store(now_ns(libc::CLOCK_REALTIME).max(1), Ordering::Relaxed);
    crate::start();
    got::prepare();
    got::redirect_all() as i64
}

/// CLOCK_REALTIME of this process's start: /proc/self/stat's start time
/// (clock ticks since boot) plus the moment of boot. 0 if unreadable.
fn process_start_ns() -> u64 {
    let Ok(stat) = std::fs::read("/proc/self/stat") else {
        return 0;
    };
    // Fields after the command name (which may hold spaces), from field 3.
    let Some(close) = stat.iter().rposition(|&c| c == b')') else {
        return 0;
    };
    let fields: Vec<&[u8]> = stat[close + 1..]
        .split(|&c| c == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let Some(ticks) = fields
        .get(22 - 3)
        .and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok())
    else {
        return 0;
    };
    // SAFETY: a plain getter.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let boot_ns = now_ns(libc::CLOCK_REALTIME).saturating_sub(now_ns(libc::CLOCK_BOOTTIME));
    boot_ns + ticks * (1_000_000_000 / hz)
}
