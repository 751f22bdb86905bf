//! `memtrace stats`: a snapshot's header facts and what its traces add up
//! to, read without symbolizing.

use super::json::{
    write_json, CountSize, Live, Sampled, StatsJson, StatsMemory, StatsPeak, StatsTimeline,
    StatsTotals, StatsTotalsSampled, TracedMemory, TracingBegan,
};
use super::session::malloc_owner_warning;
use super::summary::RunNumbers;
use super::Failure;
use crate::format::format_size;
use crate::sampling;
use crate::snapshot::{self, has_whole_run};
use memtrace_format::tracing_start::TracingStart;
use memtrace_format::SnapshotKind;
use std::io::Write;
use std::path::Path;

pub(super) fn stats(out: &mut dyn Write, path: &Path, as_json: bool) -> Result<(), Failure> {
    let dump = snapshot::read_dump(path).map_err(|e| Failure::Input(e.to_string()))?;
    if !dump.header.malloc_owner.is_empty() {
        let owner = String::from_utf8_lossy(&dump.header.malloc_owner);
        eprintln!(
            "memtrace: warning: {}",
            malloc_owner_warning(&path.display().to_string(), &owner)
        );
    }
    let began = super::began::tracing_start(path);
    print_stats(out, &path.display().to_string(), &dump, began, as_json)
}

