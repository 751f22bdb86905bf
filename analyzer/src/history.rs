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
