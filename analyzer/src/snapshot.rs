//! Snapshots: a dump file read, checked and symbolized into `Trace`s whose
//! `Traceback`s hold interned `Frame`s (see [`crate::frame`]), most recent
//! call first (the order of tracemalloc's raw traces). The system frames
//! `FrameRules` name are dropped here, before anything else sees a
//! traceback.
//!
//! A [`View`] picks which of the dump's groups become the `Snapshot`'s
//! traces: the live blocks (TRACES), the live blocks at the peak (PEAK), or
//! the per-stack totals since the start (TOTALS: every allocation, or the
//! temporary ones). A totals view is a snapshot whose trace per stack is
//! "`allocs` blocks of `alloc_bytes` bytes in all", so every statistic,
//! key, filter and cumulative mode works on it unchanged.

mod stacks;

pub use crate::frame::{Frame, FrameId, FrameRules, FrameTable};
use crate::sampling;
use crate::symbolize::Symbolizer;
use crate::util::FxHashMap as HashMap;
use memtrace_format::Header;
pub use stacks::{Place, StackSymbolizer};
use std::path::Path;
use std::rc::Rc;

/// A stored traceback: frames most recent call first.
#[derive(Clone, Debug)]
pub struct Traceback {
    /// The frames kept (the user's frames unless system frames are kept).
    pub frames: Rc<[FrameId]>,
    /// The stack was deeper than the frame limit and was cut.
    pub truncated: bool,
}

/// `count` blocks of `size` bytes allocated at `traceback` (an index into
/// `Snapshot::tracebacks`). A group of count c is c tracemalloc traces.
#[derive(Clone, Copy, Debug)]
pub struct Trace {
    /// Bytes of one block; in a totals view the blocks' mean size (rounded),
    /// which only the sampling estimate uses.
    pub size: u64,
    pub count: u64,
    pub traceback: u32,
    /// Bytes of the whole group: `size × count` (saturating) for blocks of
    /// one size; in a totals view the exact sum the file records.
    pub bytes: u64,
    /// tracemalloc's `Trace.domain`: 0 the malloc heap, other a custom
    /// allocator's objects (`memtrace_track`, format 1.4 DOMAINS). The
    /// whole-run views are the heap's alone.
    pub domain: u32,
}

impl Trace {
    /// `count` blocks of `size` bytes each.
    pub fn blocks(size: u64, count: u64, traceback: u32) -> Trace {
        Trace {
            size,
            count,
            traceback,
            bytes: size.saturating_mul(count),
            domain: 0,
        }
    }

    /// `count` blocks of `bytes` bytes in all (sizes may differ).
    pub fn sum(bytes: u64, count: u64, traceback: u32) -> Trace {
        let size = if count == 0 {
            0
        } else {
            ((bytes as u128 + count as u128 / 2) / count as u128) as u64
        };
        Trace {
            size,
            count,
            traceback,
            bytes,
            domain: 0,
        }
    }
}

/// Which groups of a dump a `Snapshot` holds as its traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum View {
    /// The live blocks at the snapshot moment (TRACES): tracemalloc's snapshot.
    #[default]
    Live,
    /// The live blocks at the moment traced memory peaked (PEAK, 1.2).
    Peak,
    /// Per stack, every allocation since the start, freed or not (TOTALS,
    /// 1.2): count = allocations, size = their bytes.
    Allocated,
    /// Per stack, the temporary allocations since the start (TOTALS, 1.2).
    Temporary,
}

impl View {
    /// How titles and messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            View::Live => "live",
            View::Peak => "live at the peak",
            View::Allocated => "allocated since the start",
            View::Temporary => "allocated temporarily since the start",
        }
    }

    /// The name JSON documents use.
    pub fn name(self) -> &'static str {
        match self {
            View::Live => "live",
            View::Peak => "peak",
            View::Allocated => "allocated",
            View::Temporary => "temporary",
        }
    }

    /// Whether the dump holds what this view needs (a file written before
    /// format 1.2 has no whole-run section).
    pub fn available(self, dump: &memtrace_format::Snapshot) -> bool {
        match self {
            View::Live => true,
            View::Peak => dump.run.peak.is_some(),
            // TOTALS may be empty (nothing allocated yet); a writer that
            // keeps the whole run always writes the other sections too.
            View::Allocated | View::Temporary => has_whole_run(dump),
        }
    }

    /// The view's groups as `(stack, trace)` with the trace's traceback
    /// unset, empty ones included (the dump's order: the exports keep it).
    pub fn groups(self, dump: &memtrace_format::Snapshot) -> Vec<(u64, Trace)> {
        let live = |g: &memtrace_format::TraceGroup| (g.stack, Trace::blocks(g.size, g.count, 0));
        match self {
            View::Live => dump
                .traces
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let (stack, t) = live(g);
                    let domain = dump.domains.get(i).copied().unwrap_or(0);
                    (stack, Trace { domain, ..t })
                })
                .collect(),
            View::Peak => dump
                .run
                .peak
                .iter()
                .flat_map(|p| p.groups.iter().map(live))
                .collect(),
            View::Allocated => dump
                .run
                .totals
                .iter()
                .map(|t| (t.stack, Trace::sum(t.alloc_bytes, t.allocs, 0)))
                .collect(),
            View::Temporary => dump
                .run
                .totals
                .iter()
                .map(|t| (t.stack, Trace::sum(t.temporary_bytes, t.temporary, 0)))
                .collect(),
        }
    }
}

