//! The JSON documents the commands print with `--json` (schema in
//! docs/CLI.md). Fields are declared in alphabetical order: that is the
//! order the documents have always had (serde_json's sorted maps), and the
//! `sorted` test keeps it so.

use super::Failure;
use crate::format::{average, LineCache};
use crate::frame::{FrameId, FrameTable};
use crate::stats::{Statistic, StatisticDiff};
use serde::Serialize;
use std::io::Write;

/// Prints `doc` pretty-printed, then a newline.
pub(super) fn write_json(out: &mut dyn Write, doc: &impl Serialize) -> Result<(), Failure> {
    serde_json::to_writer_pretty(&mut *out, doc)
        .map_err(|e| Failure::from(std::io::Error::from(e)))?;
    writeln!(out)?;
    Ok(())
}

/// `size / count`, or null for a count of 0.
fn average_or_null(size: u64, count: u64) -> Option<f64> {
    (count != 0).then(|| average(size, count))
}

/// A frame object; `source` only in `traceback`'s frames.
#[derive(Serialize)]
pub(super) struct FrameJson<'a> {
    filename: &'a str,
    function: Option<&'a str>,
    has_line: bool,
    lineno: u32,
    module: Option<&'a str>,
    module_offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Option<String>>,
    system: bool,
}

