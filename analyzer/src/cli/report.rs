//! `memtrace report SNAP -o report.html`: one self-contained HTML page with
//! `summary`'s text, the chart of `plot`, a flame graph of the live blocks
//! (and of the peak's), and the top lines of the four views with their
//! source lines (report::html draws it). The filter and frame options of
//! `top` shape every table and flame graph; a custom allocator's objects
//! (domains, memtrace.h) are labelled with their domain.

use super::plot::{chart_of, stack_lines, titles, write_output};
use super::session::{missing_view, Session};
use super::summary::{write_summary, VIEWS};
use super::{CommonArgs, Failure};
use crate::display::sampling_note;
use crate::format::LineCache;
use crate::report::chart;
use crate::report::flame::{FrameIndex, Tree};
use crate::report::html::{self, Page, Row, Table};
use crate::snapshot::{Snapshot, View};
use crate::stats::{self, KeyType, Statistic};
use serde_json::json;
use std::borrow::Cow;
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

/// How many rows each table shows and lines the history chart stacks.
pub(super) struct Sizes {
    pub limit: usize,
    pub top: usize,
}

/// A view's statistics by line, each with its traces' domain. tracemalloc's
/// lineno key ignores the domain; a custom allocator's objects are grouped
/// apart here so that a row never mixes them with heap blocks (whose bytes
/// already hold them) and can say which domain it is.
fn statistics_by_domain(snap: &Snapshot, s: &Session) -> Vec<(u32, Statistic)> {
    let lineno =
        |x: &Snapshot| stats::statistics(x, &s.table, KeyType::Lineno, false).unwrap_or_default();
    let domains = domains_of(snap);
    if domains.len() <= 1 {
        let d = domains.first().copied().unwrap_or(0);
        return lineno(snap).into_iter().map(|x| (d, x)).collect();
    }
    let mut all = Vec::new();
    for d in domains {
        all.extend(lineno(&of_domain(snap, d)).into_iter().map(|x| (d, x)));
    }
    // `statistics`' order (size, then count, descending) over the domains.
    all.sort_by(|a, b| b.1.size.cmp(&a.1.size).then(b.1.count.cmp(&a.1.count)));
    all
}

/// The table note's addition when a view lists custom allocators' objects.
fn domain_note(st: &[(u32, Statistic)]) -> String {
    let mut ds: Vec<u32> = st.iter().map(|x| x.0).filter(|&d| d != 0).collect();
    ds.sort_unstable();
    ds.dedup();
    if ds.is_empty() {
        return String::new();
    }
    let names: Vec<String> = ds.iter().map(|d| d.to_string()).collect();
    format!(
        " Rows of domain {} are a custom allocator's objects (memtrace_track): they lie inside heap \
         blocks listed here too, so the total counts their bytes twice (--domain 0 or \
         --exclude-domain N leaves them out).",
        names.join(", ")
    )
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
            domains: false,
            missing: Some(missing_view(view)),
        };
    };
    let st = statistics_by_domain(snap, s);
    let total = st.iter().fold((0u64, 0u64), |t, (_, x)| {
        (t.0.saturating_add(x.size), t.1.saturating_add(x.count))
    });
    let rows = st
        .iter()
        .take(limit)
        .map(|(domain, x)| {
            let f = s.table.frame(x.frames[0]);
            Row {
                size: x.size,
                count: x.count,
                domain: *domain,
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
        note: format!("{}{}", meaning(view), domain_note(&st)),
        total,
        groups: st.len(),
        rows,
        domains: st.iter().any(|x| x.0 != 0),
        missing: None,
    }
}

/// The flame graph's views: the live blocks (the heap's, and each custom
/// allocator's domain apart: its objects lie inside heap blocks, one tree
/// holding both would count them twice), and the peak's when recorded.
fn flame_views<'a>(
    live: Option<&'a Snapshot>,
    peak: Option<&'a Snapshot>,
) -> Vec<(String, String, Cow<'a, Snapshot>)> {
    let mut v = Vec::new();
    if let Some(live) = live {
        let domains = domains_of(live);
        if domains.iter().all(|&d| d == 0) {
            v.push(("live".into(), "Live now".into(), Cow::Borrowed(live)));
        } else {
            for d in domains {
                let (name, title) = match d {
                    0 => ("live".to_string(), "Live now (heap)".to_string()),
                    d => (format!("domain-{d}"), format!("Domain {d} objects")),
                };
                v.push((name, title, Cow::Owned(of_domain(live, d))));
            }
        }
    }
    if let Some(peak) = peak {
        v.push(("peak".into(), "At the peak".into(), Cow::Borrowed(peak)));
    }
    v
}

