//! One thread of another process under ptrace: seized, stopped, its
//! registers and extended (FPU/vector) state saved, run, restored, released.
//!
//! Written by hand on the `libc` crate: gdb's inferior calls fail on
//! machines with AMX (Debian 12's gdb 13 cannot write the 11 KB xstate:
//! "Couldn't write extended state status"), and no crate makes calls in
//! another process.
//!
//! PTRACE_SEIZE + PTRACE_INTERRUPT stop this one thread only (PTRACE_ATTACH's
//! SIGSTOP would stop the whole process); the others run on.

use std::time::{Duration, Instant};

pub type Regs = libc::user_regs_struct;

/// NT_X86_XSTATE: the whole XSAVE area (AVX-512, AMX tiles included).
const NT_X86_XSTATE: libc::c_int = 0x202;
/// Larger than any XSAVE area (11 KB with AMX).
const XSTATE_MAX: usize = 64 << 10;
const PTRACE_EVENT_STOP: i32 = 128;

/// Why the thread stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// A ptrace event stop: our interrupt, or a group stop.
    Event,
    /// About to be delivered signal N.
    Signal(i32),
    /// At the entry or exit of a system call (after `step_to_syscall`).
    Syscall,
    /// The thread or process is gone.
    Gone,
}

/// A seized thread. Dropping it restores what `save` saved (if the thread
/// is stopped) and detaches, so that every way out leaves it as it was.
pub struct Tracee {
    pub tid: i32,
    /// Stopped at the entry of a system call (PTRACE_SYSCALL), not inside one.
    pub at_syscall_entry: bool,
    stopped: bool,
    saved: Option<(Regs, Vec<u8>)>,
}

fn os_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

