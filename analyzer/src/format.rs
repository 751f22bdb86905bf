//! Text formats, exactly as CPython's `Lib/tracemalloc.py` prints them:
//! `_format_size`, `str(Statistic)`, `str(StatisticDiff)`,
//! `Traceback.format()`, and an emulation of `linecache.getline().strip()`.

use std::collections::HashMap;
use std::path::Path;

/// `tracemalloc._format_size(size, sign)`: the unit is chosen on the
/// unrounded value, then printf rounding (exact binary value, ties to even)
/// applies. Rust's `{:.N}` formatting rounds the same way.
pub fn format_size(size: f64, sign: bool) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut s = size;
    for (i, unit) in UNITS.iter().enumerate() {
        if s.abs() < 100.0 && i != 0 {
            return if sign {
                format!("{s:+.1} {unit}")
            } else {
                format!("{s:.1} {unit}")
            };
        }
        if s.abs() < 10.0 * 1024.0 || i == UNITS.len() - 1 {
            return if sign {
                format!("{s:+.0} {unit}")
            } else {
                format!("{s:.0} {unit}")
            };
        }
        s /= 1024.0;
    }
    unreachable!()
}

/// `size / count` as Python's true division (correctly rounded for sizes
/// below 2^53).
pub fn average(size: u64, count: u64) -> f64 {
    size as f64 / count as f64
}

/// `str(Statistic)` with the traceback already rendered as `label`.
pub fn statistic_str(label: &str, size: u64, count: u64) -> String {
    let mut text = format!(
        "{label}: size={}, count={count}",
        format_size(size as f64, false)
    );
    if count != 0 {
        text.push_str(", average=");
        text.push_str(&format_size(average(size, count), false));
    }
    text
}

/// `str(StatisticDiff)` with the traceback already rendered as `label`.
pub fn statistic_diff_str(
    label: &str,
    size: u64,
    size_diff: i64,
    count: u64,
    count_diff: i64,
) -> String {
    let mut text = format!(
        "{label}: size={} ({}), count={count} ({count_diff:+})",
        format_size(size as f64, false),
        format_size(size_diff as f64, true),
    );
    if count != 0 {
        text.push_str(", average=");
        text.push_str(&format_size(average(size, count), false));
    }
    text
}

/// The "pretty top" recipe's `%.1f KiB`.
pub fn kib(size: u64) -> String {
    format!("{:.1} KiB", size as f64 / 1024.0)
}

/// Frame selection of `Traceback.format(limit, most_recent_first)`, on a
/// slice ordered oldest → most recent (Python's `Traceback` order). Returns
/// the indices to print, in print order.
pub fn traceback_slice(len: usize, limit: Option<i64>, most_recent_first: bool) -> Vec<usize> {
    let range = match limit {
        None => 0..len,
        Some(l) if l > 0 => len.saturating_sub(l as usize)..len,
        Some(l) => {
            // self[:limit]: drop the |limit| most recent frames (limit 0 → empty)
            let drop = l.unsigned_abs() as usize;
            if l == 0 {
                0..0
            } else {
                0..len.saturating_sub(drop)
            }
        }
    };
    let mut v: Vec<usize> = range.collect();
    if most_recent_first {
        v.reverse();
    }
    v
}

/// `Traceback.format(limit, most_recent_first)` over frames stored most
/// recent first, with source lines from `lc`.
pub fn traceback_lines(
    table: &crate::frame::FrameTable,
    frames: &[crate::frame::FrameId],
    limit: Option<i64>,
    most_recent_first: bool,
    lc: &mut LineCache,
) -> Vec<String> {
    let oldest_first: Vec<_> = frames.iter().rev().copied().collect();
    let mut lines = Vec::new();
    for i in traceback_slice(oldest_first.len(), limit, most_recent_first) {
        let f = table.frame(oldest_first[i]);
        lines.push(f.format_line());
        if f.has_line {
            if let Some(line) = lc.getline(&f.filename, f.lineno) {
                lines.push(format!("    {line}"));
            }
        }
    }
    lines
}

/// Python's `str.isspace()` set, used by `str.strip()`.
pub fn is_py_space(c: char) -> bool {
    matches!(c,
        ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\x1c'..='\x1f' | '\u{85}' | '\u{a0}'
        | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}'
        | '\u{205f}' | '\u{3000}')
}

/// `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Splits text the way Python's universal-newline mode does: `\n`, `\r\n`
/// and a lone `\r` end a line; no other Unicode line break does.
pub fn universal_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => lines.push(std::mem::take(&mut cur)),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut cur));
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Decodes source bytes as `tokenize.open()` does: a UTF-8 BOM, or a PEP 263
/// coding cookie in the first two lines, else UTF-8. `None` when the bytes
/// do not decode (Python then yields no lines for the whole file).
pub fn decode_source(bytes: &[u8]) -> Option<String> {
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return String::from_utf8(rest.to_vec()).ok();
    }
    let mut encoding = None;
    for (i, line) in bytes.split(|&b| b == b'\n').take(2).enumerate() {
        if let Some(enc) = coding_cookie(line) {
            encoding = Some(enc);
            break;
        }
        // The cookie may sit on line 2 only if line 1 is blank or a comment.
        let t: Vec<u8> = line
            .iter()
            .copied()
            .skip_while(|b| matches!(b, b' ' | b'\t' | b'\x0c'))
            .collect();
        if i == 0 && !(t.is_empty() || t == b"\r" || t.starts_with(b"#")) {
            break;
        }
    }
    match encoding.as_deref() {
        None | Some("utf-8") => String::from_utf8(bytes.to_vec()).ok(),
        Some("latin-1") => Some(bytes.iter().map(|&b| b as char).collect()),
        Some("ascii") => {
            if bytes.is_ascii() {
                Some(String::from_utf8(bytes.to_vec()).ok()?)
            } else {
                None
            }
        }
        Some(_) => None, // an encoding this emulation does not know: no lines
    }
}

