//! (1.2) What the writer keeps about the whole run, up to the snapshot
//! moment: the exact peak, totals per stack since the start, memory over
//! time, and the heap against RSS. Four sections, each optional (a 1.1 file
//! has none; a writer that could not measure RSS leaves MEMORY out).
//!
//! The writer sees every event in the global order, so it keeps these as
//! it goes instead of replaying an event log afterwards (heaptrack's way,
//! whose interpreter runs out of memory on long runs): every structure here
//! is bounded by the number of stacks and groups, never by the run's length.

use crate::varint::{put_u64, Reader};
use crate::{FormatError, TraceGroup};

/// Everything the four whole-run sections hold.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WholeRun {
    /// PEAK: the live set at the moment traced bytes were highest.
    pub peak: Option<Peak>,
    /// TOTALS: per stack, every allocation and free since the start.
    pub totals: Vec<StackTotals>,
    /// TIMELINE: traced bytes and RSS over time.
    pub timeline: Option<Timeline>,
    /// MEMORY: RSS and glibc's heap at the snapshot moment.
    pub memory: Option<MemoryUse>,
}

/// The live groups at the moment traced bytes reached their highest value
/// so far: the first event (in the global order) that took them there.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Peak {
    /// Wall-clock time the writer applied that event, ns since the epoch
    /// (the event itself carries no clock: within the writer's batch, ≤ 1 ms).
    pub time_ns: u64,
    /// The key of the event that reached the peak (docs/FORMAT.md, seq).
    pub event: u64,
    /// Traced bytes then; equals the sum of `groups`' size × count.
    pub traced_bytes: u64,
    pub groups: Vec<TraceGroup>,
}

/// One stack's allocations since the start (every one, freed or not).
/// realloc counts as one allocation and one free.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StackTotals {
    pub stack: u64,
    pub allocs: u64,
    pub alloc_bytes: u64,
    /// Frees of blocks allocated at this stack.
    pub frees: u64,
    pub freed_bytes: u64,
    /// Temporary allocations: freed while still the most recent allocation
    /// of the thread that made it (heaptrack's definition, per thread).
    pub temporary: u64,
    pub temporary_bytes: u64,
}

/// Memory over time, from the start of tracing. The writer keeps at most
/// `MAX_POINTS_IN_TIMELINE` points: when full it drops every other one and doubles its
/// interval, so a run of any length fits, at coarser resolution.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Timeline {
    /// When tracing started, ns since the epoch.
    pub start_ns: u64,
    /// The interval the points are now taken at, ns.
    pub interval_ns: u64,
    /// In time order.
    pub points: Vec<TimePoint>,
    /// Snapshots written before this one, in time order.
    pub snapshots: Vec<SnapshotMark>,
}

/// Most points a timeline holds.
pub const MAX_POINTS_IN_TIMELINE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TimePoint {
    /// ns since the epoch.
    pub time_ns: u64,
    pub traced_bytes: u64,
    /// Resident set size of the process then (0 when unknown).
    pub rss_bytes: u64,
}

/// A snapshot already written: its index n (`<prefix>.<n>.snap`) and moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SnapshotMark {
    pub index: u64,
    pub time_ns: u64,
}

/// Where the process's memory was at the snapshot moment: RSS from
/// /proc/self/status, glibc's heap from `mallinfo2()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemoryUse {
    /// VmRSS.
    pub rss_bytes: u64,
    /// VmHWM: the highest RSS since the start.
    pub rss_peak_bytes: u64,
    /// mallinfo2 `arena`: bytes glibc obtained with brk/mmap for its arenas.
    pub heap_arena_bytes: u64,
    /// mallinfo2 `fordblks`: free bytes inside those arenas (kept, not returned).
    pub heap_free_bytes: u64,
    /// mallinfo2 `hblkhd`: bytes in blocks glibc mmapped on their own.
    pub heap_mmap_bytes: u64,
}

pub mod tag {
    pub const PEAK: u8 = 0x05;
    pub const TOTALS: u8 = 0x06;
    pub const TIMELINE: u8 = 0x07;
    pub const MEMORY: u8 = 0x08;
}

// ---------------------------------------------------------------- encoding

pub(crate) fn encode_peak(p: &Peak) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.groups.len() * 6 + 32);
    for v in [p.time_ns, p.event, p.traced_bytes] {
        put_u64(&mut out, v);
    }
    crate::encode_trace_groups(&mut out, &p.groups);
    out
}

pub(crate) fn encode_totals(totals: &[StackTotals]) -> Vec<u8> {
    let mut out = Vec::with_capacity(totals.len() * 12 + 8);
    put_u64(&mut out, totals.len() as u64);
    for t in totals {
        for v in [
            t.stack,
            t.allocs,
            t.alloc_bytes,
            t.frees,
            t.freed_bytes,
            t.temporary,
            t.temporary_bytes,
        ] {
            put_u64(&mut out, v);
        }
    }
    out
}

