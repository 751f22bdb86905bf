//! Which thread runs our calls. dlopen and libtrace.so's start take
//! glibc's locks (the loader's, malloc's): a thread stopped while holding
//! one would deadlock on it. A thread blocked in a system call holds none
//! of them, unless that call is one malloc makes with its arena locked
//! (mmap, munmap, brk, mprotect, madvise, mremap): those are passed over,
//! and so is a thread whose call was made by the loader itself (inside a
//! dlopen, holding the loader's lock: ours would enter it again). When no
//! thread waits, a thread stopped as it enters a harmless system call is as
//! good: it is about to make a call that would not hold those locks either.

use super::ptrace::{Stop, Tracee};
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

/// How long to look for a thread blocked in a system call before catching
/// one as it enters a system call.
const BLOCKED_PHASE: Duration = Duration::from_millis(300);

/// A thread of `pid` seized and stopped inside a harmless system call, or
/// failing that (every thread busy computing) at the entry of one, trying
/// for up to `timeout`.
pub fn stop_a_waiting_thread(pid: i32, timeout: Duration) -> Result<Tracee, String> {
    let start = Instant::now();
    while start.elapsed() < BLOCKED_PHASE {
        if let Some(t) = try_blocked(pid)? {
            return Ok(t);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let tids = threads(pid);
    let each = timeout / tids.len().max(1) as u32;
    for tid in tids {
        if let Some(t) = catch_entering(pid, tid, Instant::now() + each)? {
            return Ok(t);
        }
    }
    Err(format!(
        "no thread of process {pid} waited in or entered a system call with stack to spare (all busy computing?): try again"
    ))
}

/// PTRACE_SEIZE; None if the thread is gone.
fn seize(pid: i32, tid: i32) -> Result<Option<Tracee>, String> {
    match Tracee::seize(tid) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(format!(
            "cannot attach to process {pid}: not permitted (another user's process, a tracer already attached, or kernel.yama.ptrace_scope)"
        )),
        Err(e) => Err(format!("cannot attach to process {pid}: {e}")),
    }
}

/// Is a thread stopped with registers `r` fit to run our calls?
fn fit(pid: i32, r: &libc::user_regs_struct) -> bool {
    let nr = r.orig_rax as i64;
    nr >= 0 && good_syscall(nr) && stack_room(pid, r.rsp) && !in_loader(pid, r.rip)
}

/// A thread blocked in a harmless system call, stopped there.
fn try_blocked(pid: i32) -> Result<Option<Tracee>, String> {
    for tid in threads(pid) {
        if !blocked_in(pid, tid).is_some_and(good_syscall) {
            continue;
        }
        let Some(mut t) = seize(pid, tid)? else {
            continue;
        };
        t.interrupt(Duration::from_secs(5))?;
        // Still in that call when it stopped? (orig_rax is the call's
        // number inside one, negative in user code.)
        if fit(pid, &t.regs()?) {
            return Ok(Some(t));
        }
        drop(t); // detaches
    }
    Ok(None)
}

/// Thread `tid` stopped as it enters a harmless system call (PTRACE_SYSCALL
/// stops), before `until`: then it holds no lock a blocked one would not.
fn catch_entering(pid: i32, tid: i32, until: Instant) -> Result<Option<Tracee>, String> {
    let Some(mut t) = seize(pid, tid)? else {
        return Ok(None);
    };
    t.interrupt(Duration::from_secs(5))?;
    let mut sig = 0;
    loop {
        t.step_to_syscall(sig)?;
        sig = 0;
        let stop = match t.wait(until) {
            Ok(s) => s,
            Err(_) => return Ok(None), // no system call in time: dropped, detached
        };
        match stop {
            Stop::Syscall => {
                let r = t.regs()?;
                // At an entry rax holds -ENOSYS; at an exit, the result.
                let entry = r.rax as i64 == -(libc::ENOSYS as i64);
                if entry && fit(pid, &r) {
                    t.at_syscall_entry = true;
                    return Ok(Some(t));
                }
            }
            Stop::Signal(s) => sig = s,
            Stop::Event => {}
            Stop::Gone => return Ok(None),
        }
    }
}