/// What the live groups of a custom allocator's domain (format 1.4,
/// `memtrace_track`) add up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DomainTotal {
    pub blocks: u64,
    pub domain: u32,
    pub size: u64,
    /// Distinct stacks of its groups.
    pub stacks: usize,
}

/// The live groups per domain other than 0, by domain. These objects sit
/// inside blocks of the malloc heap (the pool's chunks), which count their
/// bytes already: `stats` and `summary` list them apart, never added to
/// the heap's.
pub fn domain_totals(dump: &memtrace_format::Snapshot) -> Vec<DomainTotal> {
    let mut by: std::collections::BTreeMap<u32, (u64, u64, Vec<u64>)> = Default::default();
    for (g, &d) in dump.traces.iter().zip(&dump.domains) {
        if d != 0 && g.count > 0 {
            let e = by.entry(d).or_default();
            e.0 = e.0.saturating_add(g.count);
            e.1 = e.1.saturating_add(g.size.saturating_mul(g.count));
            e.2.push(g.stack);
        }
    }
    by.into_iter()
        .map(|(domain, (blocks, size, mut stacks))| {
            stacks.sort_unstable();
            stacks.dedup();
            DomainTotal {
                domain,
                blocks,
                size,
                stacks: stacks.len(),
            }
        })
        .collect()
}

/// The live groups of the malloc heap (domain 0) as (size, count).
pub fn heap_groups(dump: &memtrace_format::Snapshot) -> impl Iterator<Item = (u64, u64)> + '_ {
    dump.traces
        .iter()
        .enumerate()
        .filter(|&(i, _)| dump.domains.get(i).copied().unwrap_or(0) == 0)
        .map(|(_, t)| (t.size, t.count))
}

/// Whether the dump has any whole-run section (format 1.2).
pub fn has_whole_run(dump: &memtrace_format::Snapshot) -> bool {
    let r = &dump.run;
    r.peak.is_some() || !r.totals.is_empty() || r.timeline.is_some() || r.memory.is_some()
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The file it was read from.
    pub path: String,
    pub header: Option<Header>,
    pub module_count: usize,
    pub traces: Vec<Trace>,
    pub tracebacks: Vec<Traceback>,
    /// Which of the dump's groups `traces` holds.
    pub view: View,
}

impl Snapshot {
    /// A snapshot made of raw traces `(size, count, frames most recent first)`.
    pub fn from_traces(traces: Vec<(u64, u64, Vec<FrameId>)>) -> Snapshot {
        let mut tbs: HashMap<Vec<FrameId>, u32> = HashMap::default();
        let mut tracebacks = Vec::new();
        let mut out = Vec::new();
        for (size, count, frames) in traces {
            let idx = *tbs.entry(frames.clone()).or_insert_with(|| {
                tracebacks.push(Traceback {
                    frames: frames.into(),
                    truncated: false,
                });
                tracebacks.len() as u32 - 1
            });
            out.push(Trace::blocks(size, count, idx));
        }
        Snapshot {
            path: String::new(),
            header: None,
            module_count: 0,
            traces: out,
            tracebacks,
            view: View::Live,
        }
    }

    /// Mean bytes between samples (the header's `sample_rate`); 0 when every
    /// allocation was recorded.
    pub fn sample_rate(&self) -> u64 {
        self.header.as_ref().map(|h| h.sample_rate).unwrap_or(0)
    }

    /// The path of the allocator that bypassed the hooks, if the header names one.
    pub fn malloc_owner(&self) -> Option<String> {
        self.header
            .as_ref()
            .filter(|h| !h.malloc_owner.is_empty())
            .map(|h| String::from_utf8_lossy(&h.malloc_owner).into_owned())
    }

    /// Total size and block count (saturating); for a sampled snapshot the
    /// rounded estimates (see [`sampling::totals`]).
    pub fn totals(&self) -> (u64, u64) {
        sampling::totals_of(
            self.traces.iter().map(|t| (t.size, t.count, t.bytes)),
            self.sample_rate(),
        )
    }

