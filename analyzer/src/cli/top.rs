//! `memtrace top`: `[ Top N ]` and one str(Statistic) line per group
//! (`Snapshot.statistics`), or with `--pretty` the documentation's
//! `display_top`.

use super::json::PeakJson;
use super::json::{write_json, CountSize, OtherGroups, StatisticJson, TopJson};
use super::session::{missing_view_in, Session};
use super::{CommonArgs, Failure, StatArgs};
use crate::display::{display_top, notes, total_count, total_size};
use crate::snapshot::View;
use crate::stats;
use std::io::Write;
use std::path::Path;

pub(super) fn top(
    out: &mut dyn Write,
    path: &Path,
    stat: &StatArgs,
    pretty: bool,
    view: View,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let key = stat.key_type()?;
    let mut s = Session::new(common.rules());
    let (dump, mut snaps) = s.load_views(path, &[view])?;
    let snap = snaps
        .pop()
        .flatten()
        .ok_or_else(|| {
            Failure::Input(format!(
                "{}: {}",
                path.display(),
                missing_view_in(path, view)
            ))
        })?
        .filter_traces(&s.table, &mut common.filters());
    let stats = stats::statistics(&snap, &s.table, key, stat.cumulative)
        .map_err(|e| Failure::Usage(e.0))?;
    let rate = snap.sample_rate();
    if common.json {
        let other = &stats[stat.limit.min(stats.len())..];
        return write_json(
            out,
            &TopJson {
                command: "top",
                cumulative: stat.cumulative,
                estimated: rate > 0,
                groups: stats.len(),
                key: key.name(),
                limit: stat.limit,
                malloc_owner: snap.malloc_owner(),
                other: OtherGroups {
                    count: total_count(other),
                    groups: other.len(),
                    size: total_size(other),
                },
                peak: (view == View::Peak).then(|| PeakJson::new(&dump)).flatten(),
                pretty,
                sample_rate: rate,
                snapshot: &snap.path,
                statistics: stats
                    .iter()
                    .take(stat.limit)
                    .enumerate()
                    .map(|(i, st)| StatisticJson::new(&s.table, i + 1, st))
                    .collect(),
                total: CountSize::of(snap.totals()),
                view: (view != View::Live).then(|| view.name()),
            },
        );
    }
    if pretty {
        return Ok(display_top(
            out,
            &s.table,
            &stats,
            stat.limit,
            &notes(view, rate),
        )?);
    }
    let began = super::began::tracing_began(path)
        .map(|b| format!(" (tracing began {b})"))
        .unwrap_or_default();
    writeln!(out, "[ Top {} ]{}{began}", stat.limit, notes(view, rate))?;
    for st in stats.iter().take(stat.limit) {
        writeln!(out, "{}", st.format(&s.table))?;
    }
    Ok(())
}
