//! `memtrace flamegraph SNAP -o out.svg [--count] [--collapsed]`: the live
//! blocks as a flame graph (inferno), or its folded text.

use super::export::{groups, load, write_to};
use super::{CommonArgs, Failure};
use crate::export::flame::{self, frame_name};
use crate::export::View;
use crate::format::format_size;
use memtrace_format::SnapshotKind;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

pub(super) struct FlameArgs<'a> {
    pub path: &'a Path,
    pub output: &'a Path,
    pub count: bool,
    pub collapsed: bool,
    pub view: View,
}

pub(super) fn flamegraph(
    out: &mut dyn Write,
    a: &FlameArgs,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let l = load(a.path, common)?;
    // Each view is a list of groups: (stack, bytes, count).
    let groups = groups(&l, a.path, a.view)?;
    let h = &l.dump.header;
    let lines = flame::folded(&l.stacks, &l.table, &groups, h.sample_rate, a.count);
    if a.collapsed {
        return write_to(a.output, out, |w| flame::write_folded(&lines, w));
    }
    let system: HashSet<String> = l
        .stacks
        .stacks
        .iter()
        .flat_map(|s| s.frames.iter())
        .map(|&f| l.table.frame(f))
        .filter(|f| f.system)
        .map(frame_name)
        .collect();
    let (when, kind) = match (&l.dump.run.peak, a.view) {
        (Some(p), View::Peak) => (p.time_ns, "peak".to_string()),
        _ => (
            h.time_ns,
            match h.kind {
                SnapshotKind::Exit => "exit snapshot".to_string(),
                SnapshotKind::Signal if h.index == 0 => "history point".to_string(),
                SnapshotKind::Signal => format!("snapshot #{}", h.index),
            },
        ),
    };
    let cmd: Vec<String> = h
        .cmdline
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let program = if cmd.is_empty() {
        String::from_utf8_lossy(&h.exe).into_owned()
    } else {
        cmd.join(" ")
    };
    let total: u64 = lines.iter().map(|(_, w)| *w).sum();
    let amount = if a.count {
        format!("{total} blocks")
    } else {
        format_size(total as f64, false)
    };
    let sampled = if h.sample_rate > 0 {
        format!(
            ", estimated from samples (1 per {})",
            format_size(h.sample_rate as f64, false)
        )
    } else {
        String::new()
    };
    let title = format!(
        "Memory {} in {program}: {amount} ({kind}, {})",
        a.view.describe(),
        utc_seconds(when)
    );
    let subtitle = Some(format!(
        "{}: widths are {}{sampled}; the program's frames warm, the system's grey-blue",
        a.path.display(),
        if a.count { "blocks" } else { "bytes" }
    ));
    write_to(a.output, out, |w| {
        flame::write_svg(
            &lines,
            &|n| system.contains(n),
            &flame::SvgOptions {
                title,
                subtitle,
                count: a.count,
            },
            w,
        )
    })
}

/// Nanoseconds since the epoch → `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_seconds(ns: u64) -> String {
    format!("{} UTC", super::stats::utc_date_time(ns))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc() {
        assert_eq!(super::utc_seconds(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::utc_seconds(1_732_414_573_628_703_719),
            "2024-11-24 02:16:13 UTC"
        );
    }
}
