//! When tracing began, for a process traced since `memtrace attach`
//! (format 1.4's TRACING_START section): `summary` and `top` say so, since
//! the snapshot then holds nothing allocated before that moment.

use memtrace_format::tracing_start::{decode_tracing_start, StartedBy};
use std::path::Path;

/// "12.345 s after the process started (memtrace attach)", or None for a
/// process traced from its start (or a file that is not a snapshot: the
/// caller reads it and reports what is wrong with it).
pub(super) fn tracing_began(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let t = decode_tracing_start(&bytes).ok()??;
    let how = match t.by {
        StartedBy::Attach => "memtrace attach",
    };
    Some(match t.after_start_ns() {
        Some(ns) => format!("{:.3} s after the process started ({how})", ns as f64 / 1e9),
        None => format!("after the process started ({how})"),
    })
}
