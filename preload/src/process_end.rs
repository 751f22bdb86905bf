//! The ends of a process that `atexit` does not see: `_exit`/`_Exit` (every
//! Python Pool worker, rust-lld) and a successful `exec*` (`timeout CMD`,
//! shells). Each writes the exit snapshot first, as `exit()` does.
//!
//! With MEMTRACE_FOLLOW_EXEC=1 an exec does not end the tracing of the
//! process: the new image goes on under the same pid and writes the one
//! exit snapshot (`<prefix>.exit.snap`) when the process really ends.
//!
//! Not here: a vfork child (posix_spawn's, or the program's own vfork())
//! shares its parent's memory and must not touch our state, so it passes
//! straight through; so does a fork child that execs without having
//! allocated since the fork (make, shells and subprocess spawning run
//! thousands: their snapshot would only repeat the parent's heap).
//! A fatal signal ends the process with no code of ours running.

use crate::guard::NoTrace;
use libc::{c_char, c_int};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The pid this copy of our state belongs to: set at start and in a fork
/// child. A different getpid() means a vfork child.
static OWNER_PID: AtomicU32 = AtomicU32::new(0);
/// `seq::now()` when this process was forked; `NOT_FORKED` in the original.
static SEQ_AT_FORK: AtomicU64 = AtomicU64::new(NOT_FORKED);
const NOT_FORKED: u64 = u64::MAX;

/// At start, from the constructor: resolves the real exec functions (a
/// vfork child must not call dlsym) and remembers our pid.
pub fn init() {
    OWNER_PID.store(std::process::id(), Ordering::Relaxed);
    for which in 0..EXECS.len() {
        real_exec(which);
    }
}

/// In a fork child (single-threaded).
pub fn fork_child() {
    OWNER_PID.store(std::process::id(), Ordering::Relaxed);
    SEQ_AT_FORK.store(crate::seq::now(), Ordering::Relaxed);
}

/// True in a child made by vfork (or clone(CLONE_VM)) from a traced process.
fn in_vfork_child() -> bool {
    std::process::id() != OWNER_PID.load(Ordering::Relaxed)
}

/// Writes the exit snapshot of this process, now, unless it is a vfork child.
fn exit_snapshot() {
    if crate::is_ready() && !in_vfork_child() {
        crate::writer::at_exit();
    }
}

/// `_exit`: what glibc's does (exit_group, then exit if that returned),
/// after the exit snapshot. No dlsym: a vfork child comes here too.
#[no_mangle]
pub extern "C" fn _exit(status: c_int) -> ! {
    exit_snapshot();
    // SAFETY: plain syscalls that end the process (or the thread).
    unsafe {
        libc::syscall(libc::SYS_exit_group, status);
        loop {
            libc::syscall(libc::SYS_exit, status);
        }
    }
}

/// `_Exit` is the same function as `_exit`.
#[no_mangle]
pub extern "C" fn _Exit(status: c_int) -> ! {
    _exit(status)
}

/// How an exec function names what it runs (its first argument).
#[derive(Clone, Copy)]
enum Target {
    /// A path, used as it is (execve, execv, execl, execle).
    Path,
    /// A file name searched in PATH unless it holds a slash (execvp, execlp,
    /// execvpe).
    Search,
    /// A file descriptor (fexecve).
    Fd,
}

/// The exec family, by index (the stubs below pass their index).
const EXECS: [(&std::ffi::CStr, Target); 7] = [
    (c"execve", Target::Path),
    (c"execv", Target::Path),
    (c"execl", Target::Path),
    (c"execle", Target::Path),
    (c"execvp", Target::Search),
    (c"execlp", Target::Search),
    (c"execvpe", Target::Search),
];
const FEXECVE: usize = EXECS.len();
static REAL: [AtomicUsize; EXECS.len() + 1] = [const { AtomicUsize::new(0) }; EXECS.len() + 1];

/// glibc's function `which` (dlsym(RTLD_NEXT), cached).
fn real_exec(which: usize) -> usize {
    let cached = REAL[which].load(Ordering::Acquire);
    if cached != 0 {
        return cached;
    }
    let name = if which == FEXECVE {
        c"fexecve"
    } else {
        EXECS[which].0
    };
    let _g = NoTrace::new();
    // SAFETY: dlsym with a valid C string.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    REAL[which].store(f, Ordering::Release);
    f
}

