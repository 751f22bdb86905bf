//! libtrace.so — the LD_PRELOAD half of memtrace.
//!
//! `LD_PRELOAD=libtrace.so ./app` records every allocation with its stack;
//! the snapshot signal (default SIGUSR2) writes `<prefix>.<n>.snap`, exit
//! writes `<prefix>.exit.snap`. See the module docs for how:
//! - `hooks`: the exported malloc family;
//! - `unwind`: stack capture; `intern`: stack ids;
//! - `ring`: per-thread event rings to the writer;
//! - `writer`: the writer thread (`writer/`: its loop, requests, lifecycle,
//!   live table, snapshot files);
//! - `seq`: the global event order (keys of events and snapshot points);
//! - `sample`: MEMTRACE_SAMPLE (Poisson sampling, the set of sampled blocks);
//! - `modules`: the module map; `signal`, `fork`, `config`;
//! - `sys`: plumbing below everything else; `guard`: the re-entrancy flag
//!   and errno; `tls`: the hot per-thread block.
//! - `process_end`: the exit snapshot on `_exit` and `exec`; `fatal`: says
//!   so when a fatal signal ends the process (MEMTRACE_VERBOSE=1);
//! - `beacon`: how `memtrace snapshot PID` finds the signal and prefix;
//! - `attach`: loaded into a running process by `memtrace attach`.

mod attach;
mod beacon;
mod config;
mod fatal;
mod fork;
mod guard;
mod history_config;
mod hooks;
mod intern;
mod leaks;
mod modules;
mod process_end;
mod ring;
mod sample;
mod seq;
mod signal;
mod sys;
mod tls;
mod track;
mod unwind;
mod whole_run;
mod writer;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU8, Ordering};

const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;
const DISABLED: u8 = 3;
/// Read by every hook: on a line of its own.
static STATE: sys::Line<AtomicU8> = sys::Line(AtomicU8::new(INITIAL_STATE));
/// `cargo test` links this crate's unit tests into an executable that
/// exports the hooks and runs the constructor: traced, it would start a
/// writer and leave a snapshot file in the crate's directory. The unit
/// tests test plain code, so there every hook passes straight through.
const INITIAL_STATE: u8 = if cfg!(test) { DISABLED } else { UNINIT };

/// Our own heap: straight to glibc, never through the hooks, so the
/// profiler's memory is never recorded and can never recurse.
struct LibcAlloc;

// SAFETY: forwards to glibc's allocator, which satisfies the GlobalAlloc
// contract; alignments above malloc's 16 go through memalign.
unsafe impl GlobalAlloc for LibcAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: glibc's allocator takes any size; memalign any power-of-two
        // alignment (Layout guarantees one).
        unsafe {
            if l.align() <= 16 {
                hooks::__libc_malloc(l.size()).cast()
            } else {
                hooks::__libc_memalign(l.align(), l.size()).cast()
            }
        }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.align() <= 16 {
            // SAFETY: as in `alloc`.
            unsafe { hooks::__libc_calloc(1, l.size()).cast() }
        } else {
            // SAFETY: the caller's layout has a non-zero size (GlobalAlloc's
            // contract), as `alloc` requires.
            let p = unsafe { self.alloc(l) };
            if !p.is_null() {
                // SAFETY: `p` was just allocated with `l.size()` bytes.
                unsafe { std::ptr::write_bytes(p, 0, l.size()) };
            }
            p
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: `p` came from this allocator, i.e. from glibc's malloc family.
        unsafe { hooks::__libc_free(p.cast()) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if l.align() <= 16 {
            // SAFETY: `p` came from glibc's malloc family (this allocator).
            unsafe { hooks::__libc_realloc(p.cast(), new_size).cast() }
        } else {
            // SAFETY: GlobalAlloc::realloc's contract: `l.align()` is a valid
            // alignment and `new_size`, rounded up to it, does not overflow.
            let n = unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, l.align())) };
            if !n.is_null() {
                // SAFETY: `p` holds `l.size()` bytes, `n` at least
                // `new_size`; distinct blocks; `p` came from this allocator
                // with layout `l`.
                unsafe {
                    std::ptr::copy_nonoverlapping(p, n, l.size().min(new_size));
                    self.dealloc(p, l);
                }
            }
            n
        }
    }
}

