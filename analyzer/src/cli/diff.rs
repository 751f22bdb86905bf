//! `memtrace diff OLD NEW`: `[ Top N differences ]` and one
//! str(StatisticDiff) line per group (`new.compare_to(old)`).

use super::json::{write_json, DiffJson, StatisticDiffJson, Total};
use super::session::Session;
use super::{CommonArgs, Failure, StatArgs};
use crate::display::diff_sampling_note;
use crate::stats;
use std::io::Write;
use std::path::Path;

pub(super) fn diff(
    out: &mut dyn Write,
    old: &Path,
    new: &Path,
    stat: &StatArgs,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let key = stat.key_type()?;
    let mut s = Session::new(common.rules());
    let mut filters = common.filters();
    let old_snap = s.load(old)?.filter_traces(&s.table, &mut filters);
    let new_snap = s.load(new)?.filter_traces(&s.table, &mut filters);
    let diffs = stats::compare_to(&new_snap, &old_snap, &s.table, key, stat.cumulative)
        .map_err(|e| Failure::Usage(e.0))?;
    let (old_rate, new_rate) = (old_snap.sample_rate(), new_snap.sample_rate());
    if common.json {
        let total = |(size, count)| Total { count, size };
        return write_json(
            out,
            &DiffJson {
                command: "diff",
                cumulative: stat.cumulative,
                estimated: old_rate > 0 || new_rate > 0,
                groups: diffs.len(),
                key: key.name(),
                limit: stat.limit,
                new: new.display().to_string(),
                new_malloc_owner: new_snap.malloc_owner(),
                new_sample_rate: new_rate,
                new_total: total(new_snap.totals()),
                old: old.display().to_string(),
                old_malloc_owner: old_snap.malloc_owner(),
                old_sample_rate: old_rate,
                old_total: total(old_snap.totals()),
                statistics: diffs
                    .iter()
                    .take(stat.limit)
                    .enumerate()
                    .map(|(i, d)| StatisticDiffJson::new(&s.table, i + 1, d))
                    .collect(),
            },
        );
    }
    writeln!(
        out,
        "[ Top {} differences ]{}",
        stat.limit,
        diff_sampling_note(old_rate, new_rate)
    )?;
    for d in diffs.iter().take(stat.limit) {
        writeln!(out, "{}", d.format(&s.table))?;
    }
    Ok(())
}
