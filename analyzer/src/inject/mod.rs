//! `memtrace attach PID`: loads libtrace.so into a running process and
//! starts tracing there, through ptrace (`ptrace.rs`, `remote_call.rs`).
//!
//! Steps: check the process (`target.rs`: not traced already, dynamically
//! linked, glibc's malloc) before touching it; stop one thread that waits
//! in, or enters, a system call (`thread_pick.rs`); on it call `dlopen(libtrace.so,
//! RTLD_NOW | RTLD_LOCAL)` (its constructor stays dormant: not preloaded),
//! `dlsym(handle, "memtrace_attach")`, then `memtrace_attach(settings)`,
//! which starts the writer and redirects the modules' GOT entries
//! (preload/src/attach/); put the thread back exactly as it was.

mod ptrace;
mod remote_call;
mod target;
mod thread_pick;

use remote_call::{call, read_c_string, Scratch};
use std::path::Path;
use std::time::Duration;

/// RTLD_NOW | RTLD_LOCAL: our exports stay out of the program's scope.
const DLOPEN_MODE: u64 = libc::RTLD_NOW as u64;
/// dlopen runs constructors, memtrace_attach starts a thread and walks
/// every module: generous.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Loads `lib` into process `pid` and starts tracing with `settings`
/// (`MEMTRACE_NAME=value` lines). Returns how many GOT entries now lead to
/// libtrace.so. On error the process is left as it was, unless the error
/// came after the library was loaded (then it says so).
pub fn attach(pid: i32, lib: &Path, settings: &str) -> Result<u64, String> {
    let target = target::inspect(pid)?;
    let mut t = thread_pick::stop_a_waiting_thread(pid, Duration::from_secs(5))?;
    let base = t.save()?;
    let mut scratch = Scratch::below(&base);
    let c = |s: &[u8]| {
        let mut v = s.to_vec();
        v.push(0);
        v
    };
    use std::os::unix::ffi::OsStrExt;
    let path = scratch.put(pid, &c(lib.as_os_str().as_bytes()))?;
    let name = scratch.put(pid, &c(b"memtrace_attach"))?;
    let text = scratch.put(pid, &c(settings.as_bytes()))?;
    let mut run = |f: u64, args: &[u64]| call(&mut t, pid, &base, &scratch, f, args, CALL_TIMEOUT);
    let handle = run(target.dlopen, &[path, DLOPEN_MODE])?;
    if handle == 0 {
        let msg = run(target.dlerror, &[])?;
        let why = if msg == 0 {
            "unknown error".to_string()
        } else {
            read_c_string(pid, msg)
        };
        return Err(format!(
            "process {pid} cannot load {}: {why}",
            lib.display()
        ));
    }
    let entry = run(target.dlsym, &[handle, name])?;
    if entry == 0 {
        return Err(format!(
            "{} has no memtrace_attach (an older libtrace.so?); it stays loaded in process {pid}, untraced",
            lib.display()
        ));
    }
    let n = run(entry, &[text])? as i64;
    drop(t); // restores the thread and detaches
    match n {
        n if n >= 0 => Ok(n as u64),
        -1 => Err(format!("process {pid} is traced by memtrace already")),
        _ => Err(format!(
            "libtrace.so could not initialise in process {pid} (out of memory?); it stays loaded, untraced"
        )),
    }
}
