//! Exports for the clients people already use: pprof's profile.proto
//! ([`pprof`]), CPython's `tracemalloc.Snapshot` pickle ([`pickle`]) and
//! flame graphs ([`flame`]).
//!
//! They share one model, [`Stacks`]: a dump symbolized the way
//! [`crate::snapshot`] does it (the same interned frames, the same system
//! frames dropped, so every figure equals `memtrace top`'s), but keeping
//! what pprof needs and a `Snapshot` flattens away: each return address as
//! a location with its inline frames. The exporters take lists of
//! [`Group`]s — (stack, bytes, count, domain) — so any view of a dump (live
//! blocks, the peak, the totals since the start) exports the same way; the
//! filters are applied to the lists before (`Stacks::filter`).

pub mod flame;
pub mod pickle;
pub mod pprof;

use crate::filter::{FilterSet, FramesPass};
use crate::frame::{FrameId, FrameRules, FrameTable};
use crate::sampling::sample_probability;
use crate::symbolize::Symbolizer;
use crate::util::FxHashMap as HashMap;
use memtrace_format::Module;

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
    /// `count` blocks of `size` bytes.
    pub fn blocks(stack: usize, size: u64, count: u64) -> Group {
        Group {
            stack,
            size,
            count,
            bytes: size.saturating_mul(count),
            domain: 0,
        }
    }

    /// `count` blocks of `bytes` bytes in all (their mean size, rounded,
    /// stands for each block's in the sampling estimate).
    pub fn sum(stack: usize, bytes: u64, count: u64) -> Group {
        let size = if count == 0 {
            0
        } else {
            ((bytes as u128 + count as u128 / 2) / count as u128) as u64
        };
        Group {
            stack,
            size,
            count,
            bytes,
            domain: 0,
        }
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
    /// Symbolizes every stack of `dump`, dropping the frames `rules` call
    /// the system's exactly as `snapshot::symbolize_dump` does.
    pub fn new(
        dump: &memtrace_format::Snapshot,
        table: &mut FrameTable,
        sym: &mut Symbolizer,
        rules: &FrameRules,
    ) -> Stacks {
        let modules: &[Module] = &dump.modules;
        // Per address: its module, all its frames, the frames kept.
        struct Addr {
            module: Option<usize>,
            all: Vec<FrameId>,
            kept: Vec<FrameId>,
        }
        let mut by_addr: HashMap<u64, Addr> = HashMap::default();
        // (address, 0 its kept frames | 1 the innermost-frame fallback |
        // 2 a stack without frames) → location id: an address's kept
        // frames depend on nothing else.
        let mut loc_ids: HashMap<(u64, u8), u32> = HashMap::default();
        let mut locations: Vec<Location> = Vec::new();
        let mut stacks = Vec::with_capacity(dump.stacks.len());
        let mut by_id = HashMap::default();
        let mut progress =
            crate::progress::Progress::new("symbolizing stacks", dump.stacks.len() as u64);
        for st in &dump.stacks {
            progress.step();
            let mut locs: Vec<u32> = Vec::new();
            let mut frames: Vec<FrameId> = Vec::new();
            for &addr in &st.frames {
                let a = by_addr.entry(addr).or_insert_with(|| {
                    let all: Vec<FrameId> = sym
                        .symbolize(modules, addr)
                        .iter()
                        .map(|f| table.intern_sym(f, rules))
                        .collect();
                    let kept = all
                        .iter()
                        .copied()
                        .filter(|&id| rules.keep_all || !table.frame(id).system)
                        .collect();
                    Addr {
                        module: modules.iter().position(|m| m.contains(addr)),
                        all,
                        kept,
                    }
                });
                if a.kept.is_empty() {
                    continue;
                }
                frames.extend_from_slice(&a.kept);
                locs.push(*loc_ids.entry((addr, 0)).or_insert_with(|| {
                    locations.push(Location {
                        address: addr,
                        module: a.module,
                        frames: a.kept.clone(),
                    });
                    locations.len() as u32 - 1
                }));
            }
            if frames.is_empty() {
                // As the snapshot does: the innermost frame stays, or
                // tracemalloc's `<unknown>` for a stack with no frame at all.
                let addr = st.frames.first().copied();
                let found = addr.and_then(|x| by_addr.get(&x));
                let kind = if found.is_some() { 1 } else { 2 };
                let loc = match found {
                    Some(a) => Location {
                        address: addr.unwrap_or(0),
                        module: a.module,
                        frames: vec![a.all[0]],
                    },
                    None => Location {
                        address: 0,
                        module: None,
                        frames: vec![table.intern_location("<unknown>", 0)],
                    },
                };
                frames.push(loc.frames[0]);
                locs.push(*loc_ids.entry((loc.address, kind)).or_insert_with(|| {
                    locations.push(loc);
                    locations.len() as u32 - 1
                }));
            }
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

    /// The live blocks (TRACES): one group per (domain, stack, size).
    pub fn live(&self, dump: &memtrace_format::Snapshot) -> Vec<Group> {
        let domain = |i: usize| dump.domains.get(i).copied().unwrap_or(0);
        dump.traces
            .iter()
            .enumerate()
            .filter(|(_, g)| g.count > 0)
            .filter_map(|(i, g)| {
                let stack = *self.by_id.get(&g.stack)?;
                Some(Group {
                    domain: domain(i),
                    ..Group::blocks(stack, g.size, g.count)
                })
            })
            .collect()
    }

    /// The live blocks at the peak (PEAK, format 1.2), if the file has it.
    pub fn peak(&self, dump: &memtrace_format::Snapshot) -> Option<Vec<Group>> {
        dump.run.peak.as_ref().map(|p| self.groups_of(&p.groups))
    }

    /// Every allocation since the start, per stack (TOTALS, format 1.2);
    /// `None` for a file without the whole-run sections.
    pub fn allocated(&self, dump: &memtrace_format::Snapshot) -> Option<Vec<Group>> {
        self.totals(dump, |t| (t.alloc_bytes, t.allocs))
    }

    /// The temporary allocations since the start, per stack (TOTALS).
    pub fn temporary(&self, dump: &memtrace_format::Snapshot) -> Option<Vec<Group>> {
        self.totals(dump, |t| (t.temporary_bytes, t.temporary))
    }

    fn totals(
        &self,
        dump: &memtrace_format::Snapshot,
        pick: impl Fn(&memtrace_format::StackTotals) -> (u64, u64),
    ) -> Option<Vec<Group>> {
        let r = &dump.run;
        // TOTALS may be empty (nothing allocated yet); a writer that keeps
        // the whole run writes the other sections too.
        if r.totals.is_empty() && r.peak.is_none() && r.timeline.is_none() && r.memory.is_none() {
            return None;
        }
        Some(
            r.totals
                .iter()
                .filter_map(|t| {
                    let (bytes, count) = pick(t);
                    let s = *self.by_id.get(&t.stack)?;
                    (count > 0).then(|| Group::sum(s, bytes, count))
                })
                .collect(),
        )
    }

    /// The groups of `view`; `None` when the file does not have it.
    pub fn view(&self, dump: &memtrace_format::Snapshot, view: View) -> Option<Vec<Group>> {
        match view {
            View::Live => Some(self.live(dump)),
            View::Peak => self.peak(dump),
            View::Allocated => self.allocated(dump),
            View::Temporary => self.temporary(dump),
        }
    }

    fn groups_of(&self, groups: &[memtrace_format::TraceGroup]) -> Vec<Group> {
        groups
            .iter()
            .filter(|g| g.count > 0)
            .filter_map(|g| Some(Group::blocks(*self.by_id.get(&g.stack)?, g.size, g.count)))
            .collect()
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
