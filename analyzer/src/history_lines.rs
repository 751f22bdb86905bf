//! The top lines of a history over time, for `memtrace plot HISTORY`: each
//! point's group changes say how each line's live bytes moved, so a second
//! streaming pass over the file gives every line's bytes at every point
//! while holding only one counter per chosen line (memory bounded by the
//! stacks, not by the file's length).
//!
//! Which lines: the N with the most live bytes at the peak of traced memory
//! (heaptrack's "most memory at peak"): the lines a reader of a chart wants
//! named are those that made the highest point. When fewer than N lines had
//! bytes at the peak, the rest are those with the most at the last point
//! (lines that grew after the peak); a history written before format 1.1
//! has no peak groups, so all N are chosen that way. Lines are keyed as
//! `top` keys them (the allocating frame's file:line after the system
//! frames are dropped).

use crate::frame::{FrameRules, FrameTable};
use crate::snapshot::{self, View};
use crate::stats::{key_label, GroupKey};
use crate::symbolize::Symbolizer;
use crate::util::FxHashMap as HashMap;
use memtrace_format::history::{HistoryReader, Record};
use memtrace_format::{Snapshot, TraceGroup};
use std::io::BufReader;
use std::path::Path;

/// The chosen lines' live bytes over time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineSeries {
    /// `file:line` of each chosen line, the biggest (by the choice) first.
    pub labels: Vec<String>,
    /// The function each line is in, when known.
    pub functions: Vec<Option<String>>,
    /// (seconds from the start, bytes of each chosen line, bytes of every
    /// other line), in time order; starts at 0 with nothing.
    pub points: Vec<(f64, Vec<u64>, u64)>,
    /// Whether the history holds the peak's groups (format 1.1).
    pub peak_known: bool,
    /// How many of the lines (the first ones) were chosen by their bytes at
    /// the peak; the rest by their bytes at the last point.
    pub at_peak: usize,
}

impl LineSeries {
    /// Some line not chosen had live bytes at some point drawn.
    pub fn has_other(&self) -> bool {
        self.points.iter().any(|p| p.2 > 0)
    }
}

/// The line (`GroupKey::Loc`) of each stack of `dump`, as `top` keys it.
fn line_of_stacks(
    dump: &Snapshot,
    table: &mut FrameTable,
    sym: &mut Symbolizer,
    rules: &FrameRules,
) -> HashMap<u64, u32> {
    // One group per stack, so that the symbolized traces say which
    // traceback each stack became.
    let mut one_each = Snapshot {
        header: dump.header.clone(),
        modules: dump.modules.clone(),
        stacks: dump.stacks.clone(),
        traces: Vec::new(),
        ..Default::default()
    };
    one_each.traces = dump
        .stacks
        .iter()
        .map(|s| TraceGroup {
            stack: s.id,
            size: 1,
            count: 1,
        })
        .collect();
    let snap = snapshot::symbolize_views("", &one_each, table, sym, rules, &[View::Live])
        .pop()
        .flatten()
        .expect("the live view is always available");
    dump.stacks
        .iter()
        .zip(&snap.traces)
        .map(|(s, t)| {
            let first = snap.tracebacks[t.traceback as usize].frames[0];
            (s.id, table.frame(first).loc)
        })
        .collect()
}

/// Bytes per line of `groups`.
fn bytes_by_line(groups: &[TraceGroup], line: &HashMap<u64, u32>) -> HashMap<u32, u64> {
    let mut by: HashMap<u32, u64> = HashMap::default();
    for g in groups {
        if let Some(&l) = line.get(&g.stack) {
            *by.entry(l).or_insert(0) += g.size.saturating_mul(g.count);
        }
    }
    by
}

/// `by`'s lines, most bytes first (ties by file and line), those with none
/// left out.
fn ranked(by: HashMap<u32, u64>, table: &FrameTable) -> Vec<u32> {
    let mut v: Vec<(u32, u64)> = by.into_iter().filter(|&(_, b)| b > 0).collect();
    let label = |l: u32| (table.loc_filename(l), table.loc_lineno(l));
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| label(a.0).cmp(&label(b.0))));
    v.into_iter().map(|(l, _)| l).collect()
}

