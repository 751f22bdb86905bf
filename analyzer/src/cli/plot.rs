//! `memtrace plot FILE -o mem.svg`: traced memory and RSS over time from a
//! snapshot's TIMELINE or a history's points, the snapshots and the peak
//! marked, and for a history the top lines stacked by their live bytes
//! (`history_lines`, report::chart).

use super::session::Session;
use super::stats::utc_time;
use super::Failure;
use crate::frame::FrameRules;
use crate::report::chart::{self, ChartData};
use memtrace_format::SnapshotKind;
use std::path::Path;

/// The chart's title and subtitle for a dump: the program, pid, which
/// snapshot and when.
pub(super) fn titles(dump: &memtrace_format::Snapshot) -> (String, String) {
    let h = &dump.header;
    let args: Vec<String> = h
        .cmdline
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cmd = if args.is_empty() {
        String::from_utf8_lossy(&h.exe).into_owned()
    } else {
        args.join(" ")
    };
    let cmd = fit_title(cmd, &args);
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

/// Most characters of the command in a chart's title (≈ its width).
const TITLE_CHARS: usize = 76;

/// The command as a title fits it: a long program path loses its
/// directories, then the end of the line gives way to `…`.
fn fit_title(cmd: String, args: &[String]) -> String {
    if cmd.chars().count() <= TITLE_CHARS {
        return cmd;
    }
    let mut short = match args.split_first() {
        Some((prog, rest)) => {
            let base = prog.rsplit('/').next().unwrap_or(prog);
            std::iter::once(base.to_string())
                .chain(rest.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ")
        }
        None => cmd,
    };
    if short.chars().count() > TITLE_CHARS {
        short = short.chars().take(TITLE_CHARS - 1).collect::<String>() + "…";
    }
    short
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
    if d.history {
        d.note = None;
    }
    Ok(d)
}

/// The footnote of a history's chart: how its lines were chosen.
fn history_note(d: &ChartData) -> Option<String> {
    match &d.lines {
        None => Some("No line had live bytes to stack: traced memory and RSS are drawn.".into()),
        Some(l) if !l.peak_known => Some(
            "This history (format 1.0) holds no peak blocks: the lines are those with the most bytes at its last point."
                .into(),
        ),
        Some(_) => None,
    }
}

pub(super) fn plot(path: &Path, output: &Path, top: usize) -> Result<(), Failure> {
    let mut s = Session::new(FrameRules::default());
    let dump = crate::snapshot::read_dump(path).map_err(|e| Failure::Input(e.to_string()))?;
    let mut d = chart_of(&dump, Some(top))
        .map_err(|m| Failure::Input(format!("{}: {m}", path.display())))?;
    stack_lines(&mut s, path, &dump, &mut d, top)?;
    write_output(output, chart::svg(&d).as_bytes())
}

/// For a history and `top` > 0, the top lines stacked over time into `d`
/// (a second, streaming pass over the file, keyed with the session's frame
/// rules) and the footnote saying how they were chosen; `plot` and `report`
/// share it so that both draw the same chart.
pub(super) fn stack_lines(
    s: &mut Session,
    path: &Path,
    dump: &memtrace_format::Snapshot,
    d: &mut ChartData,
    top: usize,
) -> Result<(), Failure> {
    if d.history && top > 0 {
        d.lines = s
            .history_lines(path, dump, top)
            .map_err(|m| Failure::Input(format!("{}: {m}", path.display())))?;
        d.note = history_note(d);
    }
    Ok(())
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