    /// `totals` of the malloc heap's traces (domain 0) alone: the objects
    /// of custom allocators lie inside heap blocks already counted.
    pub fn heap_totals(&self) -> (u64, u64) {
        sampling::totals_of(
            self.traces
                .iter()
                .filter(|t| t.domain == 0)
                .map(|t| (t.size, t.count, t.bytes)),
            self.sample_rate(),
        )
    }
}

/// A load failure, printed as `memtrace: FILE: message`.
#[derive(Debug)]
pub struct LoadError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for LoadError {}

/// Reads and checks a dump (no symbolization).
pub fn read_dump(path: &Path) -> Result<memtrace_format::Snapshot, LoadError> {
    let err = |message: String| LoadError {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(crate::util::io_msg(&e)))?;
    if meta.is_dir() {
        return Err(err("is a directory".into()));
    }
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if crate::history::is_history(path) {
        return crate::history::read(path).map_err(err);
    }
    crate::history::check_no_selection().map_err(err)?;
    let bytes = std::fs::read(path).map_err(|e| err(crate::util::io_msg(&e)))?;
    if bytes.is_empty() {
        return Err(err("empty file (not a memtrace snapshot)".into()));
    }
    memtrace_format::decode(&bytes).map_err(|e| err(e.to_string()))
}

/// Symbolizes a decoded dump into a `Snapshot` of its live blocks.
pub fn symbolize_dump(
    path: &str,
    dump: &memtrace_format::Snapshot,
    table: &mut FrameTable,
    sym: &mut Symbolizer,
    rules: &FrameRules,
) -> Snapshot {
    symbolize_views(path, dump, table, sym, rules, &[View::Live])
        .pop()
        .flatten()
        .expect("the live view is always available")
}

/// Symbolizes a decoded dump once into a `Snapshot` per view asked for
/// (`None` for a view the dump cannot give: see [`View::available`]).
pub fn symbolize_views(
    path: &str,
    dump: &memtrace_format::Snapshot,
    table: &mut FrameTable,
    sym: &mut Symbolizer,
    rules: &FrameRules,
    views: &[View],
) -> Vec<Option<Snapshot>> {
    let mut stacks = StackSymbolizer::new(dump, table, sym, rules);
    // Keyed by the traceback's own frames (one copy of each).
    let mut tb_ids: HashMap<Rc<[FrameId]>, u32> = HashMap::default();
    let mut tracebacks: Vec<Traceback> = Vec::new();
    let mut stack_tb: HashMap<u64, u32> = HashMap::default();
    // The views' groups; only the stacks they name are symbolized (a 1.2
    // file also holds the stacks of the peak and of the totals, which can
    // be many more than the live ones).
    let groups: Vec<Option<Vec<(u64, Trace)>>> = views
        .iter()
        .map(|&v| v.available(dump).then(|| v.groups(dump)))
        .collect();
    let needed: std::collections::HashSet<u64, crate::util::FxBuild> = groups
        .iter()
        .flatten()
        .flatten()
        .filter(|(_, t)| t.count > 0)
        .map(|&(stack, _)| stack)
        .collect();
    let mut progress = crate::progress::Progress::new("symbolizing stacks", needed.len() as u64);
    for st in dump.stacks.iter().filter(|st| needed.contains(&st.id)) {
        progress.step();
        let mut frames: Vec<FrameId> = Vec::with_capacity(st.frames.len() * 2);
        stacks.locations(&st.frames, |_, _, ids| frames.extend_from_slice(ids));
        // Identical kept frames with different truncation flags stay apart.
        let idx = match tb_ids.get(frames.as_slice()) {
            Some(&i) if tracebacks[i as usize].truncated == st.truncated => i,
            _ => {
                let frames: Rc<[FrameId]> = frames.into();
                tracebacks.push(Traceback {
                    frames: frames.clone(),
                    truncated: st.truncated,
                });
                let i = tracebacks.len() as u32 - 1;
                tb_ids.insert(frames, i);
                i
            }
        };
        stack_tb.insert(st.id, idx);
    }
    views
        .iter()
        .zip(groups)
        .map(|(&view, groups)| {
            let traces = groups?
                .into_iter()
                .filter(|(_, t)| t.count > 0)
                .map(|(stack, t)| Trace {
                    traceback: stack_tb[&stack],
                    ..t
                })
                .collect();
            Some(Snapshot {
                path: path.to_string(),
                header: Some(dump.header.clone()),
                module_count: dump.modules.len(),
                traces,
                tracebacks: tracebacks.clone(),
                view,
            })
        })
        .collect()
}

/// Reads, checks and symbolizes a snapshot file (its live blocks).
pub fn load(
    path: &Path,
    table: &mut FrameTable,
    sym: &mut Symbolizer,
    rules: &FrameRules,
) -> Result<Snapshot, LoadError> {
    let dump = read_dump(path)?;
    Ok(symbolize_dump(
        &path.display().to_string(),
        &dump,
        table,
        sym,
        rules,
    ))
}
