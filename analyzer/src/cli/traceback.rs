//! `memtrace traceback`: the R-th biggest group by traceback, printed as
//! `Traceback.format()` prints it.

use super::json::{write_json, FrameJson, TracebackJson};
use super::session::Session;
use super::{CommonArgs, Failure};
use crate::display::notes;
use crate::format::{kib, traceback_lines, traceback_slice, LineCache};
use crate::frame::FrameId;
use crate::snapshot::View;
use crate::stats::{self, KeyType};
use std::io::Write;
use std::path::Path;

pub(super) fn traceback(
    out: &mut dyn Write,
    path: &Path,
    rank: u64,
    frames: Option<i64>,
    oldest_first: bool,
    view: View,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let mut s = Session::new(common.rules());
    let snap = s
        .load_view(path, view)?
        .filter_traces(&s.table, &mut common.filters());
    let stats = stats::statistics(&snap, &s.table, KeyType::Traceback, false)
        .map_err(|e| Failure::Usage(e.0))?;
    let Some(st) = stats.get(rank as usize - 1) else {
        return Err(Failure::Input(format!(
            "{}: no traceback of rank {rank} (the snapshot has {} group{})",
            path.display(),
            stats.len(),
            if stats.len() == 1 { "" } else { "s" }
        )));
    };
    let mut lc = LineCache::new();
    if common.json {
        let oldest_first_frames: Vec<FrameId> = st.frames.iter().rev().copied().collect();
        let sel = traceback_slice(oldest_first_frames.len(), frames, !oldest_first);
        return write_json(
            out,
            &TracebackJson {
                command: "traceback",
                count: st.count,
                estimated: snap.sample_rate() > 0,
                frames: sel
                    .iter()
                    .map(|&i| FrameJson::with_source(&s.table, oldest_first_frames[i], &mut lc))
                    .collect(),
                groups: stats.len(),
                malloc_owner: snap.malloc_owner(),
                order: if oldest_first {
                    "oldest_first"
                } else {
                    "most_recent_first"
                },
                rank,
                sample_rate: snap.sample_rate(),
                size: st.size,
                snapshot: path.display().to_string(),
                truncated: st.truncated,
                view: (view != View::Live).then(|| view.name()),
            },
        );
    }
    writeln!(
        out,
        "{} memory blocks: {}{}",
        st.count,
        kib(st.size),
        notes(view, snap.sample_rate())
    )?;
    for line in traceback_lines(&s.table, &st.frames, frames, !oldest_first, &mut lc) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}
