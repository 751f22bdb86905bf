//! What every command that symbolizes shares: one frame table and
//! symbolizer for all the snapshots it reads, the frame rules, and the
//! warnings said once.

use super::Failure;
use crate::frame::{FrameRules, FrameTable};
use crate::snapshot::{self, Snapshot, View};
use crate::symbolize::Symbolizer;
use std::path::Path;

pub(super) struct Session {
    pub table: FrameTable,
    sym: Symbolizer,
    rules: FrameRules,
    /// malloc_owner warnings already printed (`diff A A` says it once).
    warned: std::collections::HashSet<String>,
}

impl Session {
    /// Never dropped: the command ends the process right after, and freeing
    /// its hundreds of thousands of frames, strings and parsed DWARF units
    /// one by one would cost a few percent of the run for nothing.
    pub fn new(rules: FrameRules) -> std::mem::ManuallyDrop<Session> {
        std::mem::ManuallyDrop::new(Session {
            table: FrameTable::new(),
            sym: Symbolizer::new(),
            rules,
            warned: Default::default(),
        })
    }

    /// Reads and symbolizes a snapshot; prints its warnings on stderr.
    pub fn load(&mut self, path: &Path) -> Result<Snapshot, Failure> {
        self.load_view(path, View::Live)
    }

    /// Reads and symbolizes a snapshot's `view`; a file without the
    /// sections it needs is bad input (one line).
    pub fn load_view(&mut self, path: &Path, view: View) -> Result<Snapshot, Failure> {
        let (_, mut snaps) = self.load_views(path, &[view])?;
        snaps.pop().flatten().ok_or_else(|| {
            Failure::Input(format!(
                "{}: {}",
                path.display(),
                missing_view_in(path, view)
            ))
        })
    }

    /// Reads a snapshot and symbolizes it once into each of `views` (`None`
    /// where the file cannot give it); prints its warnings on stderr.
    pub fn load_views(
        &mut self,
        path: &Path,
        views: &[View],
    ) -> Result<(memtrace_format::Snapshot, Vec<Option<Snapshot>>), Failure> {
        let dump = snapshot::read_dump(path).map_err(|e| Failure::Input(e.to_string()))?;
        let snaps = self.symbolize_dump(path, &dump, views);
        Ok((dump, snaps))
    }

    /// Symbolizes a dump already read into each of `views`; prints its
    /// warnings on stderr.
    pub fn symbolize_dump(
        &mut self,
        path: &Path,
        dump: &memtrace_format::Snapshot,
        views: &[View],
    ) -> Vec<Option<Snapshot>> {
        let name = path.display().to_string();
        if !dump.header.malloc_owner.is_empty() {
            let owner = String::from_utf8_lossy(&dump.header.malloc_owner);
            let w = malloc_owner_warning(&name, &owner);
            if self.warned.insert(w.clone()) {
                eprintln!("memtrace: warning: {w}");
            }
        }
        let snaps = snapshot::symbolize_views(
            &name,
            dump,
            &mut self.table,
            &mut self.sym,
            &self.rules,
            views,
        );
        for w in self.sym.warnings.drain(..) {
            eprintln!("memtrace: warning: {w}");
        }
        snaps
    }
}

impl Session {
    /// The top `n` lines of the history at `path` over time, up to the
    /// point `dump` was read at (`history_lines`); prints its warnings.
    pub fn history_lines(
        &mut self,
        path: &Path,
        dump: &memtrace_format::Snapshot,
        n: usize,
    ) -> Result<Option<crate::history_lines::LineSeries>, String> {
        let l = crate::history_lines::series(
            path,
            dump,
            n,
            &mut self.table,
            &mut self.sym,
            &self.rules,
        );
        for w in self.sym.warnings.drain(..) {
            eprintln!("memtrace: warning: {w}");
        }
        l
    }
}

/// Why a file cannot give `view` (it was written before format 1.2).
pub(super) fn missing_view(view: View) -> String {
    let what = match view {
        View::Live => "no live blocks",
        View::Peak => "no peak recorded",
        View::Allocated | View::Temporary => "no allocation totals recorded",
    };
    format!("{what}: the whole-run sections need a newer libtrace.so (format 1.2)")
}

/// `missing_view` for the file at `path`: a history holds the peak's
/// blocks from history format 1.1 on, once something was allocated.
pub(super) fn missing_view_in(path: &Path, view: View) -> String {
    if view == View::Peak && crate::history::is_history(path) {
        return "no peak blocks in this history: nothing allocated yet, or written by a \
                libtrace.so before history format 1.1 (it holds the peak's bytes only)"
            .to_string();
    }
    missing_view(view)
}

/// The warning for a snapshot whose program's malloc is not libtrace.so's.
pub(super) fn malloc_owner_warning(file: &str, owner: &str) -> String {
    format!("{file}: the program's malloc comes from {owner}, not glibc: its allocations were not traced")
}
