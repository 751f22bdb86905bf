//! `memtrace summary`: the whole run on one screen, as heaptrack_print
//! closes its report, and more: run time, calls to the allocation
//! functions, temporaries, the peak and when, RSS and where it goes, and
//! the top lines at the peak, by allocations, by temporaries and now.
//!
//! Every figure about blocks is scaled like the live set for a sampled
//! snapshot (and marked "estimated"); RSS and glibc's heap are measured,
//! never sampled. A file written before format 1.2 has none of the
//! whole-run sections: what needs them says it needs a newer libtrace.so.

use super::json::{write_json, StatisticJson};
use super::session::Session;
use super::{CommonArgs, Failure};
use crate::display::{sampling_note, TEMPORARY_SAMPLED};
use crate::format::{format_size, statistic_str};
use crate::frame::FrameTable;
use crate::sampling;
use crate::snapshot::{has_whole_run, Snapshot, Trace, View};
use crate::stats::{self, KeyType, Statistic};
use memtrace_format::SnapshotKind;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// What a line says when the file has no whole-run section.
const NEEDS_NEWER: &str = "needs a newer libtrace.so (format 1.2)";
/// What a line says when the file has whole-run sections but not this one
/// (a writer that could not measure RSS leaves MEMORY out).
const NOT_RECORDED: &str = "not recorded in this snapshot";

/// The whole-run numbers of a dump, scaled when it is sampled.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RunNumbers {
    /// Seconds from the start of tracing to the snapshot (TIMELINE).
    pub run_time_s: Option<f64>,
    /// Seconds from the start of tracing to the peak (PEAK and TIMELINE).
    pub peak_after_s: Option<f64>,
    /// (bytes, blocks) at the peak (PEAK).
    pub peak: Option<(u64, u64)>,
    /// Since the start (TOTALS): allocations (bytes, count), frees, temporaries.
    pub allocated: Option<(u64, u64)>,
    pub freed: Option<(u64, u64)>,
    pub temporary: Option<(u64, u64)>,
}

/// Σ over the stacks' totals of `(bytes, count)` picked by `f`, as a
/// totals view scales them (see `snapshot::Trace::sum`).
fn sum_totals(
    dump: &memtrace_format::Snapshot,
    rate: u64,
    f: impl Fn(&memtrace_format::StackTotals) -> (u64, u64),
) -> (u64, u64) {
    sampling::totals_of(
        dump.run.totals.iter().map(|t| {
            let (bytes, count) = f(t);
            let tr = Trace::sum(bytes, count, 0);
            (tr.size, tr.count, tr.bytes)
        }),
        rate,
    )
}

impl RunNumbers {
    /// Scaled by the snapshot's sample rate (exact when it is 0).
    pub fn of(dump: &memtrace_format::Snapshot) -> RunNumbers {
        RunNumbers::with_rate(dump, dump.header.sample_rate)
    }

    /// `rate` 0: the sums the file holds, unscaled.
    pub fn with_rate(dump: &memtrace_format::Snapshot, rate: u64) -> RunNumbers {
        let run = &dump.run;
        let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
        let start = run.timeline.as_ref().map(|t| t.start_ns);
        let whole = has_whole_run(dump);
        RunNumbers {
            run_time_s: start.map(|s| secs(s, dump.header.time_ns)),
            peak_after_s: run
                .peak
                .as_ref()
                .zip(start)
                .map(|(p, s)| secs(s, p.time_ns)),
            peak: run
                .peak
                .as_ref()
                .map(|p| sampling::totals(p.groups.iter().map(|g| (g.size, g.count)), rate)),
            allocated: whole.then(|| sum_totals(dump, rate, |t| (t.alloc_bytes, t.allocs))),
            freed: whole.then(|| sum_totals(dump, rate, |t| (t.freed_bytes, t.frees))),
            temporary: whole.then(|| sum_totals(dump, rate, |t| (t.temporary_bytes, t.temporary))),
        }
    }
}

