//! The `fnmatch` that tracemalloc's `Filter` and memtrace's frame rules use.
//!
//! Patterns follow `fnmatch.translate` of CPython 3.11 exactly: a full match,
//! `*` matches any run of characters including `/`, `?` one character,
//! `[seq]` / `[!seq]` classes with ranges (a reversed range matches nothing),
//! an unclosed `[` is literal, and there is no escape character. Matching is
//! case-sensitive. As `tracemalloc._normalize_filename` does, a trailing
//! `.pyc` becomes `.py` on both the pattern and the name.

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
}
