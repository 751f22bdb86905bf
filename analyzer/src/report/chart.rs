//! The memory-over-time chart: traced bytes and RSS from a snapshot's
//! TIMELINE (format 1.2), the earlier snapshots and this one marked, the
//! peak of traced memory marked where PEAK puts it, and for a history the
//! top lines stacked by their live bytes (`history_lines`), as one
//! self-contained SVG (hand-written: see the module above for why no
//! plotting crate).

use super::{escape, human_bytes, trim_number};
use crate::history_lines::LineSeries;
use memtrace_format::SnapshotKind;
use std::fmt::Write as _;

/// What the chart draws, in seconds from the start of tracing and bytes.
#[derive(Clone, Debug, Default)]
pub struct ChartData {
    pub title: String,
    pub subtitle: String,
    /// Traced bytes over time, in time order.
    pub traced: Vec<(f64, u64)>,
    /// RSS over time where it is known, in time order.
    pub rss: Vec<(f64, u64)>,
    /// The highest RSS of the run (VmHWM), when recorded.
    pub rss_peak: Option<u64>,
    /// Earlier snapshots: (time, label).
    pub marks: Vec<(f64, String)>,
    /// This snapshot: (time, label).
    pub now: (f64, String),
    /// The peak of traced memory: (time, bytes).
    pub peak: Option<(f64, u64)>,
    /// A footnote.
    pub note: Option<String>,
    /// The top lines over time (a history), stacked under traced memory.
    pub lines: Option<LineSeries>,
    /// The file is a history: its last point is "this" moment.
    pub history: bool,
    /// A history's interval between points, seconds: no point for longer
    /// means nothing changed (`hold`).
    pub interval: f64,
}

/// Why a file cannot be plotted.
pub const NO_TIMELINE: &str =
    "no memory timeline recorded: plotting needs a snapshot of format 1.2 (a newer libtrace.so)";

impl ChartData {
    /// The chart of a dump's TIMELINE, with `title` and `subtitle`; `Err`
    /// (the one line to print) when the file has no TIMELINE.
    pub fn of(
        dump: &memtrace_format::Snapshot,
        title: String,
        subtitle: String,
    ) -> Result<ChartData, String> {
        let tl = dump.run.timeline.as_ref().ok_or(NO_TIMELINE)?;
        let secs = |t: u64| t.saturating_sub(tl.start_ns) as f64 / 1e9;
        let h = &dump.header;
        let now_t = secs(h.time_ns);
        // Tracing starts at 0 traced bytes; the points; the exact peak (the
        // points are samples and may miss it); the snapshot moment's bytes.
        let mut traced: Vec<(f64, u64)> = vec![(0.0, 0)];
        traced.extend(tl.points.iter().map(|p| (secs(p.time_ns), p.traced_bytes)));
        let peak = dump
            .run
            .peak
            .as_ref()
            .map(|p| (secs(p.time_ns), p.traced_bytes));
        if let Some(p) = peak {
            traced.push(p);
        }
        if traced.last().is_none_or(|l| l.0 <= now_t) {
            traced.push((now_t, h.traced_bytes));
        }
        traced.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut rss: Vec<(f64, u64)> = tl
            .points
            .iter()
            .filter(|p| p.rss_bytes > 0)
            .map(|p| (secs(p.time_ns), p.rss_bytes))
            .collect();
        if let Some(m) = dump.run.memory.as_ref().filter(|m| m.rss_bytes > 0) {
            if rss.last().is_none_or(|l| l.0 <= now_t) {
                rss.push((now_t, m.rss_bytes));
            }
        }
        // A history's point is read as a snapshot of index 0.
        let history = h.kind == SnapshotKind::Signal && h.index == 0;
        let now_label = match h.kind {
            SnapshotKind::Exit => "exit".to_string(),
            SnapshotKind::Signal if history => "last point".to_string(),
            SnapshotKind::Signal => format!("#{}", h.index),
        };
        Ok(ChartData {
            title,
            subtitle,
            traced,
            rss,
            rss_peak: dump
                .run
                .memory
                .as_ref()
                .map(|m| m.rss_peak_bytes)
                .filter(|&b| b > 0),
            marks: tl
                .snapshots
                .iter()
                .map(|m| (secs(m.time_ns), format!("#{}", m.index)))
                .collect(),
            now: (now_t, now_label),
            peak,
            note: None,
            lines: None,
            history,
            interval: tl.interval_ns as f64 / 1e9,
        })
    }
}

