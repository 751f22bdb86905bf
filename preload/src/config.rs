//! MEMTRACE_* environment variables, read once at initialisation with
//! getenv (no allocation before we know our own allocator works).
//! Garbage in a variable gives one warning and the default.

use crate::sys::{log, Locked};
use memtrace_format::{naming, signals};
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

pub const DEFAULT_FRAMES: usize = 32;
pub const MAX_FRAMES: usize = memtrace_format::MAX_FRAMES;

static FRAMES: AtomicUsize = AtomicUsize::new(DEFAULT_FRAMES);
static VERBOSE: AtomicBool = AtomicBool::new(false);
static FOLLOW_EXEC: AtomicBool = AtomicBool::new(false);
/// MEMTRACE_SAMPLE: mean bytes between samples; 0 = every allocation.
static SAMPLE: AtomicU64 = AtomicU64::new(0);
/// 0 = off.
static SIGNAL: AtomicI32 = AtomicI32::new(libc::SIGUSR2);
/// The output prefix as given (`%p` not yet expanded), made absolute at init
/// so that a later chdir() of the program does not move our files.
static OUT: Locked<Vec<u8>> = Locked::new(Vec::new());
static HISTORY_NS: AtomicU64 = AtomicU64::new(crate::history_config::DEFAULT_NS);

#[inline]
pub fn frames() -> usize {
    FRAMES.load(Ordering::Relaxed)
}
#[inline]
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}
pub fn follow_exec() -> bool {
    FOLLOW_EXEC.load(Ordering::Relaxed)
}
#[inline(always)]
pub fn sample_rate() -> u64 {
    SAMPLE.load(Ordering::Relaxed)
}
pub fn signal() -> i32 {
    SIGNAL.load(Ordering::Relaxed)
}
/// MEMTRACE_HISTORY's period in ns; 0 = no history file (`writer/history.rs`).
pub fn history_ns() -> u64 {
    HISTORY_NS.load(Ordering::Relaxed)
}
pub fn out_prefix() -> Vec<u8> {
    OUT.lock().clone()
}

/// The settings `memtrace attach` passed (`attach/`): `NAME=value` lines
/// that stand in for the environment, which a running process cannot be
/// given. Set once, before `load`.
static ATTACH_SETTINGS: std::sync::OnceLock<Box<[u8]>> = std::sync::OnceLock::new();

/// From now on settings are read from `text` (`NAME=value` lines), not
/// from the environment: the process was started without them.
pub fn use_attach_settings(text: &[u8]) {
    let _ = ATTACH_SETTINGS.set(text.into());
}

/// The value of setting `name`: from the attach settings when attached
/// (the process's own MEMTRACE_* variables, if any, are not ours then),
/// else from the environment.
pub fn env(name: &CStr) -> Option<&'static [u8]> {
    if let Some(text) = ATTACH_SETTINGS.get() {
        let key = name.to_bytes();
        return text
            .split(|&c| c == b'\n')
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(b"="));
    }
    // SAFETY: getenv returns NULL or a NUL-terminated string that lives as
    // long as the environment entry; we copy what we keep.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(CStr::from_ptr(p).to_bytes())
        }
    }
}

fn warn(var: &str, val: &[u8], what: &str) {
    log(&format!("{var}={:?}: {what}", String::from_utf8_lossy(val)));
}

fn parse_bool(var: &str, v: Option<&[u8]>) -> bool {
    match v {
        None | Some(b"") | Some(b"0") => false,
        Some(b"1") => true,
        Some(v) => {
            let s = String::from_utf8_lossy(v).to_ascii_lowercase();
            match s.as_str() {
                "yes" | "true" | "on" => true,
                "no" | "false" | "off" => false,
                _ => {
                    warn(var, v, "expected 0 or 1, using 0");
                    false
                }
            }
        }
    }
}

/// Largest MEMTRACE_SAMPLE accepted: 1 TiB.
pub const MAX_SAMPLE: u64 = 1 << 40;

