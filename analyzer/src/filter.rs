//! `tracemalloc.Filter` and `Snapshot.filter_traces`, over the `fnmatch`
//! of [`crate::pattern`].

use crate::frame::{basename, FrameId, FrameTable};
pub use crate::pattern::{fnmatch, normalize_filename, Pattern};
use crate::snapshot::Snapshot;
use std::collections::HashMap;

/// `tracemalloc.Filter(inclusive, filename_pattern, lineno, all_frames)`.
/// A frame matches when the pattern matches its file name — or, for native
/// frames, its module's path or file name, or its function name — and, if
/// `lineno` is set, its line number is that.
#[derive(Clone, Debug)]
pub struct Filter {
    pub inclusive: bool,
    pub pattern: Pattern,
    pub lineno: Option<u32>,
    pub all_frames: bool,
}

impl Filter {
    pub fn new(inclusive: bool, pattern: &str, lineno: Option<u32>, all_frames: bool) -> Filter {
        Filter {
            inclusive,
            pattern: Pattern::new(normalize_filename(pattern)),
            lineno,
            all_frames,
        }
    }

    /// Parses a command-line pattern: `PATTERN` or `PATTERN:LINENO`.
    pub fn parse(inclusive: bool, spec: &str, all_frames: bool) -> Filter {
        if let Some((pat, line)) = spec.rsplit_once(':') {
            if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(n) = line.parse::<u32>() {
                    return Filter::new(inclusive, pat, Some(n), all_frames);
                }
            }
        }
        Filter::new(inclusive, spec, None, all_frames)
    }

    /// `_match_frame_impl`: does the frame match, regardless of inclusive?
    pub fn match_frame_impl(&self, table: &FrameTable, id: FrameId) -> bool {
        let f = table.frame(id);
        if let Some(l) = self.lineno {
            if f.lineno != l {
                return false;
            }
        }
        if self.pattern.matches(normalize_filename(&f.filename)) {
            return true;
        }
        if let Some(m) = &f.module {
            if self.pattern.matches(m) || self.pattern.matches(basename(m)) {
                return true;
            }
        }
        if let Some(func) = &f.function {
            if self.pattern.matches(func) {
                return true;
            }
        }
        false
    }

    /// `_match_traceback`: does this filter let a traceback (most recent
    /// frame first) through?
    pub fn match_traceback(
        &self,
        table: &FrameTable,
        frames: &[FrameId],
        cache: &mut HashMap<FrameId, bool>,
    ) -> bool {
        let mut m = |id: FrameId| {
            *cache
                .entry(id)
                .or_insert_with(|| self.match_frame_impl(table, id))
        };
        if self.all_frames {
            if frames.iter().any(|&f| m(f)) {
                self.inclusive
            } else {
                !self.inclusive
            }
        } else {
            match frames.first() {
                Some(&f) => m(f) ^ !self.inclusive,
                None => !self.inclusive,
            }
        }
    }
}

/// `Snapshot._filter_trace` for a set of filters: the trace passes at least
/// one inclusive filter (if any) and every exclusive one.
pub struct FilterSet {
    include: Vec<(Filter, HashMap<FrameId, bool>)>,
    exclude: Vec<(Filter, HashMap<FrameId, bool>)>,
}

impl FilterSet {
    pub fn new(filters: Vec<Filter>) -> FilterSet {
        let (inc, exc): (Vec<_>, Vec<_>) = filters.into_iter().partition(|f| f.inclusive);
        FilterSet {
            include: inc.into_iter().map(|f| (f, HashMap::new())).collect(),
            exclude: exc.into_iter().map(|f| (f, HashMap::new())).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    pub fn keep(&mut self, table: &FrameTable, frames: &[FrameId]) -> bool {
        if !self.include.is_empty()
            && !self
                .include
                .iter_mut()
                .any(|(f, c)| f.match_traceback(table, frames, c))
        {
            return false;
        }
        self.exclude
            .iter_mut()
            .all(|(f, c)| f.match_traceback(table, frames, c))
    }
}

impl Snapshot {
    /// `Snapshot.filter_traces(filters)`.
    pub fn filter_traces(&self, table: &FrameTable, filters: &mut FilterSet) -> Snapshot {
        if filters.is_empty() {
            return self.clone();
        }
        let keep: Vec<bool> = self
            .tracebacks
            .iter()
            .map(|tb| filters.keep(table, &tb.frames))
            .collect();
        Snapshot {
            traces: self
                .traces
                .iter()
                .filter(|t| keep[t.traceback as usize])
                .copied()
                .collect(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lineno() {
        let f = Filter::parse(true, "src/*.c:25", false);
        assert_eq!(f.lineno, Some(25));
        assert_eq!(f.pattern.as_str(), "src/*.c");
        let f = Filter::parse(true, "std::vector*", false);
        assert_eq!(f.lineno, None);
    }
}