impl<'a> FrameJson<'a> {
    pub fn new(table: &'a FrameTable, id: FrameId) -> FrameJson<'a> {
        let f = table.frame(id);
        FrameJson {
            filename: &f.filename,
            function: f.function.as_deref(),
            has_line: f.has_line,
            lineno: f.lineno,
            module: f.module.as_deref(),
            module_offset: f.module_offset,
            source: None,
            system: f.system,
        }
    }

    /// With its stripped source line (null when there is none).
    pub fn with_source(table: &'a FrameTable, id: FrameId, lc: &mut LineCache) -> FrameJson<'a> {
        let f = table.frame(id);
        let source = if f.has_line {
            lc.getline(&f.filename, f.lineno)
        } else {
            None
        };
        FrameJson {
            source: Some(source),
            ..FrameJson::new(table, id)
        }
    }

    fn list(table: &'a FrameTable, frames: &[FrameId]) -> Vec<FrameJson<'a>> {
        frames.iter().map(|&f| FrameJson::new(table, f)).collect()
    }
}

#[derive(Serialize)]
pub(super) struct OtherGroups {
    pub count: u64,
    pub groups: usize,
    pub size: u64,
}

/// One element of `top`'s or `diff`'s `statistics`: the same line, with
/// `truncated` in `top`'s and the two `_diff` fields in `diff`'s.
#[derive(Serialize)]
pub(super) struct StatisticJson<'a> {
    average: Option<f64>,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    count_diff: Option<i64>,
    frames: Vec<FrameJson<'a>>,
    label: String,
    rank: usize,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_diff: Option<i64>,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<bool>,
}

impl<'a> StatisticJson<'a> {
    /// `top`'s line `rank` (1 the biggest).
    pub fn new(table: &'a FrameTable, rank: usize, st: &Statistic) -> StatisticJson<'a> {
        StatisticJson {
            truncated: Some(st.truncated),
            ..StatisticJson::line(
                table,
                rank,
                (st.size, st.count),
                &st.frames,
                st.label(table),
                st.format(table),
            )
        }
    }

    /// `diff`'s line `rank`.
    pub fn diff(table: &'a FrameTable, rank: usize, d: &StatisticDiff) -> StatisticJson<'a> {
        StatisticJson {
            count_diff: Some(d.count_diff),
            size_diff: Some(d.size_diff),
            ..StatisticJson::line(
                table,
                rank,
                (d.size, d.count),
                &d.frames,
                d.label(table),
                d.format(table),
            )
        }
    }

    /// What both lines have.
    fn line(
        table: &'a FrameTable,
        rank: usize,
        (size, count): (u64, u64),
        frames: &[FrameId],
        label: String,
        text: String,
    ) -> StatisticJson<'a> {
        StatisticJson {
            average: average_or_null(size, count),
            count,
            count_diff: None,
            frames: FrameJson::list(table, frames),
            label,
            rank,
            size,
            size_diff: None,
            text,
            truncated: None,
        }
    }
}

#[derive(Serialize)]
pub(super) struct TopJson<'a> {
    pub command: &'static str,
    pub cumulative: bool,
    pub estimated: bool,
    pub groups: usize,
    pub key: &'static str,
    pub limit: usize,
    pub malloc_owner: Option<String>,
    pub other: OtherGroups,
    /// `--peak`: the moment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak: Option<PeakJson>,
    pub pretty: bool,
    pub sample_rate: u64,
    pub snapshot: &'a str,
    pub statistics: Vec<StatisticJson<'a>>,
    pub total: CountSize,
    /// "peak", "allocated" or "temporary"; absent for the live blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<&'static str>,
}

/// The peak moment (PEAK section).
#[derive(Serialize)]
pub(super) struct PeakJson {
    pub event: u64,
    /// Seconds from the start of tracing (TIMELINE's start) to the peak.
    pub seconds_after_start: Option<f64>,
    pub time_ns: u64,
    /// As the file records it (sampled blocks only, unscaled, when sampled).
    pub traced_bytes: u64,
}

impl PeakJson {
    pub fn new(dump: &memtrace_format::Snapshot) -> Option<PeakJson> {
        let p = dump.run.peak.as_ref()?;
        Some(PeakJson {
            event: p.event,
            seconds_after_start: dump
                .run
                .timeline
                .as_ref()
                .map(|t| p.time_ns.saturating_sub(t.start_ns) as f64 / 1e9),
            time_ns: p.time_ns,
            traced_bytes: p.traced_bytes,
        })
    }
}

#[derive(Serialize)]
pub(super) struct DiffJson<'a> {
    pub command: &'static str,
    pub cumulative: bool,
    pub estimated: bool,
    pub groups: usize,
    pub key: &'static str,
    pub limit: usize,
    pub new: String,
    pub new_malloc_owner: Option<String>,
    pub new_sample_rate: u64,
    pub new_total: CountSize,
    pub old: String,
    pub old_malloc_owner: Option<String>,
    pub old_sample_rate: u64,
    pub old_total: CountSize,
    pub statistics: Vec<StatisticJson<'a>>,
}

#[derive(Serialize)]
pub(super) struct TracebackJson<'a> {
    pub command: &'static str,
    pub count: u64,
    pub estimated: bool,
    pub frames: Vec<FrameJson<'a>>,
    pub groups: usize,
    pub malloc_owner: Option<String>,
    pub order: &'static str,
    pub rank: u64,
    pub sample_rate: u64,
    pub size: u64,
    pub snapshot: String,
    pub truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<&'static str>,
}

#[derive(Serialize)]
pub(super) struct TracedMemory {
    pub current: u64,
    pub peak: u64,
}

#[derive(Serialize)]
pub(super) struct Sampled {
    pub blocks: u64,
    pub size: u64,
}

#[derive(Serialize)]
pub(super) struct Live {
    pub blocks: u64,
    pub estimated: bool,
    pub sampled: Sampled,
    pub size: u64,
    pub stacks: usize,
    pub traces: usize,
    pub truncated_stacks: usize,
}

/// `stats`' PEAK object (format 1.2).
#[derive(Serialize)]
pub(super) struct StatsPeak {
    pub blocks: u64,
    pub event: u64,
    pub groups: usize,
    pub sampled: Sampled,
    pub seconds_after_start: Option<f64>,
    pub size: u64,
    pub time_ns: u64,
}

#[derive(Serialize)]
pub(super) struct CountSize {
    pub count: u64,
    pub size: u64,
}