/// Parses a MEMTRACE_SAMPLE value: a byte count with an optional binary
/// suffix K, M or G (any case, optionally followed by B or iB): `4096`,
/// `512K`, `1M`, `2GiB`. `0`, `off` or empty mean every allocation (Some(0)).
/// None for garbage or more than 1 TiB.
pub fn parse_sample(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim().to_ascii_uppercase();
    if s.is_empty() || s == "OFF" || s == "NONE" {
        return Some(0);
    }
    let digits = s.bytes().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let unit = match &s[digits..] {
        "" | "B" => 1u64,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return None,
    };
    let bytes = n.checked_mul(unit)?;
    if bytes > MAX_SAMPLE {
        return None;
    }
    Some(bytes)
}

/// Parses a MEMTRACE_SIGNAL value: a name with or without SIG (any case), a
/// number, or `off`. Returns None for garbage, Some(0) for off. The rules are
/// `memtrace run --signal`'s too: `memtrace_format::signals`.
pub fn parse_signal(v: &[u8]) -> Option<i32> {
    signals::parse_snapshot_signal(v)
}

pub fn load() {
    VERBOSE.store(
        parse_bool("MEMTRACE_VERBOSE", env(c"MEMTRACE_VERBOSE")),
        Ordering::Relaxed,
    );
    FOLLOW_EXEC.store(
        parse_bool("MEMTRACE_FOLLOW_EXEC", env(c"MEMTRACE_FOLLOW_EXEC")),
        Ordering::Relaxed,
    );

    let mut frames = DEFAULT_FRAMES;
    if let Some(v) = env(c"MEMTRACE_FRAMES") {
        match std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(n) if (1..=MAX_FRAMES as u64).contains(&n) => frames = n as usize,
            Some(n) if n > MAX_FRAMES as u64 => {
                warn("MEMTRACE_FRAMES", v, "the maximum is 256, using 256");
                frames = MAX_FRAMES;
            }
            _ => warn(
                "MEMTRACE_FRAMES",
                v,
                "expected a number from 1 to 256, using 32",
            ),
        }
    }
    FRAMES.store(frames, Ordering::Relaxed);

    let mut sample = 0;
    if let Some(v) = env(c"MEMTRACE_SAMPLE") {
        match parse_sample(v) {
            Some(n) => sample = n,
            None => warn(
                "MEMTRACE_SAMPLE",
                v,
                "expected a byte count such as 512K, 1M or 4096; sampling off",
            ),
        }
    }
    SAMPLE.store(sample, Ordering::Relaxed);
    crate::history_config::load(&HISTORY_NS, env(c"MEMTRACE_HISTORY"), warn);

    let mut sig = libc::SIGUSR2;
    if let Some(v) = env(c"MEMTRACE_SIGNAL") {
        match parse_signal(v) {
            Some(s) => sig = s,
            None => {
                let why = signals::snapshot_signal_refusal(v).unwrap_or("not a snapshot signal");
                warn("MEMTRACE_SIGNAL", v, &format!("{why}; using USR2"))
            }
        }
    }
    SIGNAL.store(sig, Ordering::Relaxed);

    let mut out: Vec<u8> = naming::DEFAULT_PREFIX.to_vec();
    if let Some(v) = env(c"MEMTRACE_OUT") {
        if !naming::is_valid_prefix(v) {
            warn(
                "MEMTRACE_OUT",
                v,
                "expected a file name prefix, using memtrace.%p",
            );
        } else {
            out = v.to_vec();
        }
    }
    if out.first() != Some(&b'/') {
        if let Ok(cwd) = std::env::current_dir() {
            let mut abs = std::os::unix::ffi::OsStrExt::as_bytes(cwd.as_os_str()).to_vec();
            if abs.last() != Some(&b'/') {
                abs.push(b'/');
            }
            abs.extend_from_slice(&out);
            out = abs;
        }
    }
    *OUT.lock() = out;
}

/// Fork child: a prefix without %p gets `.<childpid>` appended so that no
/// file of the parent's is ever overwritten (`memtrace_format::naming`).
pub fn fork_child_prefix(pid: u32) {
    // SAFETY: fork child, single-threaded; the lock may have been held by a
    // thread that no longer exists.
    OUT.lock.reset();
    naming::fork_child_prefix(&mut OUT.lock(), pid);
}

/// `%p` → pid (every occurrence; `memtrace_format::naming`).
pub fn expand(prefix: &[u8], pid: u32) -> Vec<u8> {
    naming::expand_pid(prefix, pid)
}
