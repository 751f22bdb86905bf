//! fork and exec.
//!
//! fork: the prepare handler has each module take the locks under which it
//! changes state (the writer, the module registry, the program's signal
//! action), so the child inherits them consistent. The
//! child keeps the live set it inherited, hands the rings of the threads
//! that did not survive the fork to the writer (their published events
//! happened before the fork), restarts its snapshot numbering at 1 with its
//! own pid in the file names, and starts its own writer thread.
//!
//! exec: unless MEMTRACE_FOLLOW_EXEC=1, libtrace.so is removed from our own
//! LD_PRELOAD at start, so programs we exec are not traced.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    static PREV_IN_HOOK: Cell<bool> = const { Cell::new(false) };
}
static LOCKED: AtomicBool = AtomicBool::new(false);

pub fn install() {
    // SAFETY: registering plain extern "C" fns.
    let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if r != 0 {
        crate::sys::log(
            "cannot register fork handlers; forked children may not be traced correctly",
        );
    }
}

extern "C" fn prepare() {
    // Allocations made by fork itself and by other prepare handlers running
    // after ours are not recorded: recording could wait for the writer,
    // which waits for the lock we now hold.
    PREV_IN_HOOK.with(|p| p.set(crate::tls::hot().in_hook.replace(true)));
    if !crate::is_ready() {
        return;
    }
    // Each module takes its own locks; the parent releases them in reverse
    // order, the child resets them (their holders did not survive).
    crate::writer::fork_prepare();
    crate::modules::fork_prepare();
    crate::signal::fork_prepare();
    LOCKED.store(true, Ordering::Relaxed);
}

extern "C" fn parent() {
    if LOCKED.swap(false, Ordering::Relaxed) {
        crate::signal::fork_parent();
        crate::modules::fork_parent();
        crate::writer::fork_parent();
    }
    crate::tls::hot()
        .in_hook
        .set(PREV_IN_HOOK.with(|p| p.get()));
}

extern "C" fn child() {
    if LOCKED.swap(false, Ordering::Relaxed) {
        crate::signal::fork_child();
        crate::modules::fork_child();
        crate::sample::fork_child();
        crate::seq::init();
        crate::ring::fork_child();
        // This thread is the child's leader now: make sure it has a ring,
        // so that its exit is noticed (see writer's lifecycle.rs).
        crate::ring::ensure_own();
        crate::config::fork_child_prefix(std::process::id());
        crate::process_end::fork_child();
        crate::beacon::publish();
        // Last: it starts the child's writer thread.
        crate::writer::fork_child();
    }
    crate::tls::hot()
        .in_hook
        .set(PREV_IN_HOOK.with(|p| p.get()));
}

extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Removes our own entry from LD_PRELOAD, in place (the new value is never
/// longer than the old one), without touching the other entries.
pub fn drop_self_from_ld_preload() {
    let me = crate::modules::self_path();
    let base: &[u8] = me.rsplit(|&c| c == b'/').next().unwrap_or(&me);
    if base.is_empty() {
        return;
    }
    // SAFETY: environ is a NULL-terminated array of NUL-terminated strings;
    // we only shorten one string in place. Done from the constructor, before
    // the program runs and before any other thread exists.
    unsafe {
        let mut e = environ;
        if e.is_null() {
            return;
        }
        while !(*e).is_null() {
            let s = *e as *mut u8;
            let len = libc::strlen(s as *const libc::c_char);
            let bytes = std::slice::from_raw_parts_mut(s, len);
            if let Some(val) = bytes.strip_prefix(b"LD_PRELOAD=") {
                let mut kept: Vec<u8> = Vec::with_capacity(val.len());
                for tok in val
                    .split(|&c| c == b':' || c == b' ' || c == b'\t')
                    .filter(|t| !t.is_empty())
                {
                    let tb = tok.rsplit(|&c| c == b'/').next().unwrap_or(tok);
                    if tok == &me[..] || tb == base {
                        continue;
                    }
                    if !kept.is_empty() {
                        kept.push(b':');
                    }
                    kept.extend_from_slice(tok);
                }
                let start = b"LD_PRELOAD=".len();
                bytes[start..start + kept.len()].copy_from_slice(&kept);
                *s.add(start + kept.len()) = 0;
            }
            e = e.add(1);
        }
    }
}