/// Where RSS goes (MEMORY, with the traced bytes); signed where glibc's
/// figures and the traced bytes need not agree.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(super) struct MemoryJson {
    /// heap − traced: allocator overhead and free memory glibc keeps.
    pub allocator_overhead_and_free: i64,
    pub heap_arena: u64,
    pub heap_free: u64,
    pub heap_mmap: u64,
    /// RSS − heap: memory the program maps otherwise (and memtrace's own).
    pub other: i64,
    pub rss: u64,
    pub rss_peak: u64,
    pub traced: u64,
}

impl MemoryJson {
    pub fn new(m: &memtrace_format::MemoryUse, traced: u64) -> MemoryJson {
        let heap = m.heap_arena_bytes as i128 + m.heap_mmap_bytes as i128;
        let clamp = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        MemoryJson {
            allocator_overhead_and_free: clamp(heap - traced as i128),
            heap_arena: m.heap_arena_bytes,
            heap_free: m.heap_free_bytes,
            heap_mmap: m.heap_mmap_bytes,
            other: clamp(m.rss_bytes as i128 - heap),
            rss: m.rss_bytes,
            rss_peak: m.rss_peak_bytes,
            traced,
        }
    }
}

#[derive(Serialize)]
struct SizeCount {
    count: u64,
    size: u64,
}

#[derive(Serialize)]
struct PeakSummary {
    count: Option<u64>,
    seconds_after_start: Option<f64>,
    size: u64,
}

#[derive(Serialize)]
struct TemporarySummary {
    count: u64,
    percent_of_calls: Option<f64>,
    size: u64,
}

#[derive(Serialize)]
struct TopLists<'a> {
    allocated: Option<Vec<StatisticJson<'a>>>,
    now: Vec<StatisticJson<'a>>,
    peak: Option<Vec<StatisticJson<'a>>>,
    temporary: Option<Vec<StatisticJson<'a>>>,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    allocated: Option<SizeCount>,
    calls: Option<u64>,
    calls_per_second: Option<f64>,
    cmdline: Vec<String>,
    command: &'static str,
    /// Custom allocators' objects per domain, not in `traced_now`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    domains: Vec<crate::snapshot::DomainTotal>,
    estimated: bool,
    freed: Option<SizeCount>,
    kind: &'static str,
    limit: usize,
    malloc_owner: Option<String>,
    memory: Option<MemoryJson>,
    peak: Option<PeakSummary>,
    pid: u32,
    run_time_s: Option<f64>,
    sample_rate: u64,
    snapshot: String,
    temporary: Option<TemporarySummary>,
    top: TopLists<'a>,
    traced_now: SizeCount,
    /// (format 1.4) Present when tracing began with `memtrace attach`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tracing_began: Option<super::json::TracingBegan>,
    whole_run: bool,
}

/// The top `limit` statistics by line of a view (filtered).
fn top_of(
    snap: &Option<Snapshot>,
    s: &Session,
    common: &CommonArgs,
    limit: usize,
) -> Option<Vec<Statistic>> {
    let snap = snap
        .as_ref()?
        .filter_traces(&s.table, &mut common.filters());
    let mut v = stats::statistics(&snap, &s.table, KeyType::Lineno, false).ok()?;
    v.truncate(limit);
    Some(v)
}

fn json_list<'a>(table: &'a FrameTable, v: &[Statistic]) -> Vec<StatisticJson<'a>> {
    v.iter()
        .enumerate()
        .map(|(i, st)| StatisticJson::new(table, i + 1, st))
        .collect()
}

pub(super) fn summary(
    out: &mut dyn Write,
    path: &Path,
    limit: usize,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let mut s = Session::new(common.rules());
    let (dump, snaps) = s.load_views(path, &VIEWS)?;
    write_summary(out, &s, path, &dump, &snaps, limit, common)
}

/// The views `write_summary` reads, in its order.
pub(super) const VIEWS: [View; 4] = [View::Peak, View::Allocated, View::Temporary, View::Live];