impl CountSize {
    /// From a `(size, count)` pair, the order `Snapshot::totals` returns.
    pub fn of((size, count): (u64, u64)) -> CountSize {
        CountSize { count, size }
    }
}

/// `stats`' TOTALS object (format 1.2).
#[derive(Serialize)]
pub(super) struct StatsTotals {
    pub allocated: CountSize,
    pub freed: CountSize,
    /// The sums the file holds (sampled blocks only when sampled).
    pub sampled: StatsTotalsSampled,
    pub stacks: usize,
    pub temporary: CountSize,
}

#[derive(Serialize)]
pub(super) struct StatsTotalsSampled {
    pub allocated: CountSize,
    pub freed: CountSize,
    pub temporary: CountSize,
}

/// `stats`' TIMELINE object (format 1.2).
#[derive(Serialize)]
pub(super) struct StatsTimeline {
    pub interval_ns: u64,
    pub points: usize,
    pub run_time_s: f64,
    /// Indices of the snapshots written before this one.
    pub snapshots: Vec<u64>,
    pub start_ns: u64,
}

/// `stats`' MEMORY object (format 1.2): bytes, as measured.
#[derive(Serialize)]
pub(super) struct StatsMemory {
    pub heap_arena: u64,
    pub heap_free: u64,
    pub heap_mmap: u64,
    pub rss: u64,
    pub rss_peak: u64,
}

#[derive(Serialize)]
pub(super) struct StatsJson<'a> {
    pub alloc_count: u64,
    pub cmdline: Vec<String>,
    pub command: &'static str,
    /// Custom allocators' objects per domain (format 1.4), apart from `live`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<crate::snapshot::DomainTotal>,
    pub estimated: bool,
    pub exe: String,
    pub frame_limit: u32,
    pub free_count: u64,
    pub index: u64,
    pub kind: &'static str,
    pub live: Live,
    pub malloc_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<StatsMemory>,
    pub modules: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak: Option<StatsPeak>,
    pub pid: u32,
    pub sample_rate: u64,
    pub seq: u64,
    pub snapshot: &'a str,
    pub time: String,
    pub time_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<StatsTimeline>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<StatsTotals>,
    pub traced_memory: TracedMemory,
    /// (format 1.4) Present when tracing began with `memtrace attach`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing_began: Option<TracingBegan>,
}

/// When tracing began, for a process traced since `memtrace attach`.
#[derive(Serialize)]
pub(super) struct TracingBegan {
    /// "attach".
    pub by: &'static str,
    /// Null when the process's start is unknown.
    pub seconds_after_start: Option<f64>,
    /// Wall clock, ns since the Unix epoch.
    pub time_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents print as serde_json's sorted maps always printed them.
    fn sorted(doc: &impl Serialize) {
        let direct = serde_json::to_string_pretty(doc).unwrap();
        let via_map = serde_json::to_string_pretty(&serde_json::to_value(doc).unwrap()).unwrap();
        assert_eq!(direct, via_map);
    }

