//! MEMTRACE_VERBOSE=1 only: say on stderr when a fatal signal ends the
//! process, since it then leaves no exit snapshot (nothing of ours runs
//! when the kernel kills a process, so otherwise the absence is silent).
//!
//! For each signal below whose action is the default at start, a handler
//! that writes one line and dies of the signal as it would have: the
//! handler resets the action (SA_RESETHAND) and raises the signal again at
//! once (SA_NODEFER), so the status, the core dump and the parent's view are
//! unchanged. A handler the program installs later replaces ours. Off by
//! default: a program that reads back the old action would see ours.

use libc::c_int;

/// The signals whose default action ends the process, that a program may
/// plausibly die of (SIGKILL cannot be caught).
const FATAL: [c_int; 11] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
    libc::SIGALRM,
];

/// From the constructor, after the snapshot signal's handler is in place.
pub fn install() {
    if !crate::config::verbose() {
        return;
    }
    for sig in FATAL {
        if sig == crate::config::signal() {
            continue;
        }
        // SAFETY: sigaction with zeroed (valid) structures we fill; only a
        // signal whose current action is SIG_DFL gets ours.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = report_and_die as *const () as usize;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Async-signal-safe: formats into a stack buffer, one write(2).
extern "C" fn report_and_die(sig: c_int) {
    let mut line = [0u8; 160];
    let mut len = 0;
    let mut put = |b: &[u8]| {
        let n = b.len().min(line.len() - len);
        line[len..len + n].copy_from_slice(&b[..n]);
        len += n;
    };
    put(b"memtrace: pid ");
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    put_decimal(&mut put, unsafe { libc::getpid() } as u64);
    put(b" ends by ");
    match memtrace_format::signals::name(sig) {
        Some(name) => put(name.as_bytes()),
        None => {
            put(b"signal ");
            put_decimal(&mut put, sig as u64);
        }
    }
    put(b": no exit snapshot (the snapshots already written are intact)\n");
    // SAFETY: write(2) and raise(3) are async-signal-safe; the action is
    // back to the default (SA_RESETHAND) and the signal is not blocked
    // (SA_NODEFER), so raise ends the process as the first delivery would
    // have. A synchronous fault that returned would fault again anyway.
    unsafe {
        libc::write(2, line.as_ptr().cast(), len);
        libc::raise(sig);
    }
}

fn put_decimal(put: &mut impl FnMut(&[u8]), mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[i..]);
}
