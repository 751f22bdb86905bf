//! MEMTRACE_HISTORY: the period of the history file's points
//! (`writer/history.rs`, docs/FORMAT.md "The history file").

use std::sync::atomic::{AtomicU64, Ordering};

/// Plain LD_PRELOAD: no history unless MEMTRACE_HISTORY asks
/// (`memtrace run` asks for 1 s). Why: docs/ARCHITECTURE.md, "The history file".
pub const DEFAULT_NS: u64 = 0;
/// Shortest period accepted: 10 ms.
pub const MIN_NS: u64 = 10_000_000;
/// Longest: an hour.
pub const MAX_NS: u64 = 3_600_000_000_000;

/// `1s`, `100ms`, `2.5s`, `500` (ms), `off`/`0`/empty: Some(0). None for
/// garbage or outside 10 ms – 1 h.
pub fn parse(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim().to_ascii_lowercase();
    if s.is_empty() || s == "off" || s == "0" || s == "no" {
        return Some(0);
    }
    let (num, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e9)
    } else if let Some(n) = s.strip_suffix("min") {
        (n, 60e9)
    } else {
        (s.as_str(), 1e6)
    };
    let x: f64 = num.trim().parse().ok()?;
    if !x.is_finite() || x <= 0.0 {
        return None;
    }
    let ns = x * unit;
    if ns < MIN_NS as f64 || ns > MAX_NS as f64 {
        return None;
    }
    Some(ns as u64)
}

pub fn load(to: &AtomicU64, v: Option<&[u8]>, warn: fn(&str, &[u8], &str)) {
    if let Some(v) = v {
        match parse(v) {
            Some(ns) => to.store(ns, Ordering::Relaxed),
            None => warn(
                "MEMTRACE_HISTORY",
                v,
                "expected a period from 10ms to 1h such as 1s or 100ms, or off; history off",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn periods() {
        assert_eq!(parse(b"1s"), Some(1_000_000_000));
        assert_eq!(parse(b"100ms"), Some(100_000_000));
        assert_eq!(parse(b"2.5s"), Some(2_500_000_000));
        assert_eq!(parse(b"250"), Some(250_000_000));
        assert_eq!(parse(b"off"), Some(0));
        assert_eq!(parse(b""), Some(0));
        assert_eq!(parse(b"1ms"), None);
        assert_eq!(parse(b"-1s"), None);
        assert_eq!(parse(b"soon"), None);
        assert_eq!(parse(b"2h"), None);
    }
}