/// `^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)`, normalised like
/// `tokenize._get_normal_name`.
fn coding_cookie(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?;
    let t = line.trim_start_matches([' ', '\t', '\x0c']);
    if !t.starts_with('#') {
        return None;
    }
    let pos = t.find("coding")?;
    let rest = &t[pos + 6..];
    let rest = rest.strip_prefix([':', '='])?;
    let rest = rest.trim_start_matches([' ', '\t']);
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
        .collect();
    if name.is_empty() {
        return None;
    }
    let enc = name[..name.len().min(12)].to_lowercase().replace('_', "-");
    Some(if enc == "utf-8" || enc.starts_with("utf-8-") {
        "utf-8".into()
    } else if ["latin-1", "iso-8859-1", "iso-latin-1"]
        .iter()
        .any(|p| enc == *p || enc.starts_with(&format!("{p}-")))
    {
        "latin-1".into()
    } else if enc == "ascii" || enc == "us-ascii" {
        "ascii".into()
    } else {
        enc
    })
}

/// An emulation of `linecache.getline(filename, lineno).strip()`, caching
/// each file once. Relative names resolve against the current directory
/// (Python would also search `sys.path`).
#[derive(Default)]
pub struct LineCache {
    files: HashMap<String, Option<Vec<String>>>,
}

impl LineCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The stripped source line, or `None` when Python would print nothing.
    pub fn getline(&mut self, filename: &str, lineno: u32) -> Option<String> {
        if filename.is_empty()
            || (filename.starts_with('<') && filename.ends_with('>'))
            || lineno < 1
        {
            return None;
        }
        let lines = self.files.entry(filename.to_string()).or_insert_with(|| {
            let p = Path::new(filename);
            if !p.is_file() {
                return None;
            }
            let bytes = std::fs::read(p).ok()?;
            Some(universal_lines(&decode_source(&bytes)?))
        });
        let line = lines.as_ref()?.get(lineno as usize - 1)?;
        let s = py_strip(line);
        if s.is_empty() {
            None
        } else {
            Some(s.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(format_size(10496.0, false), "10.2 KiB");
        assert_eq!(format_size(102399.0, false), "100.0 KiB");
        assert_eq!(format_size(10239.5, false), "10240 B");
        assert_eq!(format_size(2.5, false), "2 B");
        assert_eq!(format_size(0.0, true), "+0 B");
        assert_eq!(format_size(-10485760.0, true), "-10.0 MiB");
        assert_eq!(format_size(1152921504606846976.0, false), "1048576 TiB");
    }

    #[test]
    fn slices() {
        assert_eq!(traceback_slice(5, None, false), vec![0, 1, 2, 3, 4]);
        assert_eq!(traceback_slice(5, Some(2), false), vec![3, 4]);
        assert_eq!(traceback_slice(5, Some(2), true), vec![4, 3]);
        assert_eq!(traceback_slice(5, Some(-2), false), vec![0, 1, 2]);
        assert_eq!(traceback_slice(5, Some(0), false), Vec::<usize>::new());
        assert_eq!(traceback_slice(5, Some(-10), false), Vec::<usize>::new());
        assert_eq!(traceback_slice(5, Some(10), false), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn strip_and_lines() {
        assert_eq!(py_strip("\x0c\u{a0} x = 1 \t\r"), "x = 1");
        assert_eq!(universal_lines("a\r\nb\rc\nd"), vec!["a", "b", "c", "d"]);
        assert_eq!(
            universal_lines("a = 1\u{85}b = 2\u{2028}c\x0bd\x1ce\n").len(),
            1
        );
    }

    #[test]
    fn decoding() {
        assert_eq!(
            decode_source(b"# -*- coding: latin-1 -*-\nx = '\xe9'\n")
                .unwrap()
                .lines()
                .nth(1)
                .unwrap(),
            "x = '\u{e9}'"
        );
        assert!(decode_source(b"x = '\xe9'\n").is_none());
        assert_eq!(decode_source(b"\xef\xbb\xbfint x;\n").unwrap(), "int x;\n");
    }

    #[test]
    fn linecache() {
        let dir = std::env::temp_dir().join(format!("memtrace-lc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.c");
        std::fs::write(&f, "int main() {\n   \n\tx = malloc(10);  \r\n}").unwrap();
        let mut lc = LineCache::new();
        let name = f.to_str().unwrap();
        assert_eq!(lc.getline(name, 1).as_deref(), Some("int main() {"));
        assert_eq!(lc.getline(name, 2), None);
        assert_eq!(lc.getline(name, 3).as_deref(), Some("x = malloc(10);"));
        assert_eq!(lc.getline(name, 4).as_deref(), Some("}"));
        assert_eq!(lc.getline(name, 5), None);
        assert_eq!(lc.getline(name, 0), None);
        assert_eq!(lc.getline("<unknown>", 1), None);
        assert_eq!(lc.getline(dir.to_str().unwrap(), 1), None);
        std::fs::remove_dir_all(&dir).ok();
    }
}
