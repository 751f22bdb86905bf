//! The program's threads as the leak check's roots need them: where each
//! thread's live stack begins (its stack pointer, known only while it is
//! blocked), and the scanning thread's own stack (not a root).
//!
//! Nothing is stopped (docs/LEAK-CHECK.md): a thread blocked in a system
//! call has its user stack pointer in `/proc/self/task/TID/syscall`; one
//! that is running says "running" and its stack pointer is unknown. The
//! rule that follows (`roots` in mod.rs): memory below a stack pointer is
//! left out only when every other thread's stack pointer is known, since a
//! stack whose pointer is unknown may share a mapping with it (stacks
//! without guard pages merge), and leaving out reachable memory would
//! report its blocks lost.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};

/// A thread between two system calls (the exiting thread waits for the
/// writer in 200 µs sleeps) is asked again, this often, this far apart:
/// at most 5 ms for a thread that really runs.
const RETRIES: u32 = 20;
const RETRY_NS: u64 = 250_000;

/// The thread waiting in our exit handler for the exit snapshot: its tid
/// and an address of its stack below the program's frames. Between two of
/// its 200 µs sleeps /proc says it is "running", on a loaded machine for
/// longer than the retries (seen: > 5 ms at load 15); it runs only our code
/// until the snapshot is written, so this is where its live stack begins.
static EXITING_TID: AtomicU64 = AtomicU64::new(0);
static EXITING_SP: AtomicU64 = AtomicU64::new(0);

/// Called by the exit handler on the exiting thread before it asks for the
/// exit snapshot.
#[inline(never)]
pub fn note_exiting_thread() {
    let here = 0u64;
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u64;
    EXITING_SP.store(
        std::hint::black_box(&here) as *const u64 as u64,
        Ordering::Relaxed,
    );
    EXITING_TID.store(tid, Ordering::Release);
}

/// The stack pointers of the other threads.
pub struct Threads {
    /// Of the threads blocked in a system call (or stopped outside one).
    pub sps: Vec<u64>,
    /// Threads whose stack pointer is unknown (running, or unreadable).
    pub unknown: usize,
}

impl Threads {
    /// The lowest known stack pointer in `[start, end)`: with several
    /// stacks in one mapping, every one of them lies above it.
    pub fn lowest_sp_in(&self, start: u64, end: u64) -> Option<u64> {
        self.sps
            .iter()
            .copied()
            .filter(|&sp| sp >= start && sp < end)
            .min()
    }
}

/// What `/proc/self/task/TID/syscall` says of a thread.
enum Seen {
    Sp(u64),
    Running,
    /// It ended since the directory was listed.
    Gone,
}

fn look(tid: &std::ffi::OsStr) -> Seen {
    let mut p = std::path::PathBuf::from("/proc/self/task");
    p.push(tid);
    p.push("syscall");
    match std::fs::read_to_string(&p) {
        Ok(t) => parse_syscall(&t).map_or(Seen::Running, Seen::Sp),
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            Seen::Gone
        }
        // Unreadable (a security module): unknown, as if running.
        Err(_) => Seen::Running,
    }
}

/// The stack pointer in a `syscall` file: "NR ARG×6 SP PC" in a system
/// call, "-1 SP PC" stopped outside one, "running" otherwise.
fn parse_syscall(text: &str) -> Option<u64> {
    let w: Vec<&str> = text.split_whitespace().collect();
    if w.len() < 3 {
        return None;
    }
    u64::from_str_radix(w[w.len() - 2].trim_start_matches("0x"), 16).ok()
}

/// Every thread but the calling one (the scanner: its stack is not a root).
pub fn threads() -> Threads {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::syscall(libc::SYS_gettid) }.to_string();
    let mut out = Threads {
        sps: Vec::new(),
        unknown: 0,
    };
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    let mut running = Vec::new();
    for e in dir.flatten() {
        let tid = e.file_name();
        if tid == me.as_str() {
            continue;
        }
        match look(&tid) {
            Seen::Sp(sp) => out.sps.push(sp),
            Seen::Running => running.push(tid),
            Seen::Gone => {}
        }
    }
    let exiting = EXITING_TID.load(Ordering::Acquire).to_string();
    running.retain(|tid| {
        let noted = *tid == *exiting.as_str();
        if noted {
            out.sps.push(EXITING_SP.load(Ordering::Relaxed));
        }
        !noted
    });
    for _ in 0..RETRIES {
        if running.is_empty() {
            break;
        }
        crate::sys::sleep_ns(RETRY_NS);
        running.retain(|tid| match look(tid) {
            Seen::Sp(sp) => {
                out.sps.push(sp);
                false
            }
            Seen::Running => true,
            Seen::Gone => false,
        });
    }
    out.unknown = running.len();
    out
}

/// The calling thread's stack block `[low, high)` (its TCB and static TLS
/// at the top), from glibc: only that, not the whole mapping holding it,
/// is left out of the roots (the kernel may merge it with the program's
/// memory next to it).
pub fn own_stack() -> Option<(u64, u64)> {
    // SAFETY: pthread_attr_t is plain data, filled by pthread_getattr_np
    // before it is read, and destroyed once.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (r == 0 && !addr.is_null()).then(|| (addr as u64, addr as u64 + size as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_file_lines() {
        let blocked = "0 0x3 0x7f1 0x1 0x0 0x0 0x0 0x7ffd5e80 0x7f00ff12\n";
        assert_eq!(parse_syscall(blocked), Some(0x7ffd5e80));
        assert_eq!(
            parse_syscall("-1 0x7ffd5e80 0x7f00ff12\n"),
            Some(0x7ffd5e80)
        );
        assert_eq!(parse_syscall("running\n"), None);
    }

    #[test]
    fn lowest_sp_of_a_mapping() {
        let t = Threads {
            sps: vec![0x5000, 0x3000, 0x9000, 0x2000],
            unknown: 0,
        };
        assert_eq!(t.lowest_sp_in(0x2800, 0x8000), Some(0x3000));
        assert_eq!(t.lowest_sp_in(0xa000, 0xb000), None);
    }

    #[test]
    fn own_stack_holds_a_local() {
        let x = 0u64;
        let here = &x as *const u64 as u64;
        let (lo, hi) = own_stack().unwrap();
        assert!(lo <= here && here < hi, "{lo:#x} {here:#x} {hi:#x}");
    }
}
