//! `memtrace attach PID [--out PREFIX] [--frames N] [--sample B] [--signal SIG]`:
//! starts tracing a process that is already running (`crate::inject`).
//!
//! The process never had MEMTRACE_* variables, so the options travel as
//! `MEMTRACE_NAME=value` lines to libtrace.so's `memtrace_attach`. A
//! relative `--out` is taken from memtrace's own directory, not the
//! process's. MEMTRACE_VERBOSE, MEMTRACE_HISTORY, MEMTRACE_LEAK_CHECK and
//! MEMTRACE_UNWIND set for memtrace are passed on too; without
//! MEMTRACE_HISTORY the history is on at 1 s, as under `memtrace run`.

use super::Failure;
use memtrace_format::{naming, signals};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

pub(super) struct AttachOptions {
    pub pid: u32,
    pub out: Option<OsString>,
    pub frames: Option<u32>,
    pub sample: Option<String>,
    pub signal: Option<String>,
}

/// Settings passed on from memtrace's own environment when set.
const PASSED_ON: [&str; 4] = [
    "MEMTRACE_VERBOSE",
    "MEMTRACE_HISTORY",
    "MEMTRACE_LEAK_CHECK",
    "MEMTRACE_UNWIND",
];

pub(super) fn attach(out: &mut dyn std::io::Write, o: AttachOptions) -> Result<(), Failure> {
    let prefix = out_prefix(o.out.as_ref())?;
    let settings = settings(&o, &prefix)?;
    let lib = super::run::find_preload().map_err(|e| Failure::Input(e.0))?;
    let n = crate::inject::attach(o.pid as i32, &lib, &settings).map_err(Failure::Input)?;
    let shown = String::from_utf8_lossy(&naming::expand_pid(&prefix, o.pid)).into_owned();
    let history = if settings.contains("MEMTRACE_HISTORY=off\n") {
        String::new()
    } else {
        format!(", the history to {shown}.history")
    };
    writeln!(
        out,
        "attached to process {} ({n} call sites redirected): snapshots go to {shown}.<n>.snap (memtrace snapshot {}){history}",
        o.pid, o.pid
    )?;
    Ok(())
}

/// The absolute output prefix (default memtrace.%p, in memtrace's directory).
fn out_prefix(out: Option<&OsString>) -> Result<Vec<u8>, Failure> {
    let given = out
        .map(|o| o.as_bytes().to_vec())
        .unwrap_or_else(|| naming::DEFAULT_PREFIX.to_vec());
    if !naming::is_valid_prefix(&given) || given.contains(&b'\n') {
        return Err(Failure::Usage(format!(
            "--out {}: expected a file name prefix",
            String::from_utf8_lossy(&given)
        )));
    }
    if given.starts_with(b"/") {
        return Ok(given);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::Input(format!("cannot find the current directory: {e}")))?;
    Ok(cwd
        .join(OsString::from_vec(given))
        .into_os_string()
        .into_vec())
}

/// A byte count with an optional K, M or G suffix (B or iB after it), or
/// off: what MEMTRACE_SAMPLE takes.
fn valid_sample(s: &str) -> bool {
    let u = s.trim().to_ascii_uppercase();
    let digits = u.bytes().take_while(u8::is_ascii_digit).count();
    u == "OFF"
        || (digits > 0
            && [
                "", "B", "K", "KB", "KIB", "M", "MB", "MIB", "G", "GB", "GIB",
            ]
            .contains(&&u[digits..]))
}

fn settings(o: &AttachOptions, prefix: &[u8]) -> Result<String, Failure> {
    let mut s = format!("MEMTRACE_OUT={}\n", String::from_utf8_lossy(prefix));
    if let Some(f) = o.frames {
        s += &format!("MEMTRACE_FRAMES={f}\n");
    }
    if let Some(b) = &o.sample {
        if !valid_sample(b) {
            return Err(Failure::Usage(format!(
                "--sample {b}: expected a byte count such as 512K, 1M or 4096"
            )));
        }
        s += &format!("MEMTRACE_SAMPLE={}\n", b.trim());
    }
    if let Some(sig) = &o.signal {
        if let Some(why) = signals::snapshot_signal_refusal(sig.as_bytes()) {
            return Err(Failure::Usage(format!("--signal {sig}: {why}")));
        }
        s += &format!("MEMTRACE_SIGNAL={sig}\n");
    }
    // As `memtrace run`: a history on disk from now on (issue 13), what is
    // left if the process is then killed. The user's MEMTRACE_HISTORY
    // (`off` too) wins: it is passed on below.
    if std::env::var_os("MEMTRACE_HISTORY").is_none() {
        s += "MEMTRACE_HISTORY=1s\n";
    }
    for name in PASSED_ON {
        if let Some(v) = std::env::var_os(name).filter(|v| !v.as_bytes().contains(&b'\n')) {
            s += &format!("{name}={}\n", v.to_string_lossy());
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values() {
        for ok in ["4096", "512K", "1MiB", "2gb", "off"] {
            assert!(valid_sample(ok), "{ok}");
        }
        for bad in ["", "K", "12X", "-1", "1.5M"] {
            assert!(!valid_sample(bad), "{bad}");
        }
    }

    #[test]
    fn relative_prefix_is_made_absolute() {
        let p = out_prefix(Some(&OsString::from("x/m.%p"))).ok().unwrap();
        assert!(p.starts_with(b"/") && p.ends_with(b"/x/m.%p"));
        assert!(out_prefix(Some(&OsString::from("/a/b"))).ok().unwrap() == b"/a/b");
    }
}
