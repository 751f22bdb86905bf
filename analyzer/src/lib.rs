//! memtrace: Python's tracemalloc for native programs — the analyzer.
//!
//! Reads the snapshot files written by libtrace.so (`memtrace_format`),
//! symbolizes them offline and prints statistics exactly as CPython's
//! `tracemalloc` module does. Modules mirror tracemalloc's vocabulary; each
//! imports only from the modules listed before it:
//! - [`util`]: I/O error messages, the interning tables' hasher;
//! - [`pattern`]: fnmatch as CPython's `fnmatch.translate` has it;
//! - [`progress`]: the progress bar for long work on a terminal;
//! - [`symbolize`]: addresses → source frames (DWARF, inlines, demangling, debug links);
//! - [`sampling`]: what a sampled snapshot's groups stand for;
//! - [`frame`]: interned `Frame`s and the `FrameRules` that pick the system frames;
//! - [`snapshot`]: a file → `Snapshot` of `Trace`s with `Traceback`s of `Frame`s, for a
//!   `View` of it: the live blocks, the peak's, or the totals since the start (format 1.2);
//! - [`format`]: `_format_size`, `str(Statistic)`, `Traceback.format`, linecache;
//! - [`filter`]: `Filter`, `Snapshot.filter_traces`;
//! - [`stats`]: `Statistic`, `StatisticDiff`, grouping, sorting, `compare_to`;
//! - [`display`]: the documentation's `display_top`, the sampling notes;
//! - [`export`]: pprof profiles, tracemalloc pickles, flame graphs;
//! - [`report`]: the memory chart (SVG) and the HTML report's page, flame graph data;
//! - [`inject`]: `memtrace attach`: loading libtrace.so into a running process (ptrace);
//! - [`cli`]: the `memtrace` command line, one file per command.

pub mod cli;
pub mod display;
pub mod export;
pub mod filter;
pub mod format;
pub mod frame;
pub mod history;
pub mod history_lines;
pub mod inject;
pub mod pattern;
pub mod progress;
pub mod report;
pub mod sampling;
pub mod snapshot;
pub mod stats;
pub mod symbolize;
pub mod util;

pub use util::{io_msg, FxBuild, FxHashMap, FxHasher};