/// A "nice" step (1, 2 or 5 × 10^k) giving about `n` intervals over `span`.
pub fn nice_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// The y axis: ticks at nice values of a binary unit (`0, 512 KiB, 1 MiB`
/// would mix units, so the unit is chosen once from the top value and the
/// steps are nice in it: `0, 0.5 MiB, 1 MiB, 1.5 MiB`). Returns (top of the
/// axis, ticks as (bytes, label)).
pub fn byte_ticks(max: f64) -> (f64, Vec<(f64, String)>) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let max = max.max(1.0);
    let mut unit = 0;
    while unit < UNITS.len() - 1 && max / 1024f64.powi(unit as i32) >= 1024.0 {
        unit += 1;
    }
    let scale = 1024f64.powi(unit as i32);
    let v = max / scale;
    let mut step = nice_step(v, 5.0);
    if unit == 0 {
        step = step.max(1.0);
    }
    scaled_ticks(v, step, scale, |x| {
        if x == "0" {
            x.to_string()
        } else {
            format!("{x} {}", UNITS[unit])
        }
    })
}

/// Ticks every `step` from 0 to the first multiple of `step` at or above
/// `v` (axis units), as (value × `scale`, `label` of the number printed
/// with the step's decimals); returns (top × `scale`, ticks).
fn scaled_ticks(
    v: f64,
    step: f64,
    scale: f64,
    label: impl Fn(&str) -> String,
) -> (f64, Vec<(f64, String)>) {
    let top = (v / step).ceil().max(1.0) * step;
    let digits = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let n = (top / step).round() as usize;
    let ticks = (0..=n)
        .map(|i| {
            let x = i as f64 * step;
            (x * scale, label(&trim_number(x, digits)))
        })
        .collect();
    (top * scale, ticks)
}

/// The x axis: seconds (or minutes, hours for long runs) at nice steps.
pub fn time_ticks(max: f64) -> (f64, Vec<(f64, String)>) {
    let max = if max > 0.0 { max } else { 1.0 };
    let (scale, unit) = if max >= 3.0 * 3600.0 {
        (3600.0, "h")
    } else if max >= 180.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    };
    let v = max / scale;
    let step = nice_step(v, 8.0);
    scaled_ticks(v, step, scale, |x| format!("{x} {unit}"))
}

const W: f64 = 960.0;
const H: f64 = 500.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 28.0;
const TOP: f64 = 78.0;
const BOTTOM: f64 = 104.0;
const TRACED: &str = "#3b6ea8";
const RSS: &str = "#e07b24";
const PEAK: &str = "#c8283c";
const MARK: &str = "#8a8f98";
/// The stacked lines' fills, biggest line first (no orange or red: those
/// are RSS and the peak), and the other lines'.
const LINE_COLORS: [&str; 10] = [
    "#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#86bcb6",
    "#d4a6c8", "#a0cbe8",
];
const OTHER: &str = "#c9cdd3";
/// Height of a row of the lines' legend.
const LINE_ROW: f64 = 19.0;

/// Seconds with the precision a label needs.
fn secs_text(t: f64) -> String {
    if t >= 100.0 {
        format!("{t:.0} s")
    } else if t >= 1.0 {
        format!("{t:.2} s")
    } else {
        format!("{t:.3} s")
    }
}

