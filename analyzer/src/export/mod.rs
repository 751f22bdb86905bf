//! Exports for the clients people already use: pprof's profile.proto
//! ([`pprof`]), CPython's `tracemalloc.Snapshot` pickle ([`pickle`]) and
//! flame graphs ([`flame`]).
//!
//! They share one model, [`Stacks`]: a dump symbolized by the code
//! [`crate::snapshot`] uses ([`StackSymbolizer`]: the same interned frames,
//! the same system frames dropped, so every figure equals `memtrace top`'s),
//! but keeping what pprof needs and a `Snapshot` flattens away: each return
//! address as a location with its inline frames. The exporters take lists of
//! [`Group`]s — (stack, bytes, count, domain) — so any view of a dump (live
//! blocks, the peak, the totals since the start) exports the same way; the
//! filters are applied to the lists before (`Stacks::filter`).

pub mod flame;
pub mod pickle;
pub mod pprof;

use crate::filter::{FilterSet, FramesPass};
use crate::frame::{FrameId, FrameRules, FrameTable};
use crate::sampling::sample_probability;
use crate::snapshot::{Place, StackSymbolizer, Trace};
use crate::symbolize::Symbolizer;
use crate::util::FxHashMap as HashMap;

/// One return address of a stack, symbolized: the frames kept (innermost
/// inline frame first), never empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The return address (runtime).
    pub address: u64,
    /// Index into the dump's modules, if the address is in one.
    pub module: Option<usize>,
    pub frames: Vec<FrameId>,
}

pub use crate::snapshot::View;

/// A stack of the dump as memtrace shows it.
#[derive(Clone, Debug)]
pub struct Stack {
    /// Locations, most recent call first (indices into [`Stacks::locations`]).
    pub locations: Vec<u32>,
    /// The kept frames, most recent first: exactly the `Traceback` the
    /// snapshot module makes of this stack.
    pub frames: Vec<FrameId>,
    pub truncated: bool,
}

/// The stacks of one dump, symbolized.
pub struct Stacks {
    pub locations: Vec<Location>,
    pub stacks: Vec<Stack>,
    /// Stack id (the file's) → index into `stacks`.
    pub by_id: HashMap<u64, usize>,
}

/// `count` blocks, `bytes` in all, allocated at `stack` (an index into
/// [`Stacks::stacks`]). `size` is the size of one block when they all have
/// one (a live group), else their mean: the sampling estimate uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    pub stack: usize,
    pub size: u64,
    pub count: u64,
    pub bytes: u64,
    /// tracemalloc's `Trace.domain` (0: the malloc heap; other: objects
    /// of a custom allocator, format 1.4).
    pub domain: u32,
}

impl Group {
    /// The group `trace` (its traceback ignored) makes at `stack`.
    fn of(stack: usize, t: Trace) -> Group {
        Group {
            stack,
            size: t.size,
            count: t.count,
            bytes: t.bytes,
            domain: t.domain,
        }
    }

    /// `count` blocks of `size` bytes.
    pub fn blocks(stack: usize, size: u64, count: u64) -> Group {
        Group::of(stack, Trace::blocks(size, count, 0))
    }

    /// What the group stands for, unrounded: (bytes, blocks). With `rate`
    /// 0 the group itself; for a sampled snapshot the Horvitz–Thompson
    /// estimate memtrace prints everywhere (`crate::sampling`), each block
    /// taken as picked with the probability of its (mean) size.
    pub fn estimate(&self, rate: u64) -> (f64, f64) {
        if rate == 0 {
            return (self.bytes as f64, self.count as f64);
        }
        let p = sample_probability(self.size, rate);
        let p = if p > 0.0 { p } else { 1.0 };
        (self.bytes as f64 / p, self.count as f64 / p)
    }
}

impl Stacks {
    /// Symbolizes every stack of `dump` by the rules `crate::snapshot`
    /// applies (one implementation: [`StackSymbolizer`]), keeping each
    /// location.
    pub fn new(
        dump: &memtrace_format::Snapshot,
        table: &mut FrameTable,
        sym: &mut Symbolizer,
        rules: &FrameRules,
    ) -> Stacks {
        let mut symbolizer = StackSymbolizer::new(dump, table, sym, rules);
        // An address's kept frames depend on nothing else; its innermost
        // frame alone is another location.
        let mut loc_ids: HashMap<(Place, u64), u32> = HashMap::default();
        let mut locations: Vec<Location> = Vec::new();
        let mut stacks = Vec::with_capacity(dump.stacks.len());
        let mut by_id = HashMap::default();
        let mut progress =
            crate::progress::Progress::new("symbolizing stacks", dump.stacks.len() as u64);
        for st in &dump.stacks {
            progress.step();
            let mut locs: Vec<u32> = Vec::new();
            let mut frames: Vec<FrameId> = Vec::new();
            symbolizer.locations(&st.frames, |place, address, ids| {
                frames.extend_from_slice(ids);
                locs.push(*loc_ids.entry((place, address)).or_insert_with(|| {
                    locations.push(Location {
                        address,
                        module: (place != Place::Unknown)
                            .then(|| dump.modules.iter().position(|m| m.contains(address)))
                            .flatten(),
                        frames: ids.to_vec(),
                    });
                    locations.len() as u32 - 1
                }));
            });
            by_id.insert(st.id, stacks.len());
            stacks.push(Stack {
                locations: locs,
                frames,
                truncated: st.truncated,
            });
        }
        Stacks {
            locations,
            stacks,
            by_id,
        }
    }

    /// The non-empty groups of `view`, in the file's order, as
    /// `crate::snapshot` takes them; `None` when the file does not have it.
    pub fn view(&self, dump: &memtrace_format::Snapshot, view: View) -> Option<Vec<Group>> {
        let groups = view.available(dump).then(|| view.groups(dump))?;
        Some(
            groups
                .into_iter()
                .filter(|(_, t)| t.count > 0)
                .filter_map(|(stack, t)| Some(Group::of(*self.by_id.get(&stack)?, t)))
                .collect(),
        )
    }

    /// The groups `filters` let through (`Snapshot.filter_traces`: by
    /// the stack's kept frames and the group's domain).
    pub fn filter(
        &self,
        table: &FrameTable,
        filters: &mut FilterSet,
        groups: Vec<Group>,
    ) -> Vec<Group> {
        if filters.is_empty() {
            return groups;
        }
        let pass: Vec<FramesPass> = self
            .stacks
            .iter()
            .map(|s| filters.frames_pass(table, &s.frames))
            .collect();
        groups
            .into_iter()
            .filter(|g| filters.combine(pass[g.stack], g.domain))
            .collect()
    }
}

/// Rounds an estimate to an integer, as `crate::sampling` does.
pub fn round(v: f64) -> u64 {
    crate::sampling::round_estimate(v)
}
