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

/// `tracemalloc.DomainFilter(inclusive, domain)`: passes a trace iff
/// `(trace.domain == domain) XOR (not inclusive)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainFilter {
    pub inclusive: bool,
    pub domain: u32,
}

impl DomainFilter {
    pub fn pass(&self, domain: u32) -> bool {
        (domain == self.domain) ^ !self.inclusive
    }
}

/// `Snapshot._filter_trace` for a set of filters: the trace passes at least
/// one inclusive filter (if any) and every exclusive one. Domain filters
/// take part as tracemalloc's do: an inclusive one is one more way to pass
/// the inclusive test (`--domain 7 --include a.c` keeps domain 7 *or* a.c),
/// an exclusive one one more test to pass.
pub struct FilterSet {
    include: Vec<(Filter, HashMap<FrameId, bool>)>,
    exclude: Vec<(Filter, HashMap<FrameId, bool>)>,
    domains: Vec<DomainFilter>,
}

/// What a set's frame filters say of one traceback (the part of the
/// verdict that does not depend on the trace's domain).
#[derive(Clone, Copy, Debug)]
pub struct FramesPass {
    /// Some inclusive frame filter lets it through.
    any_include: bool,
    /// Every exclusive frame filter lets it through.
    all_exclude: bool,
}

impl FilterSet {
    pub fn new(filters: Vec<Filter>) -> FilterSet {
        FilterSet::with_domains(filters, Vec::new())
    }

    pub fn with_domains(filters: Vec<Filter>, domains: Vec<DomainFilter>) -> FilterSet {
        let (inc, exc): (Vec<_>, Vec<_>) = filters.into_iter().partition(|f| f.inclusive);
        FilterSet {
            include: inc.into_iter().map(|f| (f, HashMap::new())).collect(),
            exclude: exc.into_iter().map(|f| (f, HashMap::new())).collect(),
            domains,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.domains.is_empty()
    }

    /// `_filter_trace` of a trace of domain 0 (the malloc heap's).
    pub fn keep(&mut self, table: &FrameTable, frames: &[FrameId]) -> bool {
        let p = self.frames_pass(table, frames);
        self.combine(p, 0)
    }

    pub fn frames_pass(&mut self, table: &FrameTable, frames: &[FrameId]) -> FramesPass {
        FramesPass {
            any_include: self
                .include
                .iter_mut()
                .any(|(f, c)| f.match_traceback(table, frames, c)),
            all_exclude: self
                .exclude
                .iter_mut()
                .all(|(f, c)| f.match_traceback(table, frames, c)),
        }
    }

    /// The verdict for a trace of `domain` whose frames gave `p`.
    pub fn combine(&self, p: FramesPass, domain: u32) -> bool {
        let mut inc = self.domains.iter().filter(|d| d.inclusive).peekable();
        let has_include = !self.include.is_empty() || inc.peek().is_some();
        let included = !has_include || p.any_include || inc.any(|d| d.pass(domain));
        included
            && p.all_exclude
            && self
                .domains
                .iter()
                .filter(|d| !d.inclusive)
                .all(|d| d.pass(domain))
    }
}

impl Snapshot {
    /// `Snapshot.filter_traces(filters)`.
    pub fn filter_traces(&self, table: &FrameTable, filters: &mut FilterSet) -> Snapshot {
        if filters.is_empty() {
            return self.clone();
        }
        let pass: Vec<FramesPass> = self
            .tracebacks
            .iter()
            .map(|tb| filters.frames_pass(table, &tb.frames))
            .collect();
        Snapshot {
            traces: self
                .traces
                .iter()
                .filter(|t| filters.combine(pass[t.traceback as usize], t.domain))
                .copied()
                .collect(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tracemalloc's combination: inclusive domain filters are or-ed with
    /// the inclusive frame filters, exclusive ones and-ed.
    #[test]
    fn domain_filters_combine_as_tracemalloc() {
        let d = |inclusive, domain| DomainFilter { inclusive, domain };
        let all = FramesPass {
            any_include: false,
            all_exclude: true,
        };
        let only7 = FilterSet::with_domains(vec![], vec![d(true, 7)]);
        assert!(only7.combine(all, 7));
        assert!(!only7.combine(all, 0));
        let not7 = FilterSet::with_domains(vec![], vec![d(false, 7)]);
        assert!(!not7.combine(all, 7));
        assert!(not7.combine(all, 0));
        let either =
            FilterSet::with_domains(vec![Filter::parse(true, "a.c", false)], vec![d(true, 7)]);
        let a = FramesPass {
            any_include: true,
            all_exclude: true,
        };
        assert!(either.combine(a, 0), "frame filter passes it");
        assert!(either.combine(all, 7), "domain filter passes it");
        assert!(!either.combine(all, 3));
        let excluded = FramesPass {
            any_include: true,
            all_exclude: false,
        };
        assert!(!only7.combine(excluded, 7));
    }

    #[test]
    fn parse_lineno() {
        let f = Filter::parse(true, "src/*.c:25", false);
        assert_eq!(f.lineno, Some(25));
        assert_eq!(f.pattern.as_str(), "src/*.c");
        let f = Filter::parse(true, "std::vector*", false);
        assert_eq!(f.lineno, None);
    }
}