/// Called by every exec stub with the function's first argument: writes the
/// exit snapshot when the exec is about to replace this process's image,
/// and returns glibc's function for the stub to jump to.
///
/// "About to": the file is there and executable (searched in PATH as the
/// function will). An exec that fails all the same after the snapshot
/// (ENOEXEC, E2BIG, …) leaves the process running untraced from then on.
extern "C" fn before_exec(first_arg: usize, which: usize) -> usize {
    let real = real_exec(which);
    let errno = crate::guard::errno();
    let target = if which == FEXECVE {
        Target::Fd
    } else {
        EXECS[which].1
    };
    if !crate::config::follow_exec()
        && !in_vfork_child()
        && allocated_since_fork()
        && will_exec(first_arg, target)
    {
        exit_snapshot();
    }
    crate::guard::set_errno(errno);
    real
}

/// False in a fork child that has allocated nothing since the fork.
fn allocated_since_fork() -> bool {
    let at_fork = SEQ_AT_FORK.load(Ordering::Relaxed);
    at_fork == NOT_FORKED || crate::seq::now() != at_fork
}

fn will_exec(first_arg: usize, target: Target) -> bool {
    match target {
        Target::Fd => true,
        Target::Path => is_executable(first_arg as *const c_char),
        Target::Search => {
            // SAFETY: the program passed a C string as exec's first argument.
            let file = unsafe { std::ffi::CStr::from_ptr(first_arg as *const c_char) }.to_bytes();
            search_path(file)
        }
    }
}

fn is_executable(path: *const c_char) -> bool {
    // SAFETY: `path` is the program's NUL-terminated argument (or we built it).
    !path.is_null() && unsafe { libc::access(path, libc::X_OK) } == 0
}

/// execvp's search: the name as it is if it holds a slash, else each PATH
/// entry in turn (glibc's default path when PATH is unset).
fn search_path(file: &[u8]) -> bool {
    if file.is_empty() {
        return false;
    }
    let as_c = |v: Vec<u8>| std::ffi::CString::new(v).ok();
    if file.contains(&b'/') {
        return as_c(file.to_vec()).is_some_and(|c| is_executable(c.as_ptr()));
    }
    let path = std::env::var_os("PATH").map(std::os::unix::ffi::OsStringExt::into_vec);
    let path = path.unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
    path.split(|&c| c == b':').any(|dir| {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(file);
        as_c(full).is_some_and(|c| is_executable(c.as_ptr()))
    })
}

/// Exports `$name` as a stub that calls `before_exec(first argument, $which)`
/// with every argument register saved, then jumps to glibc's function with
/// the registers and stack exactly as the program left them: the `execl`
/// family is variadic, which Rust cannot define, and its arguments past the
/// sixth are on the stack above the return address.
macro_rules! exec_stub {
    ($name:ident, $which:expr) => {
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            // SAFETY: pushes the six argument registers and rax (the vector
            // register count of a variadic call): seven pushes after the
            // return address leave rsp 16-byte aligned for the call; pops
            // them back and jumps with r11 (a scratch register no argument
            // uses), so glibc's function starts as if called directly.
            std::arch::naked_asm!(
                ".cfi_startproc",
                "push rdi", ".cfi_adjust_cfa_offset 8",
                "push rsi", ".cfi_adjust_cfa_offset 8",
                "push rdx", ".cfi_adjust_cfa_offset 8",
                "push rcx", ".cfi_adjust_cfa_offset 8",
                "push r8", ".cfi_adjust_cfa_offset 8",
                "push r9", ".cfi_adjust_cfa_offset 8",
                "push rax", ".cfi_adjust_cfa_offset 8",
                "mov esi, {which}",
                "call {before}",
                "mov r11, rax",
                "pop rax", ".cfi_adjust_cfa_offset -8",
                "pop r9", ".cfi_adjust_cfa_offset -8",
                "pop r8", ".cfi_adjust_cfa_offset -8",
                "pop rcx", ".cfi_adjust_cfa_offset -8",
                "pop rdx", ".cfi_adjust_cfa_offset -8",
                "pop rsi", ".cfi_adjust_cfa_offset -8",
                "pop rdi", ".cfi_adjust_cfa_offset -8",
                "jmp r11",
                ".cfi_endproc",
                which = const $which,
                before = sym before_exec,
            )
        }
    };
}

exec_stub!(execve, 0);
exec_stub!(execv, 1);
exec_stub!(execl, 2);
exec_stub!(execle, 3);
exec_stub!(execvp, 4);
exec_stub!(execlp, 5);
exec_stub!(execvpe, 6);
exec_stub!(fexecve, FEXECVE);