    #[test]
    fn fields_sorted() {
        let mut table = FrameTable::new();
        let id = table.intern(
            "/src/a.c",
            3,
            Some("f"),
            Some("/bin/a"),
            true,
            0x10,
            None,
            false,
        );
        let frame = || FrameJson::new(&table, id);
        let total = || CountSize { count: 1, size: 2 };
        sorted(&frame());
        sorted(&FrameJson {
            source: Some(None),
            ..frame()
        });
        sorted(&TopJson {
            command: "top",
            cumulative: false,
            estimated: false,
            groups: 1,
            key: "lineno",
            limit: 10,
            malloc_owner: None,
            other: OtherGroups {
                count: 0,
                groups: 0,
                size: 0,
            },
            peak: None,
            pretty: false,
            sample_rate: 0,
            snapshot: "a.snap",
            statistics: vec![StatisticJson {
                average: Some(1.5),
                count: 2,
                count_diff: None,
                frames: vec![frame()],
                label: "l".into(),
                rank: 1,
                size: 3,
                size_diff: None,
                text: "t".into(),
                truncated: Some(false),
            }],
            total: total(),
            view: None,
        });
        sorted(&TopJson {
            command: "top",
            cumulative: false,
            estimated: false,
            groups: 0,
            key: "lineno",
            limit: 10,
            malloc_owner: None,
            other: OtherGroups {
                count: 0,
                groups: 0,
                size: 0,
            },
            peak: Some(PeakJson {
                event: 3,
                seconds_after_start: Some(1.5),
                time_ns: 9,
                traced_bytes: 7,
            }),
            pretty: false,
            sample_rate: 0,
            snapshot: "a.snap",
            statistics: vec![],
            total: total(),
            view: Some("peak"),
        });
        sorted(&DiffJson {
            command: "diff",
            cumulative: false,
            estimated: false,
            groups: 1,
            key: "lineno",
            limit: 10,
            new: "b".into(),
            new_malloc_owner: None,
            new_sample_rate: 0,
            new_total: total(),
            old: "a".into(),
            old_malloc_owner: Some("x".into()),
            old_sample_rate: 0,
            old_total: total(),
            statistics: vec![StatisticJson {
                average: None,
                count: 0,
                count_diff: Some(-1),
                frames: vec![frame()],
                label: "l".into(),
                rank: 1,
                size: 0,
                size_diff: Some(-3),
                text: "t".into(),
                truncated: None,
            }],
        });
        sorted(&TracebackJson {
            command: "traceback",
            count: 1,
            estimated: false,
            frames: vec![FrameJson {
                source: Some(Some("x".into())),
                ..frame()
            }],
            groups: 1,
            malloc_owner: None,
            order: "most_recent_first",
            rank: 1,
            sample_rate: 0,
            size: 1,
            snapshot: "a".into(),
            truncated: false,
            view: Some("peak"),
        });
        sorted(&StatsJson {
            alloc_count: 1,
            cmdline: vec!["a".into()],
            command: "stats",
            domains: vec![crate::snapshot::DomainTotal {
                blocks: 2,
                domain: 7,
                size: 96,
                stacks: 1,
            }],
            estimated: false,
            exe: "a".into(),
            frame_limit: 32,
            free_count: 0,
            index: 1,
            kind: "signal",
            live: Live {
                blocks: 1,
                estimated: false,
                sampled: Sampled { blocks: 1, size: 1 },
                size: 1,
                stacks: 1,
                traces: 1,
                truncated_stacks: 0,
            },
            malloc_owner: None,
            memory: Some(StatsMemory {
                heap_arena: 1,
                heap_free: 1,
                heap_mmap: 1,
                rss: 1,
                rss_peak: 1,
            }),
            modules: 1,
            peak: Some(StatsPeak {
                blocks: 1,
                event: 1,
                groups: 1,
                sampled: Sampled { blocks: 1, size: 1 },
                seconds_after_start: None,
                size: 1,
                time_ns: 1,
            }),
            pid: 1,
            sample_rate: 0,
            seq: 1,
            snapshot: "a",
            time: "t".into(),
            time_ns: 0,
            timeline: Some(StatsTimeline {
                interval_ns: 1,
                points: 1,
                run_time_s: 1.0,
                snapshots: vec![1],
                start_ns: 0,
            }),
            totals: Some(StatsTotals {
                allocated: CountSize { count: 1, size: 1 },
                freed: CountSize { count: 1, size: 1 },
                sampled: StatsTotalsSampled {
                    allocated: CountSize { count: 1, size: 1 },
                    freed: CountSize { count: 1, size: 1 },
                    temporary: CountSize { count: 1, size: 1 },
                },
                stacks: 1,
                temporary: CountSize { count: 1, size: 1 },
            }),
            traced_memory: TracedMemory {
                current: 1,
                peak: 1,
            },
            tracing_began: Some(TracingBegan {
                by: "attach",
                seconds_after_start: Some(1.0),
                time_ns: 1,
            }),
        });
    }
}
