//! Which thread runs our calls. dlopen and libtrace.so's start take
//! glibc's locks (the loader's, malloc's): a thread stopped while holding
//! one would deadlock on it. A thread blocked in a system call holds none
//! of them, unless that call is one malloc makes with its arena locked
//! (mmap, munmap, brk, mprotect, madvise, mremap): those are passed over,
//! and so is a thread whose call was made by the loader itself (inside a
//! dlopen, holding the loader's lock: ours would enter it again).

use super::ptrace::Tracee;
use std::time::{Duration, Instant};

/// The system calls malloc may be in with a lock held.
const MALLOC_SYSCALLS: [i64; 6] = [
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_brk,
    libc::SYS_mremap,
    libc::SYS_madvise,
];

/// The system call thread `tid` is blocked in (/proc/PID/task/TID/syscall:
/// its number first; "running" or -1 otherwise).
fn blocked_in(pid: i32, tid: i32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let nr: i64 = s.split_whitespace().next()?.parse().ok()?;
    (nr >= 0).then_some(nr)
}

fn good_syscall(nr: i64) -> bool {
    !MALLOC_SYSCALLS.contains(&nr)
}

/// Stack our calls may use below the thread's: dlopen, libtrace.so's start
/// and the GOT walk need some tens of KiB.
const STACK_NEEDED: u64 = 256 << 10;

/// The mappings of /proc/PID/maps: (start, end, the rest of the line).
fn mappings(pid: i32) -> Vec<(u64, u64, String)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines()
        .filter_map(|l| {
            let (range, rest) = l.split_once(' ')?;
            let (lo, hi) = range.split_once('-')?;
            let lo = u64::from_str_radix(lo, 16).ok()?;
            let hi = u64::from_str_radix(hi, 16).ok()?;
            Some((lo, hi, rest.to_string()))
        })
        .collect()
}

/// Is `pc` in ld.so's code (a system call of the loader's own)?
fn in_loader(pid: i32, pc: u64) -> bool {
    mappings(pid).iter().any(|(lo, hi, rest)| {
        let name = rest.rsplit('/').next().unwrap_or_default();
        pc >= *lo && pc < *hi && name.starts_with("ld-linux")
    })
}

/// Is there room for our calls below `sp`? Yes on the main thread's
/// `[stack]` (it grows on demand) and in a mapping with that much below
/// `sp`; no on a small signal stack (sigaltstack) or an unknown one.
fn stack_room(pid: i32, sp: u64) -> bool {
    mappings(pid).iter().any(|(lo, hi, rest)| {
        let main_stack = rest.ends_with("[stack]");
        sp > *lo && sp <= *hi && (main_stack || sp - lo >= STACK_NEEDED)
    })
}

/// The process's threads, the main thread first.
fn threads(pid: i32) -> Vec<i32> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_by_key(|&t| (t != pid, t));
    tids
}

/// A thread of `pid` seized and stopped inside a harmless system call,
/// trying for up to `timeout` (threads come and go out of their calls).
pub fn stop_a_waiting_thread(pid: i32, timeout: Duration) -> Result<Tracee, String> {
    let deadline = Instant::now() + timeout;
    let mut refused = None;
    loop {
        for tid in threads(pid) {
            if !blocked_in(pid, tid).is_some_and(good_syscall) {
                continue;
            }
            let mut t = match Tracee::seize(tid) {
                Ok(t) => t,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            };
            t.interrupt(Duration::from_secs(5))?;
            // Still in that call when it stopped? (orig_rax is the call's
            // number inside one, negative in user code.)
            let r = t.regs()?;
            let in_call = (r.orig_rax as i64) >= 0 && good_syscall(r.orig_rax as i64);
            if in_call && stack_room(pid, r.rsp) && !in_loader(pid, r.rip) {
                return Ok(t);
            }
            drop(t); // detaches
        }
        if let Some(e) = refused {
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) => format!(
                    "cannot attach to process {pid}: not permitted (another user's process, a tracer already attached, or kernel.yama.ptrace_scope)"
                ),
                _ => format!("cannot attach to process {pid}: {e}"),
            });
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no thread of process {pid} is waiting in a system call with stack to spare (all busy computing?): try again"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
