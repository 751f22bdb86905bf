//! When tracing began, for a process traced since `memtrace attach`
//! (format 1.4's TRACING_START section, history 1.2's START record): `summary`, `top` and `stats` say
//! so, since the snapshot then holds nothing allocated before that moment.

use memtrace_format::tracing_start::{decode_tracing_start, StartedBy, TracingStart};
use std::path::Path;

/// The file's TRACING_START, or None for a process traced from its start
/// (or a file that is not a snapshot: the caller reads it and reports what
/// is wrong with it).
pub(super) fn tracing_start(path: &Path) -> Option<TracingStart> {
    if crate::history::is_history(path) {
        // Its first record only: a history can be far bigger than memory.
        let file = std::fs::File::open(path).ok()?;
        return memtrace_format::history::read_start(std::io::BufReader::new(file))
            .ok()?
            .tracing_start;
    }
    let bytes = std::fs::read(path).ok()?;
    decode_tracing_start(&bytes).ok()?
}

/// What started tracing, as JSON names it.
pub(super) fn by_name(t: &TracingStart) -> &'static str {
    match t.by {
        StartedBy::Attach => "attach",
    }
}

/// "12.345 s after the process started (memtrace attach)".
pub(super) fn describe(t: &TracingStart) -> String {
    let how = format!("memtrace {}", by_name(t));
    match t.after_start_ns() {
        Some(ns) => format!("{:.3} s after the process started ({how})", ns as f64 / 1e9),
        None => format!("after the process started ({how})"),
    }
}

/// `describe` of the file's TRACING_START, if it has one.
pub(super) fn tracing_began(path: &Path) -> Option<String> {
    tracing_start(path).map(|t| describe(&t))
}