/// An argument as a shell would need it: bare when it is plain, else in single quotes.
fn shell_quote(arg: &[u8]) -> String {
    let s = String::from_utf8_lossy(arg);
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Nanoseconds since the epoch → `YYYY-MM-DD HH:MM:SS.nnnnnnnnn UTC`.
pub(super) fn utc_time(ns: u64) -> String {
    format!("{}.{:09} UTC", utc_date_time(ns), ns % 1_000_000_000)
}

/// Nanoseconds since the epoch → `YYYY-MM-DD HH:MM:SS` in UTC, the
/// fraction of a second dropped.
pub(super) fn utc_date_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn print_stats(
    out: &mut dyn Write,
    path: &str,
    d: &memtrace_format::Snapshot,
    began: Option<TracingStart>,
    as_json: bool,
) -> Result<(), Failure> {
    let h = &d.header;
    let rate = h.sample_rate;
    // The malloc heap's; custom allocators' objects (domains) apart.
    let groups = || crate::snapshot::heap_groups(d);
    let domains = crate::snapshot::domain_totals(d);
    // what the file holds, and (sampled) what it stands for
    let (bytes, blocks) = sampling::totals(groups(), 0);
    let (est_bytes, est_blocks) = sampling::totals(groups(), rate);
    let owner =
        (!h.malloc_owner.is_empty()).then(|| String::from_utf8_lossy(&h.malloc_owner).into_owned());
    let truncated = d.stacks.iter().filter(|s| s.truncated).count();
    // The stacks of the live blocks: a 1.2 file also holds the peak's and
    // the totals' (a 1.1 file only those of its traces).
    let live_stacks = if has_whole_run(d) {
        d.traces
            .iter()
            .enumerate()
            .filter(|&(i, t)| t.count > 0 && d.domains.get(i).copied().unwrap_or(0) == 0)
            .map(|(_, t)| t.stack)
            .collect::<std::collections::HashSet<u64>>()
            .len()
    } else {
        d.stacks.len()
    };
    let run = &d.run;
    let nums = RunNumbers::of(d);
    let raw = RunNumbers::with_rate(d, 0);
    let cs = |v: Option<(u64, u64)>| CountSize::of(v.unwrap_or((0, 0)));
    if as_json {
        return write_json(
            out,
            &StatsJson {
                alloc_count: h.alloc_count,
                cmdline: h
                    .cmdline
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
                command: "stats",
                domains: domains.clone(),
                estimated: rate > 0,
                exe: String::from_utf8_lossy(&h.exe).into_owned(),
                frame_limit: h.frame_limit,
                free_count: h.free_count,
                index: h.index,
                kind: match h.kind {
                    SnapshotKind::Signal => "signal",
                    SnapshotKind::Exit => "exit",
                },
                live: Live {
                    blocks: est_blocks,
                    estimated: rate > 0,
                    sampled: Sampled {
                        blocks,
                        size: bytes,
                    },
                    size: est_bytes,
                    stacks: live_stacks,
                    traces: d.traces.len(),
                    truncated_stacks: truncated,
                },
                malloc_owner: owner,
                memory: run.memory.as_ref().map(|m| StatsMemory {
                    heap_arena: m.heap_arena_bytes,
                    heap_free: m.heap_free_bytes,
                    heap_mmap: m.heap_mmap_bytes,
                    rss: m.rss_bytes,
                    rss_peak: m.rss_peak_bytes,
                }),
                modules: d.modules.len(),
                peak: run.peak.as_ref().map(|p| {
                    let (size, blocks) = nums.peak.unwrap_or_default();
                    let (raw_size, raw_blocks) = raw.peak.unwrap_or_default();
                    StatsPeak {
                        blocks,
                        event: p.event,
                        groups: p.groups.len(),
                        sampled: Sampled {
                            blocks: raw_blocks,
                            size: raw_size,
                        },
                        seconds_after_start: nums.peak_after_s,
                        size,
                        time_ns: p.time_ns,
                    }
                }),
                pid: h.pid,
                sample_rate: rate,
                seq: h.seq,
                snapshot: path,
                time: utc_time(h.time_ns),
                time_ns: h.time_ns,
                timeline: run.timeline.as_ref().map(|t| StatsTimeline {
                    interval_ns: t.interval_ns,
                    points: t.points.len(),
                    run_time_s: nums.run_time_s.unwrap_or(0.0),
                    snapshots: t.snapshots.iter().map(|m| m.index).collect(),
                    start_ns: t.start_ns,
                }),
                totals: nums.allocated.is_some().then(|| StatsTotals {
                    allocated: cs(nums.allocated),
                    freed: cs(nums.freed),
                    sampled: StatsTotalsSampled {
                        allocated: cs(raw.allocated),
                        freed: cs(raw.freed),
                        temporary: cs(raw.temporary),
                    },
                    stacks: run.totals.len(),
                    temporary: cs(nums.temporary),
                }),
                traced_memory: TracedMemory {
                    current: h.traced_bytes,
                    peak: h.peak_bytes,
                },
                tracing_began: began.as_ref().map(|t| TracingBegan {
                    by: super::began::by_name(t),
                    seconds_after_start: t.after_start_ns().map(|ns| ns as f64 / 1e9),
                    time_ns: t.began_ns,
                }),
            },
        );
    }
    let fs = |v: u64| format_size(v as f64, false);
    let what = match h.kind {
        SnapshotKind::Signal if h.index == 0 => "history point".to_string(),
        SnapshotKind::Signal => format!("snapshot #{} (on signal)", h.index),
        SnapshotKind::Exit => "exit snapshot (blocks never freed)".to_string(),
    };
    writeln!(out, "Snapshot:       {path}: {what}")?;
    writeln!(out, "Process:        pid {}", h.pid)?;
    writeln!(
        out,
        "Command line:   {}",
        h.cmdline
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    writeln!(out, "Executable:     {}", String::from_utf8_lossy(&h.exe))?;
    writeln!(out, "Time:           {}", utc_time(h.time_ns))?;
    writeln!(
        out,
        "Traced memory:  current={} ({} B), peak={} ({} B)",
        fs(h.traced_bytes),
        h.traced_bytes,
        fs(h.peak_bytes),
        h.peak_bytes
    )?;
    if rate > 0 {
        writeln!(
            out,
            "Live blocks:    {est_blocks} ({}, {est_bytes} B) estimated from {blocks} sampled ({bytes} B) in {} stacks",
            fs(est_bytes),
            live_stacks
        )?;
    } else {
        writeln!(
            out,
            "Live blocks:    {blocks} ({}, {} B) from {} stacks",
            fs(bytes),
            bytes,
            live_stacks
        )?;
    }
    for t in &domains {
        writeln!(
            out,
            "Domain {}:{:w$}{} objects ({}, {} B) from {} stacks, tracked inside heap blocks (not added to them)",
            t.domain,
            "",
            t.blocks,
            fs(t.size),
            t.size,
            t.stacks,
            w = 8usize.saturating_sub(t.domain.to_string().len()),
        )?;
    }
    writeln!(out, "Allocations:    {} seen", h.alloc_count)?;
    writeln!(out, "Frees:          {} seen", h.free_count)?;
    if let Some(t) = &began {
        writeln!(
            out,
            "Tracing began:  {}: blocks allocated before are not seen",
            super::began::describe(t)
        )?;
    }
    print_whole_run(out, d, &nums, &raw)?;
    writeln!(
        out,
        "Frame limit:    {} ({truncated} stacks truncated)",
        h.frame_limit
    )?;
    if h.sample_rate == 0 {
        writeln!(out, "Sampling:       every allocation recorded")?;
    } else {
        writeln!(
            out,
            "Sampling:       1 sample per {} ({} B) on average: live blocks and sizes are estimated",
            fs(rate),
            rate
        )?;
    }
    if let Some(o) = &owner {
        writeln!(
            out,
            "Allocator:      {o}, not glibc: its allocations were not traced"
        )?;
    }
    writeln!(out, "Modules:        {}", d.modules.len())?;
    Ok(())
}

/// `N (X KiB, B B)` as "Live blocks" prints it; sampled,
/// `N (X KiB, B B) estimated from n sampled (b B)`.
fn blocks_text(est: (u64, u64), raw: (u64, u64), rate: u64) -> String {
    let (size, n) = est;
    let mut t = format!("{n} ({}, {size} B)", format_size(size as f64, false));
    if rate > 0 {
        t += &format!(" estimated from {} sampled ({} B)", raw.1, raw.0);
    }
    t
}

/// The lines of the whole-run sections (format 1.2), each only when the
/// file has its section.
fn print_whole_run(
    out: &mut dyn Write,
    d: &memtrace_format::Snapshot,
    nums: &RunNumbers,
    raw: &RunNumbers,
) -> Result<(), Failure> {
    let rate = d.header.sample_rate;
    let fsb = |v: u64| format!("{} ({v} B)", format_size(v as f64, false));
    let z = |v: Option<(u64, u64)>| v.unwrap_or_default();
    if let Some(p) = &d.run.peak {
        let when = nums
            .peak_after_s
            .map(|t| format!(", {t:.3} s after the start"))
            .unwrap_or_default();
        writeln!(
            out,
            "Peak blocks:    {} in {} groups{when} (event {})",
            blocks_text(z(nums.peak), z(raw.peak), rate),
            p.groups.len(),
            p.event
        )?;
    }
    if nums.allocated.is_some() {
        writeln!(
            out,
            "Allocated:      {} from {} stacks since the start",
            blocks_text(z(nums.allocated), z(raw.allocated), rate),
            d.run.totals.len()
        )?;
        writeln!(
            out,
            "Freed:          {}",
            blocks_text(z(nums.freed), z(raw.freed), rate)
        )?;
        writeln!(
            out,
            "Temporary:      {}",
            blocks_text(z(nums.temporary), z(raw.temporary), rate)
        )?;
    }
    if let Some(t) = &d.run.timeline {
        let marks = t.snapshots.len();
        writeln!(
            out,
            "Timeline:       from {}, {:.3} s: {} point{} every {} ms, {marks} snapshot{} before this one",
            utc_time(t.start_ns),
            nums.run_time_s.unwrap_or(0.0),
            t.points.len(),
            if t.points.len() == 1 { "" } else { "s" },
            t.interval_ns as f64 / 1e6,
            if marks == 1 { "" } else { "s" }
        )?;
    }
    if let Some(m) = &d.run.memory {
        writeln!(
            out,
            "RSS:            {}, peak {}",
            fsb(m.rss_bytes),
            fsb(m.rss_peak_bytes)
        )?;
        writeln!(
            out,
            "glibc heap:     arenas {}, {} of it free; mmapped blocks {}",
            fsb(m.heap_arena_bytes),
            fsb(m.heap_free_bytes),
            fsb(m.heap_mmap_bytes)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00.000000000 UTC");
        assert_eq!(
            utc_time(1_700_000_000_123_456_789),
            "2023-11-14 22:13:20.123456789 UTC"
        );
        assert_eq!(
            utc_time(951_782_400_000_000_000),
            "2000-02-29 00:00:00.000000000 UTC"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(b"./app"), "./app");
        assert_eq!(shell_quote(b"a b"), "'a b'");
        assert_eq!(shell_quote(b"it's"), "'it'\\''s'");
        assert_eq!(shell_quote(b""), "''");
    }
}