/// The chart as a standalone SVG document (also valid inline in HTML).
pub fn svg(d: &ChartData) -> String {
    if d.history {
        let mut held = d.clone();
        held.history = false;
        held.traced = hold(&d.traced, d.interval);
        if let Some(l) = held.lines.as_mut() {
            let pts: Vec<(f64, (Vec<u64>, u64))> = l
                .points
                .iter()
                .map(|(t, b, o)| (*t, (b.clone(), *o)))
                .collect();
            l.points = hold(&pts, d.interval)
                .into_iter()
                .map(|(t, (b, o))| (t, b, o))
                .collect();
        }
        return draw(&held, true);
    }
    draw(d, false)
}

/// `svg` once a history's points are held (`hold`).
fn draw(d: &ChartData, history: bool) -> String {
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    // The lines' legend: two columns below the plot's.
    let line_rows = d
        .lines
        .as_ref()
        .map_or(0, |l| (l.labels.len() + l.has_other() as usize).div_ceil(2));
    let hh = H + line_rows as f64 * LINE_ROW + if line_rows > 0 { 10.0 } else { 0.0 };
    let tmax = d
        .traced
        .iter()
        .chain(&d.rss)
        .map(|p| p.0)
        .chain(d.marks.iter().map(|m| m.0))
        .chain([d.now.0])
        .fold(0.0f64, f64::max);
    let bmax = d
        .traced
        .iter()
        .chain(&d.rss)
        .map(|p| p.1)
        .chain(d.rss_peak)
        .chain(d.peak.map(|p| p.1))
        .max()
        .unwrap_or(0) as f64;
    let (xtop, xticks) = time_ticks(tmax);
    let (ytop, yticks) = byte_ticks(bmax * 1.04);
    let x = |t: f64| LEFT + t / xtop * pw;
    let y = |b: f64| TOP + ph - b / ytop * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="memchart" class="memchart" viewBox="0 0 {W} {hh}" width="{W}" height="{hh}" role="img" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif">
<title>{}</title>
<rect width="{W}" height="{hh}" fill="#ffffff"/>
<text x="{LEFT}" y="28" font-size="17" font-weight="600" fill="#1d232b">{}</text>
<text x="{LEFT}" y="50" font-size="12.5" fill="#5a6270">{}</text>
"##,
        escape(&d.title),
        escape(&d.title),
        escape(&d.subtitle)
    );
    // Grid and axes.
    s.push_str("<g class=\"grid\" font-size=\"11.5\" fill=\"#5a6270\">\n");
    for (b, label) in &yticks {
        let yy = y(*b);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e6ea"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 8.0,
            yy + 4.0,
            escape(label)
        );
    }
    for (t, label) in &xticks {
        let xx = x(*t);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{TOP}" y2="{:.1}" stroke="#f0f2f4"/><line x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}" stroke="#9aa1ab"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph,
            TOP + ph + 5.0,
            TOP + ph + 19.0,
            escape(label)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#9aa1ab"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}" stroke="#9aa1ab"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" fill="#5a6270">time since the start of tracing</text>
</g>"##,
        LEFT + pw,
        TOP + ph,
        TOP + ph,
        TOP + ph,
        LEFT + pw / 2.0,
        TOP + ph + 38.0
    );
    if let Some(l) = &d.lines {
        stacked_areas(&mut s, l, &x, &y);
    }
    // Traced memory: a filled area under its line (its outline only over
    // the stacked lines, which fill it).
    if !d.traced.is_empty() {
        let pts: Vec<String> = d
            .traced
            .iter()
            .map(|&(t, b)| format!("{:.1},{:.1}", x(t), y(b as f64)))
            .collect();
        let first = d.traced[0].0;
        let last = d.traced[d.traced.len() - 1].0;
        let _ = writeln!(
            s,
            r##"<path class="traced-area" d="M{:.1},{:.1} L{} L{:.1},{:.1} Z" fill="{TRACED}" fill-opacity="{}"/>
<polyline class="traced" points="{}" fill="none" stroke="{TRACED}" stroke-width="2.2" stroke-linejoin="round"/>"##,
            x(first),
            y(0.0),
            pts.join(" "),
            x(last),
            y(0.0),
            if d.lines.is_some() { "0" } else { "0.16" },
            pts.join(" ")
        );
    }
    if let Some(hwm) = d.rss_peak {
        let yy = y(hwm as f64);
        let _ = writeln!(
            s,
            r##"<line class="rss-peak" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{RSS}" stroke-width="1" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="{RSS}">peak RSS {}</text>"##,
            LEFT + pw,
            LEFT + pw - 4.0,
            yy - 5.0,
            escape(&human_bytes(hwm as f64, 1))
        );
    }
    if !d.rss.is_empty() {
        let pts: Vec<String> = d
            .rss
            .iter()
            .map(|&(t, b)| format!("{:.1},{:.1}", x(t), y(b as f64)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline class="rss" points="{}" fill="none" stroke="{RSS}" stroke-width="2" stroke-linejoin="round"/>"##,
            pts.join(" ")
        );
    }
    // Snapshot moments: earlier ones dashed, this one solid; labels that
    // would overlap the previous one are left out (the line stays).
    let mut last_label = f64::NEG_INFINITY;
    let mut marks: Vec<(f64, &str, bool)> = d
        .marks
        .iter()
        .map(|(t, l)| (*t, l.as_str(), false))
        .collect();
    marks.push((d.now.0, d.now.1.as_str(), true));
    for (t, label, now) in marks {
        let xx = x(t);
        let dash = if now {
            ""
        } else {
            r#" stroke-dasharray="4 3""#
        };
        let _ = write!(
            s,
            r##"<g class="snapmark"><line x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}" stroke="{MARK}" stroke-width="1.2"{dash}/>"##,
            TOP - 4.0,
            TOP + ph
        );
        if xx - last_label >= 26.0 {
            let _ = write!(
                s,
                r##"<text x="{xx:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#4a505a">{}</text>"##,
                TOP - 8.0,
                escape(label)
            );
            last_label = xx;
        }
        s.push_str("</g>\n");
    }
    if let Some((t, b)) = d.peak {
        let (px, py) = (x(t), y(b as f64));
        let label = format!("peak {} at {}", human_bytes(b as f64, 1), secs_text(t));
        // Put the label on the side with room.
        let (anchor, lx) = if px > LEFT + pw * 0.62 {
            ("end", px - 10.0)
        } else {
            ("start", px + 10.0)
        };
        let ly = (py - 8.0).max(TOP + 12.0);
        let _ = writeln!(
            s,
            r##"<g class="peak"><circle cx="{px:.1}" cy="{py:.1}" r="5" fill="{PEAK}" stroke="#ffffff" stroke-width="1.5"/><text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" font-size="12" font-weight="600" fill="{PEAK}" paint-order="stroke" stroke="#ffffff" stroke-width="3">{}</text></g>"##,
            escape(&label)
        );
    }
    // Legend.
    let ly = H - 42.0;
    let (earlier, this) = if history {
        ("snapshots", "last point")
    } else {
        ("earlier snapshots", "this snapshot")
    };
    let mut lx = LEFT;
    let mut item = |s: &mut String, sym: String, text: &str| {
        let _ = write!(
            s,
            r##"<g transform="translate({lx:.1},{ly:.1})">{sym}<text x="26" y="4" font-size="12" fill="#2b313a">{}</text></g>"##,
            escape(text)
        );
        lx += 44.0 + text.chars().count() as f64 * 7.3;
    };
    s.push_str("<g class=\"legend\">");
    item(
        &mut s,
        format!(
            r##"<rect x="0" y="-6" width="20" height="10" fill="{TRACED}" fill-opacity="0.16" stroke="{TRACED}" stroke-width="2"/>"##
        ),
        "traced memory",
    );
    if !d.rss.is_empty() {
        item(
            &mut s,
            format!(r##"<line x1="0" x2="20" y1="0" y2="0" stroke="{RSS}" stroke-width="2"/>"##),
            "RSS",
        );
    }
    if d.rss_peak.is_some() {
        item(
            &mut s,
            format!(
                r##"<line x1="0" x2="20" y1="0" y2="0" stroke="{RSS}" stroke-dasharray="2 3"/>"##
            ),
            "peak RSS (VmHWM)",
        );
    }
    if d.peak.is_some() {
        item(
            &mut s,
            format!(r##"<circle cx="10" cy="0" r="5" fill="{PEAK}"/>"##),
            "peak of traced memory",
        );
    }
    // A history without snapshots has nothing to name there.
    if !(history && d.marks.is_empty()) {
        item(
            &mut s,
            format!(
                r##"<line x1="10" x2="10" y1="-7" y2="7" stroke="{MARK}" stroke-dasharray="4 3"/>"##
            ),
            earlier,
        );
    }
    item(
        &mut s,
        format!(r##"<line x1="10" x2="10" y1="-7" y2="7" stroke="{MARK}"/>"##),
        this,
    );
    s.push_str("</g>\n");
    if let Some(l) = &d.lines {
        lines_legend(&mut s, l, H - 20.0);
    }
    if let Some(note) = &d.note {
        let _ = writeln!(
            s,
            r##"<text class="note" x="{LEFT}" y="{:.1}" font-size="11" fill="#6b7280">{}</text>"##,
            hh - 14.0,
            escape(note)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A history writes a point only when something changed (or a period has
/// passed): between two points further apart than an interval, memory
/// stayed where the first left it until at most an interval before the
/// second. Drawn so (a flat stretch, then the change) instead of a slope
/// across the whole gap.
pub fn hold<V: Clone>(points: &[(f64, V)], interval: f64) -> Vec<(f64, V)> {
    let mut out: Vec<(f64, V)> = Vec::with_capacity(points.len());
    for p in points {
        if let Some(prev) = out.last() {
            if interval > 0.0 && p.0 - prev.0 > 1.5 * interval {
                let v = prev.1.clone();
                out.push((p.0 - interval, v));
            }
        }
        out.push(p.clone());
    }
    out
}

/// The chosen lines' areas stacked from the bottom, biggest first, the
/// other lines' on top: at each point their sum is traced memory.
fn stacked_areas(s: &mut String, l: &LineSeries, x: &dyn Fn(f64) -> f64, y: &dyn Fn(f64) -> f64) {
    let layers = l.labels.len() + l.has_other() as usize;
    // Cumulative bytes under the top of each layer, per point.
    let mut below = vec![0u64; l.points.len()];
    s.push_str("<g class=\"lines\">\n");
    for k in 0..layers {
        let top: Vec<u64> = l
            .points
            .iter()
            .zip(&below)
            .map(|((_, b, other), &under)| under + if k < b.len() { b[k] } else { *other })
            .collect();
        let upper: Vec<String> = l
            .points
            .iter()
            .zip(&top)
            .map(|(p, &t)| format!("{:.1},{:.1}", x(p.0), y(t as f64)))
            .collect();
        let lower: Vec<String> = l
            .points
            .iter()
            .zip(&below)
            .rev()
            .map(|(p, &u)| format!("{:.1},{:.1}", x(p.0), y(u as f64)))
            .collect();
        let (color, name) = match l.labels.get(k) {
            Some(label) => (LINE_COLORS[k % LINE_COLORS.len()], label.as_str()),
            None => (OTHER, "other lines"),
        };
        let _ = writeln!(
            s,
            r##"<path class="line-area" d="M{} L{} Z" fill="{color}" fill-opacity="0.78" stroke="#ffffff" stroke-width="0.6"><title>{}</title></path>"##,
            upper.join(" L"),
            lower.join(" L"),
            escape(name)
        );
        below = top;
    }
    s.push_str("</g>\n");
}

/// `file:line` short enough for a legend column: the path's leading
/// directories give way to `…/`.
fn short_label(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        return label.to_string();
    }
    let mut rest = label;
    while let Some(i) = rest.find('/') {
        rest = &rest[i + 1..];
        if rest.chars().count() + 2 <= max {
            return format!("…/{rest}");
        }
    }
    let tail: String = rest.chars().rev().take(max - 1).collect();
    format!("…{}", tail.chars().rev().collect::<String>())
}

/// The lines' legend: a swatch, `file:line`, the function, and the bytes
/// each had when chosen; two columns from `top`.
fn lines_legend(s: &mut String, l: &LineSeries, top: f64) {
    let col_w = (W - LEFT - RIGHT) / 2.0;
    let items = l
        .labels
        .iter()
        .enumerate()
        .map(|(k, label)| {
            let mut text = short_label(label, 40);
            if let Some(f) = &l.functions[k] {
                let f: String = f.chars().take(24).collect();
                text.push_str(&format!(" in {f}"));
            }
            (LINE_COLORS[k % LINE_COLORS.len()], text, label.as_str())
        })
        .chain(
            l.has_other()
                .then(|| (OTHER, "other lines".to_string(), "other lines")),
        );
    let n = l.labels.len();
    let heading = match l.at_peak {
        k if k == n => format!("The {n} lines with the most live bytes at the peak"),
        0 => format!("The {n} lines with the most live bytes at the last point"),
        k => format!(
            "The {k} lines with live bytes at the peak, then {} more with the most at the last point",
            n - k
        ),
    };
    let _ = write!(
        s,
        r##"<g class="lines-legend"><text x="{LEFT}" y="{:.1}" font-size="12" font-weight="600" fill="#2b313a">{}, stacked by their live bytes over time:</text>"##,
        top,
        escape(&heading)
    );
    for (i, (color, text, full)) in items.enumerate() {
        let (col, row) = (i % 2, i / 2);
        let (lx, ly) = (
            LEFT + col as f64 * col_w,
            top + 8.0 + (row as f64 + 0.5) * LINE_ROW,
        );
        let _ = write!(
            s,
            r##"<g transform="translate({lx:.1},{ly:.1})"><title>{}</title><rect x="0" y="-6" width="14" height="11" fill="{color}" fill-opacity="0.78"/><text x="20" y="4" font-size="12" fill="#2b313a">{}</text></g>"##,
            escape(full),
            escape(&text)
        );
    }
    s.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        let (top, t) = byte_ticks(3.0 * 1048576.0 + 40000.0);
        assert_eq!(top, 4.0 * 1048576.0);
        let labels: Vec<&str> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(labels, ["0", "1 MiB", "2 MiB", "3 MiB", "4 MiB"]);
        let (_, t) = byte_ticks(1.2 * 1048576.0);
        assert_eq!(t[1].1, "0.5 MiB");
        let (_, t) = byte_ticks(700.0);
        assert_eq!(t[1].1, "200 B");
        let (top, t) = time_ticks(2.5);
        assert_eq!(top, 2.5);
        assert_eq!(t[1].1, "0.5 s");
        let (_, t) = time_ticks(7200.0);
        assert_eq!(t[1].1, "20 min");
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }

    #[test]
    fn escapes_labels() {
        let d = ChartData {
            title: "<a & \"b\">".into(),
            traced: vec![(0.0, 0), (1.0, 100)],
            now: (1.0, "exit".into()),
            ..Default::default()
        };
        let s = svg(&d);
        assert!(s.contains("&lt;a &amp; &quot;b&quot;&gt;"));
        assert!(!s.contains("<a "));
    }
}