/// The summary (text, or JSON with `common.json`) of a dump already loaded
/// into `snaps`, one per view of [`VIEWS`] (`memtrace report` shows the same
/// text).
pub(super) fn write_summary(
    out: &mut dyn Write,
    s: &Session,
    path: &Path,
    dump: &memtrace_format::Snapshot,
    snaps: &[Option<Snapshot>],
    limit: usize,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let h = &dump.header;
    let rate = h.sample_rate;
    let est = rate > 0;
    let nums = RunNumbers::of(dump);
    let whole = has_whole_run(dump);
    let live = snaps[3].as_ref().expect("the live view");
    let (now_bytes, now_blocks) = live.heap_totals();
    let domains = crate::snapshot::domain_totals(dump);
    // Calls: the totals when there are any; a 1.1 file's header count is
    // exact only when every allocation was recorded.
    let calls = nums
        .allocated
        .map(|a| a.1)
        .or((!est).then_some(h.alloc_count));
    let per_second = |n: u64| nums.run_time_s.filter(|&t| t > 0.0).map(|t| n as f64 / t);
    let calls_per_second = calls.and_then(per_second);
    let percent = |n: u64| {
        calls
            .filter(|&c| c > 0)
            .map(|c| n as f64 * 100.0 / c as f64)
    };
    let peak_bytes = nums.peak.map(|p| p.0).or((!est).then_some(h.peak_bytes));
    let memory = dump
        .run
        .memory
        .as_ref()
        .map(|m| MemoryJson::new(m, now_bytes));
    let tops: Vec<Option<Vec<Statistic>>> =
        snaps.iter().map(|v| top_of(v, s, common, limit)).collect();
    let exit = h.kind == SnapshotKind::Exit;
    let name = path.display().to_string();
    let owner =
        (!h.malloc_owner.is_empty()).then(|| String::from_utf8_lossy(&h.malloc_owner).into_owned());
    if common.json {
        let t = &s.table;
        return write_json(
            out,
            &SummaryJson {
                allocated: nums
                    .allocated
                    .map(|(size, count)| SizeCount { count, size }),
                calls,
                calls_per_second,
                cmdline: h
                    .cmdline
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
                command: "summary",
                domains,
                estimated: est,
                freed: nums.freed.map(|(size, count)| SizeCount { count, size }),
                kind: if exit { "exit" } else { "signal" },
                limit,
                malloc_owner: owner,
                memory,
                peak: peak_bytes.map(|size| PeakSummary {
                    count: nums.peak.map(|p| p.1),
                    seconds_after_start: nums.peak_after_s,
                    size,
                }),
                pid: h.pid,
                run_time_s: nums.run_time_s,
                sample_rate: rate,
                snapshot: name,
                temporary: nums.temporary.map(|(size, count)| TemporarySummary {
                    count,
                    percent_of_calls: percent(count),
                    size,
                }),
                top: TopLists {
                    allocated: tops[1].as_deref().map(|v| json_list(t, v)),
                    now: json_list(t, tops[3].as_deref().unwrap_or(&[])),
                    peak: tops[0].as_deref().map(|v| json_list(t, v)),
                    temporary: tops[2].as_deref().map(|v| json_list(t, v)),
                },
                traced_now: SizeCount {
                    count: now_blocks,
                    size: now_bytes,
                },
                tracing_began: super::began::tracing_start(path).map(|t| {
                    super::json::TracingBegan {
                        by: super::began::by_name(&t),
                        seconds_after_start: t.after_start_ns().map(|ns| ns as f64 / 1e9),
                        time_ns: t.began_ns,
                    }
                }),
                whole_run: whole,
            },
        );
    }

    let missing = if whole { NOT_RECORDED } else { NEEDS_NEWER };
    let fs = |v: u64| format_size(v as f64, false);
    let fsi = |v: i64| format_size(v as f64, false);
    let e = if est { " (estimated)" } else { "" };
    let what = if exit {
        "exit snapshot".to_string()
    } else if h.index == 0 {
        "history point".to_string()
    } else {
        format!("snapshot #{}", h.index)
    };
    let cmd = h
        .cmdline
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    writeln!(out, "{name}: {what} of pid {}: {cmd}", h.pid)?;
    if est {
        writeln!(
            out,
            "Sampling:               1 sample per {}: counts and traced sizes are estimated",
            fs(rate)
        )?;
    }
    match nums.run_time_s {
        Some(t) => writeln!(
            out,
            "Run time:               {t:.3} s (from the start of tracing to this snapshot)"
        )?,
        None => writeln!(out, "Run time:               {missing}")?,
    }
    if let Some(b) = super::began::tracing_began(path) {
        writeln!(
            out,
            "Tracing began:          {b}: blocks allocated before are not seen"
        )?;
    }
    match calls {
        Some(c) => {
            let ps = calls_per_second
                .map(|r| format!(" ({r:.0}/s)"))
                .unwrap_or_default();
            let bytes = nums
                .allocated
                .map(|a| format!(", {} in all", fs(a.0)))
                .unwrap_or_default();
            writeln!(out, "Allocation calls:       {c}{ps}{bytes}{e}")?;
        }
        None => writeln!(out, "Allocation calls:       {missing}")?,
    }
    match nums.temporary {
        Some((b, c)) => {
            let pct = percent(c)
                .map(|p| format!(" ({p:.1}% of calls)"))
                .unwrap_or_default();
            let bound = if est {
                format!(" (estimated, {TEMPORARY_SAMPLED})")
            } else {
                String::new()
            };
            writeln!(out, "Temporary allocations:  {c}{pct}, {}{bound}", fs(b))?;
        }
        None => writeln!(out, "Temporary allocations:  {missing}")?,
    }
    match peak_bytes {
        Some(b) => {
            let blocks = nums
                .peak
                .map(|p| format!(" in {} blocks", p.1))
                .unwrap_or_default();
            let when = match nums.peak_after_s {
                Some(t) => format!(", {t:.3} s after the start"),
                None if nums.peak.is_some() => String::new(),
                None => format!("; when: {missing}"),
            };
            writeln!(
                out,
                "Peak traced memory:     {} ({b} B){blocks}{when}{e}",
                fs(b)
            )?;
        }
        None => writeln!(out, "Peak traced memory:     {missing}")?,
    }
    match &memory {
        Some(m) => writeln!(
            out,
            "Peak RSS:               {} (VmHWM, memtrace's own memory included)",
            fs(m.rss_peak)
        )?,
        None => writeln!(out, "Peak RSS:               {missing}")?,
    }
    writeln!(
        out,
        "Traced memory now:      {} ({now_bytes} B) in {now_blocks} blocks{}{e}",
        fs(now_bytes),
        if exit { ", never freed" } else { "" }
    )?;
    for t in &domains {
        writeln!(
            out,
            "  domain {}: {} objects, {} ({} B): a custom allocator's (memtrace_track), inside the blocks above",
            t.domain,
            t.blocks,
            fs(t.size),
            t.size
        )?;
    }
    match &memory {
        Some(m) => {
            writeln!(out, "RSS now:                {}, of which", fs(m.rss))?;
            writeln!(
                out,
                "  traced memory:                        {}{e}",
                fs(m.traced)
            )?;
            writeln!(
                out,
                "  allocator overhead and free-but-kept: {} (glibc's heap {} - traced; {} of it free in the arenas)",
                fsi(m.allocator_overhead_and_free),
                fs(m.heap_arena.saturating_add(m.heap_mmap)),
                fs(m.heap_free)
            )?;
            writeln!(
                out,
                "  memory the program maps otherwise:    {} (RSS - glibc's heap){}",
                fsi(m.other),
                if m.other < 0 {
                    "; negative: heap pages never touched are not resident"
                } else {
                    ""
                }
            )?;
            writeln!(
                out,
                "  (glibc's heap, from mallinfo2, includes memtrace's own writer memory)"
            )?;
        }
        None => writeln!(out, "RSS now:                {missing}")?,
    }
    let titles = [
        "at the peak",
        "by allocations (since the start)",
        "by temporary allocations",
        if exit {
            "now (never freed)"
        } else {
            "now (live)"
        },
    ];
    let note = sampling_note(rate);
    for (title, top) in titles.iter().zip(&tops) {
        match top {
            Some(v) => {
                writeln!(out, "Top {limit} lines {title}{note}:")?;
                if v.is_empty() {
                    writeln!(out, "  (none)")?;
                }
                for st in v {
                    writeln!(
                        out,
                        "  {}",
                        statistic_str(&st.label(&s.table), st.size, st.count)
                    )?;
                }
            }
            None => writeln!(out, "Top {limit} lines {title}: {missing}")?,
        }
    }
    if let Some(o) = owner {
        writeln!(
            out,
            "Allocator:              {o}, not glibc: its allocations were not traced"
        )?;
    }
    Ok(())
}
