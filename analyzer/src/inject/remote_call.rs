//! Calling a function in another process on a stopped thread: the SysV
//! ABI by hand. Arguments go in rdi, rsi, rdx; the stack pointer goes
//! below the thread's red zone (128 bytes), 16-byte aligned at the call,
//! with a return address of 0, so the function's return faults at rip 0:
//! that SIGSEGV stop is where we read rax. orig_rax = -1 tells the kernel
//! the thread is not in a system call while it runs our call (no restart
//! of the interrupted one under it); the saved registers put it back.

use super::ptrace::{Regs, Stop, Tracee};
use std::time::{Duration, Instant};

/// Below the interrupted frame's red zone: where our strings and the
/// call's stack go.
pub struct Scratch {
    top: u64,
}

const RED_ZONE: u64 = 128;

impl Scratch {
    pub fn below(regs: &Regs) -> Scratch {
        Scratch {
            top: (regs.rsp - RED_ZONE) & !15,
        }
    }

    /// Copies `bytes` (a C string with its NUL, say) into the target;
    /// returns their address there.
    pub fn put(&mut self, pid: i32, bytes: &[u8]) -> Result<u64, String> {
        self.top = (self.top - bytes.len() as u64) & !15;
        write_memory(pid, self.top, bytes)?;
        Ok(self.top)
    }
}

/// process_vm_writev: the kernel checks the range (never a fault here).
fn write_memory(pid: i32, at: u64, bytes: &[u8]) -> Result<(), String> {
    let local = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: at as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: `local` describes `bytes`, which the kernel only reads.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if n != bytes.len() as isize {
        return Err(format!(
            "cannot write into process {pid}'s stack: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The C string at `at` in process `pid` (at most 1 KiB), lossily.
pub fn read_c_string(pid: i32, at: u64) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while out.len() < 1024 {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: (at + out.len() as u64) as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` describes `buf`; the kernel checks the range.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n <= 0 {
            break;
        }
        let got = &buf[..n as usize];
        match got.iter().position(|&c| c == 0) {
            Some(i) => {
                out.extend_from_slice(&got[..i]);
                break;
            }
            None => out.extend_from_slice(got),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Calls `func(args...)` on the stopped thread `t`, whose interrupted state
/// is `base` (the call's stack goes below `scratch`), and returns rax. A
/// signal that arrives meanwhile is delivered (the program's handler runs
/// on top of our call, as on top of any function); a fault anywhere but at
/// the return to 0 is an error.
pub fn call(
    t: &mut Tracee,
    pid: i32,
    base: &Regs,
    scratch: &Scratch,
    func: u64,
    args: &[u64],
    timeout: Duration,
) -> Result<u64, String> {
    let mut r = *base;
    let sp = (scratch.top & !15) - 8;
    write_memory(pid, sp, &0u64.to_le_bytes())?;
    r.rsp = sp;
    r.rip = func;
    r.rax = 0;
    r.orig_rax = u64::MAX;
    let regs = [
        &mut r.rdi, &mut r.rsi, &mut r.rdx, &mut r.rcx, &mut r.r8, &mut r.r9,
    ];
    for (reg, &a) in regs.into_iter().zip(args) {
        *reg = a;
    }
    t.set_regs(&r)?;
    t.resume(0)?;
    let deadline = Instant::now() + timeout;
    loop {
        match t.wait(deadline)? {
            Stop::Signal(libc::SIGSEGV) => {
                let now = t.regs()?;
                if now.rip == 0 {
                    return Ok(now.rax);
                }
                return Err(format!("the call at {func:#x} faulted at {:#x}", now.rip));
            }
            Stop::Signal(s @ (libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP)) => {
                return Err(format!("the call at {func:#x} got signal {s}"))
            }
            Stop::Signal(s) => t.resume(s)?,
            Stop::Event | Stop::Syscall => t.resume(0)?,
            Stop::Gone => return Err("the process ended".into()),
        }
    }
}
