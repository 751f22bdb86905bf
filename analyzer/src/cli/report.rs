//! `memtrace report SNAP -o report.html`: one self-contained HTML page with
//! `summary`'s text, the chart of `plot`, a flame graph of the live blocks
//! (and of the peak's), and the top lines of the four views with their
//! source lines (report::html draws it).

use super::plot::{chart_of, titles, write_output};
use super::session::{missing_view, Session};
use super::summary::{write_summary, VIEWS};
use super::{CommonArgs, Failure};
use crate::display::sampling_note;
use crate::format::LineCache;
use crate::report::chart;
use crate::report::flame::{FrameIndex, Tree};
use crate::report::html::{self, Page, Row, Table};
use crate::snapshot::{Snapshot, View};
use crate::stats::{self, KeyType};
use serde_json::json;
use std::path::Path;

/// What a view's size and count are, for the tables' notes.
fn meaning(view: View) -> &'static str {
    match view {
        View::Live => "The blocks live at the snapshot moment: size = their bytes, count = blocks.",
        View::Peak => "The blocks live when traced memory peaked: size = their bytes, count = blocks.",
        View::Allocated => {
            "Every allocation since the start, freed or not: size = bytes allocated, count = allocations."
        }
        View::Temporary => {
            "Allocations freed before their thread allocated anything else: size = their bytes, count = how many."
        }
    }
}

fn table(
    s: &Session,
    lc: &mut LineCache,
    (id, nav): (&'static str, &'static str),
    title: &str,
    view: View,
    snap: Option<&Snapshot>,
    limit: usize,
) -> Table {
    let rate = snap.map(|x| x.sample_rate()).unwrap_or(0);
    let title = format!("{title}{}", sampling_note(rate));
    let Some(snap) = snap else {
        return Table {
            id,
            nav,
            title,
            note: String::new(),
            total: (0, 0),
            groups: 0,
            rows: Vec::new(),
            missing: Some(missing_view(view)),
        };
    };
    let st = stats::statistics(snap, &s.table, KeyType::Lineno, false).unwrap_or_default();
    let total = (
        crate::display::total_size(&st),
        crate::display::total_count(&st),
    );
    let rows = st
        .iter()
        .take(limit)
        .map(|x| {
            let f = s.table.frame(x.frames[0]);
            Row {
                size: x.size,
                count: x.count,
                location: x.label(&s.table),
                function: f.function.clone(),
                source: lc.getline(&f.filename, f.lineno),
            }
        })
        .collect();
    Table {
        id,
        nav,
        title,
        note: meaning(view).to_string(),
        total,
        groups: st.len(),
        rows,
        missing: None,
    }
}

pub(super) fn report(
    path: &Path,
    output: &Path,
    limit: usize,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let mut s = Session::new(common.rules());
    let (dump, snaps) = s.load_views(path, &VIEWS)?;
    let mut text = Vec::new();
    write_summary(&mut text, &s, path, &dump, &snaps, 3, common)?;
    let summary: Vec<String> = String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_string)
        .collect();
    let chart = chart_of(&dump, None).map(|d| chart::svg(&d));
    let (peak, allocated, temporary, live) = (&snaps[0], &snaps[1], &snaps[2], &snaps[3]);

    // The flame graphs: the live blocks, and the peak's when recorded.
    let mut frames = FrameIndex::default();
    let mut views = Vec::new();
    for (name, title, snap) in [("live", "Live now", live), ("peak", "At the peak", peak)] {
        let Some(snap) = snap else { continue };
        let tree = Tree::of(snap);
        let (bytes, blocks) = tree.total();
        let (t, _, dropped) = tree.to_json(&mut frames);
        views.push(
            json!({"name": name, "title": title, "bytes": bytes, "blocks": blocks,
                          "dropped": dropped, "tree": t}),
        );
    }
    let mut lc = LineCache::new();
    let flame = json!({"frames": frames.to_json(&s.table, &mut lc), "views": views});

    let h = &dump.header;
    let exit = h.kind == memtrace_format::SnapshotKind::Exit;
    let tables = vec![
        table(
            &s,
            &mut lc,
            ("live", "Live"),
            if exit {
                "Live at exit: never freed"
            } else {
                "Live now"
            },
            View::Live,
            live.as_ref(),
            limit,
        ),
        table(
            &s,
            &mut lc,
            ("peak", "Peak"),
            "At the peak of traced memory",
            View::Peak,
            peak.as_ref(),
            limit,
        ),
        table(
            &s,
            &mut lc,
            ("allocated", "Allocated"),
            "Allocated since the start, freed or not",
            View::Allocated,
            allocated.as_ref(),
            limit,
        ),
        table(
            &s,
            &mut lc,
            ("temporary", "Temporary"),
            "Temporary allocations since the start",
            View::Temporary,
            temporary.as_ref(),
            limit,
        ),
    ];
    let (title, subtitle) = titles(&dump);
    let page = Page {
        title,
        subtitle: format!("{} · {}", path.display(), subtitle),
        summary,
        chart,
        flame_json: flame.to_string(),
        tables,
        note: (h.sample_rate > 0).then(|| {
            format!(
                "Sampled: 1 allocation per {} recorded on average; counts and sizes are estimates.",
                html::bytes(h.sample_rate)
            )
        }),
    };
    write_output(output, html::render(&page).as_bytes())
}
