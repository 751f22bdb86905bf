//! Reading a history file (`<prefix>.history`, docs/FORMAT.md "The history
//! file") wherever a snapshot is read: `read_dump` sees its magic and comes
//! here; the point picked (`--at`, `--from`/`--to`, else the last complete
//! one) is turned into the same `memtrace_format::Snapshot` a snapshot file
//! gives, so every command works on it unchanged. Streams: memory is
//! bounded by the live groups and stacks, not by the file's length.

use memtrace_format::history::{self, HISTORY_MAGIC};
use memtrace_format::Snapshot;
use std::collections::VecDeque;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Mutex;

/// The moments (seconds from the program's start; `None`: the last point)
/// the next history reads pick, in order: `--at T` is one, `diff --from T1
/// --to T2` two.
static SELECT: Mutex<VecDeque<Option<f64>>> = Mutex::new(VecDeque::new());

/// The moments the next reads of a history pick, in order.
pub fn select(times: &[Option<f64>]) {
    let mut s = SELECT.lock().unwrap_or_else(|e| e.into_inner());
    s.clear();
    s.extend(times.iter().copied());
}

fn next_selection() -> Option<f64> {
    let mut s = SELECT.lock().unwrap_or_else(|e| e.into_inner());
    s.pop_front().flatten()
}

/// A snapshot file is being read: a moment picked for it (`--at`, `--from`,
/// `--to`) is an error, not silently ignored.
pub fn check_no_selection() -> Result<(), String> {
    match next_selection() {
        Some(_) => Err("--at, --from and --to pick a moment of a history file (<prefix>.history); this is a snapshot".into()),
        None => Ok(()),
    }
}

/// Does the file start with the history's magic?
pub fn is_history(path: &Path) -> bool {
    let mut m = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut m))
        .map(|_| &m == HISTORY_MAGIC)
        .unwrap_or(false)
}

/// The point picked for this read, as a snapshot.
pub fn read(path: &Path) -> Result<Snapshot, String> {
    let open = || {
        std::fs::File::open(path)
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .map_err(|e| crate::util::io_msg(&e))
    };
    let at_ns = match next_selection() {
        None => None,
        Some(secs) => {
            let start = history::read_start(open()?).map_err(|e| e.to_string())?;
            if !(secs.is_finite() && secs >= 0.0) {
                return Err(format!("--at {secs}: expected seconds from the start, ≥ 0"));
            }
            Some(start.start_ns.saturating_add((secs * 1e9) as u64))
        }
    };
    history::read_at(open()?, at_ns).map_err(|e| match at_ns {
        Some(_) if e.to_string().contains("no point at or before") => {
            "no point of the history at or before that time (the first comes later)".to_string()
        }
        _ => e.to_string(),
    })
}

/// History files in `dir` written under the prefix whose file-name part is
/// `base` (`%p` unexpanded): `<base>.history`, a fork child's
/// `<base>.<pid>.history` when `base` has no `%p`, and
/// `<…>.exec<k>.history` (docs/FORMAT.md, "The history file"). Sorted.
pub fn history_names(dir: &Path, base: &[u8]) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<std::ffi::OsString> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| is_history_name(base, n.as_bytes()))
        .collect();
    v.sort();
    v
}

fn is_history_name(base: &[u8], name: &[u8]) -> bool {
    let Some(mut rest) = name.strip_suffix(b".history") else {
        return false;
    };
    // `.exec<k>`
    if let Some(i) = rest.windows(5).rposition(|w| w == b".exec") {
        let k = &rest[i + 5..];
        if !k.is_empty() && k.iter().all(|c| c.is_ascii_digit()) {
            rest = &rest[..i];
        }
    }
    // The snapshot naming rules say which prefixes are this run's: the same
    // name as an exit snapshot's.
    let mut as_snap = rest.to_vec();
    as_snap.extend_from_slice(b".exit.snap");
    memtrace_format::naming::is_snapshot_name(base, &as_snap)
}

#[cfg(test)]
mod tests {
    use super::is_history_name;

    #[test]
    fn history_names() {
        assert!(is_history_name(b"memtrace.%p", b"memtrace.12.history"));
        assert!(is_history_name(
            b"memtrace.%p",
            b"memtrace.12.exec1.history"
        ));
        assert!(is_history_name(b"run", b"run.history"));
        assert!(is_history_name(b"run", b"run.77.history"));
        assert!(!is_history_name(b"run", b"other.history"));
        assert!(!is_history_name(b"run", b"run.1.snap"));
        assert!(!is_history_name(b"memtrace.%p", b"memtrace.x.history"));
    }
}
