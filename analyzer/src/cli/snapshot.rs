//! `memtrace snapshot PID`: asks a traced process for a snapshot and waits
//! until the file is complete.
//!
//! The request is the process's snapshot signal sent with `sigqueue` and
//! memtrace's own value (`"memtrace"` as a little-endian word): libtrace.so
//! snapshots on it even when the program has a handler of its own for that
//! signal, and never passes it on to that handler (README, "The snapshot
//! signal"). Which signal, and where the files go, libtrace.so publishes
//! in the name of a small mapping that /proc/PID/maps shows
//! (preload/src/beacon.rs): not the environment, which programs that set
//! their process title write over.
//!
//! Which file is the answer: snapshots are written under a temporary name
//! and renamed when complete, so the first new `*.snap` file in the output
//! directory whose header names PID is the complete answer. Watching for
//! any new file (rather than predicting `<prefix>.<n>.snap`) also finds a
//! forked child's files, whose prefix gets `.<pid>` appended.

use super::Failure;
use memtrace_format::{naming, signals};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `memtrace snapshot PID [--timeout S]`.
pub(super) fn snapshot(
    out: &mut dyn std::io::Write,
    pid: u32,
    timeout_s: u64,
) -> Result<(), Failure> {
    let process = inspect(pid).map_err(Failure::Input)?;
    let path =
        request_snapshot(&process, Duration::from_secs(timeout_s)).map_err(Failure::Input)?;
    writeln!(out, "{}", path.display())?;
    Ok(())
}

/// What `/proc/PID` says about a traced process.
#[derive(Debug)]
pub struct TracedProcess {
    pub pid: u32,
    /// The snapshot signal; 0 when snapshots on signal are off.
    pub signal: i32,
    /// The directory the snapshots go to, and their file names' prefix.
    pub out_dir: PathBuf,
    pub name_prefix: Vec<u8>,
}

/// Finds out whether `pid` runs with libtrace.so, and how it snapshots.
pub fn inspect(pid: u32) -> Result<TracedProcess, String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let maps = std::fs::read(proc_dir.join("maps")).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no process {pid}"),
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot inspect process {pid}: permission denied")
        }
        _ => format!("cannot inspect process {pid}: {e}"),
    })?;
    let Some((signal, prefix)) = maps.split(|&c| c == b'\n').find_map(naming::parse_beacon) else {
        return Err(format!(
            "process {pid} is not traced by memtrace (libtrace.so is not loaded in it; start it with `memtrace run` or LD_PRELOAD, or `memtrace attach PID`)"
        ));
    };
    let full = PathBuf::from(OsStr::from_bytes(&naming::expand_pid(prefix, pid)));
    let out_dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
    let name_prefix = full
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    Ok(TracedProcess {
        pid,
        signal,
        out_dir,
        name_prefix,
    })
}

/// Sends the request and waits up to `timeout` for the snapshot file.
pub fn request_snapshot(p: &TracedProcess, timeout: Duration) -> Result<PathBuf, String> {
    if p.signal == 0 {
        return Err(format!(
            "process {} has snapshots on signal turned off (MEMTRACE_SIGNAL=off)",
            p.pid
        ));
    }
    let before = snapshot_files(p)?;
    send_request(p.pid, p.signal)?;
    let start = Instant::now();
    loop {
        for f in snapshot_files(p)?.difference(&before) {
            if written_by(f, p.pid) {
                return Ok(f.clone());
            }
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "process {} wrote no snapshot in {} s (looked in {})",
                p.pid,
                timeout.as_secs(),
                p.out_dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

extern "C" {
    /// glibc's sigqueue(3) (the libc crate does not declare it).
    fn sigqueue(pid: libc::pid_t, sig: libc::c_int, value: libc::sigval) -> libc::c_int;
}

/// `sigqueue(pid, sig, SNAPSHOT_REQUEST_VALUE)`.
fn send_request(pid: u32, sig: i32) -> Result<(), String> {
    let value = libc::sigval {
        sival_ptr: signals::SNAPSHOT_REQUEST_VALUE as usize as *mut libc::c_void,
    };
    // SAFETY: a plain system call wrapper; the kernel checks the permission.
    if unsafe { sigqueue(pid as libc::pid_t, sig, value) } != 0 {
        return Err(format!(
            "cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The complete snapshot files under the process's prefix now.
fn snapshot_files(p: &TracedProcess) -> Result<HashSet<PathBuf>, String> {
    let entries = std::fs::read_dir(&p.out_dir).map_err(|e| {
        format!(
            "cannot read the snapshot directory {}: {e}",
            p.out_dir.display()
        )
    })?;
    Ok(entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|path| {
            let name = path.file_name().map(OsStr::as_bytes).unwrap_or_default();
            name.starts_with(&p.name_prefix) && name.ends_with(b".snap")
        })
        .collect())
}

/// True if `path` is a readable snapshot whose header names `pid`.
fn written_by(path: &Path, pid: u32) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|b| memtrace_format::decode(&b).ok())
        .is_some_and(|s| s.header.pid == pid)
}