impl Tracee {
    /// PTRACE_SEIZE: the thread runs on until interrupted. (TRACESYSGOOD:
    /// system-call stops tell themselves from a SIGTRAP.)
    pub fn seize(tid: i32) -> Result<Tracee, std::io::Error> {
        // SAFETY: a plain system call; no memory is passed.
        let opts = libc::PTRACE_O_TRACESYSGOOD as usize;
        let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0usize, opts) };
        if r != 0 {
            return Err(os_err());
        }
        Ok(Tracee {
            tid,
            at_syscall_entry: false,
            stopped: false,
            saved: None,
        })
    }

    /// Stops the thread (PTRACE_INTERRUPT). A signal that reaches it first
    /// is delivered (the program's handler runs) and we ask again.
    pub fn interrupt(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        for _ in 0..16 {
            // SAFETY: a plain system call on our tracee.
            if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, self.tid, 0usize, 0usize) } != 0 {
                return Err(format!("cannot stop thread {}: {}", self.tid, os_err()));
            }
            match self.wait(deadline)? {
                Stop::Event | Stop::Syscall => return Ok(()),
                Stop::Signal(s) => self.resume(s)?,
                Stop::Gone => return Err(format!("thread {} ended", self.tid)),
            }
        }
        Err(format!("thread {} keeps receiving signals", self.tid))
    }

    /// Waits for the next stop, until `deadline`.
    pub fn wait(&mut self, deadline: Instant) -> Result<Stop, String> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out pointer.
            let r = unsafe { libc::waitpid(self.tid, &mut status, libc::__WALL | libc::WNOHANG) };
            if r == self.tid {
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    self.stopped = false;
                    return Ok(Stop::Gone);
                }
                if libc::WIFSTOPPED(status) {
                    self.stopped = true;
                    let sig = libc::WSTOPSIG(status);
                    return Ok(if status >> 16 == PTRACE_EVENT_STOP {
                        Stop::Event
                    } else if sig == libc::SIGTRAP | 0x80 {
                        Stop::Syscall
                    } else {
                        Stop::Signal(sig)
                    });
                }
            } else if r < 0 {
                let e = os_err();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Ok(Stop::Gone);
            }
            if Instant::now() > deadline {
                return Err(format!("thread {} did not stop in time", self.tid));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// PTRACE_CONT, delivering `sig` (0: none).
    pub fn resume(&mut self, sig: i32) -> Result<(), String> {
        // SAFETY: a plain system call on our stopped tracee.
        if unsafe { libc::ptrace(libc::PTRACE_CONT, self.tid, 0usize, sig as usize) } != 0 {
            return Err(format!("cannot resume thread {}: {}", self.tid, os_err()));
        }
        self.stopped = false;
        Ok(())
    }

    /// PTRACE_SYSCALL: runs to the next system call entry or exit,
    /// delivering `sig` (0: none).
    pub fn step_to_syscall(&mut self, sig: i32) -> Result<(), String> {
        // SAFETY: a plain system call on our stopped tracee.
        if unsafe { libc::ptrace(libc::PTRACE_SYSCALL, self.tid, 0usize, sig as usize) } != 0 {
            return Err(format!("cannot resume thread {}: {}", self.tid, os_err()));
        }
        self.stopped = false;
        Ok(())
    }

    pub fn regs(&self) -> Result<Regs, String> {
        // SAFETY: all-zero is a valid user_regs_struct; GETREGS fills it.
        let mut r: Regs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out pointer of the kernel's struct.
        let ok = unsafe { libc::ptrace(libc::PTRACE_GETREGS, self.tid, 0usize, &mut r) } == 0;
        ok.then_some(r)
            .ok_or_else(|| format!("cannot read thread {}'s registers: {}", self.tid, os_err()))
    }

    pub fn set_regs(&self, r: &Regs) -> Result<(), String> {
        // SAFETY: a valid pointer to the kernel's struct.
        let ok = unsafe { libc::ptrace(libc::PTRACE_SETREGS, self.tid, 0usize, r) } == 0;
        ok.then_some(())
            .ok_or_else(|| format!("cannot set thread {}'s registers: {}", self.tid, os_err()))
    }

    fn xstate(&self) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; XSTATE_MAX];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: the iovec describes `buf`; the kernel shortens iov_len.
        let r = unsafe { libc::ptrace(libc::PTRACE_GETREGSET, self.tid, NT_X86_XSTATE, &mut iov) };
        if r != 0 {
            return Err(format!(
                "cannot read thread {}'s FPU state: {}",
                self.tid,
                os_err()
            ));
        }
        buf.truncate(iov.iov_len);
        Ok(buf)
    }

    fn set_xstate(&self, x: &[u8]) -> bool {
        let mut iov = libc::iovec {
            iov_base: x.as_ptr() as *mut libc::c_void,
            iov_len: x.len(),
        };
        // SAFETY: the iovec describes `x`, which the kernel only reads.
        unsafe { libc::ptrace(libc::PTRACE_SETREGSET, self.tid, NT_X86_XSTATE, &mut iov) == 0 }
    }

    /// Saves the stopped thread's registers and extended state, restored
    /// when the tracee is dropped; returns the registers.
    pub fn save(&mut self) -> Result<Regs, String> {
        let r = self.regs()?;
        let x = self.xstate()?;
        let mut put_back = r;
        if self.at_syscall_entry {
            // Stopped at a system call's entry, which our call replaces:
            // put the thread back on its `syscall` instruction (2 bytes)
            // with the call's number, so that it makes the call afterwards.
            put_back.rip -= 2;
            put_back.rax = r.orig_rax;
        }
        self.saved = Some((put_back, x));
        Ok(r)
    }

    /// Puts back what `save` saved: the interrupted system call (orig_rax
    /// and rax as they were) then restarts as if nothing had happened.
    fn restore(&mut self) -> bool {
        match self.saved.take() {
            Some((r, x)) => self.set_xstate(&x) & self.set_regs(&r).is_ok(),
            None => true,
        }
    }
}

impl Drop for Tracee {
    fn drop(&mut self) {
        if !self.stopped {
            // Still running (our call timed out, or no system call came):
            // stop it to put it back and detach.
            let _ = self.interrupt(Duration::from_secs(2));
        }
        if self.stopped {
            self.restore();
        }
        // SAFETY: a plain system call; detaching a stopped tracee resumes
        // it without a signal (the SIGSEGV of our call's return is dropped).
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.tid, 0usize, 0usize) };
    }
}