#[global_allocator]
static GLOBAL: LibcAlloc = LibcAlloc;

/// True once initialised (and not disabled). Initialises on first use:
/// allocations arrive before any constructor runs.
#[inline(always)]
pub(crate) fn ensure_ready() -> bool {
    match STATE.load(Ordering::Acquire) {
        READY => true,
        UNINIT => {
            init();
            STATE.load(Ordering::Acquire) == READY
        }
        _ => false,
    }
}

#[inline]
pub(crate) fn is_ready() -> bool {
    STATE.load(Ordering::Acquire) == READY
}

/// Logs `msg` (sys::log) if MEMTRACE_VERBOSE is set.
pub(crate) fn verbose(msg: &str) {
    if config::verbose() {
        sys::log(msg);
    }
}

/// From now on every hook passes straight through.
pub(crate) fn disable() {
    STATE.store(DISABLED, Ordering::Release);
}

/// A copy loaded by dlopen stays out of the way until `memtrace_attach`:
/// true if it was not initialised yet (and now passes everything through).
pub(crate) fn stay_disabled() -> bool {
    STATE
        .compare_exchange(UNINIT, DISABLED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// `memtrace_attach`: initialises a dormant copy; true if it is ready.
pub(crate) fn wake_from_dormant() -> bool {
    let _ = STATE.compare_exchange(DISABLED, UNINIT, Ordering::AcqRel, Ordering::Acquire);
    ensure_ready()
}

/// The part of initialisation that is safe from inside the very first
/// malloc (possibly during the dynamic loader's start-up): no threads, no
/// loader locks. Other threads calling in meanwhile pass through unrecorded.
#[cold]
fn init() {
    if STATE
        .compare_exchange(UNINIT, INITIALIZING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let _g = guard::NoTrace::new();
    let e = guard::errno();
    config::load();
    leaks::load_config();
    unwind::init();
    seq::init();
    writer::init();
    let ok = intern::init() && ring::init();
    if ok {
        STATE.store(READY, Ordering::Release);
    } else {
        STATE.store(DISABLED, Ordering::Release);
        sys::log("cannot initialise (out of memory?); tracing disabled");
    }
    guard::set_errno(e);
}

/// Runs when libtrace.so is initialised by the loader, before the program's
/// own constructors: makes sure we are initialised even if nothing allocated
/// yet, and does what must not happen inside the first malloc (signal
/// handler, atexit, atfork, the writer thread).
extern "C" fn constructor() {
    if attach::loaded_by_dlopen() {
        attach::stay_dormant();
        return;
    }
    let _g = guard::NoTrace::new();
    if !ensure_ready() {
        return;
    }
    start();
}

/// What follows initialisation: at start from the constructor, or when
/// `memtrace attach` wakes a dormant copy (`attach::memtrace_attach`). Runs
/// under the re-entrancy guard.
fn start() {
    unwind::load_libunwind();
    modules::init();
    // Attached: the CLI checked the malloc owner before loading us, and
    // LD_PRELOAD does not name us.
    if !attach::attached() {
        modules::check_malloc_owner();
        if !config::follow_exec() {
            fork::drop_self_from_ld_preload();
        }
    }
    signal::install();
    process_end::init();
    beacon::publish();
    fatal::install();
    // SAFETY: registering a plain extern "C" fn. Registered this early, it
    // runs after the program's own atexit handlers and static destructors.
    unsafe { libc::atexit(writer::at_exit) };
    fork::install();
    writer::find_thread_count();
    // The main thread gets its ring now: its thread-exit destructor then
    // runs if it calls pthread_exit, which tells the writer to watch for
    // being the last thread.
    ring::ensure_own();
    writer::ensure_started();
    verbose(&format!(
        "tracing pid {} into {}.*.snap, {} frames",
        std::process::id(),
        String::from_utf8_lossy(&config::expand(&config::out_prefix(), std::process::id())),
        config::frames()
    ));
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;