/// The `n` lines to draw from `dump` (the history's last point read),
/// biggest first: by their bytes at the peak, then, when fewer than `n`
/// had any there, by their bytes at the last point (lines that grew after
/// the peak); and how many were chosen at the peak.
fn choose(
    dump: &Snapshot,
    line: &HashMap<u64, u32>,
    table: &FrameTable,
    n: usize,
) -> (Vec<u32>, usize) {
    let mut chosen = match &dump.run.peak {
        Some(p) => ranked(bytes_by_line(&p.groups, line), table),
        None => Vec::new(),
    };
    chosen.truncate(n);
    let at_peak = chosen.len();
    for l in ranked(bytes_by_line(&dump.traces, line), table) {
        if chosen.len() >= n {
            break;
        }
        if !chosen.contains(&l) {
            chosen.push(l);
        }
    }
    (chosen, at_peak)
}

/// The top `n` lines of the history at `path` over time, up to the point
/// `dump` was read at. `Ok(None)` when no line has live bytes to draw.
pub fn series(
    path: &Path,
    dump: &Snapshot,
    n: usize,
    table: &mut FrameTable,
    sym: &mut Symbolizer,
    rules: &FrameRules,
) -> Result<Option<LineSeries>, String> {
    let Some(tl) = dump.run.timeline.as_ref() else {
        return Ok(None);
    };
    let line = line_of_stacks(dump, table, sym, rules);
    let (chosen, at_peak) = choose(dump, &line, table, n);
    if chosen.is_empty() {
        return Ok(None);
    }
    let slot: HashMap<u32, usize> = chosen.iter().enumerate().map(|(i, &l)| (l, i)).collect();
    // Stack → slot of its line, for the stacks of chosen lines only.
    let stack_slot: HashMap<u64, usize> = line
        .iter()
        .filter_map(|(&s, l)| slot.get(l).map(|&i| (s, i)))
        .collect();
    let secs = |t: u64| t.saturating_sub(tl.start_ns) as f64 / 1e9;
    let mut points = vec![(0.0, vec![0; chosen.len()], 0)];
    // The moments the chart's traced line has: the timeline's (decimated
    // as the reader keeps it) and the last point.
    let mut wanted: Vec<u64> = tl.points.iter().map(|p| p.time_ns).collect();
    wanted.push(dump.header.time_ns);
    let mut next = 0;
    let f = std::fs::File::open(path).map_err(|e| crate::util::io_msg(&e))?;
    let mut rd =
        HistoryReader::new(BufReader::with_capacity(1 << 16, f)).map_err(|e| e.to_string())?;
    let mut now = vec![0i128; chosen.len()];
    while let Some(rec) = rd.next_record().map_err(|e| e.to_string())? {
        let Record::Point(p) = rec else { continue };
        if p.seq > dump.header.seq || p.time_ns > dump.header.time_ns {
            break; // written after the point the dump was read at
        }
        for &(stack, size, delta) in &p.group_changes {
            if let Some(&i) = stack_slot.get(&stack) {
                // Saturating: a file changed since the first pass is
                // not checked again, and must not overflow.
                now[i] = now[i].saturating_add(size as i128 * delta as i128);
            }
        }
        if next < wanted.len() && p.time_ns >= wanted[next] {
            while next < wanted.len() && wanted[next] <= p.time_ns {
                next += 1;
            }
            let bytes: Vec<u64> = now
                .iter()
                .map(|&b| b.clamp(0, u64::MAX as i128) as u64)
                .collect();
            let other = p.traced_bytes.saturating_sub(bytes.iter().sum());
            points.push((secs(p.time_ns), bytes, other));
        }
    }
    // The exact peak between the points, as the traced line has it.
    if let Some(pk) = &dump.run.peak {
        let by = bytes_by_line(&pk.groups, &line);
        let bytes: Vec<u64> = chosen
            .iter()
            .map(|l| by.get(l).copied().unwrap_or(0))
            .collect();
        let other = pk.traced_bytes.saturating_sub(bytes.iter().sum());
        points.push((secs(pk.time_ns), bytes, other));
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let frames: HashMap<u32, u32> = {
        // A frame of each chosen line, for its function's name.
        let mut m = HashMap::default();
        for id in 0..table.len() as u32 {
            let l = table.frame(id).loc;
            if slot.contains_key(&l) {
                m.entry(l).or_insert(id);
            }
        }
        m
    };
    Ok(Some(LineSeries {
        labels: chosen
            .iter()
            .map(|&l| key_label(table, &GroupKey::Loc(l), &[]))
            .collect(),
        functions: chosen
            .iter()
            .map(|l| {
                frames
                    .get(l)
                    .and_then(|&id| table.frame(id).function.clone())
            })
            .collect(),
        points,
        peak_known: dump.run.peak.is_some(),
        at_peak,
    }))
}
