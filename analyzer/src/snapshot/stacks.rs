//! The one place a dump's stacks become frames: each return address
//! symbolized (inline frames included), interned, the system frames
//! `FrameRules` name dropped, and a stack left with nothing given its
//! innermost frame or tracemalloc's `<unknown>`. The snapshot views
//! concatenate the locations' frames into tracebacks; the exports keep each
//! location (pprof maps an address to its lines), so a rule changed here
//! changes both alike.

use crate::frame::{Frame, FrameId, FrameRules, FrameTable};
use crate::symbolize::{SymFrame, Symbolizer};
use crate::util::FxHashMap as HashMap;
use memtrace_format::Module;
use std::rc::Rc;

/// Why a location stands in a stack (an address can be both kinds, in
/// different stacks: its frames differ then).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// An address with frames kept under the rules: those frames.
    Kept,
    /// No address of the stack kept a frame: its innermost frame alone.
    Innermost,
    /// The stack has no frame at all (address 0).
    Unknown,
}

/// Symbolizes the stacks of one dump under one set of rules, each address
/// once.
pub struct StackSymbolizer<'a> {
    modules: &'a [Module],
    table: &'a mut FrameTable,
    sym: &'a mut Symbolizer,
    rules: &'a FrameRules,
    /// Per address, the frames the rules keep, innermost inline frame
    /// first (a large dump has millions of addresses: the slice is the
    /// symbolized frames' own, or the shared empty one, where it can be).
    by_addr: HashMap<u64, Rc<[FrameId]>>,
    /// The kept frames of an address that keeps none.
    none: Rc<[FrameId]>,
    /// The innermost frame of each address that keeps none: a stack made
    /// only of those shows it.
    dropped: HashMap<u64, FrameId>,
    memo: HashMap<u64, FrameId>,
    by_ptr: HashMap<[usize; 6], FrameId>,
}

impl<'a> StackSymbolizer<'a> {
    pub fn new(
        dump: &'a memtrace_format::Snapshot,
        table: &'a mut FrameTable,
        sym: &'a mut Symbolizer,
        rules: &'a FrameRules,
    ) -> StackSymbolizer<'a> {
        StackSymbolizer {
            modules: &dump.modules,
            table,
            sym,
            rules,
            by_addr: HashMap::default(),
            none: Rc::from([]),
            dropped: HashMap::default(),
            memo: HashMap::default(),
            by_ptr: HashMap::default(),
        }
    }

    /// Calls `visit(place, address, frames)` for each location of
    /// the stack `addrs` (most recent call first) as memtrace shows it:
    /// every address with frames kept, in order; if there is none, the
    /// first frame of the first address that has any, or `<unknown>` (as
    /// tracemalloc names a trace without frames).
    pub fn locations(&mut self, addrs: &[u64], mut visit: impl FnMut(Place, u64, &[FrameId])) {
        let mut any = false;
        for &addr in addrs {
            let kept = self.address(addr);
            if !kept.is_empty() {
                any = true;
                visit(Place::Kept, addr, kept);
            }
        }
        if any {
            return;
        }
        // Every address kept none here: those with frames are in `dropped`.
        let innermost = addrs
            .iter()
            .find_map(|x| self.dropped.get(x).map(|&f| (*x, f)));
        match innermost {
            Some((addr, f)) => visit(Place::Innermost, addr, &[f]),
            None => {
                let unknown = self.table.intern_location("<unknown>", 0);
                visit(Place::Unknown, 0, &[unknown]);
            }
        }
    }

    /// `addr` symbolized, from the cache after the first time.
    fn address(&mut self, addr: u64) -> &[FrameId] {
        if !self.by_addr.contains_key(&addr) {
            let a = self.symbolize(addr);
            self.by_addr.insert(addr, a);
        }
        &self.by_addr[&addr]
    }

    fn symbolize(&mut self, addr: u64) -> Rc<[FrameId]> {
        let all: Rc<[FrameId]> = self
            .sym
            .symbolize(self.modules, addr)
            .iter()
            .map(|f| memo_intern(&mut self.memo, &mut self.by_ptr, self.table, f, self.rules))
            .collect();
        let system = |id: &FrameId| self.table.frame(*id).system;
        // Most addresses keep all their frames or none.
        if self.rules.keep_all || !all.iter().any(system) {
            all
        } else if all.iter().all(system) {
            self.dropped.insert(addr, all[0]);
            self.none.clone()
        } else {
            all.iter().copied().filter(|id| !system(id)).collect()
        }
    }
}

/// The hash of what `FrameTable::intern_sym` keys a symbolized frame by.
fn sym_key_hash(f: &SymFrame) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = crate::util::FxHasher::default();
    let has_line = f.has_line();
    has_line.hash(&mut h);
    f.function.hash(&mut h);
    f.module.hash(&mut h);
    if has_line {
        f.file.hash(&mut h);
        f.line.hash(&mut h);
    } else {
        f.module_offset.hash(&mut h);
    }
    h.finish()
}

