//! What every command that symbolizes shares: one frame table and
//! symbolizer for all the snapshots it reads, the frame rules, and the
//! warnings said once.

use super::Failure;
use crate::frame::{FrameRules, FrameTable};
use crate::snapshot::{self, Snapshot};
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
        let s = snapshot::load(path, &mut self.table, &mut self.sym, &self.rules)
            .map_err(|e| Failure::Input(e.to_string()));
        if let Ok(snap) = &s {
            if let Some(owner) = snap.malloc_owner() {
                let w = malloc_owner_warning(&path.display().to_string(), &owner);
                if self.warned.insert(w.clone()) {
                    eprintln!("memtrace: warning: {w}");
                }
            }
        }
        for w in self.sym.warnings.drain(..) {
            eprintln!("memtrace: warning: {w}");
        }
        s
    }
}

/// The warning for a snapshot whose program's malloc is not libtrace.so's.
pub(super) fn malloc_owner_warning(file: &str, owner: &str) -> String {
    format!("{file}: the program's malloc comes from {owner}, not glibc: its allocations were not traced")
}
