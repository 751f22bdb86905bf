//! `memtrace plot SNAP -o mem.svg`: traced memory and RSS over time from a
//! snapshot's TIMELINE, the snapshots and the peak marked (report::chart).

use super::stats::utc_time;
use super::Failure;
use crate::report::chart::{self, ChartData};
use memtrace_format::SnapshotKind;
use std::path::Path;

/// The chart's title and subtitle for a dump: the program, pid, which
/// snapshot and when.
pub(super) fn titles(dump: &memtrace_format::Snapshot) -> (String, String) {
    let h = &dump.header;
    let cmd = h
        .cmdline
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let cmd = if cmd.is_empty() {
        String::from_utf8_lossy(&h.exe).into_owned()
    } else {
        cmd
    };
    let what = match h.kind {
        SnapshotKind::Exit => "exit snapshot".to_string(),
        SnapshotKind::Signal if h.index == 0 => "history".to_string(),
        SnapshotKind::Signal => format!("snapshot #{}", h.index),
    };
    let time = utc_time(h.time_ns);
    let time = time.split('.').next().unwrap_or(&time).to_string() + " UTC";
    let mut sub = format!("pid {} · {what} · {time}", h.pid);
    if h.sample_rate > 0 {
        sub.push_str(&format!(
            " · sampled, 1 per {}: traced bytes are the sampled blocks'",
            crate::format::format_size(h.sample_rate as f64, false)
        ));
    }
    (format!("Memory of {cmd}"), sub)
}

/// The footnote for a snapshot: it has no per-line history.
pub(super) fn snapshot_note(top: usize) -> String {
    format!(
        "A snapshot holds the live blocks only now and at the peak, so the top {top} lines over time need a history file; the totals are drawn."
    )
}

/// The chart of a dump, or the one line saying why there is none; with
/// `top`, the footnote saying why those lines are not drawn.
pub(super) fn chart_of(
    dump: &memtrace_format::Snapshot,
    top: Option<usize>,
) -> Result<ChartData, String> {
    let (title, sub) = titles(dump);
    let mut d = ChartData::of(dump, title, sub)?;
    d.note = top.map(snapshot_note);
    if dump.header.kind == SnapshotKind::Signal && dump.header.index == 0 {
        // A history point (analyzer/src/history.rs): the lines over time
        // are in the file but not drawn yet.
        d.note = top.map(|n| {
            format!("The top {n} lines over time are not drawn from a history yet; traced memory and RSS are.")
        });
    }
    Ok(d)
}

pub(super) fn plot(path: &Path, output: &Path, top: usize) -> Result<(), Failure> {
    let dump = crate::snapshot::read_dump(path).map_err(|e| Failure::Input(e.to_string()))?;
    let d = chart_of(&dump, Some(top))
        .map_err(|m| Failure::Input(format!("{}: {m}", path.display())))?;
    write_output(output, chart::svg(&d).as_bytes())
}

/// Writes `bytes` to `output` (`-`: standard output).
pub(super) fn write_output(output: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if output == Path::new("-") {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        o.write_all(bytes)?;
        return Ok(o.flush()?);
    }
    std::fs::write(output, bytes).map_err(|e| {
        Failure::Input(format!(
            "{}: cannot write: {}",
            output.display(),
            crate::util::io_msg(&e)
        ))
    })
}
