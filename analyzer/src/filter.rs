//! `tracemalloc.Filter` and the `fnmatch` it uses.
//!
//! Patterns follow `fnmatch.translate` of CPython 3.11 exactly: a full match,
//! `*` matches any run of characters including `/`, `?` one character,
//! `[seq]` / `[!seq]` classes with ranges (a reversed range matches nothing),
//! an unclosed `[` is literal, and there is no escape character. Matching is
//! case-sensitive. As `tracemalloc._normalize_filename` does, a trailing
//! `.pyc` becomes `.py` on both the pattern and the name.

use crate::snapshot::{FrameId, FrameTable};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
    /// (negated, single chars and inclusive ranges)
    Class(bool, Vec<(char, char)>),
    /// `[]`-like classes that match nothing (`(?!)`)
    Never,
}

/// A compiled fnmatch pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    toks: Vec<Tok>,
}

impl Pattern {
    pub fn new(pat: &str) -> Pattern {
        Pattern {
            source: pat.to_string(),
            toks: translate(&pat.chars().collect::<Vec<_>>()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// `fnmatch.fnmatchcase(name, pat)`.
    pub fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        glob_match(&self.toks, &s)
    }
}

fn translate(pat: &[char]) -> Vec<Tok> {
    let n = pat.len();
    let mut i = 0;
    let mut out = Vec::new();
    while i < n {
        let c = pat[i];
        i += 1;
        match c {
            '*' => {
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star)
                }
            }
            '?' => out.push(Tok::Any),
            '[' => {
                let mut j = i;
                if j < n && pat[j] == '!' {
                    j += 1;
                }
                if j < n && pat[j] == ']' {
                    j += 1;
                }
                while j < n && pat[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    out.push(Tok::Lit('['));
                    continue;
                }
                out.push(class(pat, i, j));
                i = j + 1;
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

/// The class between `pat[i..j]` (after `[`, before `]`), as fnmatch.translate builds it.
fn class(pat: &[char], mut i: usize, j: usize) -> Tok {
    let stuff = &pat[i..j];
    let chunks: Vec<Vec<char>> = if !stuff.contains(&'-') {
        vec![stuff.to_vec()]
    } else {
        let mut chunks: Vec<Vec<char>> = Vec::new();
        let mut k = if pat[i] == '!' { i + 2 } else { i + 1 };
        loop {
            let found = if k < j {
                pat[k..j].iter().position(|&c| c == '-').map(|p| p + k)
            } else {
                None
            };
            let Some(kk) = found else { break };
            chunks.push(pat[i..kk].to_vec());
            i = kk + 1;
            k = kk + 3;
        }
        let chunk = pat[i..j].to_vec();
        if !chunk.is_empty() {
            chunks.push(chunk);
        } else if let Some(last) = chunks.last_mut() {
            last.push('-'); // becomes an escaped, literal '-'
        }
        // Remove empty ranges.
        let mut k = chunks.len().saturating_sub(1);
        while k > 0 {
            let (a, b) = (chunks[k - 1].last().copied(), chunks[k].first().copied());
            match (a, b) {
                (Some(a), Some(b)) if a > b => {
                    let tail: Vec<char> = chunks[k][1..].to_vec();
                    chunks[k - 1].pop();
                    chunks[k - 1].extend(tail);
                    chunks.remove(k);
                }
                (None, _) | (_, None) => return Tok::Never, // Python raises IndexError here
                _ => {}
            }
            k -= 1;
        }
        chunks
    };
    // Flatten: chunks joined by range dashes.
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    if total == 0 {
        return Tok::Never;
    }
    let negated = chunks[0].first() == Some(&'!');
    if negated && total == 1 {
        return Tok::Class(true, Vec::new()); // `[!]`-like: any character
    }
    let mut chunks = chunks;
    if negated {
        chunks[0].remove(0);
    }
    let mut items = Vec::new();
    let m = chunks.len();
    for (idx, ch) in chunks.iter().enumerate() {
        let start = if idx > 0 { 1 } else { 0 };
        let end = if idx + 1 < m {
            ch.len().saturating_sub(1)
        } else {
            ch.len()
        };
        if idx > 0 {
            // range: previous chunk's last char to this chunk's first char
            let lo = *chunks[idx - 1].last().unwrap_or(&'\0');
            let hi = ch[0];
            items.push((lo, hi));
        }
        for &c in ch.get(start..end.max(start)).unwrap_or(&[]) {
            items.push((c, c));
        }
    }
    Tok::Class(negated, items)
}

fn tok_matches(t: &Tok, c: char) -> bool {
    match t {
        Tok::Any => true,
        Tok::Lit(l) => *l == c,
        Tok::Class(neg, items) => items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *neg,
        Tok::Never => false,
        Tok::Star => unreachable!(),
    }
}

/// Full-string glob match with single-star backtracking (linear in practice).
fn glob_match(p: &[Tok], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == Tok::Star {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && tok_matches(&p[pi], s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == Tok::Star {
        pi += 1;
    }
    pi == p.len()
}

/// `tracemalloc._normalize_filename` on POSIX.
pub fn normalize_filename(name: &str) -> &str {
    match name.strip_suffix(".pyc") {
        Some(stem) => &name[..stem.len() + 3],
        None => name,
    }
}

/// `fnmatch.fnmatch(name, pattern)` after normalisation of both (the pattern is normalised once).
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    Pattern::new(normalize_filename(pattern)).matches(normalize_filename(name))
}

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
            if self.pattern.matches(m) || self.pattern.matches(crate::snapshot::basename(m)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, pat: &str) -> bool {
        fnmatch(name, pat)
    }

    #[test]
    fn fnmatch_basics() {
        assert!(m("/app/a.py", "/*.py"));
        assert!(m("/lib/x.pyc", "/*.py"));
        assert!(m("foo.py", "*.pyc"));
        assert!(!m("foo.pyc", "*c"));
        assert!(m("é", "?"));
        assert!(!m("é", "??"));
        assert!(m("]", "[]]"));
        assert!(m("-", "[a-]"));
        assert!(!m("a", "[z-a]"));
        assert!(!m("z", "[z-a]"));
        assert!(m("q", "[!z-a]"));
        assert!(m("[", "["));
        assert!(m("[ab", "[ab"));
        assert!(m("a\\b", "a\\b"));
        assert!(!m("ab", "a\\b"));
        assert!(m("", ""));
        assert!(!m("a", ""));
        assert!(m("b", "[!a]"));
        assert!(!m("a", "[!a]"));
        assert!(m("x\ny", "x*y"));
        assert!(m("A", "[A-Z]"));
        assert!(!m("a", "[A-Z]"));
        assert!(!m("-", "[!a-c-]"));
        assert!(m("d", "[!a-c-]"));
        assert!(m("c", "[a-b-c]"));
        assert!(m("-", "[a-b-c]"));
        assert!(!m("B", "[a-b-c]"));
        assert!(m("libssl.so.3", "libssl.so*"));
        assert!(m("abcabd", "*ab?"));
        assert!(m("/usr/include/c++/12/bits/stl_vector.h", "/usr/include/*"));
        assert!(m("[]", "[]"));
        assert!(m("[!]", "[!]"));
        assert!(!m("!", "[!]"));
        assert!(m("[!]x", "[!]x"));
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