/// The domains of `snap`'s traces, in order.
fn domains_of(snap: &Snapshot) -> Vec<u32> {
    let mut d: Vec<u32> = snap.traces.iter().map(|t| t.domain).collect();
    d.sort_unstable();
    d.dedup();
    d
}

/// `snap` with the traces of `domain` only.
fn of_domain(snap: &Snapshot, domain: u32) -> Snapshot {
    Snapshot {
        path: snap.path.clone(),
        header: snap.header.clone(),
        module_count: snap.module_count,
        traces: snap
            .traces
            .iter()
            .filter(|t| t.domain == domain)
            .copied()
            .collect(),
        tracebacks: snap.tracebacks.clone(),
        view: snap.view,
    }
}

/// The header's note on custom allocators' objects, when the file has any:
/// they are not in traced memory (docs/CLI.md, "Domains").
fn domains_notice(dump: &memtrace_format::Snapshot) -> Option<String> {
    let d = crate::snapshot::domain_totals(dump);
    if d.is_empty() {
        return None;
    }
    let each: Vec<String> = d
        .iter()
        .map(|t| {
            format!(
                "domain {}: {} objects, {}",
                t.domain,
                t.blocks,
                html::bytes(t.size)
            )
        })
        .collect();
    Some(format!(
        "Custom allocators' objects (memtrace_track): {}. They lie inside heap blocks, so traced \
         memory, the chart and the whole run do not add them; the Live table and flame graph show \
         them apart, labelled with their domain.",
        each.join("; ")
    ))
}

pub(super) fn report(
    path: &Path,
    output: &Path,
    sizes: Sizes,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let mut s = Session::new(common.rules());
    let (dump, snaps) = s.load_views(path, &VIEWS)?;
    let mut text = Vec::new();
    // The summary filters its own top lists (and keeps its totals whole).
    write_summary(&mut text, &s, path, &dump, &snaps, 3, common)?;
    let summary: Vec<String> = String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_string)
        .collect();
    let chart = match chart_of(&dump, None) {
        Ok(mut d) => {
            stack_lines(&mut s, path, &dump, &mut d, sizes.top)?;
            Ok(chart::svg(&d))
        }
        Err(why) => Err(why),
    };
    let mut filters = common.filters();
    let filtered = !filters.is_empty();
    // Unfiltered, the views are used as read (filter_traces would copy them).
    let snaps: Vec<Option<Snapshot>> = if filtered {
        snaps
            .iter()
            .map(|x| x.as_ref().map(|x| x.filter_traces(&s.table, &mut filters)))
            .collect()
    } else {
        snaps
    };
    let (peak, allocated, temporary, live) = (&snaps[0], &snaps[1], &snaps[2], &snaps[3]);

    let mut frames = FrameIndex::default();
    let mut views = Vec::new();
    for (name, title, snap) in flame_views(live.as_ref(), peak.as_ref()) {
        let tree = Tree::of(&snap);
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
    let limit = sizes.limit;
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
    let mut notes: Vec<String> = Vec::new();
    if h.sample_rate > 0 {
        notes.push(format!(
            "Sampled: 1 allocation per {} recorded on average; counts and sizes are estimates.",
            html::bytes(h.sample_rate)
        ));
    }
    notes.extend(domains_notice(&dump));
    if filtered {
        notes.push(
            "Filtered (--include, --exclude, --domain, --exclude-domain): the tables and flame \
             graphs hold the traces that pass; the summary's totals and the chart are the whole \
             file's."
                .to_string(),
        );
    }
    let page = Page {
        title,
        subtitle: format!("{} · {}", path.display(), subtitle),
        summary,
        chart,
        flame_json: flame.to_string(),
        tables,
        notes,
    };
    write_output(output, html::render(&page).as_bytes())
}
