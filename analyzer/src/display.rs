//! The reports memtrace prints from statistics besides `str(Statistic)`:
//! the tracemalloc documentation's `display_top` recipe ("pretty top") and
//! the notes a header carries for a sampled snapshot.

use crate::format::{format_size, kib, LineCache};
use crate::frame::FrameTable;
use crate::snapshot::View;
use crate::stats::{GroupKey, Statistic};
use std::io::Write;

/// The documentation's `display_top` recipe; `note` follows the first line.
pub fn display_top(
    out: &mut dyn Write,
    table: &FrameTable,
    stats: &[Statistic],
    limit: usize,
    note: &str,
) -> std::io::Result<()> {
    let mut lc = LineCache::new();
    writeln!(out, "Top {limit} lines{note}")?;
    for (index, st) in stats.iter().take(limit).enumerate() {
        let frame = table.frame(st.frames[0]);
        let label = match st.key {
            GroupKey::Func(_) => st.label(table),
            GroupKey::File(_) => format!("{}:0", short_name(&frame.filename)),
            _ => format!("{}:{}", short_name(&frame.filename), frame.lineno),
        };
        writeln!(out, "#{}: {}: {}", index + 1, label, kib(st.size))?;
        if !matches!(st.key, GroupKey::File(_)) {
            if let Some(line) = lc.getline(&frame.filename, frame.lineno) {
                writeln!(out, "    {line}")?;
            }
        }
    }
    let other = &stats[limit.min(stats.len())..];
    if !other.is_empty() {
        writeln!(out, "{} other: {}", other.len(), kib(total_size(other)))?;
    }
    writeln!(out, "Total allocated size: {}", kib(total_size(stats)))?;
    Ok(())
}

/// The saturating sum of the statistics' sizes.
pub fn total_size(stats: &[Statistic]) -> u64 {
    stats.iter().fold(0u64, |x, s| x.saturating_add(s.size))
}

/// The saturating sum of the statistics' counts.
pub fn total_count(stats: &[Statistic]) -> u64 {
    stats.iter().fold(0u64, |x, s| x.saturating_add(s.count))
}

/// `os.sep.join(filename.split(os.sep)[-2:])`.
fn short_name(filename: &str) -> String {
    let parts: Vec<&str> = filename.split('/').collect();
    parts[parts.len().saturating_sub(2)..].join("/")
}

/// `1 per 512 KiB`: a sampling rate as the notes print it.
fn rate_text(rate: u64) -> String {
    format!("1 per {}", format_size(rate as f64, false))
}

/// The note after a header line for a snapshot sampled at `rate`
/// (` (estimated from samples, 1 per 512 KiB)`); empty when `rate` is 0.
pub fn sampling_note(rate: u64) -> String {
    if rate == 0 {
        String::new()
    } else {
        format!(" (estimated from samples, {})", rate_text(rate))
    }
}

/// The note after a header line for a view other than the live blocks
/// (` (at the peak of traced memory)`); empty for the live view.
pub fn view_note(view: View) -> &'static str {
    match view {
        View::Live => "",
        View::Peak => " (at the peak of traced memory)",
        View::Allocated => " (allocated since the start, freed or not)",
        View::Temporary => " (temporary allocations since the start)",
    }
}

/// The notes after a header line: the view's, then the sampling one.
pub fn notes(view: View, rate: u64) -> String {
    if view == View::Temporary && rate > 0 {
        return format!(
            " (temporary allocations since the start, {}){}",
            TEMPORARY_SAMPLED,
            sampling_note(rate)
        );
    }
    format!("{}{}", view_note(view), sampling_note(rate))
}

/// Under sampling the writer sees only the sampled allocations, so a block
/// counts as temporary when no *sampled* allocation of its thread came
/// before its free: more blocks than the real temporaries.
pub const TEMPORARY_SAMPLED: &str = "an upper bound under sampling";

/// The note after `[ Top N differences ]` for snapshots sampled at `old`
/// and `new` (either may be 0).
pub fn diff_sampling_note(old: u64, new: u64) -> String {
    let r = |x: u64| {
        if x == 0 {
            "every allocation".to_string()
        } else {
            rate_text(x)
        }
    };
    match (old, new) {
        (0, 0) => String::new(),
        (a, b) if a == b => sampling_note(a),
        (a, b) => format!(" (estimated from samples: old {}, new {})", r(a), r(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short() {
        assert_eq!(short_name("/a/b/c.c"), "b/c.c");
        assert_eq!(short_name("c.c"), "c.c");
        assert_eq!(short_name("<unknown>"), "<unknown>");
    }

    #[test]
    fn notes() {
        assert_eq!(sampling_note(0), "");
        assert_eq!(
            sampling_note(512 * 1024),
            " (estimated from samples, 1 per 512 KiB)"
        );
        assert_eq!(super::notes(View::Live, 0), "");
        assert_eq!(
            super::notes(View::Peak, 4096),
            " (at the peak of traced memory) (estimated from samples, 1 per 4096 B)"
        );
        assert_eq!(
            super::notes(View::Temporary, 4096),
            " (temporary allocations since the start, an upper bound under sampling) (estimated from samples, 1 per 4096 B)"
        );
        assert_eq!(diff_sampling_note(0, 0), "");
        assert_eq!(
            diff_sampling_note(4096, 4096),
            " (estimated from samples, 1 per 4096 B)"
        );
        assert_eq!(
            diff_sampling_note(0, 4096),
            " (estimated from samples: old every allocation, new 1 per 4096 B)"
        );
    }
}
