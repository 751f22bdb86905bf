//! memtrace: Python's tracemalloc for native programs — the analyzer.
//!
//! Reads the snapshot files written by libtrace.so (`memtrace_format`),
//! symbolizes them offline and prints statistics exactly as CPython's
//! `tracemalloc` module does. Modules mirror tracemalloc's vocabulary:
//! - [`snapshot`]: a file → `Snapshot` of `Trace`s with `Traceback`s of `Frame`s;
//! - [`symbolize`]: addresses → frames (DWARF, inlines, demangling, debug links);
//! - [`stats`]: `Statistic`, `StatisticDiff`, grouping, sorting, `compare_to`;
//! - [`filter`]: `Filter` and fnmatch;
//! - [`format`]: `_format_size`, `str(Statistic)`, `Traceback.format`, linecache;
//! - [`cli`]: the `memtrace` command line.

pub mod cli;
pub mod filter;
pub mod format;
pub mod snapshot;
pub mod stats;
pub mod symbolize;

/// An I/O error as a short message without the "(os error N)" tail.
pub fn io_msg(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