/// Times are deltas from the previous point (or from `start_ns`): a few
/// bytes a point.
pub(crate) fn encode_timeline(t: &Timeline) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.points.len() * 8 + 32);
    put_u64(&mut out, t.start_ns);
    put_u64(&mut out, t.interval_ns);
    put_u64(&mut out, t.points.len() as u64);
    let mut prev = t.start_ns;
    for p in &t.points {
        put_u64(&mut out, p.time_ns.wrapping_sub(prev));
        put_u64(&mut out, p.traced_bytes);
        put_u64(&mut out, p.rss_bytes);
        prev = p.time_ns;
    }
    put_u64(&mut out, t.snapshots.len() as u64);
    for m in &t.snapshots {
        put_u64(&mut out, m.index);
        put_u64(&mut out, m.time_ns);
    }
    out
}

pub(crate) fn encode_memory(m: &MemoryUse) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    for v in [
        m.rss_bytes,
        m.rss_peak_bytes,
        m.heap_arena_bytes,
        m.heap_free_bytes,
        m.heap_mmap_bytes,
    ] {
        put_u64(&mut out, v);
    }
    out
}

// ---------------------------------------------------------------- decoding

pub(crate) fn decode_peak(r: &mut Reader) -> Result<Peak, FormatError> {
    let time_ns = r.u64()?;
    let event = r.u64()?;
    let traced_bytes = r.u64()?;
    let groups = crate::decode_trace_groups(r)?;
    Ok(Peak {
        time_ns,
        event,
        traced_bytes,
        groups,
    })
}

pub(crate) fn decode_totals(r: &mut Reader) -> Result<Vec<StackTotals>, FormatError> {
    let n = r.count(7, "totals count past end")?;
    let mut totals = Vec::with_capacity(n);
    for _ in 0..n {
        let t = StackTotals {
            stack: r.u64()?,
            allocs: r.u64()?,
            alloc_bytes: r.u64()?,
            frees: r.u64()?,
            freed_bytes: r.u64()?,
            temporary: r.u64()?,
            temporary_bytes: r.u64()?,
        };
        if t.frees > t.allocs || t.temporary > t.frees {
            return Err(FormatError::Corrupt("totals: more frees than allocations"));
        }
        totals.push(t);
    }
    Ok(totals)
}

pub(crate) fn decode_timeline(r: &mut Reader) -> Result<Timeline, FormatError> {
    let start_ns = r.u64()?;
    let interval_ns = r.u64()?;
    let n = r.count(3, "time point count past end")?;
    let mut points = Vec::with_capacity(n);
    let mut time_ns = start_ns;
    for _ in 0..n {
        time_ns = time_ns
            .checked_add(r.u64()?)
            .ok_or(FormatError::Corrupt("time point out of range"))?;
        points.push(TimePoint {
            time_ns,
            traced_bytes: r.u64()?,
            rss_bytes: r.u64()?,
        });
    }
    let n = r.count(2, "snapshot mark count past end")?;
    let mut snapshots = Vec::with_capacity(n);
    for _ in 0..n {
        snapshots.push(SnapshotMark {
            index: r.u64()?,
            time_ns: r.u64()?,
        });
    }
    Ok(Timeline {
        start_ns,
        interval_ns,
        points,
        snapshots,
    })
}

pub(crate) fn decode_memory(r: &mut Reader) -> Result<MemoryUse, FormatError> {
    Ok(MemoryUse {
        rss_bytes: r.u64()?,
        rss_peak_bytes: r.u64()?,
        heap_arena_bytes: r.u64()?,
        heap_free_bytes: r.u64()?,
        heap_mmap_bytes: r.u64()?,
    })
}

/// Cross-references against the file's sorted stack ids.
pub(crate) fn validate(run: &WholeRun, sorted_ids: &[u64]) -> Result<(), FormatError> {
    let known = |id: u64| sorted_ids.binary_search(&id).is_ok();
    if let Some(p) = &run.peak {
        if p.groups.iter().any(|g| !known(g.stack)) {
            return Err(FormatError::Corrupt("peak refers to an unknown stack"));
        }
        let sum = p.groups.iter().try_fold(0u64, |acc, g| {
            g.size.checked_mul(g.count).and_then(|b| acc.checked_add(b))
        });
        if sum != Some(p.traced_bytes) {
            return Err(FormatError::Corrupt("peak bytes differ from its groups"));
        }
    }
    if run.totals.iter().any(|t| !known(t.stack)) {
        return Err(FormatError::Corrupt("totals refer to an unknown stack"));
    }
    if run.totals.windows(2).any(|w| w[0].stack >= w[1].stack) {
        return Err(FormatError::Corrupt("totals not sorted by stack"));
    }
    Ok(())
}