/// Whether interned `frame` is the frame `intern_sym` makes of `f` (the
/// intern key: file and line, or for a line-less frame the module offset its
/// `<…>` name is made of; function; module).
fn same_sym(frame: &Frame, f: &SymFrame) -> bool {
    let has_line = f.has_line();
    frame.has_line == has_line
        && frame.function.as_deref() == f.function.as_deref()
        && frame.module.as_deref() == f.module.as_deref()
        && if has_line {
            frame.lineno == f.line && f.file.as_deref() == Some(frame.filename.as_str())
        } else {
            frame.module_offset == f.module_offset
        }
}

/// The identity of a symbolized frame's intern key by the addresses of its
/// shared strings: equal identities mean equal keys (the symbolizer keeps
/// those strings alive and gives the same `Rc` for the same name).
fn sym_ptr_key(f: &SymFrame) -> [usize; 6] {
    let p = |s: &Option<Rc<str>>| s.as_ref().map(|s| s.as_ptr() as usize).unwrap_or(0);
    let has_line = f.has_line();
    [
        p(&f.function),
        p(&f.file),
        p(&f.module),
        f.line as usize,
        has_line as usize,
        if has_line {
            0
        } else {
            f.module_offset as usize
        },
    ]
}

/// `table.intern_sym(f, rules)`, memoized for one dump (rules
/// are fixed there, so a frame interned once in it needs no second look):
/// first by the addresses of its strings, then by the hash of its key.
fn memo_intern(
    memo: &mut HashMap<u64, FrameId>,
    by_ptr: &mut HashMap<[usize; 6], FrameId>,
    table: &mut FrameTable,
    f: &SymFrame,
    rules: &FrameRules,
) -> FrameId {
    let k = sym_ptr_key(f);
    if let Some(&id) = by_ptr.get(&k) {
        return id;
    }
    let id = memo_by_hash(memo, table, f, rules);
    by_ptr.insert(k, id);
    id
}

fn memo_by_hash(
    memo: &mut HashMap<u64, FrameId>,
    table: &mut FrameTable,
    f: &SymFrame,
    rules: &FrameRules,
) -> FrameId {
    let h = sym_key_hash(f);
    if let Some(&id) = memo.get(&h) {
        if same_sym(table.frame(id), f) {
            return id;
        }
    }
    let id = table.intern_sym(f, rules);
    memo.entry(h).or_insert(id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Pattern;

    /// Each stack's locations as (place, address, frame file names), for
    /// addresses in no module (frames `<unknown 0x…>`).
    fn locations(rules: &FrameRules, stacks: &[&[u64]]) -> Vec<Vec<(Place, u64, Vec<String>)>> {
        let dump = memtrace_format::Snapshot::default();
        let mut table = FrameTable::new();
        let mut sym = Symbolizer::new();
        let mut out = Vec::new();
        let mut ids = Vec::new();
        let mut s = StackSymbolizer::new(&dump, &mut table, &mut sym, rules);
        for addrs in stacks {
            let mut locs = Vec::new();
            s.locations(addrs, |place, addr, frames| {
                locs.push((place, addr, frames.to_vec()))
            });
            ids.push(locs);
        }
        for locs in ids {
            let name = |f: &FrameId| table.frame(*f).filename.clone();
            out.push(
                locs.into_iter()
                    .map(|(p, a, f)| (p, a, f.iter().map(name).collect()))
                    .collect(),
            );
        }
        out
    }

    fn rules(system: &[&str]) -> FrameRules {
        FrameRules {
            system: system.iter().map(|p| Pattern::new(p)).collect(),
            ..FrameRules::default()
        }
    }

    #[test]
    fn kept_frames_then_innermost_then_unknown() {
        let names = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = locations(
            &rules(&["<unknown 0x1*"]),
            &[&[0x10, 0x20], &[0x11, 0x12], &[]],
        );
        assert_eq!(
            got,
            vec![
                // 0x10 is a system frame: only 0x20 stays.
                vec![(Place::Kept, 0x20, names(&["<unknown 0x20>"]))],
                // Nothing kept: the innermost frame stands for the stack.
                vec![(Place::Innermost, 0x11, names(&["<unknown 0x11>"]))],
                vec![(Place::Unknown, 0, names(&["<unknown>"]))],
            ]
        );
        let all = FrameRules {
            keep_all: true,
            ..rules(&["*"])
        };
        assert_eq!(
            locations(&all, &[&[0x10, 0x20]]),
            vec![vec![
                (Place::Kept, 0x10, names(&["<unknown 0x10>"])),
                (Place::Kept, 0x20, names(&["<unknown 0x20>"])),
            ]]
        );
    }
}
